//! A modelled network (`LinkConfig::net`): every message arrives half a round trip after
//! its last byte has left, and bytes leave at the modelled bandwidth, in process and over
//! TLS alike. Only lower bounds are asserted (a delay never ends early); counts are
//! unchanged by the model.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};
use triad_transport::{in_process, Channels, LinkConfig, NetModel, Peer, TransportError};

const RTT_MS: f64 = 80.0;

/// A ping-pong of `hops` messages between parties 0 and 1, each waiting on the last.
fn ping_pong(ch: &Channels, hops: usize) -> Result<Duration, TransportError> {
    let t = Instant::now();
    for k in 0..hops {
        match (ch.id().as_u8(), k % 2) {
            (0, 0) | (1, 1) => {
                ch.send_u64s(if ch.id().as_u8() == 0 { Peer::Next } else { Peer::Prev }, vec![k as u64])?
            }
            (0, _) => assert_eq!(ch.recv_u64s(Peer::Next, 1)?, vec![k as u64]),
            (1, _) => assert_eq!(ch.recv_u64s(Peer::Prev, 1)?, vec![k as u64]),
            _ => {}
        }
    }
    Ok(t.elapsed())
}

#[test]
fn each_hop_takes_half_a_round_trip_in_process() {
    let net = NetModel::new(RTT_MS, 10.0).unwrap();
    let cfg = LinkConfig { timeout: Duration::from_secs(10), net: Some(net), ..LinkConfig::default() };
    let hs = in_process(&cfg).map(|ch| spawn_local(ch, |ch| ping_pong(ch, 4)));
    for (i, h) in hs.into_iter().take(2).enumerate() {
        let took = join(h).0.unwrap();
        // Party 0 waits for replies to hops 0 and 2: four one-way trips from its start.
        // Party 1's clock starts when its thread does, which may be after hop 0 has
        // arrived (a thread scheduled late): from then on it still waits for hop 2, two
        // one-way trips after its reply to hop 0.
        let trips = if i == 0 { 4 } else { 2 };
        assert!(took >= Duration::from_millis(trips * 40), "party {i}: {took:?}");
    }
}

#[test]
fn bytes_leave_at_the_modelled_bandwidth() {
    // 0.08 Gbit/s is 10 MB/s: 2 MB take 200 ms to leave, and a second message waits for
    // the first to have left.
    let net = NetModel::new(0.0, 0.08).unwrap();
    let cfg = LinkConfig { timeout: Duration::from_secs(10), net: Some(net), ..LinkConfig::default() };
    let [a, b, c] = in_process(&cfg);
    let t = Instant::now();
    a.send_u64s(Peer::Next, vec![7; 125_000]).unwrap();
    a.send_u64s(Peer::Next, vec![8; 125_000]).unwrap();
    assert!(t.elapsed() < Duration::from_millis(150), "sending must not block the sender");
    assert_eq!(b.recv_u64s(Peer::Prev, 125_000).unwrap()[0], 7);
    assert!(t.elapsed() >= Duration::from_millis(100), "{:?}", t.elapsed());
    assert_eq!(b.recv_u64s(Peer::Prev, 125_000).unwrap()[0], 8);
    assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    drop((a, b, c));
}

#[test]
fn each_hop_takes_half_a_round_trip_over_tls_and_counts_do_not_change() {
    let pki = pki();
    let (mut cfg, [l0, l1, l2]) = config(10_000, "netmodel");
    cfg.net = Some(NetModel::new(RTT_MS, 10.0).unwrap());
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| {
            let c = chain_protocol(ch, 1)?;
            Ok((ping_pong(ch, 4)?, c))
        }),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, |ch| {
            let c = chain_protocol(ch, 1)?;
            Ok((ping_pong(ch, 4)?, c))
        }),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, |ch| {
            let c = chain_protocol(ch, 1)?;
            Ok((ping_pong(ch, 4)?, c))
        }),
    ];
    for (i, h) in hs.into_iter().enumerate() {
        let (took, costs) = join(h).0.unwrap();
        // As in process: party 0 from its start, party 1 from its reply to hop 0.
        if i < 2 {
            let trips = if i == 0 { 4 } else { 2 };
            assert!(took >= Duration::from_millis(trips * 40), "party {i}: {took:?}");
        }
        assert_eq!(costs.total.rounds, CHAIN_ROUNDS[i], "party {i}");
    }
}
