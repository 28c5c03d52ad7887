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

/// A frame as the reader thread's assembler delivers it: kind, depth (data frames; 0
/// otherwise) and message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// The frame's kind.
    pub kind: FrameKind,
    /// The depth word of a data frame; 0 for the other kinds.
    pub depth: u64,
    /// The message (after the depth word).
    pub bytes: Vec<u8>,
}

/// How an assembled stream ended: `Ok` with the `(received, expected)` bytes of a frame
/// left incomplete (if any), or the error of the first malformed header.
pub type AssemblyEnd = Result<Option<(u64, u64)>, TransportError>;

/// Feeds `stream` to the reader thread's frame assembler in pieces: each piece is the
/// assembler's next destination, cut to the next length from `cuts` (cycled; a zero or
/// an empty list means "as much as it asks for"). Returns the frames that completed, in
/// order, up to the first malformed header (its error), and the bytes of the frame left
/// incomplete at the end as `(received, expected)`. This is the code the reader thread
/// runs on decrypted bytes, without TLS or threads, for the fuzzer and its replay test.
pub fn assemble(stream: &[u8], cuts: &[usize], max_frame_bytes: u64) -> (Vec<AssembledFrame>, AssemblyEnd) {
    let mut asm = crate::tls::Assembler::new(max_frame_bytes);
    let mut frames = Vec::new();
    let (mut at, mut k) = (0, 0);
    while at < stream.len() {
        let dst = asm.dst();
        assert!(!dst.is_empty(), "the assembler asked for zero bytes (it would never progress)");
        let cut = cuts.get(k % cuts.len().max(1)).copied().unwrap_or(0);
        k += 1;
        let want = if cut == 0 { dst.len() } else { cut.min(dst.len()) };
        let n = want.min(stream.len() - at);
        dst[..n].copy_from_slice(&stream[at..at + n]);
        at += n;
        match asm.advance(n, PartyId::ALL[1]) {
            Ok(Some(f)) => frames.push(AssembledFrame { kind: f.kind(), depth: f.depth(), bytes: f.bytes().to_vec() }),
            Ok(None) => {}
            Err(e) => return (frames, Err(e)),
        }
    }
    (frames, Ok(asm.partial()))
}
