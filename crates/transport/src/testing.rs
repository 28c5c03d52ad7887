//! Test support, not a stable API: a misbehaving TLS peer.
//!
//! [`RawPeer`] completes TCP and TLS like a real party (with whatever identity it is
//! given) and sends whatever handshake it is told to, then lets a test write arbitrary
//! plaintext: truncated frames, garbage, or nothing at all. [`tls_stranger`] plays a
//! TLS client that is not a party.

use crate::tls::{raw_dial, raw_read, raw_tls, raw_write};
use crate::wire::{decode_frame_header, encode_frame_header, FrameHeader, FrameKind, Handshake};
use crate::{PartiesConfig, PartyId, TlsIdentity, TransportError};
use rustls::Connection;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A TLS connection to one party, driven by hand.
#[derive(Debug)]
pub struct RawPeer {
    sock: TcpStream,
    conn: Connection,
}

impl RawPeer {
    /// Dial party `to` as `me` (once, no retries), run TLS with `identity`, and send `hello`.
    pub fn connect(
        cfg: &PartiesConfig,
        me: PartyId,
        identity: &TlsIdentity,
        to: PartyId,
        hello: &Handshake,
    ) -> Result<RawPeer, TransportError> {
        let (sock, conn) = raw_dial(cfg, me, identity, to, hello)?;
        Ok(RawPeer { sock, conn })
    }

    /// Write raw plaintext bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        raw_write(&mut self.conn, &mut self.sock, bytes)
    }

    /// Write one well-formed frame.
    pub fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
        let mut buf = encode_frame_header(kind, payload.len() as u64).to_vec();
        buf.extend_from_slice(payload);
        self.send_raw(&buf)
    }

    /// Send a data frame: the depth word `depth`, then `message`.
    pub fn send_data(&mut self, depth: u64, message: &[u8]) -> io::Result<()> {
        let mut payload = depth.to_le_bytes().to_vec();
        payload.extend_from_slice(message);
        self.send_frame(FrameKind::Data, &payload)
    }

    /// Send a data frame holding `words` (little-endian), at depth 1 (a first message).
    pub fn send_u64s(&mut self, words: &[u64]) -> io::Result<()> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.send_data(1, &bytes)
    }

    /// Read one frame (header and payload, payload at most 1 MiB; a data frame's payload
    /// starts with its depth word).
    pub fn read_frame(&mut self) -> io::Result<(FrameHeader, Vec<u8>)> {
        let mut h = [0u8; crate::FRAME_HEADER_LEN];
        raw_read(&mut self.conn, &mut self.sock, &mut h)?;
        let header = decode_frame_header(&h, 1 << 20).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut body = vec![0u8; header.len as usize];
        raw_read(&mut self.conn, &mut self.sock, &mut body)?;
        Ok((header, body))
    }

    /// Close the TCP connection abruptly (no bye, no close_notify), as a crash would.
    pub fn kill(self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Connect to `address` as a TLS client that is not a party: run TLS with party `to`,
/// trusting what `trust` trusts and presenting `client`'s certificate (or none), then
/// wait (at most `timeout` per step) for the party's first byte. Returns how that ended:
/// a party refuses a stranger, so `Ok` means it was let in.
pub fn tls_stranger(
    address: &str,
    to: PartyId,
    trust: &TlsIdentity,
    client: Option<&TlsIdentity>,
    timeout: Duration,
) -> Result<(), TransportError> {
    let (mut sock, mut conn) = raw_tls(address, to, trust, client, None, timeout)?;
    let mut first = [0u8; 1];
    raw_read(&mut conn, &mut sock, &mut first).map_err(|e| TransportError::from_io(to, &e, timeout))
}
