//! Test support (hidden): three servers' identities, enrolled clients and client files
//! in a directory, and three gates on loopback ports, for tests that run the servers'
//! compute loops in one process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_transport::{
    generate_client_identity, generate_party_identity, service_acceptor, EnrolledClient, Fingerprint, PartiesConfig,
    PartyConfig, PartyId, DEFAULT_MAX_FRAME_BYTES,
};

use crate::client::{ClientConfig, ServerEntry};
use crate::error::{Result, ServiceError};
use crate::gate::Gate;
use crate::wire::DEFAULT_MAX_BODY_BYTES;

/// Three servers' gates, started, and a client file for each enrolled client.
#[derive(Debug)]
pub struct TestService {
    /// The servers' gates, by party.
    pub gates: Vec<Gate>,
    /// The parties file as the servers read it.
    pub cfg: PartiesConfig,
    /// Each enrolled client's name and client file.
    pub clients: Vec<(String, ClientConfig)>,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| ServiceError::io(format!("writing {}", path.display()), e))
}

/// Writes identities for three servers and the `clients` into `dir`, enrols the clients,
/// and starts the three gates on free loopback ports (fixed point with `frac_bits`).
pub fn start(dir: &Path, clients: &[&str], frac_bits: u32) -> Result<TestService> {
    std::fs::create_dir_all(dir).map_err(|e| ServiceError::io("test dir", e))?;
    let mut parties = Vec::new();
    let mut listeners = Vec::new();
    for p in PartyId::ALL {
        let pem = generate_party_identity(p, "127.0.0.1")?;
        let (cert, key) = (dir.join(format!("party{}.pem", p.index())), dir.join(format!("party{}.key", p.index())));
        write(&cert, &pem.cert_pem)?;
        write(&key, &pem.key_pem)?;
        let fp = triad_transport::certificate_party(&pem.cert_pem)?.1;
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ServiceError::io("binding", e))?;
        let addr = l.local_addr().map_err(|e| ServiceError::io("binding", e))?.to_string();
        listeners.push(l);
        parties.push(PartyConfig {
            id: p,
            address: "127.0.0.1:9".into(),
            cert,
            key,
            fingerprint: Some(fp),
            client_address: Some(addr),
        });
    }
    let mut enrolled = Vec::new();
    let mut files = Vec::new();
    for name in clients {
        let c = generate_client_identity(name)?;
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        write(&cert, &c.cert_pem)?;
        write(&key, &c.key_pem)?;
        enrolled.push(EnrolledClient { name: name.to_string(), fingerprint: c.fingerprint });
        files.push((name.to_string(), cert, key));
    }
    let [p0, p1, p2]: [PartyConfig; 3] = parties.try_into().map_err(|_| ServiceError::Usage("three parties".into()))?;
    let cfg = PartiesConfig {
        session: "triad-service-test".into(),
        timeout: Duration::from_secs(60),
        setup_timeout: None,
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        max_buffered_bytes: None,
        ca: None,
        parties: [p0, p1, p2],
        clients: enrolled.clone(),
        net: None,
    };
    let servers: [ServerEntry; 3] = PartyId::ALL.map(|p| {
        let e = cfg.party(p);
        ServerEntry {
            address: e.client_address.clone().unwrap_or_default(),
            fingerprint: e.fingerprint.unwrap_or(Fingerprint([0; 32])),
        }
    });
    let clients = files
        .into_iter()
        .map(|(name, cert, key)| {
            (name, ClientConfig { cert, key, servers: servers.clone(), timeout: Duration::from_secs(120) })
        })
        .collect();
    let mut gates = Vec::new();
    for (p, l) in PartyId::ALL.into_iter().zip(listeners) {
        let tls = service_acceptor(&cfg, p)?;
        gates.push(Gate::start(l, tls, enrolled.clone(), p, frac_bits, DEFAULT_MAX_BODY_BYTES)?);
    }
    Ok(TestService { gates, cfg, clients })
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    std::env::temp_dir().join(format!("triad-{tag}-{}", u64::from_le_bytes(r)))
}

/// A client that leaves mid-request: sends an inference request for `x` (shape `dims`)
/// to the servers in `to` only, then disconnects without waiting for an answer.
pub fn leave_mid_request(cfg: &ClientConfig, to: &[usize], model: &str, dims: &[usize], x: &[f64]) -> Result<()> {
    use crate::split::{for_server, split};
    use crate::wire::{words_to_bytes, write_frame, Request};
    let pem = |p: &Path| std::fs::read_to_string(p).map_err(|e| ServiceError::io("reading a pem", e));
    let tls = triad_transport::service_connector(
        &pem(&cfg.cert)?,
        &pem(&cfg.key)?,
        cfg.servers.clone().map(|s| s.fingerprint),
    )?;
    let fixed = triad_fixed::FixedConfig::new(20).map_err(|e| ServiceError::Usage(e.to_string()))?;
    let parts = split(&fixed, x)?;
    let req = Request::Infer { id: 0x5eed, model: model.into(), dims: dims.to_vec() };
    for &i in to {
        let mut s = crate::client::connect_one(&tls, i, &cfg.servers[i].address, cfg.timeout)?;
        write_frame(&mut s, &req, &words_to_bytes(&for_server(&parts, i))).map_err(|e| ServiceError::io("send", e))?;
        s.conn.send_close_notify();
        let _ = s.conn.complete_io(&mut s.sock);
    }
    Ok(())
}
