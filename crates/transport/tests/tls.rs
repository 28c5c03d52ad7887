//! TCP + mutual TLS links: exchange, big concurrent messages, counters, and every
//! failure mode we promise a typed error for.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};
use triad_transport::testing::{tls_stranger, RawPeer};
use triad_transport::{
    connect_tls, connect_tls_with_listener, FrameKind, Handshake, HandshakeMismatch, PartiesConfig, Peer,
    TransportError, DATA_DEPTH_LEN, HANDSHAKE_TIMEOUT, PROTOCOL_VERSION,
};

#[test]
fn exchange_counts_match_in_process() {
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(10_000, "exchange");
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, small_protocol),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, small_protocol),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, small_protocol),
    ];
    for h in hs {
        assert_eq!(join(h).0.unwrap(), expected_costs());
    }
}

#[test]
fn pinned_certificates_without_a_ca() {
    let [i0, i1, i2] = pinned_identities();
    let (cfg, [l0, l1, l2]) = config(10_000, "pinned");
    let hs = [
        spawn_tls(&cfg, P0, i0, l0, small_protocol),
        spawn_tls(&cfg, P1, i1, l1, small_protocol),
        spawn_tls(&cfg, P2, i2, l2, small_protocol),
    ];
    for h in hs {
        assert_eq!(join(h).0.unwrap(), expected_costs());
    }
}

#[test]
fn a_certificate_not_pinned_is_a_stranger() {
    // Party 2 shows a new certificate of its own, naming party2 but not the one pinned:
    // parties 0 and 1 drop it and wait; party 2 hears its certificate was refused.
    let [i0, i1, _] = pinned_identities();
    let ids = pinned_identities();
    let other = triad_transport::generate_party_identity(P2, "127.0.0.1").unwrap();
    let (cfg, [l0, l1, _]) = config(1_500, "unpinned");
    let mut pins = [i0.fingerprint(), i1.fingerprint(), ids[2].fingerprint()];
    pins[2] = triad_transport::certificate_party(&other.cert_pem).unwrap().1;
    let i2 = triad_transport::TlsIdentity::pinned(P2, &other.cert_pem, &other.key_pem, pins).unwrap();
    let h0 = spawn_tls(&cfg, P0, i0, l0, |_| Ok(()));
    let h1 = spawn_tls(&cfg, P1, i1, l1, |_| Ok(()));
    thread::sleep(Duration::from_millis(200));
    let (r2, _) = join(spawn_tls(&cfg, P2, i2, None, |_| Ok(())));
    assert!(matches!(&r2, Err(TransportError::Tls { .. } | TransportError::PeerClosed { .. })), "{r2:?}");
    for h in [h0, h1] {
        let (r, _) = join(h);
        assert!(matches!(r, Err(TransportError::Timeout { peer: P2, .. })), "{r:?}");
    }
}

#[test]
fn computing_longer_than_the_timeout_is_not_silence() {
    // Party 0 computes for four timeouts before it speaks; the others wait on it. Its
    // writer's heartbeats keep them waiting, and are not counted.
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(300, "compute");
    let slow = |ch: &triad_transport::Channels| {
        if ch.id() == P0 {
            thread::sleep(Duration::from_millis(1_200));
        }
        small_protocol(ch)
    };
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, slow),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, slow),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, slow),
    ];
    for h in hs {
        assert_eq!(join(h).0.unwrap(), expected_costs());
    }
}

#[test]
fn chain_counts_match_in_process() {
    // The depth travels in the data frames, so TLS counts the same rounds as in-process.
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(10_000, "chain");
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| chain_protocol(ch, 1)),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, |ch| chain_protocol(ch, 1)),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, |ch| chain_protocol(ch, 1)),
    ];
    for (i, h) in hs.into_iter().enumerate() {
        let t = join(h).0.unwrap();
        assert_eq!(t.total.rounds, CHAIN_ROUNDS[i], "party {i}");
        // The depth word is framing: not counted.
        assert_eq!(t.total.bytes_sent, [32, 16, 24][i]);
    }
}

#[test]
fn depth_word_on_the_wire() {
    let pki = pki();
    let (cfg, [l0, l1, _]) = config(5_000, "depth");
    // Party 0 receives from party 2 (a raw peer), then replies.
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| {
        assert_eq!(ch.recv_u64s(Peer::Prev, 2)?, vec![5, 6]);
        ch.send_u64s(Peer::Prev, vec![7])?;
        Ok(ch.costs().total)
    });
    let h1 = spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, |_| Ok(()));
    let hello = Handshake::new(P2, &cfg.session);
    let id2 = pki.identity(P2).unwrap();
    let mut to0 = RawPeer::connect(&cfg, P2, &id2, P0, &hello).unwrap();
    let _to1 = RawPeer::connect(&cfg, P2, &id2, P1, &hello).unwrap();
    let msg: Vec<u8> = [5u64, 6].iter().flat_map(|w| w.to_le_bytes()).collect();
    to0.send_data(41, &msg).unwrap();
    // Party 0's hello, then its reply: depth 41 + 1, then the message.
    let (hello0, _) = to0.read_frame().unwrap();
    assert_eq!(hello0.kind, FrameKind::Hello);
    let (reply, payload) = to0.read_frame().unwrap();
    assert_eq!((reply.kind, reply.len), (FrameKind::Data, (DATA_DEPTH_LEN + 8) as u64));
    assert_eq!(&payload[..DATA_DEPTH_LEN], &42u64.to_le_bytes());
    assert_eq!(&payload[DATA_DEPTH_LEN..], &7u64.to_le_bytes());
    let t = join(h0).0.unwrap();
    // Party 0's clock went 0 → 41 → 42; only message bytes are counted.
    assert_eq!((t.rounds, t.bytes_recv, t.bytes_sent), (42, 16, 8));
    join(h1).0.unwrap();
}

#[test]
fn fifty_megabytes_both_ways_at_once() {
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(20_000, "big");
    let start = Instant::now();
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, big_exchange),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, big_exchange),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, big_exchange),
    ];
    let bytes = (BIG * 8) as u64;
    for (i, h) in hs.into_iter().enumerate() {
        let t = join(h).0.unwrap();
        let want = if i < 2 { bytes } else { 0 };
        assert_eq!(t.get("big").bytes_sent, want);
        assert_eq!(t.get("big").bytes_recv, want);
        assert_eq!(t.total.rounds, u64::from(i < 2));
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "2 x {} MB over TLS loopback in {secs:.2} s ({:.0} MB/s per direction, setup and data generation included)",
        bytes / 1_000_000,
        bytes as f64 / 1e6 / secs
    );
}

#[test]
fn graceful_leave_delivers_then_peer_closed() {
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(5_000, "leave");
    let h2 = spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, |ch| {
        ch.send_u64s(Peer::Next, vec![42; 1000])?;
        ch.send_u64s(Peer::Prev, vec![43; 3])
    });
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| {
        assert_eq!(ch.recv_u64s(Peer::Prev, 1000)?, vec![42; 1000]);
        // Parties 0 and 1 carry on after party 2 left.
        ch.send_u64s(Peer::Next, vec![1])?;
        assert_eq!(ch.recv_u64s(Peer::Next, 1)?, vec![2]);
        ch.recv_u64s(Peer::Prev, 1)
    });
    let h1 = spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, |ch| {
        assert_eq!(ch.recv_u64s(Peer::Next, 3)?, vec![43; 3]);
        assert_eq!(ch.recv_u64s(Peer::Prev, 1)?, vec![1]);
        ch.send_u64s(Peer::Prev, vec![2])?;
        ch.recv_u64s(Peer::Prev, 1)
    });
    join(h2).0.unwrap();
    let (r0, d0) = join(h0);
    assert!(matches!(r0, Err(TransportError::PeerClosed { peer: P2 })), "{r0:?}");
    assert_within(d0, Duration::from_secs(3), "party 0");
    let (r1, _) = join(h1);
    assert!(matches!(r1, Err(TransportError::PeerAborted { peer: P0, .. })), "{r1:?}");
}

/// Parties 0 and 1 for real (party 1 with a longer timeout, so what it sees is party
/// 0's abort), party 2 played by the test through `RawPeer`s.
struct Rig {
    cfg: PartiesConfig,
    pki: triad_transport::Pki,
    h0: thread::JoinHandle<Outcome<Vec<u64>>>,
    h1: thread::JoinHandle<Outcome<Vec<u64>>>,
}

fn rig(timeout_ms: u64) -> Rig {
    let pki = pki();
    let (cfg, [l0, l1, _]) = config(timeout_ms, "rig");
    let mut cfg1 = cfg.clone();
    cfg1.timeout = Duration::from_secs(5);
    // Party 0 waits for party 2; party 1 waits for party 0.
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| ch.recv_u64s(Peer::Prev, 10));
    let h1 = spawn_tls(&cfg1, P1, pki.identity(P1).unwrap(), l1, |ch| ch.recv_u64s(Peer::Prev, 10));
    Rig { cfg, pki, h0, h1 }
}

impl Rig {
    fn raw(&self, to: triad_transport::PartyId, hello: &Handshake) -> RawPeer {
        RawPeer::connect(&self.cfg, P2, &self.pki.identity(P2).unwrap(), to, hello).unwrap()
    }

    fn hello(&self) -> Handshake {
        Handshake::new(P2, &self.cfg.session)
    }

    /// Both raw connections of party 2, correct handshake.
    fn party2(&self) -> (RawPeer, RawPeer) {
        let h = self.hello();
        (self.raw(P0, &h), self.raw(P1, &h))
    }

    /// Party 0 must fail with an error matching `check` within `limit`; party 1 must then
    /// see party 0's abort.
    fn expect(self, limit: Duration, check: impl Fn(&TransportError) -> bool) {
        let (r0, d0) = join(self.h0);
        let e0 = r0.unwrap_err();
        assert!(check(&e0), "party 0 got: {e0:?}");
        assert_within(d0, limit, "party 0");
        let (r1, d1) = join(self.h1);
        match r1 {
            Err(TransportError::PeerAborted { peer, reason }) => {
                assert_eq!(peer, P0);
                assert!(reason.contains("party 2"), "{reason}");
            }
            other => panic!("party 1 got: {other:?}"),
        }
        assert_within(d1, limit + Duration::from_millis(500), "party 1");
        eprintln!("party 0: {e0}");
    }
}

/// Party 0 waits on party 1 (which waits on party 0) while party 2, a raw peer, sends
/// what no one reads; party 0's inbound budget is 1000 bytes.
fn flooded(send: impl FnOnce(&mut RawPeer)) {
    let pki = pki();
    let (mut cfg, [l0, l1, _]) = config(3_000, "flood");
    let mut cfg1 = cfg.clone();
    cfg1.timeout = Duration::from_secs(5);
    cfg.max_buffered_bytes = Some(1000);
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |ch| ch.recv_u64s(Peer::Next, 1));
    let h1 = spawn_tls(&cfg1, P1, pki.identity(P1).unwrap(), l1, |ch| ch.recv_u64s(Peer::Prev, 1));
    let hello = Handshake::new(P2, &cfg.session);
    let id2 = pki.identity(P2).unwrap();
    let mut to0 = RawPeer::connect(&cfg, P2, &id2, P0, &hello).unwrap();
    let _to1 = RawPeer::connect(&cfg, P2, &id2, P1, &hello).unwrap();
    send(&mut to0);
    let (r0, d0) = join(h0);
    assert!(matches!(r0, Err(TransportError::Flooded { peer: P2, budget: 1000, .. })), "{r0:?}");
    assert_within(d0, Duration::from_millis(1500), "party 0");
    let (r1, _) = join(h1);
    assert!(matches!(r1, Err(TransportError::PeerAborted { peer: P0, .. })), "{r1:?}");
}

#[test]
fn unread_messages_beyond_the_inbound_budget() {
    // Two messages of 400 bytes fit; the third does not.
    flooded(|to0| {
        for _ in 0..3 {
            to0.send_data(1, &[7; 400]).unwrap();
        }
    });
}

#[test]
fn a_frame_claiming_more_than_the_budget_is_refused_at_its_header() {
    flooded(|to0| to0.send_raw(&triad_transport::encode_frame_header(FrameKind::Data, 8 + 5_000)).unwrap());
}

#[test]
fn truncated_frame() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    // 80 payload bytes promised (depth word and 72 message bytes), 10 sent.
    let mut bytes = triad_transport::encode_frame_header(FrameKind::Data, 80).to_vec();
    bytes.extend_from_slice(&[1; 10]);
    to0.send_raw(&bytes).unwrap();
    to0.kill();
    rig.expect(Duration::from_millis(1500), |e| {
        matches!(e, TransportError::Truncated { peer: P2, received: 22, expected: 92 })
    });
}

#[test]
fn garbage_bytes() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    to0.send_raw(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    rig.expect(
        Duration::from_millis(1500),
        |e| matches!(e, TransportError::Malformed { peer: P2, detail } if detail.contains("magic")),
    );
}

#[test]
fn garbage_length_is_rejected_before_allocating() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    to0.send_raw(&triad_transport::encode_frame_header(FrameKind::Data, u64::MAX)).unwrap();
    rig.expect(Duration::from_millis(1500), |e| matches!(e, TransportError::Malformed { peer: P2, .. }));
}

#[test]
fn data_frame_without_depth() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    // A version 1 style data frame: 3 bytes, no room for the depth word.
    to0.send_frame(FrameKind::Data, &[1, 2, 3]).unwrap();
    rig.expect(
        Duration::from_millis(1500),
        |e| matches!(e, TransportError::Malformed { peer: P2, detail } if detail.contains("depth")),
    );
}

#[test]
fn data_frame_of_depth_zero() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    to0.send_data(0, &[0; 80]).unwrap();
    rig.expect(
        Duration::from_millis(1500),
        |e| matches!(e, TransportError::Malformed { peer: P2, detail } if detail.contains("depth 0")),
    );
}

#[test]
fn wrong_message_length() {
    let rig = rig(3_000);
    let (mut to0, _to1) = rig.party2();
    to0.send_u64s(&[1, 2, 3]).unwrap();
    rig.expect(Duration::from_millis(1500), |e| matches!(e, TransportError::Malformed { peer: P2, .. }));
}

#[test]
fn peer_killed_mid_protocol_while_others_wait_on_each_other() {
    let pki = pki();
    let (cfg, [l0, l1, _]) = config(5_000, "kill");
    // Party 0 waits for party 1 and party 1 for party 0, after one message from party 2:
    // only party 2's death can end this.
    let body = |ch: &triad_transport::Channels| {
        assert_eq!(ch.recv_u64s(ch_peer_of(ch, P2), 2)?, vec![5, 6]);
        let other = if ch.id() == P0 { Peer::Next } else { Peer::Prev };
        ch.recv_u64s(other, 1)
    };
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, body);
    let h1 = spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, body);
    let hello = Handshake::new(P2, &cfg.session);
    let id2 = pki.identity(P2).unwrap();
    let mut to0 = RawPeer::connect(&cfg, P2, &id2, P0, &hello).unwrap();
    let mut to1 = RawPeer::connect(&cfg, P2, &id2, P1, &hello).unwrap();
    to0.send_u64s(&[5, 6]).unwrap();
    to1.send_u64s(&[5, 6]).unwrap();
    thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    to0.kill();
    let (r0, _) = join(h0);
    assert!(matches!(r0, Err(TransportError::PeerClosed { peer: P2 })), "{r0:?}");
    let (r1, _) = join(h1);
    assert!(
        matches!(&r1, Err(TransportError::PeerAborted { peer: P0, reason }) if reason.contains("party 2 closed")),
        "{r1:?}"
    );
    assert_within(killed.elapsed(), Duration::from_millis(1500), "both parties");
    to1.kill();
}

fn ch_peer_of(ch: &triad_transport::Channels, p: triad_transport::PartyId) -> Peer {
    ch.id().link_to(p).unwrap()
}

#[test]
fn silent_peer_times_out() {
    let rig = rig(300);
    let (_to0, _to1) = rig.party2();
    let start = Instant::now();
    rig.expect(
        Duration::from_millis(1500),
        |e| matches!(e, TransportError::Timeout { peer: P2, after } if *after == Duration::from_millis(300)),
    );
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[test]
fn wrong_party_id_in_handshake() {
    let pki = pki();
    let (cfg, [l0, _, _]) = config(3_000, "claims");
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |_| Ok(()));
    // Party 2's certificate, but the handshake claims party 1.
    let mut raw =
        RawPeer::connect(&cfg, P2, &pki.identity(P2).unwrap(), P0, &Handshake::new(P1, &cfg.session)).unwrap();
    let (r0, d0) = join(h0);
    match r0 {
        Err(TransportError::Handshake { peer, mismatch: HandshakeMismatch::PartyId { expected, claimed } }) => {
            assert_eq!((peer, expected, claimed), (P2, P2, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_within(d0, Duration::from_millis(1500), "party 0");
    // The refused peer is told why.
    let (hello, _) = raw.read_frame().unwrap();
    assert_eq!(hello.kind, FrameKind::Hello);
    let (abort, reason) = raw.read_frame().unwrap();
    assert_eq!(abort.kind, FrameKind::Abort);
    assert!(String::from_utf8_lossy(&reason).contains("claims to be party 1"));
}

#[test]
fn wrong_protocol_version() {
    let pki = pki();
    let (cfg, [l0, _, _]) = config(3_000, "version");
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, |_| Ok(()));
    let mut hello = Handshake::new(P2, &cfg.session);
    hello.version = PROTOCOL_VERSION + 1;
    let _raw = RawPeer::connect(&cfg, P2, &pki.identity(P2).unwrap(), P0, &hello).unwrap();
    let (r0, _) = join(h0);
    assert!(
        matches!(r0, Err(TransportError::Handshake { peer: P2, mismatch: HandshakeMismatch::Version { .. } })),
        "{r0:?}"
    );
}

/// Parties 0 and 1 start first and connect to each other; party 2 starts late with
/// `cfg2` and `id2`. Returns the three outcomes.
fn late_party2(
    cfg: &PartiesConfig,
    listeners: [Option<TcpListener>; 3],
    pki: &triad_transport::Pki,
    cfg2: &PartiesConfig,
    id2: triad_transport::TlsIdentity,
) -> [Outcome<()>; 3] {
    let [l0, l1, _] = listeners;
    let h0 = spawn_tls(cfg, P0, pki.identity(P0).unwrap(), l0, |_| Ok(()));
    let h1 = spawn_tls(cfg, P1, pki.identity(P1).unwrap(), l1, |_| Ok(()));
    thread::sleep(Duration::from_millis(300));
    let h2 = spawn_tls(cfg2, P2, id2, None, |_| Ok(()));
    [join(h0), join(h1), join(h2)]
}

#[test]
fn certificate_from_another_ca() {
    // Party 2 holds a certificate from another CA: parties 0 and 1 drop its connections
    // as strangers' and wait for the real party 2 until the setup deadline.
    let pki = pki();
    let other = triad_transport::generate_test_pki(["", "", ""]).unwrap();
    let (cfg, ls) = config(1_500, "ca");
    let [(r0, d0), (r1, d1), (r2, _)] = late_party2(&cfg, ls, &pki, &cfg, other.identity(P2).unwrap());
    for (r, d) in [(r0, d0), (r1, d1)] {
        assert!(matches!(r, Err(TransportError::Timeout { peer: P2, .. })), "{r:?}");
        assert_within(d, Duration::from_millis(3000), "honest party");
    }
    // Party 2 itself rejects the others' certificates.
    assert!(matches!(&r2, Err(TransportError::Tls { detail, .. }) if detail.contains("certificate")), "{r2:?}");
}

#[test]
fn wrong_session() {
    let pki = pki();
    let (cfg, ls) = config(3_000, "session-a");
    let mut cfg2 = cfg.clone();
    cfg2.session = "session-b".into();
    let [(r0, _), (r1, _), (r2, _)] = late_party2(&cfg, ls, &pki, &cfg2, pki.identity(P2).unwrap());
    for r in [r0, r1] {
        match r {
            Err(TransportError::Handshake { peer, mismatch: HandshakeMismatch::Session { ours, theirs } }) => {
                assert_eq!(peer, P2);
                assert_eq!((ours.as_str(), theirs.as_str()), ("session-a", "session-b"));
            }
            other => panic!("{other:?}"),
        }
    }
    let e2 = r2.unwrap_err();
    assert!(
        matches!(
            &e2,
            TransportError::Handshake { mismatch: HandshakeMismatch::Session { .. }, .. }
                | TransportError::PeerAborted { .. }
        ),
        "{e2:?}"
    );
    eprintln!("party 2: {e2}");
}

#[test]
fn bind_failure_names_the_address() {
    let pki = pki();
    let (cfg, [l0, _, _]) = config(500, "bind");
    let address = cfg.party(P0).address.clone();
    // `l0` still holds the port.
    let e = connect_tls(&cfg, P0, pki.identity(P0).unwrap()).unwrap_err();
    match &e {
        TransportError::Bind { address: a, .. } => assert_eq!(a, &address),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&address));
    drop(l0);
}

#[test]
fn nobody_listening_is_a_connect_error_after_the_timeout() {
    let pki = pki();
    let (cfg, ls) = config(400, "connect");
    drop(ls); // free the ports: connections are refused
    let start = Instant::now();
    let e = connect_tls_with_listener(&cfg, P2, pki.identity(P2).unwrap(), None).unwrap_err();
    assert!(matches!(e, TransportError::Connect { peer, .. } if peer == P0 || peer == P1), "{e:?}");
    assert!(start.elapsed() >= Duration::from_millis(350));
    assert_within(start.elapsed(), Duration::from_millis(1500), "connect");
}

#[test]
fn missing_peer_is_a_timeout_for_the_acceptor() {
    let pki = pki();
    let (cfg, [l0, _, _]) = config(300, "absent");
    let start = Instant::now();
    let e = connect_tls_with_listener(&cfg, P0, pki.identity(P0).unwrap(), l0).unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e:?}");
    assert_within(start.elapsed(), Duration::from_millis(1500), "setup");
}

/// Strangers connect to both listening parties during setup; the run then completes.
#[test]
fn strangers_during_setup_are_dropped() {
    use std::io::Write;
    let pki = pki();
    let other = triad_transport::generate_test_pki(["127.0.0.1", "127.0.0.1", "127.0.0.1"]).unwrap();
    let (cfg, [l0, l1, l2]) = config(10_000, "strangers");
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, small_protocol);
    let h1 = spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, small_protocol);
    let mut silent = Vec::new();
    for to in [P0, P1] {
        let addr = cfg.party(to).address.clone();
        // A port scan: connect and close.
        drop(std::net::TcpStream::connect(&addr).unwrap());
        // Plain TCP garbage.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        drop(s);
        // A connection that sends nothing, held open while the real party arrives.
        silent.push(std::net::TcpStream::connect(&addr).unwrap());
        // A TLS client without a certificate, and one with a certificate from another CA
        // (it trusts ours, so the party sees its certificate and must refuse it).
        let t = Duration::from_secs(3);
        let trust = pki.identity(to).unwrap();
        let no_cert = tls_stranger(&addr, to, &trust, None, t);
        assert!(no_cert.is_err(), "a client without a certificate was let in");
        let foreign = tls_stranger(&addr, to, &trust, Some(&other.identity(P2).unwrap()), t);
        assert!(foreign.is_err(), "a certificate from another CA was let in");
    }
    let h2 = spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, small_protocol);
    for h in [h0, h1, h2] {
        assert_eq!(join(h).0.unwrap(), expected_costs());
    }
    drop(silent);
}

/// A connection that sends nothing holds the port no longer than its handshake deadline.
#[test]
fn stalled_handshakes_do_not_hold_the_port() {
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(10_000, "stalled");
    let h1 = spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, small_protocol);
    // More silent connections than handshakes run at once, made before anyone else starts.
    let addr = cfg.party(P1).address.clone();
    let silent: Vec<_> = (0..20).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let h0 = spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, small_protocol);
    let h2 = spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, small_protocol);
    for h in [h0, h1, h2] {
        let (r, d) = join(h);
        assert_eq!(r.unwrap(), expected_costs());
        assert_within(d, HANDSHAKE_TIMEOUT + Duration::from_secs(3), "setup behind stalled connections");
    }
    drop(silent);
}

#[test]
fn odd_sizes_cross_chunk_boundaries() {
    // Lengths around the writer's small-message and chunk sizes, not multiples of 8.
    const SIZES: [usize; 8] = [0, 1, 7, 9, 65_536, 65_549, 524_289, 1_300_001];
    let pki = pki();
    let (cfg, [l0, l1, l2]) = config(10_000, "sizes");
    let body = |ch: &triad_transport::Channels| {
        for (i, &n) in SIZES.iter().enumerate() {
            let fill = (i as u8) ^ ch.id().as_u8();
            ch.send_bytes(Peer::Next, vec![fill; n])?;
            let want = (i as u8) ^ ch.id().prev().as_u8();
            assert_eq!(ch.recv_bytes(Peer::Prev, n)?, vec![want; n]);
            ch.send_u64s(Peer::Prev, vec![n as u64; n / 8])?;
            assert_eq!(ch.recv_u64s(Peer::Next, n / 8)?, vec![n as u64; n / 8]);
        }
        Ok(ch.costs().total)
    };
    let hs = [
        spawn_tls(&cfg, P0, pki.identity(P0).unwrap(), l0, body),
        spawn_tls(&cfg, P1, pki.identity(P1).unwrap(), l1, body),
        spawn_tls(&cfg, P2, pki.identity(P2).unwrap(), l2, body),
    ];
    let bytes: usize = SIZES.iter().map(|n| n + n / 8 * 8).sum();
    for h in hs {
        let t = join(h).0.unwrap();
        assert_eq!(t.bytes_sent, bytes as u64);
        assert_eq!(t.bytes_recv, bytes as u64);
        assert_eq!(t.rounds, SIZES.len() as u64 * 2);
    }
}
