//! The reader thread: decrypt, reassemble frames, deliver them.

use super::link::*;
use crate::channels::{lock, Event};
use crate::error::TransportError;
use crate::wire::{
    decode_frame_header, printable, words_as_bytes_mut, FrameKind, Payload, DATA_DEPTH_LEN, FRAME_HEADER_LEN,
};
use crate::PartyId;
use rustls::Connection;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::Instant;

/// Socket read buffer of the reader thread.
pub(super) const READ_BUF: usize = 256 << 10;

/// Words of a message's first buffer, at most (16 MiB): what a peer can make a party
/// allocate before it has sent the bytes.
const FIRST_WORDS: usize = 2 << 20;

/// Reassembles frames from the plaintext stream into word-aligned buffers.
pub(crate) struct Assembler {
    max_frame_bytes: u64,
    header: [u8; FRAME_HEADER_LEN],
    header_got: usize,
    body: Option<Body>,
}

/// The payload of the frame in progress. A data frame's depth word goes to `depth`, the
/// message after it to `words` (so the message stays word-aligned, never shifted).
pub(super) struct Body {
    kind: FrameKind,
    /// The depth word as received so far.
    depth: [u8; DATA_DEPTH_LEN],
    /// Bytes of the depth word expected: [`DATA_DEPTH_LEN`] for data frames, else 0.
    depth_len: usize,
    depth_got: usize,
    /// Bytes of the message after the depth word.
    len: usize,
    words: Vec<u64>,
    got: usize,
}

/// A complete frame: its kind, its depth (data frames; 0 otherwise) and its message
/// (`len` bytes in `words`, native order).
pub(crate) struct Frame {
    kind: FrameKind,
    depth: u64,
    words: Vec<u64>,
    len: usize,
}

impl Frame {
    pub(crate) fn bytes(&self) -> &[u8] {
        &crate::wire::words_as_bytes(&self.words)[..self.len]
    }

    pub(crate) fn kind(&self) -> FrameKind {
        self.kind
    }

    pub(crate) fn depth(&self) -> u64 {
        self.depth
    }
}

impl Assembler {
    pub(crate) fn new(max_frame_bytes: u64) -> Assembler {
        Assembler { max_frame_bytes, header: [0; FRAME_HEADER_LEN], header_got: 0, body: None }
    }

    /// Where the next plaintext bytes go; never empty.
    pub(crate) fn dst(&mut self) -> &mut [u8] {
        match &mut self.body {
            None => &mut self.header[self.header_got..],
            Some(b) => {
                if b.depth_got < b.depth_len {
                    return &mut b.depth[b.depth_got..b.depth_len];
                }
                if b.got == b.words.len() * 8 {
                    // Grow with the data that actually arrives (a header may lie): at first
                    // at most FIRST_WORDS, taken zeroed from the allocator (fresh pages, no
                    // fill), which holds every message of a LeNet step in one allocation;
                    // then doubling.
                    let total = b.len.div_ceil(8);
                    let cur = b.words.len();
                    if cur == 0 {
                        b.words = vec![0u64; total.min(FIRST_WORDS)];
                    } else {
                        b.words.resize(total.min((cur * 2).max(cur + (64 << 10))), 0);
                    }
                }
                let end = b.len.min(b.words.len() * 8);
                &mut words_as_bytes_mut(&mut b.words)[b.got..end]
            }
        }
    }

    /// Record `n` bytes written into `dst()`; returns a frame when one completes.
    pub(crate) fn advance(&mut self, n: usize, peer: PartyId) -> Result<Option<Frame>, TransportError> {
        match &mut self.body {
            None => {
                self.header_got += n;
                if self.header_got < FRAME_HEADER_LEN {
                    return Ok(None);
                }
                self.header_got = 0;
                let h = decode_frame_header(&self.header, self.max_frame_bytes)
                    .map_err(|e| TransportError::Malformed { peer, detail: e.to_string() })?;
                let len = usize::try_from(h.len).map_err(|_| TransportError::Malformed {
                    peer,
                    detail: format!("frame of {} bytes does not fit in memory", h.len),
                })?;
                let depth_len = if h.kind == FrameKind::Data { DATA_DEPTH_LEN } else { 0 };
                let Some(len) = len.checked_sub(depth_len) else {
                    return Err(TransportError::Malformed {
                        peer,
                        detail: format!("data frame of {len} bytes is shorter than its {DATA_DEPTH_LEN}-byte depth"),
                    });
                };
                if depth_len == 0 && len == 0 {
                    return Ok(Some(Frame { kind: h.kind, depth: 0, words: Vec::new(), len: 0 }));
                }
                self.body = Some(Body {
                    kind: h.kind,
                    depth: [0; DATA_DEPTH_LEN],
                    depth_len,
                    depth_got: 0,
                    len,
                    words: Vec::new(),
                    got: 0,
                });
                Ok(None)
            }
            Some(b) => {
                if b.depth_got < b.depth_len {
                    b.depth_got += n;
                } else {
                    b.got += n;
                }
                if b.depth_got < b.depth_len || b.got < b.len {
                    return Ok(None);
                }
                let Some(b) = self.body.take() else {
                    return Ok(None);
                };
                #[allow(unused_mut)]
                let mut words = b.words;
                #[cfg(not(target_endian = "little"))]
                for w in &mut words {
                    *w = u64::from_le(*w);
                }
                let depth = if b.depth_len == 0 { 0 } else { u64::from_le_bytes(b.depth) };
                Ok(Some(Frame { kind: b.kind, depth, words, len: b.len }))
            }
        }
    }

    /// `(received, expected)` bytes of the frame in progress, if any.
    pub(crate) fn partial(&self) -> Option<(u64, u64)> {
        match &self.body {
            Some(b) => {
                Some(((FRAME_HEADER_LEN + b.depth_got + b.got) as u64, (FRAME_HEADER_LEN + b.depth_len + b.len) as u64))
            }
            None if self.header_got > 0 => Some((self.header_got as u64, FRAME_HEADER_LEN as u64)),
            None => None,
        }
    }
}

pub(super) enum Flow {
    Continue,
    Stop,
}

pub(super) struct ReadState {
    asm: Assembler,
    bye: bool,
}

impl ReadState {
    pub(super) fn handle(
        &mut self,
        shared: &LinkShared,
        inbound: &Sender<Event>,
        frame: Frame,
    ) -> Result<Flow, TransportError> {
        let peer = shared.peer;
        match frame.kind {
            FrameKind::Data => {
                if self.bye {
                    return Err(TransportError::Malformed { peer, detail: "data frame after bye".into() });
                }
                if frame.depth == 0 {
                    // Every sender stamps at least 1: a zero means the stream is out of sync.
                    return Err(TransportError::Malformed { peer, detail: "data frame with depth 0".into() });
                }
                shared.buffered.fetch_add(frame.len as u64, Ordering::SeqCst);
                let payload = Payload::Words { len_bytes: frame.len, words: frame.words };
                Ok(match inbound.send(Event::Data { depth: frame.depth, payload, deliver_at: None }) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                })
            }
            FrameKind::Bye => {
                self.bye = true;
                Ok(match inbound.send(Event::Closed) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                })
            }
            FrameKind::Abort => Err(TransportError::PeerAborted {
                peer,
                reason: printable(&String::from_utf8_lossy(frame.bytes()), 1024),
            }),
            FrameKind::Heartbeat => Ok(Flow::Continue),
            FrameKind::Hello => {
                Err(TransportError::Malformed { peer, detail: "unexpected hello frame after the handshake".into() })
            }
        }
    }

    /// The stream ended: fine after bye at a frame boundary, an error otherwise.
    pub(super) fn end(&self, peer: PartyId) -> Result<(), TransportError> {
        match self.asm.partial() {
            Some((received, expected)) => Err(TransportError::Truncated { peer, received, expected }),
            None if self.bye => Ok(()),
            None => Err(TransportError::PeerClosed { peer }),
        }
    }
}

/// Decrypt what rustls has, deliver complete frames. Returns `Some(())` when the peer
/// sent close_notify (its stream is over) or the party is gone.
pub(super) fn drain(
    shared: &LinkShared,
    conn: &mut Connection,
    st: &mut ReadState,
    inbound: &Sender<Event>,
) -> Result<Option<()>, TransportError> {
    conn.process_new_packets().map_err(|e| TransportError::tls(shared.peer, &e))?;
    loop {
        match conn.reader().read(st.asm.dst()) {
            Ok(0) => return Ok(Some(())),
            Ok(n) => {
                let frame = st.asm.advance(n, shared.peer)?;
                // What the peer sent and the protocol has not read, counting the whole of
                // the frame in progress (its header is checked before its body arrives).
                let framing = (FRAME_HEADER_LEN + DATA_DEPTH_LEN) as u64;
                let pending = st.asm.partial().map_or(0, |(_, expected)| expected.saturating_sub(framing));
                let bytes = shared.buffered.load(Ordering::SeqCst).saturating_add(pending);
                if bytes > shared.max_buffered_bytes {
                    return Err(TransportError::Flooded {
                        peer: shared.peer,
                        bytes,
                        budget: shared.max_buffered_bytes,
                    });
                }
                if let Some(frame) = frame {
                    if let Flow::Stop = st.handle(shared, inbound, frame)? {
                        return Ok(Some(()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(shared.io_err(&e)),
        }
    }
}

pub(super) fn read_loop(shared: &LinkShared, inbound: &Sender<Event>) -> Result<(), TransportError> {
    let mut st = ReadState { asm: Assembler::new(shared.max_frame_bytes), bye: false };
    let mut raw = vec![0u8; READ_BUF];
    // The handshake may have left records buffered in rustls.
    if drain(shared, &mut lock(&shared.conn), &mut st, inbound)?.is_some() {
        return st.end(shared.peer);
    }
    loop {
        let n = match (&shared.sock).read(&mut raw) {
            Ok(0) => return st.end(shared.peer),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if shared.aborting() {
                    return Ok(());
                }
                return Err(shared.io_err(&e));
            }
        };
        *lock(&shared.last_heard) = Instant::now();
        let mut input = &raw[..n];
        let mut conn = lock(&shared.conn);
        while !input.is_empty() {
            conn.read_tls(&mut input).map_err(|e| shared.io_err(&e))?;
            if drain(shared, &mut conn, &mut st, inbound)?.is_some() {
                drop(conn);
                return st.end(shared.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::encode_frame_header;

    #[test]
    pub(super) fn assembler_rejects_huge_claims_without_allocating() {
        let mut a = Assembler::new(1 << 20);
        let h = encode_frame_header(FrameKind::Data, 1 << 40);
        let dst = a.dst();
        dst.copy_from_slice(&h);
        let e = a.advance(12, PartyId::ALL[1]).err().unwrap();
        assert!(matches!(e, TransportError::Malformed { .. }));
    }

    #[test]
    pub(super) fn assembler_grows_with_data() {
        let mut a = Assembler::new(u64::MAX);
        let h = encode_frame_header(FrameKind::Data, 3 << 30);
        a.dst().copy_from_slice(&h);
        assert!(a.advance(12, PartyId::ALL[1]).unwrap().is_none());
        // The first buffer is small even though 3 GiB are claimed.
        assert!(a.dst().len() <= 512 << 10);
        assert_eq!(a.partial(), Some((12, 12 + (3 << 30))));
    }

    /// Feed `bytes` to the assembler in pieces of at most `step`, collecting frames.
    pub(super) fn feed(a: &mut Assembler, bytes: &[u8], step: usize) -> Result<Vec<Frame>, TransportError> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let dst = a.dst();
            let n = dst.len().min(rest.len()).min(step);
            dst[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            out.extend(a.advance(n, PartyId::ALL[1])?);
        }
        Ok(out)
    }

    #[test]
    pub(super) fn assembler_splits_depth_from_message() {
        let mut wire = encode_frame_header(FrameKind::Data, 8 + 11).to_vec();
        wire.extend_from_slice(&7u64.to_le_bytes());
        wire.extend_from_slice(b"hello world");
        wire.extend_from_slice(&encode_frame_header(FrameKind::Data, 8));
        wire.extend_from_slice(&9u64.to_le_bytes());
        wire.extend_from_slice(&encode_frame_header(FrameKind::Bye, 0));
        for step in [1, 3, 8, 1000] {
            let mut a = Assembler::new(11);
            let frames = feed(&mut a, &wire, step).unwrap();
            assert_eq!(frames.len(), 3);
            assert_eq!((frames[0].kind, frames[0].depth, frames[0].bytes()), (FrameKind::Data, 7, &b"hello world"[..]));
            assert_eq!((frames[1].kind, frames[1].depth, frames[1].len), (FrameKind::Data, 9, 0));
            assert_eq!((frames[2].kind, frames[2].depth, frames[2].len), (FrameKind::Bye, 0, 0));
            assert_eq!(a.partial(), None);
        }
        // Partway through the depth word, and partway through the message.
        let mut a = Assembler::new(11);
        feed(&mut a, &wire[..15], 1000).unwrap();
        assert_eq!(a.partial(), Some((15, 31)));
        feed(&mut a, &wire[15..22], 1000).unwrap();
        assert_eq!(a.partial(), Some((22, 31)));
    }

    #[test]
    pub(super) fn assembler_rejects_data_frame_without_depth() {
        let mut a = Assembler::new(100);
        let e = feed(&mut a, &encode_frame_header(FrameKind::Data, 5), 100).err().unwrap();
        assert!(matches!(&e, TransportError::Malformed { detail, .. } if detail.contains("depth")), "{e:?}");
        let mut a = Assembler::new(100);
        let e = feed(&mut a, &encode_frame_header(FrameKind::Data, 0), 100).err().unwrap();
        assert!(matches!(e, TransportError::Malformed { .. }), "{e:?}");
    }
}
