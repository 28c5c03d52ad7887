//! The IDX format (LeCun's MNIST files): a big-endian header `0x00 0x00 type ndims`, then
//! `ndims` big-endian u32 sizes, then the data. Only unsigned bytes (type `0x08`) are
//! accepted, which is what MNIST uses. A gzip stream (magic `1f 8b`) is decompressed
//! first. Parsing is a pure function of the bytes: it is fuzzed and never panics.

use std::io::Read;

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Row-major data.
    pub data: Vec<u8>,
}

/// Why bytes are not a valid IDX array.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IdxError {
    /// Fewer bytes than the header needs.
    #[error("file ends inside the header ({0} bytes)")]
    ShortHeader(usize),
    /// The first two bytes are not zero.
    #[error("bad magic {0:02x} {1:02x}: not an IDX file")]
    BadMagic(u8, u8),
    /// A data type other than unsigned byte.
    #[error("data type 0x{0:02x} is not supported (only 0x08, unsigned byte)")]
    UnsupportedType(u8),
    /// No dimensions, or absurdly many.
    #[error("{0} dimensions is not supported (1 to 4)")]
    BadRank(u8),
    /// The sizes overflow or exceed the limit.
    #[error("dimensions {0:?} are too large")]
    TooLarge(Vec<u64>),
    /// The data length disagrees with the header.
    #[error("header promises {expected} data bytes, file has {found}")]
    Length {
        /// From the header.
        expected: usize,
        /// In the file.
        found: usize,
    },
    /// A corrupt gzip stream.
    #[error("gzip: {0}")]
    Gzip(String),
}

/// Largest array accepted (bytes): 1 GiB.
pub const MAX_BYTES: usize = 1 << 30;

/// Parses IDX bytes, gzip-compressed or raw.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_BYTES as u64 + 64)
            .read_to_end(&mut raw)
            .map_err(|e| IdxError::Gzip(e.to_string()))?;
        return parse_raw(&raw);
    }
    parse_raw(bytes)
}

/// Parses uncompressed IDX bytes.
pub fn parse_raw(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    if bytes.len() < 4 {
        return Err(IdxError::ShortHeader(bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(IdxError::BadMagic(bytes[0], bytes[1]));
    }
    if bytes[2] != 0x08 {
        return Err(IdxError::UnsupportedType(bytes[2]));
    }
    let rank = bytes[3];
    if rank == 0 || rank > 4 {
        return Err(IdxError::BadRank(rank));
    }
    let header = 4 + 4 * rank as usize;
    if bytes.len() < header {
        return Err(IdxError::ShortHeader(bytes.len()));
    }
    let dims64: Vec<u64> =
        bytes[4..header].chunks_exact(4).map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect();
    let total = dims64
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&t| t <= MAX_BYTES as u64)
        .ok_or_else(|| IdxError::TooLarge(dims64.clone()))?;
    let data = &bytes[header..];
    if data.len() as u64 != total {
        return Err(IdxError::Length { expected: total as usize, found: data.len() });
    }
    Ok(IdxArray { dims: dims64.iter().map(|&d| d as usize).collect(), data: data.to_vec() })
}

/// Encodes an array as raw IDX (unsigned bytes): the inverse of [`parse_raw`].
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
