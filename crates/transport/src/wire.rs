//! Wire format: frame headers, the handshake message, and payload conversions.
//!
//! Everything here is pure (no I/O) and total: any input yields a value or a typed
//! error, never a panic. The fuzz targets drive these functions.

use crate::error::HandshakeMismatch;
use crate::PartyId;
use std::fmt;

/// Frame magic: the first three bytes of every frame.
pub const FRAME_MAGIC: [u8; 3] = *b"TRD";
/// Size of a frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 12;
/// Default largest data payload: 4 GiB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 4 << 30;
/// Size of the depth word at the start of every data frame payload (u64 little-endian).
///
/// It is framing, not message: it does not count against `max_frame_bytes` (a data
/// frame may be this much longer) nor in the cost counters.
pub const DATA_DEPTH_LEN: usize = 8;
/// Largest handshake frame payload.
pub const MAX_HANDSHAKE_BYTES: u64 = 1024;
/// Largest abort reason (abort frame payload).
pub const MAX_ABORT_REASON_BYTES: u64 = 1024;
/// Handshake magic: the first eight bytes of a handshake message.
pub const HANDSHAKE_MAGIC: [u8; 8] = *b"TRIADHS\0";
/// This implementation's protocol version.
///
/// Version 2 added the depth word to data frames ([`DATA_DEPTH_LEN`]); version 3 added
/// heartbeat frames ([`FrameKind::Heartbeat`]).
pub const PROTOCOL_VERSION: u16 = 3;
/// Longest session id in bytes.
pub const MAX_SESSION_LEN: usize = 256;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// The connection handshake ([`Handshake`]).
    Hello = 1,
    /// A protocol message: its depth ([`DATA_DEPTH_LEN`] bytes), then the message.
    Data = 2,
    /// Graceful close: the sender will send nothing more. Empty payload.
    Bye = 3,
    /// The sender gave up; the payload is a UTF-8 reason.
    Abort = 4,
    /// The sender is alive (sent by its writer when it has had nothing to send for a
    /// while). Empty payload; not counted in the costs.
    Heartbeat = 5,
}

impl FrameKind {
    /// The kind with this tag byte.
    pub fn from_tag(tag: u8) -> Option<FrameKind> {
        match tag {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Data),
            3 => Some(FrameKind::Bye),
            4 => Some(FrameKind::Abort),
            5 => Some(FrameKind::Heartbeat),
            _ => None,
        }
    }

    /// Largest payload allowed for this kind, given the data frame limit (which bounds the
    /// message; a data frame payload also holds the depth word).
    pub fn max_len(self, max_frame_bytes: u64) -> u64 {
        match self {
            FrameKind::Hello => MAX_HANDSHAKE_BYTES,
            FrameKind::Data => max_frame_bytes.saturating_add(DATA_DEPTH_LEN as u64),
            FrameKind::Bye | FrameKind::Heartbeat => 0,
            FrameKind::Abort => MAX_ABORT_REASON_BYTES,
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Hello => "hello",
            FrameKind::Data => "data",
            FrameKind::Bye => "bye",
            FrameKind::Abort => "abort",
            FrameKind::Heartbeat => "heartbeat",
        })
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Payload length in bytes.
    pub len: u64,
}

/// Why a frame header was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer than [`FRAME_HEADER_LEN`] bytes.
    #[error("frame header too short: {got} of 12 bytes")]
    Short {
        /// Bytes available.
        got: usize,
    },
    /// The magic is wrong: the peer is not speaking this protocol or the stream is out of sync.
    #[error("bad frame magic {found:02x?} (expected \"TRD\"; not a triad peer, or the stream is out of sync)")]
    BadMagic {
        /// The three bytes found.
        found: [u8; 3],
    },
    /// The kind byte is not one of the known kinds.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// The length exceeds the limit for this kind.
    #[error("{kind} frame claims {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// The frame kind.
        kind: FrameKind,
        /// The claimed length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Encode a frame header.
pub fn encode_frame_header(kind: FrameKind, len: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..3].copy_from_slice(&FRAME_MAGIC);
    h[3] = kind as u8;
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

/// Decode and validate the frame header at the start of `buf` (extra bytes are ignored).
///
/// Data frames may be at most `max_frame_bytes` plus the depth word long; control frames
/// have small fixed limits ([`FrameKind::max_len`]). A data frame shorter than its depth
/// word passes here and is rejected by the reader.
pub fn decode_frame_header(buf: &[u8], max_frame_bytes: u64) -> Result<FrameHeader, FrameError> {
    let Some(h) = buf.get(..FRAME_HEADER_LEN) else {
        return Err(FrameError::Short { got: buf.len() });
    };
    let mut magic = [0u8; 3];
    magic.copy_from_slice(&h[..3]);
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic { found: magic });
    }
    let kind = FrameKind::from_tag(h[3]).ok_or(FrameError::UnknownKind(h[3]))?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[4..12]);
    let len = u64::from_le_bytes(len);
    let max = kind.max_len(max_frame_bytes);
    if len > max {
        return Err(FrameError::TooLarge { kind, len, max });
    }
    Ok(FrameHeader { kind, len })
}

/// The handshake message each side of a connection sends first.
///
/// Layout: magic (8 bytes, [`HANDSHAKE_MAGIC`]) | version (u16 LE) | party id (u8) |
/// session length (u16 LE) | session (UTF-8, at most [`MAX_SESSION_LEN`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The sender's party id (raw: a peer may claim anything).
    pub party: u8,
    /// The session id.
    pub session: String,
}

impl Handshake {
    /// This implementation's handshake for `party` in `session`.
    pub fn new(party: PartyId, session: &str) -> Handshake {
        Handshake { version: PROTOCOL_VERSION, party: party.as_u8(), session: session.to_string() }
    }
}

/// Why a handshake message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeDecodeError {
    /// The message is shorter than its fields.
    #[error("handshake message too short: {got} bytes, need {need}")]
    Short {
        /// Bytes available.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Wrong magic: the peer is not a triad party.
    #[error("bad handshake magic (not a triad peer)")]
    BadMagic,
    /// The session id is longer than [`MAX_SESSION_LEN`].
    #[error("session id of {0} bytes is longer than the limit of 256")]
    SessionTooLong(usize),
    /// The session id is not UTF-8.
    #[error("session id is not valid UTF-8")]
    SessionNotUtf8,
    /// Bytes after the session id.
    #[error("{0} unexpected bytes after the handshake message")]
    Trailing(usize),
}

const HANDSHAKE_FIXED: usize = 8 + 2 + 1 + 2;

/// Encode a handshake message. A session longer than [`MAX_SESSION_LEN`] bytes is cut
/// at a character boundary (configurations reject such sessions before this point).
pub fn encode_handshake(h: &Handshake) -> Vec<u8> {
    let mut end = h.session.len().min(MAX_SESSION_LEN);
    while !h.session.is_char_boundary(end) {
        end -= 1;
    }
    let session = &h.session.as_bytes()[..end];
    let mut out = Vec::with_capacity(HANDSHAKE_FIXED + session.len());
    out.extend_from_slice(&HANDSHAKE_MAGIC);
    out.extend_from_slice(&h.version.to_le_bytes());
    out.push(h.party);
    // `end <= MAX_SESSION_LEN = 256` fits in a u16.
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(session);
    out
}

/// Decode a handshake message (the whole payload of a hello frame).
pub fn decode_handshake(buf: &[u8]) -> Result<Handshake, HandshakeDecodeError> {
    if buf.len() < HANDSHAKE_FIXED {
        // Check the magic on what we have, so garbage reads as "not a triad peer".
        let n = buf.len().min(8);
        if buf[..n] != HANDSHAKE_MAGIC[..n] {
            return Err(HandshakeDecodeError::BadMagic);
        }
        return Err(HandshakeDecodeError::Short { got: buf.len(), need: HANDSHAKE_FIXED });
    }
    if buf[..8] != HANDSHAKE_MAGIC {
        return Err(HandshakeDecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([buf[8], buf[9]]);
    let party = buf[10];
    let slen = usize::from(u16::from_le_bytes([buf[11], buf[12]]));
    if slen > MAX_SESSION_LEN {
        return Err(HandshakeDecodeError::SessionTooLong(slen));
    }
    let rest = &buf[HANDSHAKE_FIXED..];
    if rest.len() < slen {
        return Err(HandshakeDecodeError::Short { got: buf.len(), need: HANDSHAKE_FIXED + slen });
    }
    if rest.len() > slen {
        return Err(HandshakeDecodeError::Trailing(rest.len() - slen));
    }
    let session = std::str::from_utf8(rest).map_err(|_| HandshakeDecodeError::SessionNotUtf8)?.to_string();
    Ok(Handshake { version, party, session })
}

/// Check a peer's handshake against ours: same version, same session, and the peer
/// claims to be `expected`.
pub fn check_handshake(ours: &Handshake, theirs: &Handshake, expected: PartyId) -> Result<(), HandshakeMismatch> {
    if theirs.version != ours.version {
        return Err(HandshakeMismatch::Version { ours: ours.version, theirs: theirs.version });
    }
    if theirs.session != ours.session {
        return Err(HandshakeMismatch::Session {
            ours: ours.session.clone(),
            theirs: printable(&theirs.session, MAX_SESSION_LEN),
        });
    }
    if theirs.party != expected.as_u8() {
        return Err(HandshakeMismatch::PartyId { expected, claimed: theirs.party });
    }
    Ok(())
}

/// Make peer-controlled text safe to show on one line: control characters are escaped
/// and the result is cut to about `max` bytes.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A message in flight: either native `u64` words (moved as is) or bytes.
#[derive(Debug)]
pub(crate) enum Payload {
    /// `len_bytes` bytes held in `words` (in native order; `len_bytes <= 8 * words.len()`).
    Words { words: Vec<u64>, len_bytes: usize },
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Payload {
    pub(crate) fn from_u64s(words: Vec<u64>) -> Payload {
        let len_bytes = words.len() * 8;
        Payload::Words { words, len_bytes }
    }

    pub(crate) fn byte_len(&self) -> usize {
        match self {
            Payload::Words { len_bytes, .. } => *len_bytes,
            Payload::Bytes(b) => b.len(),
        }
    }

    /// The message as `len` u64s (little-endian on the wire), or why not.
    pub(crate) fn into_u64s(self, len: usize) -> Result<Vec<u64>, String> {
        let want = len.checked_mul(8);
        let got = self.byte_len();
        if want != Some(got) {
            return Err(format!("expected a message of {len} u64s ({} bytes), got {got} bytes", len.saturating_mul(8)));
        }
        Ok(match self {
            Payload::Words { mut words, .. } => {
                words.truncate(len);
                words
            }
            Payload::Bytes(b) => b
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                })
                .collect(),
        })
    }

    /// The message as `len` bytes, or why not.
    pub(crate) fn into_bytes(self, len: usize) -> Result<Vec<u8>, String> {
        let got = self.byte_len();
        if got != len {
            return Err(format!("expected a message of {len} bytes, got {got} bytes"));
        }
        Ok(match self {
            Payload::Bytes(b) => b,
            Payload::Words { words, len_bytes } => {
                let mut v = le_bytes(&words).into_owned();
                v.truncate(len_bytes);
                v
            }
        })
    }
}

/// The little-endian bytes of `words`: a free view on little-endian targets.
pub(crate) fn le_bytes(words: &[u64]) -> std::borrow::Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        std::borrow::Cow::Borrowed(words_as_bytes(words))
    }
    #[cfg(not(target_endian = "little"))]
    {
        std::borrow::Cow::Owned(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// View `u64`s as their in-memory bytes.
#[cfg_attr(not(target_endian = "little"), allow(dead_code))]
pub(crate) fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: the pointer is valid for `8 * len` initialised bytes, u8 has alignment 1,
    // and the returned slice borrows `words` immutably for its whole lifetime.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// View `u64`s as mutable bytes (every byte pattern is a valid u64).
pub(crate) fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: the pointer is valid for `8 * len` initialised bytes, u8 has alignment 1,
    // any bytes written form valid u64s, and the slice borrows `words` exclusively.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = encode_frame_header(FrameKind::Data, 1234);
        assert_eq!(decode_frame_header(&h, 1 << 20).unwrap(), FrameHeader { kind: FrameKind::Data, len: 1234 });
        assert!(matches!(decode_frame_header(&h, 100), Err(FrameError::TooLarge { .. })));
        assert!(matches!(decode_frame_header(&h[..5], 100), Err(FrameError::Short { got: 5 })));
    }

    #[test]
    fn data_limit_leaves_room_for_the_depth() {
        let max = 100;
        let at = encode_frame_header(FrameKind::Data, max + DATA_DEPTH_LEN as u64);
        assert!(decode_frame_header(&at, max).is_ok());
        let over = encode_frame_header(FrameKind::Data, max + DATA_DEPTH_LEN as u64 + 1);
        assert!(matches!(decode_frame_header(&over, max), Err(FrameError::TooLarge { max: 108, .. })));
        assert_eq!(FrameKind::Data.max_len(u64::MAX), u64::MAX);
        assert_eq!(FrameKind::Abort.max_len(0), MAX_ABORT_REASON_BYTES);
    }

    #[test]
    fn handshake_roundtrip() {
        let h = Handshake::new(PartyId::ALL[2], "démo");
        let enc = encode_handshake(&h);
        assert_eq!(decode_handshake(&enc).unwrap(), h);
        let mut t = enc.clone();
        t.push(0);
        assert_eq!(decode_handshake(&t), Err(HandshakeDecodeError::Trailing(1)));
        assert!(decode_handshake(&enc[..enc.len() - 1]).is_err());
        let long = Handshake::new(PartyId::ALL[0], &"é".repeat(200));
        let d = decode_handshake(&encode_handshake(&long)).unwrap();
        assert!(d.session.len() <= MAX_SESSION_LEN);
    }

    #[test]
    fn payload_conversions() {
        let p = Payload::from_u64s(vec![1, 2, 3]);
        let b = p.into_bytes(24).unwrap();
        assert_eq!(&b[..8], &1u64.to_le_bytes());
        let w = Payload::Bytes(b).into_u64s(3).unwrap();
        assert_eq!(w, vec![1, 2, 3]);
        assert!(Payload::Bytes(vec![0; 7]).into_u64s(1).is_err());
        assert!(Payload::from_u64s(vec![0; 2]).into_u64s(usize::MAX).is_err());
    }
}
