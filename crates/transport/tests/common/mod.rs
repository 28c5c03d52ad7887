//! Shared test harness: configurations on free loopback ports, party threads, and a
//! small protocol whose costs are known.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use triad_transport::{
    connect_tls_with_listener, Channels, Cost, CostTable, PartiesConfig, PartyId, Peer, Pki, TlsIdentity,
    TransportError,
};

pub const P0: PartyId = PartyId::ALL[0];
pub const P1: PartyId = PartyId::ALL[1];
pub const P2: PartyId = PartyId::ALL[2];

/// A parties configuration on free loopback ports, with the listeners of parties 0 and 1
/// already bound (party 2 only dials).
pub fn config(timeout_ms: u64, session: &str) -> (PartiesConfig, [Option<TcpListener>; 3]) {
    let l0 = TcpListener::bind("127.0.0.1:0").unwrap();
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let a0 = l0.local_addr().unwrap();
    let a1 = l1.local_addr().unwrap();
    let text = format!(
        r#"
session = "{session}"
timeout_ms = {timeout_ms}
ca = "ca.pem"
[[party]]
id = 0
address = "{a0}"
cert = "p0.pem"
key = "p0.key"
[[party]]
id = 1
address = "{a1}"
cert = "p1.pem"
key = "p1.key"
[[party]]
id = 2
address = "127.0.0.1:9"
cert = "p2.pem"
key = "p2.key"
"#
    );
    (PartiesConfig::parse(&text).unwrap(), [Some(l0), Some(l1), None])
}

pub fn pki() -> Pki {
    triad_transport::generate_test_pki(["127.0.0.1", "127.0.0.1", "localhost"]).unwrap()
}

/// What a party thread reports: its result and how long it ran.
pub type Outcome<R> = (Result<R, TransportError>, Duration);

/// Start party `me` over TLS in a thread and run `f` on its channels.
pub fn spawn_tls<R: Send + 'static>(
    cfg: &PartiesConfig,
    me: PartyId,
    identity: TlsIdentity,
    listener: Option<TcpListener>,
    f: impl FnOnce(&Channels) -> Result<R, TransportError> + Send + 'static,
) -> JoinHandle<Outcome<R>> {
    let cfg = cfg.clone();
    thread::spawn(move || {
        let start = Instant::now();
        let r = connect_tls_with_listener(&cfg, me, identity, listener).and_then(|ch| f(&ch));
        (r, start.elapsed())
    })
}

/// Start one party per channel in a thread and run `f` on it.
pub fn spawn_local<R: Send + 'static>(
    ch: Channels,
    f: impl FnOnce(&Channels) -> Result<R, TransportError> + Send + 'static,
) -> JoinHandle<Outcome<R>> {
    thread::spawn(move || {
        let start = Instant::now();
        let r = f(&ch);
        (r, start.elapsed())
    })
}

/// A small protocol with known costs (see `expected_costs`).
pub fn small_protocol(ch: &Channels) -> Result<CostTable, TransportError> {
    let me = u64::from(ch.id().as_u8());
    let next = u64::from(ch.id().next().as_u8());
    let prev = u64::from(ch.id().prev().as_u8());
    {
        let _layer = ch.scope("layer");
        {
            let _mul = ch.scope("mul");
            // Round 1: two sends, then two receives.
            ch.send_u64s(Peer::Next, vec![me; 10])?;
            ch.send_u64s(Peer::Prev, vec![me + 100; 5])?;
            assert_eq!(ch.recv_u64s(Peer::Prev, 10)?, vec![prev; 10]);
            assert_eq!(ch.recv_u64s(Peer::Next, 5)?, vec![next + 100; 5]);
        }
        // Round 2 and 3, attributed to "layer".
        ch.send_bytes(Peer::Next, vec![me as u8; 3])?;
        assert_eq!(ch.recv_bytes(Peer::Prev, 3)?, vec![prev as u8; 3]);
        ch.send_u64s(Peer::Next, vec![u64::MAX - me])?;
        assert_eq!(ch.recv_u64s(Peer::Prev, 1)?, vec![u64::MAX - prev]);
    }
    Ok(ch.costs())
}

pub fn expected_costs() -> CostTable {
    let mut t = CostTable::default();
    t.scopes.insert(
        "layer/mul".into(),
        Cost { bytes_sent: 120, bytes_recv: 120, messages_sent: 2, messages_recv: 2, rounds: 1 },
    );
    t.scopes
        .insert("layer".into(), Cost { bytes_sent: 11, bytes_recv: 11, messages_sent: 2, messages_recv: 2, rounds: 2 });
    t.total = Cost { bytes_sent: 131, bytes_recv: 131, messages_sent: 4, messages_recv: 4, rounds: 3 };
    t
}

/// A symmetric exchange: every party sends one word to its previous party and receives
/// one from its next. From a synchronised point this is one round on every party, and it
/// leaves the parties synchronised again.
pub fn symmetric_exchange(ch: &Channels) -> Result<(), TransportError> {
    ch.send_u64s(Peer::Prev, vec![u64::from(ch.id().as_u8())])?;
    assert_eq!(ch.recv_u64s(Peer::Next, 1)?, vec![u64::from(ch.id().next().as_u8())]);
    Ok(())
}

/// The message pattern of a fused multiply + truncate: party 2 sends to party 1; party 1,
/// once it has that message, sends to party 0; party 0 sends to party 2 at the start. The
/// chain 2 → 1 → 0 is two hops deep, though every party has a single send phase.
/// Run after `warmups` symmetric exchanges and a reset; returns the costs.
pub fn chain_protocol(ch: &Channels, warmups: usize) -> Result<CostTable, TransportError> {
    for _ in 0..warmups {
        symmetric_exchange(ch)?;
    }
    ch.reset_costs();
    let _s = ch.scope("fused");
    match ch.id().as_u8() {
        0 => {
            ch.send_u64s(Peer::Prev, vec![20; 4])?;
            assert_eq!(ch.recv_u64s(Peer::Next, 2)?, vec![12; 2]);
        }
        1 => {
            assert_eq!(ch.recv_u64s(Peer::Next, 3)?, vec![21; 3]);
            ch.send_u64s(Peer::Prev, vec![12; 2])?;
        }
        _ => {
            ch.send_u64s(Peer::Prev, vec![21; 3])?;
            assert_eq!(ch.recv_u64s(Peer::Next, 4)?, vec![20; 4]);
        }
    }
    drop(_s);
    Ok(ch.costs())
}

/// Rounds each party counts in `chain_protocol`: parties 0 and 1 see the whole chain
/// (2), party 2 only its first hop and party 0's message (1). Latency = max = 2.
pub const CHAIN_ROUNDS: [u64; 3] = [2, 2, 1];

pub const BIG: usize = 50_000_000 / 8;

pub fn big_vec(seed: u64) -> Vec<u64> {
    (0..BIG as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed).collect()
}

/// Parties 0 and 1 send 50 MB to each other at the same time, then receive.
pub fn big_exchange(ch: &Channels) -> Result<CostTable, TransportError> {
    let _s = ch.scope("big");
    match ch.id().as_u8() {
        0 => {
            ch.send_u64s(Peer::Next, big_vec(0))?;
            let v = ch.recv_u64s(Peer::Next, BIG)?;
            assert!(v == big_vec(1), "party 0 got wrong data");
        }
        1 => {
            ch.send_u64s(Peer::Prev, big_vec(1))?;
            let v = ch.recv_u64s(Peer::Prev, BIG)?;
            assert!(v == big_vec(0), "party 1 got wrong data");
        }
        _ => {}
    }
    drop(_s);
    Ok(ch.costs())
}

pub fn join<R>(h: JoinHandle<Outcome<R>>) -> Outcome<R> {
    h.join().expect("party thread panicked")
}

/// Assert an error arrived promptly.
pub fn assert_within(d: Duration, limit: Duration, what: &str) {
    assert!(d <= limit, "{what}: took {d:?}, limit {limit:?}");
}

/// Three parties that each made their own key and self-signed certificate, every one
/// trusting the other two by fingerprint (no CA).
pub fn pinned_identities() -> [TlsIdentity; 3] {
    let pems = PartyId::ALL.map(|p| triad_transport::generate_party_identity(p, "127.0.0.1").unwrap());
    let pins = pems.each_ref().map(|p| triad_transport::certificate_party(&p.cert_pem).unwrap().1);
    let mut ids = PartyId::ALL
        .into_iter()
        .zip(&pems)
        .map(|(p, pem)| TlsIdentity::pinned(p, &pem.cert_pem, &pem.key_pem, pins).unwrap());
    [ids.next().unwrap(), ids.next().unwrap(), ids.next().unwrap()]
}
