//! In-process links: exchange, big concurrent messages, counters, and failures.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;
use triad_transport::{in_process, LinkConfig, Peer, TransportError};

fn cfg(timeout_ms: u64) -> LinkConfig {
    LinkConfig { timeout: Duration::from_millis(timeout_ms), ..LinkConfig::default() }
}

#[test]
fn exchange_counts_and_scopes() {
    let [a, b, c] = in_process(&cfg(5000));
    let hs = [spawn_local(a, small_protocol), spawn_local(b, small_protocol), spawn_local(c, small_protocol)];
    for h in hs {
        let (r, _) = join(h);
        assert_eq!(r.unwrap(), expected_costs());
    }
}

#[test]
fn cost_table_renders_deterministically() {
    let t = expected_costs();
    let expected = "\
scope          bytes_sent      bytes_recv  msgs_sent  msgs_recv   rounds
layer                  11              11          2          2        2
layer/mul             120             120          2          2        1
total                 131             131          4          4        3
";
    assert_eq!(t.render(), expected);
    assert_eq!(t.to_string(), expected);
    assert_eq!(t.subtree("layer").bytes_sent, 131);
    assert_eq!(t.subtree("layer/mul").rounds, 1);
    assert_eq!(t.subtree("lay").bytes_sent, 0);
}

#[test]
fn rounds_rule_and_reset() {
    let [a, b, c] = in_process(&cfg(5000));
    // Depths of the messages are in brackets; every message waits on the one before, so
    // this ping-pong is a chain 4 messages deep. (The old rule, one round per send phase
    // of each party, counted 2 on each party here: it missed that the phases interleave.)
    let h = spawn_local(b, |ch| {
        // recv [1], recv [1], send [2], recv [3], send [4].
        ch.recv_u64s(Peer::Prev, 1)?;
        ch.recv_u64s(Peer::Prev, 1)?;
        ch.send_u64s(Peer::Prev, vec![1])?;
        ch.recv_u64s(Peer::Prev, 1)?;
        ch.send_u64s(Peer::Prev, vec![2])?;
        Ok(ch.costs())
    });
    // Party 0: send [1], send [1] (both before any receive: one round), recv [2], send
    // [3], recv [4].
    a.send_u64s(Peer::Next, vec![0]).unwrap();
    a.send_u64s(Peer::Next, vec![0]).unwrap();
    assert_eq!(a.costs().total.rounds, 1);
    a.recv_u64s(Peer::Next, 1).unwrap();
    a.send_u64s(Peer::Next, vec![0]).unwrap();
    a.recv_u64s(Peer::Next, 1).unwrap();
    let t = a.costs();
    assert_eq!(t.total.rounds, 4);
    assert_eq!(t.total.messages_sent, 3);
    assert_eq!(t.total.bytes_sent, 24);
    assert_eq!(t.get("").bytes_recv, 16);
    let tb = join(h).0.unwrap();
    assert_eq!(tb.total.rounds, 4);
    a.reset_costs();
    assert_eq!(a.costs().total, Default::default());
    // The clock survives the reset: the next send has depth 5, one round past the 4.
    a.send_u64s(Peer::Prev, vec![0]).unwrap();
    assert_eq!(a.costs().total.rounds, 1);
    // Party 2 receives a depth-5 message as its first: its clock jumps from 0 to 5. Its
    // own view counts all 5; only from a synchronised point are totals latencies.
    c.recv_u64s(Peer::Next, 1).unwrap();
    assert_eq!(c.costs().total.rounds, 5);
}

#[test]
fn chain_counts_causal_depth() {
    // The fused multiply + truncate pattern: 2 → 1 → 0 is two hops deep. From a fresh
    // start (all clocks 0) and from a synchronised point after warm-up exchanges.
    for warmups in [0, 1, 3] {
        let [a, b, c] = in_process(&cfg(5000));
        let hs = [a, b, c].map(|ch| spawn_local(ch, move |ch| chain_protocol(ch, warmups)));
        let costs: Vec<_> = hs.into_iter().map(|h| join(h).0.unwrap()).collect();
        for (i, t) in costs.iter().enumerate() {
            assert_eq!(t.total.rounds, CHAIN_ROUNDS[i], "party {i} after {warmups} warm-ups");
            assert_eq!(t.get("fused").rounds, CHAIN_ROUNDS[i]);
        }
        assert_eq!(costs.iter().map(|t| t.total.rounds).max(), Some(2), "latency");
        assert_eq!(costs[0].total.bytes_sent, 32);
        assert_eq!(costs[0].total.bytes_recv, 16);
    }
}

#[test]
fn symmetric_exchange_is_one_round_everywhere() {
    let [a, b, c] = in_process(&cfg(5000));
    let hs = [a, b, c].map(|ch| {
        spawn_local(ch, |ch| {
            let mut per_exchange = Vec::new();
            for _ in 0..3 {
                ch.reset_costs();
                symmetric_exchange(ch)?;
                per_exchange.push(ch.costs().total.rounds);
            }
            // Three exchanges in a row without a reset: three rounds.
            ch.reset_costs();
            for _ in 0..3 {
                symmetric_exchange(ch)?;
            }
            per_exchange.push(ch.costs().total.rounds);
            Ok(per_exchange)
        })
    });
    for h in hs {
        assert_eq!(join(h).0.unwrap(), vec![1, 1, 1, 3]);
    }
}

#[test]
fn rounds_follow_the_scope_where_the_clock_moved() {
    let [a, b, c] = in_process(&cfg(5000));
    // Party 1 sends [1] in scope "send", receives party 0's reply [2] in scope "recv".
    let h = spawn_local(b, |ch| {
        {
            let _s = ch.scope("send");
            ch.send_u64s(Peer::Prev, vec![1])?;
        }
        let _r = ch.scope("recv");
        ch.recv_u64s(Peer::Prev, 1)?;
        drop(_r);
        Ok(ch.costs())
    });
    {
        let _outer = a.scope("outer");
        // Receiving [1] moves party 0's clock 0 → 1 inside "outer".
        a.recv_u64s(Peer::Next, 1).unwrap();
        let _inner = a.scope("inner");
        // Its reply [2] moves it 1 → 2 inside "outer/inner".
        a.send_u64s(Peer::Next, vec![0]).unwrap();
    }
    let t = a.costs();
    assert_eq!((t.get("outer").rounds, t.get("outer/inner").rounds, t.subtree("outer").rounds), (1, 1, 2));
    let tb = join(h).0.unwrap();
    assert_eq!((tb.get("send").rounds, tb.get("recv").rounds, tb.total.rounds), (1, 1, 2));
    drop(c);
}

#[test]
fn fifty_megabytes_both_ways_at_once() {
    let [a, b, c] = in_process(&cfg(20_000));
    let hs = [spawn_local(a, big_exchange), spawn_local(b, big_exchange), spawn_local(c, big_exchange)];
    let bytes = (BIG * 8) as u64;
    for (i, h) in hs.into_iter().enumerate() {
        let t = join(h).0.unwrap();
        let want = if i < 2 { bytes } else { 0 };
        assert_eq!(t.get("big").bytes_sent, want);
        assert_eq!(t.get("big").bytes_recv, want);
        assert_eq!(t.total.rounds, u64::from(i < 2));
    }
}

#[test]
fn wrong_length_is_malformed_and_fails_everyone() {
    let [a, b, c] = in_process(&cfg(3000));
    let h0 = spawn_local(a, |ch| {
        ch.send_u64s(Peer::Next, vec![1, 2, 3])?;
        ch.recv_u64s(Peer::Prev, 1)
    });
    let h1 = spawn_local(b, |ch| ch.recv_u64s(Peer::Prev, 2));
    let h2 = spawn_local(c, |ch| ch.recv_u64s(Peer::Next, 1));
    let (r1, _) = join(h1);
    assert!(matches!(r1, Err(TransportError::Malformed { peer: P0, .. })), "{r1:?}");
    for h in [h0, h2] {
        let (r, d) = join(h);
        assert!(matches!(r, Err(TransportError::PeerAborted { peer: P1, .. })), "{r:?}");
        assert_within(d, Duration::from_millis(1000), "abort propagation");
    }
}

#[test]
fn silent_peer_times_out() {
    let [a, b, c] = in_process(&cfg(300));
    let h0 = spawn_local(a, |ch| ch.recv_u64s(Peer::Prev, 1));
    // Party 1 waits on party 0, with a head start so its own timeout is later.
    let h1 = spawn_local(b, |ch| {
        std::thread::sleep(Duration::from_millis(100));
        ch.recv_u64s(Peer::Prev, 1)
    });
    let (r0, d0) = join(h0);
    match r0 {
        Err(TransportError::Timeout { peer, after }) => {
            assert_eq!(peer, P2);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    assert!(d0 >= Duration::from_millis(290));
    assert_within(d0, Duration::from_millis(800), "timeout");
    let (r1, d1) = join(h1);
    match r1 {
        Err(TransportError::PeerAborted { peer, reason }) => {
            assert_eq!(peer, P0);
            assert!(reason.contains("party 2"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_within(d1, Duration::from_millis(800), "abort propagation");
    drop(c);
}

#[test]
fn peer_leaving_early_is_peer_closed() {
    let [a, b, c] = in_process(&cfg(3000));
    // Party 2 sends one message to party 0 and leaves (graceful drop).
    let h2 = spawn_local(c, |ch| ch.send_u64s(Peer::Next, vec![7]));
    let h0 = spawn_local(a, |ch| {
        assert_eq!(ch.recv_u64s(Peer::Prev, 1)?, vec![7]);
        ch.recv_u64s(Peer::Prev, 1)
    });
    let h1 = spawn_local(b, |ch| ch.recv_u64s(Peer::Prev, 1));
    join(h2).0.unwrap();
    let (r0, d0) = join(h0);
    assert!(matches!(r0, Err(TransportError::PeerClosed { peer: P2 })), "{r0:?}");
    assert_within(d0, Duration::from_millis(1000), "closed");
    let (r1, d1) = join(h1);
    assert!(matches!(r1, Err(TransportError::PeerAborted { peer: P0, .. })), "{r1:?}");
    assert_within(d1, Duration::from_millis(1000), "abort propagation");
    // Sending to a party that has left fails too.
}

#[test]
fn panicking_party_fails_everyone() {
    let [a, b, c] = in_process(&cfg(5000));
    // Party 0 waits on party 1, party 1 on party 0: only party 2's death can end this.
    let h0 = spawn_local(a, |ch| ch.recv_u64s(Peer::Next, 1));
    let h1 = spawn_local(b, |ch| ch.recv_u64s(Peer::Prev, 1));
    let h2 = std::thread::spawn(move || {
        let _ch = c;
        std::thread::sleep(Duration::from_millis(50));
        panic!("party 2 crashed (expected in this test)");
    });
    assert!(h2.join().is_err());
    for h in [h0, h1] {
        let (r, d) = join(h);
        match r {
            Err(TransportError::PeerAborted { peer, reason }) => {
                assert_eq!(peer, P2);
                assert!(reason.contains("panicked"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_within(d, Duration::from_millis(1000), "panic propagation");
    }
}

#[test]
fn abort_is_seen_by_both_neighbours_and_sticks() {
    let [a, b, c] = in_process(&cfg(5000));
    let h1 = spawn_local(b, |ch| ch.recv_u64s(Peer::Next, 1));
    let h2 = spawn_local(c, |ch| ch.recv_bytes(Peer::Next, 1).map(|_| vec![]));
    a.abort();
    for h in [h1, h2] {
        let (r, d) = join(h);
        assert!(matches!(r, Err(TransportError::PeerAborted { peer: P0, .. })), "{r:?}");
        assert_within(d, Duration::from_millis(1000), "abort");
    }
    let e = a.send_u64s(Peer::Next, vec![1]).unwrap_err();
    assert!(matches!(e, TransportError::Aborted { .. }), "{e:?}");
    assert_eq!(a.failure(), Some(e));
}

#[test]
fn too_large_message_is_refused() {
    let cfg = LinkConfig { max_frame_bytes: 16, ..LinkConfig::default() };
    let [a, _b, _c] = in_process(&cfg);
    let e = a.send_u64s(Peer::Next, vec![0; 3]).unwrap_err();
    assert!(matches!(e, TransportError::TooLarge { len: 24, max: 16, .. }), "{e:?}");
}

#[test]
fn channels_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<triad_transport::Channels>();
    send_sync::<triad_transport::ScopeGuard>();
    send_sync::<TransportError>();
}
