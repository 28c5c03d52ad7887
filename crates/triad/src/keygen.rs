//! `triad keygen`: a fresh CA, the three parties' certificates and keys, and the parties
//! file that names them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_transport::{generate_test_pki, PartiesConfig, PartyConfig, PartyId};

use crate::error::{write_err, Error, Result};

/// What `keygen` wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The parties file.
    pub config: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// Writes `ca.pem`, `party<i>.pem`, `party<i>.key` and `parties.toml` into `out`.
/// `hosts[i]` is party `i`'s host name or IP address (in its certificate and its
/// address), `ports[i]` its port. Refuses to overwrite an existing parties file unless
/// `force`.
pub fn keygen(
    out: &Path,
    hosts: &[String],
    ports: &[u16],
    session: &str,
    timeout_ms: u64,
    force: bool,
) -> Result<Written> {
    let [h0, h1, h2] = hosts else {
        return Err(Error::Usage(format!("--hosts needs three host names separated by commas, got {}", hosts.len())));
    };
    let [p0, p1, p2] = ports else {
        return Err(Error::Usage(format!("--ports needs three ports separated by commas, got {}", ports.len())));
    };
    if [*p0, *p1, *p2].contains(&0) {
        return Err(Error::Usage("--ports: port 0 is not allowed".into()));
    }
    let config = out.join("parties.toml");
    if config.exists() && !force {
        return Err(Error::Usage(format!("{} already exists (pass --force to overwrite)", config.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let pki = generate_test_pki([h0.as_str(), h1.as_str(), h2.as_str()])?;
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str, secret: bool| -> Result<()> {
        let path = out.join(name);
        // A private key is created owner-only (never readable by others, not even briefly).
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            opts.mode(0o600);
            // An existing file (--force) keeps its mode on open: narrow it first.
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| write_err(&path, e))?;
            }
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut f = opts.open(&path).map_err(|e| write_err(&path, e))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| write_err(&path, e))?;
        files.push(path);
        Ok(())
    };
    put("ca.pem", &pki.ca_cert_pem, false)?;
    for (i, pp) in pki.parties.iter().enumerate() {
        put(&format!("party{i}.pem"), &pp.cert_pem, false)?;
        put(&format!("party{i}.key"), &pp.key_pem, true)?;
    }
    let addr = |h: &str, p: u16| if h.contains(':') { format!("[{h}]:{p}") } else { format!("{h}:{p}") };
    let party = |i: usize, h: &str, p: u16| PartyConfig {
        id: PartyId::ALL[i],
        address: addr(h, p),
        cert: PathBuf::from(format!("party{i}.pem")),
        key: PathBuf::from(format!("party{i}.key")),
    };
    let cfg = PartiesConfig {
        session: session.to_string(),
        timeout: Duration::from_millis(timeout_ms),
        max_frame_bytes: triad_transport::DEFAULT_MAX_FRAME_BYTES,
        ca: PathBuf::from("ca.pem"),
        parties: [party(0, h0, *p0), party(1, h1, *p1), party(2, h2, *p2)],
    };
    let text = cfg.to_toml();
    // Check that what we write reads back.
    PartiesConfig::parse(&text)?;
    put("parties.toml", &text, false)?;
    Ok(Written { config, files })
}
