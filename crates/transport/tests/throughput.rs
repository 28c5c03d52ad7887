//! Throughput check (ignored by default; run with `--release -- --ignored --nocapture`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Instant;
use triad_transport::{in_process, LinkConfig, Peer};

const N: usize = 10_000_000;

fn timed(ch: &triad_transport::Channels) -> Result<f64, triad_transport::TransportError> {
    let data = vec![ch.id().as_u8() as u64; N];
    // Warm up and line the parties up.
    ch.send_u64s(Peer::Next, vec![0])?;
    ch.recv_u64s(Peer::Prev, 1)?;
    let start = Instant::now();
    match ch.id().as_u8() {
        0 => {
            ch.send_u64s(Peer::Next, data)?;
            ch.recv_u64s(Peer::Next, N)?;
        }
        1 => {
            ch.send_u64s(Peer::Prev, data)?;
            ch.recv_u64s(Peer::Prev, N)?;
        }
        _ => return Ok(0.0),
    }
    Ok(start.elapsed().as_secs_f64())
}

#[test]
#[ignore]
fn throughput_80mb() {
    let [a, b, c] = in_process(&LinkConfig::default());
    let hs = [spawn_local(a, timed), spawn_local(b, timed), spawn_local(c, timed)];
    let t: Vec<f64> = hs.into_iter().map(|h| join(h).0.unwrap()).collect();
    eprintln!("in-process: 80 MB each way in {:.4} s", t[0]);

    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(60_000, "bench");
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, timed),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, timed),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, timed),
    ];
    let t: Vec<f64> = hs.into_iter().map(|h| join(h).0.unwrap()).collect();
    eprintln!("TLS loopback: 80 MB each way at once in {:.3} s = {:.0} MB/s per direction", t[0], 80.0 / t[0]);
}
