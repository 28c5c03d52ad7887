//! Running three parties in one process (tests and the one-machine demo).

use std::thread;

use triad_fixed::FixedConfig;
use triad_ring::Device;
use triad_transport::{in_process, LinkConfig, PartyId, TransportError};

use crate::error::{Error, Result};
use crate::party::Party;

/// Runs `f` on three parties, each on its own thread, linked in process, with keys agreed
/// at setup from the OS random source. Returns each party's result in party order, or, if
/// any failed, the error where the failure started: the first party (by id) whose error
/// is its own rather than a peer's abort or hang-up.
pub fn run_in_process<D, R, F>(dev: D, link: &LinkConfig, fixed: FixedConfig, f: F) -> Result<[R; 3]>
where
    D: Device,
    R: Send,
    F: Fn(&Party<D>) -> Result<R> + Sync,
{
    run_with(link, |net| {
        let party = Party::setup(dev.clone(), net, fixed)?;
        f(&party)
    })
}

/// Like [`run_in_process`] with keys from a public seed: reproducible, for tests only.
#[cfg(feature = "insecure-test-keys")]
pub fn run_in_process_with_test_keys<D, R, F>(
    dev: D,
    link: &LinkConfig,
    fixed: FixedConfig,
    seed: u64,
    f: F,
) -> Result<[R; 3]>
where
    D: Device,
    R: Send,
    F: Fn(&Party<D>) -> Result<R> + Sync,
{
    run_with(link, |net| {
        let party = Party::with_test_keys(dev.clone(), net, fixed, seed);
        f(&party)
    })
}

fn run_with<R, G>(link: &LinkConfig, g: G) -> Result<[R; 3]>
where
    R: Send,
    G: Fn(triad_transport::Channels) -> Result<R> + Sync,
{
    let nets = in_process(link);
    let results: Vec<Result<R>> = thread::scope(|s| {
        let handles: Vec<_> = nets
            .into_iter()
            .map(|net| {
                let g = &g;
                s.spawn(move || g(net))
            })
            .collect();
        handles
            .into_iter()
            .zip(PartyId::ALL)
            .map(|(h, id)| {
                h.join().unwrap_or_else(|e| {
                    let msg = e
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| e.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(Error::Panicked(id, msg))
                })
            })
            .collect()
    });
    // When parties fail, report where the failure started: a party stopped by a peer's
    // abort (or hang-up) only carries that peer's news, so a party's own error comes
    // first; among those, the lowest party id.
    let relayed = |e: &Error| {
        matches!(e, Error::Transport(TransportError::PeerAborted { .. } | TransportError::PeerClosed { .. }))
    };
    let mut out = Vec::with_capacity(3);
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let i = errors.iter().position(|e| !relayed(e)).unwrap_or(0);
        return Err(errors.swap_remove(i));
    }
    out.try_into().map_err(|_| Error::Usage("expected three results".into()))
}
