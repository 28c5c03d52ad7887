//! Three parties for the protocol suites: in one process, or over TCP with mutual TLS on
//! loopback, always with the public test keys so runs are reproducible.

use std::net::TcpListener;
use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_ring::CpuDevice;
use triad_sharing::{run_in_process_with_test_keys, Party, Result};
use triad_transport::{connect_tls_with_listener, generate_test_pki, LinkConfig, PartiesConfig, PartyId};

/// Runs `f` on three parties linked in process, with test keys from `seed`.
pub fn in_process<R: Send>(seed: u64, f: impl Fn(&Party<CpuDevice>) -> Result<R> + Sync) -> Result<[R; 3]> {
    let link = LinkConfig { timeout: Duration::from_secs(20), ..LinkConfig::default() };
    run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), seed, f)
}

/// Runs `f` on three parties linked by TCP with mutual TLS on loopback (fresh certificates,
/// free ports), with test keys from `seed`.
pub fn over_tls<R, F>(seed: u64, f: F) -> Result<[R; 3]>
where
    R: Send + 'static,
    F: Fn(&Party<CpuDevice>) -> Result<R> + Send + Sync + Clone + 'static,
{
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| triad_sharing::Error::Usage(e.to_string()));
    let (l0, l1) = (bind()?, bind()?);
    let addr = |l: &TcpListener| l.local_addr().map_err(|e| triad_sharing::Error::Usage(e.to_string()));
    let (a0, a1) = (addr(&l0)?, addr(&l1)?);
    let text = format!(
        "session = \"triad-tests\"\ntimeout_ms = 20000\nca = \"ca.pem\"\n\
         [[party]]\nid = 0\naddress = \"{a0}\"\ncert = \"p0.pem\"\nkey = \"p0.key\"\n\
         [[party]]\nid = 1\naddress = \"{a1}\"\ncert = \"p1.pem\"\nkey = \"p1.key\"\n\
         [[party]]\nid = 2\naddress = \"127.0.0.1:9\"\ncert = \"p2.pem\"\nkey = \"p2.key\"\n"
    );
    let cfg = PartiesConfig::parse(&text).map_err(|e| triad_sharing::Error::Usage(e.to_string()))?;
    let pki = generate_test_pki(["127.0.0.1", "127.0.0.1", "localhost"])?;
    let mut listeners = [Some(l0), Some(l1), None];
    let mut handles = Vec::new();
    for id in PartyId::ALL {
        let cfg = cfg.clone();
        let ident = pki.identity(id)?;
        let listener = listeners[id.index()].take();
        let f = f.clone();
        handles.push(std::thread::spawn(move || {
            let net = connect_tls_with_listener(&cfg, id, ident, listener)?;
            let p = Party::with_test_keys(CpuDevice, net, FixedConfig::default(), seed);
            f(&p)
        }));
    }
    let mut out = Vec::new();
    for (h, id) in handles.into_iter().zip(PartyId::ALL) {
        out.push(h.join().map_err(|_| triad_sharing::Error::Panicked(id, "party thread".into()))??);
    }
    out.try_into().map_err(|_| triad_sharing::Error::Usage("three results".into()))
}
