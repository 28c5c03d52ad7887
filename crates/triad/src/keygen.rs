//! `triad keygen`: identities and the parties file.
//!
//! Two ways to make them:
//!
//! * **Three organisations** (a real deployment): each operator runs
//!   `triad keygen --party N --host H [--port P]` on its own machine, which writes that
//!   party's private key (`partyN.key`, created owner-only; it never leaves the machine)
//!   and a self-signed certificate (`partyN.pem`, public). The operators exchange the
//!   three certificates, and each runs `triad keygen --assemble party0.pem party1.pem
//!   party2.pem` to build the parties file, which pins every party's certificate by its
//!   SHA-256 fingerprint. No CA key exists, so no one can pose as a party without that
//!   party's own key. The fingerprints are printed for the operators to compare over a
//!   channel they trust; the file is byte-for-byte the same on all three machines.
//! * **One machine** (local runs and tests): `triad keygen --hosts a,b,c` makes a CA and
//!   all three keys here (whoever holds them can pose as any party) and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_service::{ClientConfig, ServerEntry};
use triad_transport::{
    certificate_party, generate_client_identity, generate_party_identity, generate_test_pki, EnrolledClient,
    Fingerprint, PartiesConfig, PartyConfig, PartyId,
};

use crate::cli::KeygenArgs;
use crate::error::{read_err, write_err, Error, Result};

/// What `keygen` wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The parties file.
    pub config: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// Run `triad keygen` as its arguments say, printing what it wrote.
pub fn run(k: &KeygenArgs) -> Result<()> {
    if let Some(name) = &k.client {
        let (w, fp) = keygen_client(&k.out, name, k.servers.as_deref(), k.force)?;
        for f in &w.files {
            println!("wrote {}", f.display());
        }
        println!("client {name}: certificate fingerprint {fp}");
        println!(
            "send these lines to each server's operator, to add to the parties file (the key stays here):\n\n\
             [[client]]\nname = \"{name}\"\nfingerprint = \"{fp}\""
        );
        return Ok(());
    }
    if let Some(id) = k.party {
        let party = PartyId::new(id).ok_or_else(|| Error::Usage(format!("--party {id}: must be 0, 1 or 2")))?;
        let host = k.host.as_deref().unwrap_or_default();
        let port = k.port.unwrap_or(7000 + u16::from(id));
        let (w, fp) = keygen_party(&k.out, party, host, port, k.force)?;
        for f in &w.files {
            println!("wrote {}", f.display());
        }
        println!("{party} at {}: certificate fingerprint {fp}", address(host, port));
        println!(
            "send {} (public) to the other two operators and read them this fingerprint over a channel you \
             trust; {} stays on this machine",
            w.config.display(),
            w.files.first().map(|f| f.display().to_string()).unwrap_or_default()
        );
        return Ok(());
    }
    if !k.assemble.is_empty() {
        let (w, parties) = assemble(&k.assemble, &k.out, &k.session, k.timeout_ms, k.force)?;
        for f in &w.files {
            println!("wrote {}", f.display());
        }
        for (p, address, fp) in &parties {
            println!("{p} at {address}: {fp}");
        }
        println!(
            "check each fingerprint and address above against what that party's operator read you; then run \
             this party with: triad party --id N --config {} <train|infer> [options]",
            w.config.display()
        );
        return Ok(());
    }
    eprintln!(
        "triad keygen: all three private keys are made on this machine and signed by one CA: for local runs and \
         tests only (whoever holds these files can pose as any party). For three organisations, each runs \
         `triad keygen --party N --host H` and then `triad keygen --assemble`."
    );
    let mut w = keygen(&k.out, &k.hosts, &k.ports, &k.session, k.timeout_ms, k.force)?;
    if !k.clients.is_empty() {
        w.files.extend(enrol_local_clients(&k.out, &k.hosts, &k.client_ports, &k.clients)?);
    }
    for f in &w.files {
        println!("wrote {}", f.display());
    }
    println!(
        "run each party on its host with: triad party --id N --config {} <train|infer> [options]",
        w.config.display()
    );
    if !k.clients.is_empty() {
        println!(
            "or run the three servers of the service with: triad serve --id N --config {}; clients use their \
             <name>.toml with triad client or triad.Client",
            w.config.display()
        );
    }
    Ok(())
}

fn address(h: &str, p: u16) -> String {
    if h.contains(':') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

/// Write `text` to `path`; a secret is created owner-only (never readable by others,
/// not even briefly).
fn write_file(path: &Path, text: &str, secret: bool) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        // An existing file (--force) keeps its mode on open: narrow it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| write_err(path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| write_err(path, e))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| write_err(path, e))
}

fn refuse_overwrite(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(Error::Usage(format!("{} already exists (pass --force to overwrite)", path.display())));
    }
    Ok(())
}

/// One machine: writes `ca.pem`, `party<i>.pem`, `party<i>.key` and `parties.toml` into
/// `out`. `hosts[i]` is party `i`'s host name or IP address (in its certificate and its
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
    refuse_overwrite(&config, force)?;
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let pki = generate_test_pki([h0.as_str(), h1.as_str(), h2.as_str()])?;
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str, secret: bool| -> Result<()> {
        let path = out.join(name);
        write_file(&path, text, secret)?;
        files.push(path);
        Ok(())
    };
    put("ca.pem", &pki.ca_cert_pem, false)?;
    for (i, pp) in pki.parties.iter().enumerate() {
        put(&format!("party{i}.pem"), &pp.cert_pem, false)?;
        put(&format!("party{i}.key"), &pp.key_pem, true)?;
    }
    let addresses = [address(h0, *p0), address(h1, *p1), address(h2, *p2)];
    let cfg = parties_config(session, timeout_ms, Some(PathBuf::from("ca.pem")), addresses, [None; 3]);
    put("parties.toml", &checked_toml(&cfg)?, false)?;
    Ok(Written { config, files })
}

fn parties_config(
    session: &str,
    timeout_ms: u64,
    ca: Option<PathBuf>,
    addresses: [String; 3],
    pins: [Option<Fingerprint>; 3],
) -> PartiesConfig {
    let mut addresses = addresses.into_iter();
    let parties = PartyId::ALL.map(|id| PartyConfig {
        id,
        address: addresses.next().unwrap_or_default(),
        cert: PathBuf::from(format!("party{}.pem", id.as_u8())),
        key: PathBuf::from(format!("party{}.key", id.as_u8())),
        fingerprint: pins[id.index()],
        client_address: None,
    });
    PartiesConfig {
        session: session.to_string(),
        timeout: Duration::from_millis(timeout_ms),
        setup_timeout: None,
        max_frame_bytes: triad_transport::DEFAULT_MAX_FRAME_BYTES,
        max_buffered_bytes: None,
        ca,
        parties,
        clients: Vec::new(),
        net: None,
    }
}

/// The file's text, checked to read back.
fn checked_toml(cfg: &PartiesConfig) -> Result<String> {
    let text = cfg.to_toml();
    PartiesConfig::parse(&text)?;
    Ok(text)
}

/// One machine, for `triad serve`: gives each party a `client_address` (`hosts[i]`,
/// `client_ports[i]`), makes a key and certificate for each client of `names`
/// (`<name>.pem`, `<name>.key`), enrols them in `out/parties.toml`, and writes each a
/// client file (`<name>.toml`). Returns the files written.
pub fn enrol_local_clients(
    out: &Path,
    hosts: &[String],
    client_ports: &[u16],
    names: &[String],
) -> Result<Vec<PathBuf>> {
    if client_ports.len() != 3 || client_ports.contains(&0) {
        return Err(Error::Usage("--client-ports needs three nonzero ports separated by commas".into()));
    }
    // The file as keygen wrote it (paths relative to it), changed and written back.
    let config = out.join("parties.toml");
    let text = std::fs::read_to_string(&config).map_err(|e| read_err(&config, e))?;
    let mut cfg = PartiesConfig::parse(&text)?;
    for ((p, host), port) in cfg.parties.iter_mut().zip(hosts).zip(client_ports) {
        p.client_address = Some(address(host, *port));
    }
    let mut files = Vec::new();
    for name in names {
        let c = generate_client_identity(name)?;
        let (cert, key) = (out.join(format!("{name}.pem")), out.join(format!("{name}.key")));
        write_file(&cert, &c.cert_pem, false)?;
        write_file(&key, &c.key_pem, true)?;
        files.extend([cert, key]);
        cfg.clients.push(EnrolledClient { name: name.clone(), fingerprint: c.fingerprint });
    }
    write_file(&config, &checked_toml(&cfg)?, false)?;
    // The servers' certificates are read from beside the file.
    let resolved = cfg.with_base_dir(out);
    for name in names {
        let file = out.join(format!("{name}.toml"));
        let c = client_file(&resolved, PathBuf::from(format!("{name}.pem")), PathBuf::from(format!("{name}.key")))?;
        write_file(&file, &c.to_toml(), false)?;
        files.push(file);
    }
    Ok(files)
}

/// The client file for a client with `cert` and `key`: each server's `client_address`
/// from `cfg` (loaded, so its certificate paths resolve) and its certificate's
/// fingerprint (the pin, or the certificate file's own).
pub fn client_file(cfg: &PartiesConfig, cert: PathBuf, key: PathBuf) -> Result<ClientConfig> {
    let mut servers = Vec::with_capacity(3);
    for p in &cfg.parties {
        let address = p.client_address.clone().ok_or_else(|| {
            Error::Usage(format!(
                "{} has no client_address in the parties file: its operator must add one for triad serve",
                p.id
            ))
        })?;
        let fingerprint = match p.fingerprint {
            Some(fp) => fp,
            None => {
                let text = std::fs::read_to_string(&p.cert)
                    .map_err(|e| Error::Read { path: p.cert.clone(), detail: e.to_string() })?;
                certificate_party(&text)?.1
            }
        };
        servers.push(ServerEntry { address, fingerprint });
    }
    let servers: [ServerEntry; 3] =
        servers.try_into().map_err(|_| Error::Usage("the parties file needs three parties".into()))?;
    Ok(ClientConfig { cert, key, servers, timeout: Duration::from_secs(600) })
}

/// A client of `triad serve`: writes `<name>.key` (owner-only) and `<name>.pem` into
/// `out`, and with `servers` (the parties file) the client file `<name>.toml`. Returns
/// what it wrote and the certificate's fingerprint, which the servers' operators enrol.
pub fn keygen_client(out: &Path, name: &str, servers: Option<&Path>, force: bool) -> Result<(Written, Fingerprint)> {
    let (key_path, cert_path) = (out.join(format!("{name}.key")), out.join(format!("{name}.pem")));
    refuse_overwrite(&key_path, force)?;
    let client = match servers {
        Some(path) => {
            let cfg = PartiesConfig::load(path)?;
            Some(client_file(&cfg, PathBuf::from(format!("{name}.pem")), PathBuf::from(format!("{name}.key")))?)
        }
        None => None,
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let pem = generate_client_identity(name)?;
    write_file(&key_path, &pem.key_pem, true)?;
    write_file(&cert_path, &pem.cert_pem, false)?;
    let mut files = vec![key_path, cert_path.clone()];
    if let Some(c) = client {
        let file = out.join(format!("{name}.toml"));
        write_file(&file, &c.to_toml(), false)?;
        files.push(file);
    }
    Ok((Written { config: cert_path, files }, pem.fingerprint))
}

const ADDRESS_LINE: &str = "triad address:";
const FINGERPRINT_LINE: &str = "sha256 fingerprint:";

/// This machine's party only: writes `party<N>.key` (owner-only) and `party<N>.pem` (a
/// self-signed certificate naming `party<N>` and `host`, preceded by lines giving the
/// party's address and fingerprint) into `out`. Returns what it wrote (the key first; the
/// certificate is [`Written::config`]) and the fingerprint. Refuses to overwrite an
/// existing key unless `force`.
pub fn keygen_party(out: &Path, party: PartyId, host: &str, port: u16, force: bool) -> Result<(Written, Fingerprint)> {
    if host.is_empty() {
        return Err(Error::Usage("--host: give this machine's host name or IP address, as the others reach it".into()));
    }
    if port == 0 {
        return Err(Error::Usage("--port: port 0 is not allowed".into()));
    }
    let n = party.as_u8();
    let (key_path, cert_path) = (out.join(format!("party{n}.key")), out.join(format!("party{n}.pem")));
    refuse_overwrite(&key_path, force)?;
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let pem = generate_party_identity(party, host)?;
    let (_, fp) = certificate_party(&pem.cert_pem)?;
    write_file(&key_path, &pem.key_pem, true)?;
    // Text before the PEM block is ignored by PEM readers (RFC 7468).
    let card =
        format!("triad party: {n}\n{ADDRESS_LINE} {}\n{FINGERPRINT_LINE} {fp}\n{}", address(host, port), pem.cert_pem);
    write_file(&cert_path, &card, false)?;
    Ok((Written { config: cert_path.clone(), files: vec![key_path, cert_path] }, fp))
}

/// Build `out/parties.toml` from the three parties' certificates (from
/// [`keygen_party`], in any order), pinning each by fingerprint, and copy the
/// certificates next to it as `party<N>.pem`. Returns what it wrote and, for parties 0,
/// 1, 2, the address and fingerprint to check with the operators.
#[allow(clippy::type_complexity)]
pub fn assemble(
    certs: &[PathBuf],
    out: &Path,
    session: &str,
    timeout_ms: u64,
    force: bool,
) -> Result<(Written, Vec<(PartyId, String, Fingerprint)>)> {
    if certs.len() != 3 {
        return Err(Error::Usage(format!("--assemble needs the three parties' certificates, got {}", certs.len())));
    }
    let config = out.join("parties.toml");
    refuse_overwrite(&config, force)?;
    let mut slots: [Option<(String, Fingerprint, String)>; 3] = [None, None, None];
    for path in certs {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Read { path: path.clone(), detail: e.to_string() })?;
        let bad = |detail: String| Error::Usage(format!("{}: {detail}", path.display()));
        let (party, fp) = certificate_party(&text).map_err(|e| bad(e.to_string()))?;
        let line = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|v| v.trim().to_string())
                .ok_or_else(|| bad(format!("no \"{prefix}\" line: use the certificate `triad keygen --party` wrote")))
        };
        let addr = line(ADDRESS_LINE)?;
        if line(FINGERPRINT_LINE)?.parse::<Fingerprint>().ok() != Some(fp) {
            return Err(bad(format!(
                "the fingerprint line does not match the certificate ({fp}): the file was altered"
            )));
        }
        if slots[party.index()].is_some() {
            return Err(bad(format!("a second certificate for {party}")));
        }
        slots[party.index()] = Some((addr, fp, text));
    }
    let [Some(a), Some(b), Some(c)] = slots else {
        return Err(Error::Usage("--assemble needs one certificate for each of parties 0, 1 and 2".into()));
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let mut files = Vec::new();
    let mut summary = Vec::new();
    for (party, (addr, fp, text)) in PartyId::ALL.into_iter().zip([&a, &b, &c]) {
        let dst = out.join(format!("party{}.pem", party.as_u8()));
        let same = std::fs::read_to_string(&dst).map(|t| &t == text).unwrap_or(false);
        if !same {
            write_file(&dst, text, false)?;
            files.push(dst);
        }
        summary.push((party, addr.clone(), *fp));
    }
    let cfg = parties_config(
        session,
        timeout_ms,
        None,
        [a.0.clone(), b.0.clone(), c.0.clone()],
        [Some(a.1), Some(b.1), Some(c.1)],
    );
    write_file(&config, &checked_toml(&cfg)?, false)?;
    files.push(config.clone());
    Ok((Written { config, files }, summary))
}
