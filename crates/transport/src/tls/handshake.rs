//! Blocking TLS I/O during setup, and the triad handshake on a fresh connection.

use super::{identity::*, setup::*};
use crate::error::{HandshakeMismatch, TransportError};
use crate::wire::{
    check_handshake, decode_frame_header, decode_handshake, encode_frame_header, encode_handshake, printable,
    FrameKind, FRAME_HEADER_LEN, MAX_ABORT_REASON_BYTES,
};
use crate::PartyId;
use rustls::Connection;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// A connection that finished TLS and the handshake.
pub(super) struct Established {
    pub(super) peer: PartyId,
    pub(super) sock: TcpStream,
    pub(super) conn: Connection,
}

/// A socket whose every read and write waits at most until `deadline`, so that a peer
/// trickling bytes cannot stretch a handshake past it.
pub(super) struct Bounded<'a> {
    pub(super) sock: &'a TcpStream,
    pub(super) deadline: Instant,
}

impl Bounded<'_> {
    fn arm(&self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        self.sock.set_write_timeout(Some(left))
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        (&mut &*self.sock).read(buf)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        (&mut &*self.sock).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&mut &*self.sock).flush()
    }
}

/// A deadline and the timeout it stands for (named in a timeout error).
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    pub(super) at: Instant,
    pub(super) after: Duration,
}

impl Limit {
    pub(super) fn on<'a>(&self, sock: &'a TcpStream) -> Bounded<'a> {
        Bounded { sock, deadline: self.at }
    }
}

/// Run the TLS handshake to completion.
pub(super) fn tls_handshake(conn: &mut Connection, sock: &mut impl ReadWrite) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// A byte stream in both directions (a socket, or a [`Bounded`] one).
pub(super) trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Write plaintext through a TLS connection on a blocking socket (setup phase only).
pub(super) fn blocking_write(conn: &mut Connection, sock: &mut impl ReadWrite, data: &[u8]) -> io::Result<()> {
    conn.writer().write_all(data)?;
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    sock.flush()
}

/// Read exactly `buf.len()` plaintext bytes from a TLS connection on a blocking socket.
pub(super) fn blocking_read_exact(conn: &mut Connection, sock: &mut impl ReadWrite, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match conn.reader().read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_tls(sock)?;
                if let Err(e) = conn.process_new_packets() {
                    // Tell the peer (alert) before giving up.
                    let _ = conn.write_tls(sock);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write one complete frame through a blocking TLS connection (setup phase only).
pub(super) fn write_frame_blocking(
    conn: &mut Connection,
    sock: &mut impl ReadWrite,
    kind: FrameKind,
    payload: &[u8],
) -> io::Result<()> {
    let mut buf = encode_frame_header(kind, payload.len() as u64).to_vec();
    buf.extend_from_slice(payload);
    blocking_write(conn, sock, &buf)
}

pub(super) fn abort_payload(reason: &str) -> &[u8] {
    let max = MAX_ABORT_REASON_BYTES as usize;
    let mut end = reason.len().min(max);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

/// Exchange handshakes with `peer` on a fresh TLS connection.
pub(super) fn exchange_hello(
    setup: &Setup,
    conn: &mut Connection,
    sock: &mut impl ReadWrite,
    peer: PartyId,
    limit: Limit,
) -> Result<(), TransportError> {
    let io_err = |e: io::Error| TransportError::from_io(peer, &e, limit.after);
    write_frame_blocking(conn, sock, FrameKind::Hello, &encode_handshake(&setup.hello)).map_err(io_err)?;
    let mut h = [0u8; FRAME_HEADER_LEN];
    blocking_read_exact(conn, sock, &mut h).map_err(io_err)?;
    let hs = |mismatch| TransportError::Handshake { peer, mismatch };
    let header = decode_frame_header(&h, setup.cfg.max_frame_bytes)
        .map_err(|e| hs(HandshakeMismatch::NotHandshake(e.to_string())))?;
    match header.kind {
        FrameKind::Hello => {}
        FrameKind::Abort => {
            let mut reason = vec![0u8; header.len as usize];
            blocking_read_exact(conn, sock, &mut reason).map_err(io_err)?;
            return Err(TransportError::PeerAborted {
                peer,
                reason: printable(&String::from_utf8_lossy(&reason), 1024),
            });
        }
        kind => return Err(hs(HandshakeMismatch::NotHandshake(format!("a {kind} frame")))),
    }
    // Hello frames are at most MAX_HANDSHAKE_BYTES long (checked by the header decoder).
    let mut body = vec![0u8; header.len as usize];
    blocking_read_exact(conn, sock, &mut body).map_err(io_err)?;
    let theirs = decode_handshake(&body).map_err(|e| hs(HandshakeMismatch::Decode(e)))?;
    check_handshake(&setup.hello, &theirs, peer).map_err(hs)
}

/// After TLS and (for the acceptor) identity checks: exchange handshakes, telling the
/// peer why if we refuse it.
pub(super) fn finish_connection(
    setup: &Setup,
    mut conn: Connection,
    sock: TcpStream,
    peer: PartyId,
    limit: Limit,
) -> Result<Established, TransportError> {
    match exchange_hello(setup, &mut conn, &mut limit.on(&sock), peer, limit) {
        Ok(()) => Ok(Established { peer, sock, conn }),
        Err(e) => {
            if matches!(e, TransportError::Handshake { .. }) {
                let reason = format!("{} refused the connection: {e}", setup.me);
                let _ = write_frame_blocking(&mut conn, &mut limit.on(&sock), FrameKind::Abort, abort_payload(&reason));
            }
            Err(e)
        }
    }
}

/// Tell the peer of an established connection why we give up (best effort, bounded).
pub(super) fn abort_established(est: &mut Established, reason: &str) {
    let _ = est.sock.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = write_frame_blocking(&mut est.conn, &mut est.sock, FrameKind::Abort, abort_payload(reason));
    let _ = est.sock.shutdown(Shutdown::Write);
}

pub(super) fn check_cert_identity(
    conn: &Connection,
    allowed: &[PartyId],
    fallback: PartyId,
) -> Result<PartyId, TransportError> {
    let parties = conn.peer_certificates().and_then(|c| c.first()).map(cert_parties).unwrap_or_default();
    let cert_err =
        |peer, what: String| TransportError::Handshake { peer, mismatch: HandshakeMismatch::Certificate(what) };
    match parties[..] {
        [p] if allowed.contains(&p) => Ok(p),
        [p] => Err(cert_err(p, format!("the certificate names {p}, which was not expected here"))),
        [] => Err(cert_err(fallback, "the certificate names no party (party0, party1 or party2)".into())),
        _ => Err(cert_err(fallback, "the certificate names more than one party".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn abort_reasons_are_cut_at_a_character_boundary() {
        let max = MAX_ABORT_REASON_BYTES as usize;
        assert_eq!(abort_payload("short"), b"short");
        let long = "é".repeat(max); // two bytes each
        let cut = abort_payload(&long);
        assert!(cut.len() <= max && cut.len() >= max - 1);
        assert!(std::str::from_utf8(cut).is_ok());
    }

    #[test]
    fn a_bounded_socket_past_its_deadline_times_out_at_once() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _peer = l.accept().unwrap();
        let limit = Limit { at: Instant::now(), after: Duration::from_millis(1) };
        let t = Instant::now();
        let mut b = limit.on(&sock);
        assert_eq!(b.read(&mut [0u8; 4]).unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(1));
        // With time left, a silent peer makes a read wait only until the deadline.
        let limit = Limit { at: Instant::now() + Duration::from_millis(50), after: Duration::from_millis(50) };
        let e = limit.on(&sock).read(&mut [0u8; 4]).unwrap_err();
        assert!(matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
