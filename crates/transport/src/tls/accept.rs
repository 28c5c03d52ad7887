//! The acceptor: take connections on the listener until every higher party has
//! connected, dropping strangers.
//!
//! Each accepted connection gets a handshake thread of its own with a short deadline
//! ([`HANDSHAKE_TIMEOUT`], capped by the setup deadline), so a connection that stalls
//! holds neither the port nor the real peer waiting behind it. A connection that fails
//! **before a valid party certificate is seen** (a port scan, plain TCP, a TLS client
//! without a certificate or with one the trust anchors do not accept, a handshake that
//! never finishes) is a *stranger*: it is logged on stderr and dropped, and the listener
//! keeps accepting until the real peer arrives or the setup deadline passes. Once a peer
//! has shown a valid party certificate it is a party, and a failure after that (a session
//! or version mismatch, a second connection from a party already connected) fails the
//! setup as before, naming it.

use super::{handshake::*, identity::*, setup::*};
use crate::channels::lock;
use crate::error::{tls_text, HandshakeMismatch, TransportError};
use crate::PartyId;
use rustls::{Connection, ServerConnection};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long one accepted connection may take to finish TLS and the triad handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes run at once; further connections wait in the listen backlog.
const MAX_HANDSHAKES: usize = 16;
/// Dropped connections logged one by one; later ones are only counted.
const MAX_LOGGED: u32 = 20;

/// What became of one accepted connection.
enum Accepted {
    /// A party, through TLS and the handshake.
    Party(Box<Established>),
    /// A party with a valid certificate that failed after it (fails the setup).
    Refused(PartyId, TransportError),
    /// Not a party: dropped.
    Stranger { from: SocketAddr, claim: Option<PartyId>, reason: String },
}

/// Why a connection failed before a party certificate was seen, in words.
fn stranger_reason(e: &io::Error, after: Duration) -> String {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return format!("TLS error: {}", tls_text(tls));
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("did not complete TLS within {} ms", after.as_millis())
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "closed the connection before completing TLS".into(),
        _ => e.to_string(),
    }
}

/// TLS and the handshake on one accepted connection.
fn accept_one(setup: &Setup, sock: TcpStream, from: SocketAddr, expected: &[PartyId]) -> Accepted {
    let after = HANDSHAKE_TIMEOUT.min(setup.timeout());
    let limit = Limit { at: (Instant::now() + after).min(setup.deadline), after };
    let claim = Arc::new(Mutex::new(None));
    let stranger = |claim: Option<PartyId>, reason: String| Accepted::Stranger { from, claim, reason };
    if let Err(e) = sock.set_nonblocking(false).and_then(|()| sock.set_nodelay(true)) {
        return stranger(None, e.to_string());
    }
    let conn = setup
        .server_config(Arc::clone(&claim))
        .and_then(|sc| ServerConnection::new(sc).map_err(|e| TransportError::Identity { detail: e.to_string() }));
    let mut conn = match conn {
        Ok(c) => Connection::Server(c),
        Err(e) => return stranger(None, e.to_string()),
    };
    if let Err(e) = tls_handshake(&mut conn, &mut limit.on(&sock)) {
        let alpn_claim = conn.alpn_protocol().and_then(alpn_party);
        return stranger(lock(&claim).or(alpn_claim), stranger_reason(&e, after));
    }
    // The trust anchors accepted the certificate; it must name one expected party.
    let peer = match check_cert_identity(&conn, expected, setup.me.next()) {
        Ok(p) => p,
        Err(e @ TransportError::Handshake { .. }) if cert_names_one_party(&conn) => {
            return Accepted::Refused(e.peer().unwrap_or(setup.me.next()), e)
        }
        Err(e) => return stranger(None, e.to_string()),
    };
    match finish_connection(setup, conn, sock, peer, limit) {
        Ok(est) => Accepted::Party(Box::new(est)),
        Err(e) => Accepted::Refused(peer, e),
    }
}

fn cert_names_one_party(conn: &Connection) -> bool {
    conn.peer_certificates().and_then(|c| c.first()).map(cert_parties).is_some_and(|p| p.len() == 1)
}

/// Dropped connections: logged (the first [`MAX_LOGGED`]) and counted.
struct Strangers {
    me: PartyId,
    count: u32,
    last: String,
}

impl Strangers {
    fn drop_one(&mut self, from: SocketAddr, claim: Option<PartyId>, reason: String) {
        self.count += 1;
        let claim = claim.map(|p| format!(" (claiming to be {p})")).unwrap_or_default();
        if self.count <= MAX_LOGGED {
            eprintln!("triad: {} dropped a connection from {from}{claim} during setup: {reason}", self.me);
            if self.count == MAX_LOGGED {
                eprintln!("triad: {} counts further dropped connections without logging them", self.me);
            }
        }
        self.last = format!("{from}{claim}: {reason}");
    }

    /// A line for the end of a failed setup, if anything was dropped.
    fn summary(&self) {
        if self.count > 0 {
            eprintln!("triad: {} dropped {} connection(s) during setup; the last: {}", self.me, self.count, self.last);
        }
    }
}

/// Accept until every higher party has connected; send each outcome on `tx`.
pub(super) fn accept_loop(setup: Arc<Setup>, listener: TcpListener, tx: Sender<SetupResult>) {
    let expected: Vec<PartyId> = PartyId::ALL.into_iter().filter(|&p| p > setup.me).collect();
    let mut pending = expected.clone();
    if let Err(e) = listener.set_nonblocking(true) {
        for &p in &pending {
            let _ = tx.send((p, Err(TransportError::from_io(p, &e, setup.timeout()))));
        }
        return;
    }
    let (htx, hrx) = channel::<Accepted>();
    let mut in_flight = 0usize;
    let mut strangers = Strangers { me: setup.me, count: 0, last: String::new() };
    while !pending.is_empty() && !setup.cancelled() {
        while let Ok(a) = hrx.try_recv() {
            in_flight -= 1;
            match a {
                Accepted::Party(est) if pending.contains(&est.peer) => {
                    pending.retain(|&p| p != est.peer);
                    let _ = tx.send((est.peer, Ok(*est)));
                }
                Accepted::Party(mut est) => {
                    let peer = est.peer;
                    let e = TransportError::Handshake { peer, mismatch: HandshakeMismatch::Duplicate(peer) };
                    abort_established(&mut est, &format!("{} refused the connection: {e}", setup.me));
                    let _ = tx.send((peer, Err(e)));
                    return;
                }
                Accepted::Refused(p, e) => {
                    let _ = tx.send((p, Err(e)));
                    return;
                }
                Accepted::Stranger { from, claim, reason } => strangers.drop_one(from, claim, reason),
            }
        }
        if pending.is_empty() {
            break;
        }
        if setup.left().is_zero() {
            strangers.summary();
            for &p in &pending {
                let _ = tx.send((p, Err(TransportError::Timeout { peer: p, after: setup.timeout() })));
            }
            return;
        }
        if in_flight >= MAX_HANDSHAKES {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        match listener.accept() {
            Ok((sock, from)) => {
                let (s, h, expected) = (Arc::clone(&setup), htx.clone(), expected.clone());
                let name = format!("triad-{}-handshake", setup.me.as_u8());
                let started = thread::Builder::new().name(name).spawn(move || {
                    let _ = h.send(accept_one(&s, sock, from, &expected));
                });
                match started {
                    Ok(_) => in_flight += 1,
                    Err(e) => strangers.drop_one(from, None, format!("cannot start a thread: {e}")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A connection reset before it was accepted, or out of file descriptors for
            // a moment: nothing to do with the real peers.
            Err(e) => {
                strangers.count += 1;
                strangers.last = format!("accept failed: {e}");
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
    // Setup failed elsewhere: a party still finishing its handshake hears why from the
    // setup's abort thread.
    if setup.cancelled() {
        drop(htx);
        for a in hrx.iter().take(in_flight) {
            if let Accepted::Party(est) = a {
                let _ = tx.send((est.peer, Ok(*est)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_are_described_in_words() {
        let after = Duration::from_millis(5000);
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(stranger_reason(&timed_out, after), "did not complete TLS within 5000 ms");
        for kind in [io::ErrorKind::UnexpectedEof, io::ErrorKind::ConnectionReset] {
            let e = io::Error::from(kind);
            assert_eq!(stranger_reason(&e, after), "closed the connection before completing TLS");
        }
        let tls = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::NoCertificatesPresented);
        assert!(stranger_reason(&tls, after).starts_with("TLS error: "), "{}", stranger_reason(&tls, after));
    }
}
