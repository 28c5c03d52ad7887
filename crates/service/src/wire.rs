//! The client link's messages and their framing.
//!
//! Every message is one frame: the magic `TRC1`, the header's length (`u32`, little
//! endian), the body's length (`u64`, little endian), the header (a JSON object, at most
//! [`MAX_HEADER_BYTES`]) and the body (raw bytes: a graph's encoding, or shares as
//! little-endian `u64` words). Both lengths are checked against their bounds before
//! anything is allocated, and the body grows only with the bytes that arrive, so a peer
//! claiming a huge body costs nothing. Headers carry only public facts: model ids,
//! request ids, shapes, digests, reasons; no value, share or weight is ever in a header.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Result, ServiceError};

/// The first bytes of every frame.
pub const MAGIC: &[u8; 4] = b"TRC1";
/// The largest header.
pub const MAX_HEADER_BYTES: u32 = 64 << 10;
/// The largest body a server accepts by default: a model of about 100 M parameters.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 2 << 30;

/// What a client asks a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Install a model under `model`: the body is the graph's encoding
    /// ([`triad_layers::graph_wire`], `graph_bytes` long, the same at every server) and
    /// then this server's two components of every tensor of
    /// [`triad_layers::serving_shapes`]: all first components, then all second ones.
    Upload {
        /// The model's id, chosen by its owner.
        model: String,
        /// A random number naming this upload, the same at the three servers: a request
        /// runs only where all three hold the same version.
        version: u64,
        /// The fixed-point fractional bits of the shares.
        frac_bits: u32,
        /// The graph's length at the start of the body.
        graph_bytes: u64,
    },
    /// Let `client` run inference on `model` (its owner only).
    Allow {
        /// The model.
        model: String,
        /// The enrolled client's name.
        client: String,
    },
    /// Withdraw `client`'s permission (its owner only).
    Refuse {
        /// The model.
        model: String,
        /// The enrolled client's name.
        client: String,
    },
    /// Private inference on `dims[0]` samples: the body is this server's two components
    /// of the input (first components, then second ones).
    Infer {
        /// The client's id for this request, the same at the three servers.
        id: u64,
        /// The model.
        model: String,
        /// The input's shape: samples first, then the model's input shape.
        dims: Vec<usize>,
    },
    /// The public facts of a model the client may use.
    Describe {
        /// The model.
        model: String,
    },
}

/// What a server answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The model is installed at this server.
    Uploaded(ModelInfo),
    /// An allow or refuse took effect.
    Done,
    /// The output of request `id`: the body holds this server's two components of the
    /// outputs, `dims` (first components, then second ones).
    Output {
        /// The request.
        id: u64,
        /// The output's shape: samples first.
        dims: Vec<usize>,
        /// The shares' fractional bits.
        frac_bits: u32,
    },
    /// The model's public facts.
    Model(ModelInfo),
    /// The request failed; `message` is one line.
    Error {
        /// Why.
        message: String,
    },
}

/// The public facts of an installed model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Its id.
    pub model: String,
    /// The upload's version.
    pub version: u64,
    /// The client that uploaded it.
    pub owner: String,
    /// The graph's name.
    pub graph: String,
    /// The SHA-256 of the graph's encoding (what `triad inspect` prints).
    pub graph_sha256: String,
    /// Trainable parameters.
    pub params: usize,
    /// One sample's input shape.
    pub input: Vec<usize>,
    /// One sample's output shape.
    pub output: Vec<usize>,
    /// The shares' fractional bits.
    pub frac_bits: u32,
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, header: &T, body: &[u8]) -> std::io::Result<()> {
    let h = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    let hl = u32::try_from(h.len()).ok().filter(|&l| l <= MAX_HEADER_BYTES).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a message header is larger than 64 KiB")
    })?;
    let mut head = Vec::with_capacity(16 + h.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&hl.to_le_bytes());
    head.extend_from_slice(&(body.len() as u64).to_le_bytes());
    head.extend_from_slice(&h);
    w.write_all(&head)?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one frame: its header decoded as `T`, and its body. `Ok(None)` when the peer
/// closed the connection cleanly before a frame began.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read, max_body: u64) -> Result<Option<(T, Vec<u8>)>> {
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ServiceError::Protocol("the connection closed inside a message".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(ServiceError::io("reading a message", e)),
        }
    }
    if &head[..4] != MAGIC {
        return Err(ServiceError::Protocol("not a triad service message (bad magic)".into()));
    }
    let hl = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut bl = [0u8; 8];
    bl.copy_from_slice(&head[8..16]);
    let bl = u64::from_le_bytes(bl);
    if hl == 0 || hl > MAX_HEADER_BYTES {
        return Err(ServiceError::Protocol(format!("a message header of {hl} bytes (at most {MAX_HEADER_BYTES})")));
    }
    if bl > max_body {
        return Err(ServiceError::Protocol(format!("a message body of {bl} bytes (at most {max_body})")));
    }
    let mut h = vec![0u8; hl as usize];
    r.read_exact(&mut h).map_err(|e| ServiceError::io("reading a message header", e))?;
    let header: T = serde_json::from_slice(&h)
        .map_err(|e| ServiceError::Protocol(format!("a message header that is not understood: {e}")))?;
    let mut body = Vec::new();
    r.take(bl).read_to_end(&mut body).map_err(|e| ServiceError::io("reading a message body", e))?;
    if body.len() as u64 != bl {
        return Err(ServiceError::Protocol("the connection closed inside a message".into()));
    }
    Ok(Some((header, body)))
}

/// `u64` words as little-endian bytes.
pub fn words_to_bytes(words: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 8);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Little-endian bytes as `u64` words; `None` unless the length is a multiple of 8.
pub fn bytes_to_words(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_frame_round_trips_and_bad_frames_are_refused() {
        let req = Request::Infer { id: 7, model: "lenet".into(), dims: vec![2, 1, 28, 28] };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req, &words_to_bytes(&[1, 2, 3])).unwrap();
        let (back, body): (Request, Vec<u8>) = read_frame(&mut buf.as_slice(), 1 << 20).unwrap().unwrap();
        assert_eq!(back, req);
        assert_eq!(bytes_to_words(&body).unwrap(), vec![1, 2, 3]);
        // Clean end before a frame.
        assert!(read_frame::<Request>(&mut [].as_slice(), 1 << 20).unwrap().is_none());
        // Cut inside.
        let e = read_frame::<Request>(&mut &buf[..buf.len() - 1], 1 << 20).unwrap_err().to_string();
        assert!(e.contains("closed inside a message"), "{e}");
        // Bad magic.
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(read_frame::<Request>(&mut bad.as_slice(), 1 << 20).unwrap_err().to_string().contains("bad magic"));
        // A body over the bound is refused before it is read.
        let e = read_frame::<Request>(&mut buf.as_slice(), 8).unwrap_err().to_string();
        assert!(e.contains("a message body of 24 bytes (at most 8)"), "{e}");
        // A header that is not a request.
        let mut other = Vec::new();
        write_frame(&mut other, &serde_json::json!({"op": "launch"}), &[]).unwrap();
        let e = read_frame::<Request>(&mut other.as_slice(), 8).unwrap_err().to_string();
        assert!(e.contains("not understood"), "{e}");
        assert!(bytes_to_words(&[0; 7]).is_none());
    }
}
