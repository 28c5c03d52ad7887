//! NumPy `.npy` files: a strict reader (format versions 1, 2 and 3) and a writer.
//!
//! Reads little-endian (or byte-order-free) `<f4`, `<f8`, `<i8`, `<i4`, `|u1`, `|i1`
//! and `|b1` arrays in C order, as `np.save` writes them. Floats are widened to `f64`
//! exactly, integers to `i64`. Fortran-order arrays, big-endian data and every other
//! dtype are refused with one line saying how to convert the array. Sizes are checked
//! (with overflow checks) against the bytes present before anything is allocated.
//!
//! Writes `<f8`, `<f4` and `<i8` arrays, version 1.0 (2.0 for headers over 64 KiB),
//! headers padded to 64 bytes as NumPy pads them; `np.load` reads them back.

use std::path::Path;

use crate::DataError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An element type the reader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    /// `<f4`, float32
    F4,
    /// `<f8`, float64
    F8,
    /// `<i8`, int64
    I8,
    /// `<i4`, int32
    I4,
    /// `|u1`, uint8
    U1,
    /// `|i1`, int8
    I1,
    /// `|b1`, bool
    B1,
}

impl NpyDtype {
    /// The dtype's NumPy descriptor, e.g. `"<f4"`.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F4 => "<f4",
            NpyDtype::F8 => "<f8",
            NpyDtype::I8 => "<i8",
            NpyDtype::I4 => "<i4",
            NpyDtype::U1 => "|u1",
            NpyDtype::I1 => "|i1",
            NpyDtype::B1 => "|b1",
        }
    }

    fn width(self) -> usize {
        match self {
            NpyDtype::F8 | NpyDtype::I8 => 8,
            NpyDtype::F4 | NpyDtype::I4 => 4,
            NpyDtype::U1 | NpyDtype::I1 | NpyDtype::B1 => 1,
        }
    }

    fn from_descr(d: &str) -> Result<Self, NpyError> {
        Ok(match d {
            "<f4" => NpyDtype::F4,
            "<f8" => NpyDtype::F8,
            "<i8" => NpyDtype::I8,
            "<i4" => NpyDtype::I4,
            "|u1" | "<u1" | "=u1" => NpyDtype::U1,
            "|i1" | "<i1" | "=i1" => NpyDtype::I1,
            "|b1" => NpyDtype::B1,
            // Escaped: the descriptor comes from the file and the error is one line.
            d if d.starts_with('>') => return Err(NpyError::BigEndian(d.escape_debug().to_string())),
            d => return Err(NpyError::Dtype(d.escape_debug().to_string())),
        })
    }

    /// Whether the dtype holds integers (or bools).
    pub fn is_integer(self) -> bool {
        !matches!(self, NpyDtype::F4 | NpyDtype::F8)
    }
}

/// A malformed or unsupported `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    /// The file does not start with `\x93NUMPY`.
    #[error("not a NumPy .npy file (no \\x93NUMPY magic)")]
    Magic,
    /// The file ends inside its header.
    #[error("file ends inside the .npy header")]
    Truncated,
    /// A format version other than 1, 2 or 3.
    #[error(".npy format version {0}.{1} is not supported (1.0, 2.0, 3.0)")]
    Version(u8, u8),
    /// The header dictionary cannot be read.
    #[error("bad .npy header: {0}")]
    Header(String),
    /// A Fortran-order array.
    #[error("Fortran-order arrays are not supported: save np.ascontiguousarray(a) instead")]
    Fortran,
    /// Big-endian data.
    #[error("big-endian dtype '{0}' is not supported: save a.astype(a.dtype.newbyteorder('<')) instead")]
    BigEndian(String),
    /// Any other dtype.
    #[error("dtype '{0}' is not supported (<f4, <f8, <i8, <i4, |u1, |i1, |b1 are)")]
    Dtype(String),
    /// The shape is too large to address.
    #[error("shape {0:?} is too large")]
    TooLarge(Vec<usize>),
    /// The data is not as long as the header says.
    #[error("header promises {expected} data bytes (shape {shape:?}, {descr}), file has {found}")]
    Length {
        /// The shape.
        shape: Vec<usize>,
        /// The dtype.
        descr: &'static str,
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Writing: the data's length does not match the shape.
    #[error("shape {shape:?} needs {expected} values, {found} given")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// Values the shape implies.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A float array where integers (labels) are wanted, or a wrong rank.
    #[error("{0}")]
    Unexpected(String),
}

/// The elements of an array, widened: floats to `f64`, integers and bools to `i64`.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// From `<f4` or `<f8`.
    Float(Vec<f64>),
    /// From `<i8`, `<i4`, `|u1`, `|i1`, `|b1`.
    Int(Vec<i64>),
}

/// A `.npy` array: its shape (C order), file dtype and elements.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape; empty for a scalar.
    pub shape: Vec<usize>,
    /// The dtype in the file.
    pub dtype: NpyDtype,
    /// The elements, row-major.
    pub data: NpyData,
}

impl NpyArray {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::Float(v) => v.len(),
            NpyData::Int(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f64` (exact but for int64 beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            NpyData::Float(v) => v.clone(),
            NpyData::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The elements as `i64`; an error for a float array.
    pub fn to_i64(&self) -> Result<Vec<i64>, NpyError> {
        match &self.data {
            NpyData::Int(v) => Ok(v.clone()),
            NpyData::Float(_) => Err(NpyError::Unexpected(format!(
                "integers expected, the array is {} (save a.astype('int64'))",
                self.dtype.descr()
            ))),
        }
    }
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(if bytes.len() < 8 && MAGIC.starts_with(bytes) { NpyError::Truncated } else { NpyError::Magic });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len, start): (usize, usize) = match (major, minor) {
        (1, 0) => match bytes.get(8..10) {
            Some(b) => (usize::from(u16::from_le_bytes([b[0], b[1]])), 10),
            None => return Err(NpyError::Truncated),
        },
        (2 | 3, 0) => match bytes.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => return Err(NpyError::Truncated),
        },
        _ => return Err(NpyError::Version(major, minor)),
    };
    let end = len.checked_add(start).ok_or(NpyError::Truncated)?;
    let header = bytes.get(start..end).ok_or(NpyError::Truncated)?;
    let header = std::str::from_utf8(header).map_err(|_| NpyError::Header("not UTF-8".into()))?;
    let (descr, fortran, shape) = parse_header(header)?;
    if fortran {
        return Err(NpyError::Fortran);
    }
    let dtype = NpyDtype::from_descr(&descr)?;
    let numel = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.width()).map(|b| (n, b)));
    let Some((_, nbytes)) = numel else {
        return Err(NpyError::TooLarge(shape));
    };
    let body = &bytes[end..];
    if body.len() != nbytes {
        return Err(NpyError::Length { shape, descr: dtype.descr(), expected: nbytes, found: body.len() });
    }
    fn le<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    let data = match dtype {
        NpyDtype::F4 => NpyData::Float(le(body, |a| f64::from(f32::from_le_bytes(a)))),
        NpyDtype::F8 => NpyData::Float(le(body, f64::from_le_bytes)),
        NpyDtype::I8 => NpyData::Int(le(body, i64::from_le_bytes)),
        NpyDtype::I4 => NpyData::Int(le(body, |a| i64::from(i32::from_le_bytes(a)))),
        NpyDtype::U1 => NpyData::Int(body.iter().map(|&b| i64::from(b)).collect()),
        NpyDtype::I1 => NpyData::Int(body.iter().map(|&b| i64::from(b as i8)).collect()),
        NpyDtype::B1 => NpyData::Int(body.iter().map(|&b| i64::from(b != 0)).collect()),
    };
    Ok(NpyArray { shape, dtype, data })
}

/// Reads the `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` dictionary.
fn parse_header(h: &str) -> Result<(String, bool, Vec<usize>), NpyError> {
    let bad = |what: &str| NpyError::Header(format!("{what} in {:?}", h.trim_end()));
    let h = h.trim();
    let inner = h.strip_prefix('{').and_then(|s| s.strip_suffix('}')).ok_or_else(|| bad("no dictionary"))?;
    let value_of = |key: &str| -> Result<&str, NpyError> {
        let at = ["'", "\""]
            .iter()
            .find_map(|q| inner.find(&format!("{q}{key}{q}")).map(|i| i + key.len() + 2))
            .ok_or_else(|| bad(&format!("no '{key}'")))?;
        let rest = inner[at..].trim_start();
        rest.strip_prefix(':').map(str::trim_start).ok_or_else(|| bad(&format!("no ':' after '{key}'")))
    };
    let d = value_of("descr")?;
    let q = d.chars().next().filter(|c| *c == '\'' || *c == '"');
    let q = q.ok_or_else(|| bad("'descr' is not a string (structured dtypes are not supported)"))?;
    let descr =
        d[1..].split(q).next().filter(|_| d[1..].contains(q)).ok_or_else(|| bad("unterminated 'descr'"))?.to_string();
    let f = value_of("fortran_order")?;
    let fortran = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err(bad("'fortran_order' is neither True nor False"));
    };
    let s = value_of("shape")?;
    let s = s
        .strip_prefix('(')
        .and_then(|s| s.split(')').next().filter(|_| s.contains(')')))
        .ok_or_else(|| bad("'shape' is not a tuple"))?;
    let shape = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse::<usize>().map_err(|_| bad(&format!("dimension {p:?} is not a size"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((descr, fortran, shape))
}

fn encode(descr: &str, shape: &[usize], body: Vec<u8>, count: usize) -> Result<Vec<u8>, NpyError> {
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let Some(expected) = expected else {
        return Err(NpyError::TooLarge(shape.to_vec()));
    };
    if expected != count {
        return Err(NpyError::ShapeMismatch { shape: shape.to_vec(), expected, found: count });
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Pad with spaces so that magic + version + length + header + '\n' is a multiple
    // of 64, as NumPy does.
    let v1 = header.len() + 11 < 65536;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - prefix - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + body.len());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        let len = u32::try_from(header.len()).map_err(|_| NpyError::TooLarge(shape.to_vec()))?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes a float64 (`<f8`) array.
pub fn encode_f64(shape: &[usize], data: &[f64]) -> Result<Vec<u8>, NpyError> {
    let body = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<f8", shape, body, data.len())
}

/// Encodes a float32 (`<f4`) array, rounding each value to the nearest float32.
pub fn encode_f32(shape: &[usize], data: &[f64]) -> Result<Vec<u8>, NpyError> {
    let body = data.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    encode("<f4", shape, body, data.len())
}

/// Encodes an int64 (`<i8`) array.
pub fn encode_i64(shape: &[usize], data: &[i64]) -> Result<Vec<u8>, NpyError> {
    let body = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<i8", shape, body, data.len())
}

fn npy_err(path: &Path) -> impl Fn(NpyError) -> DataError + '_ {
    move |source| DataError::Npy { path: path.to_path_buf(), source }
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    parse(&bytes).map_err(npy_err(path))
}

/// Reads a `.npy` file of any accepted dtype as its shape and `f64` values (inputs).
pub fn read_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>), DataError> {
    let a = read(path)?;
    let v = a.to_f64();
    Ok((a.shape, v))
}

/// Reads a 1-D integer `.npy` file (class labels); a float array or another rank is an
/// error naming the file.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let a = read(path)?;
    if a.shape.len() != 1 {
        return Err(npy_err(path)(NpyError::Unexpected(format!(
            "labels must be 1-D [N], the array has shape {:?}",
            a.shape
        ))));
    }
    a.to_i64().map_err(npy_err(path))
}

fn write(path: &Path, bytes: Result<Vec<u8>, NpyError>) -> Result<(), DataError> {
    let bytes = bytes.map_err(npy_err(path))?;
    std::fs::write(path, bytes).map_err(|source| DataError::Write { path: path.to_path_buf(), source })
}

/// Writes a float64 (`<f8`) `.npy` file.
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<(), DataError> {
    write(path, encode_f64(shape, data))
}

/// Writes a float32 (`<f4`) `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f64]) -> Result<(), DataError> {
    write(path, encode_f32(shape, data))
}

/// Writes an int64 (`<i8`) `.npy` file.
pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<(), DataError> {
    write(path, encode_i64(shape, data))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(version: u8, header: &str, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn round_trips_every_written_dtype() {
        let a = encode_f64(&[2, 3], &[1.0, -2.5, 3.0, 0.0, 1e300, -0.0]).unwrap();
        assert_eq!((a.len() - 48) % 64, 0, "header padded to 64");
        let r = parse(&a).unwrap();
        assert_eq!((r.shape.clone(), r.dtype), (vec![2, 3], NpyDtype::F8));
        assert_eq!(r.to_f64(), [1.0, -2.5, 3.0, 0.0, 1e300, -0.0]);
        let r = parse(&encode_f32(&[3], &[0.1, 2.0, -3.0]).unwrap()).unwrap();
        assert_eq!(r.dtype, NpyDtype::F4);
        assert_eq!(r.to_f64(), [f64::from(0.1f32), 2.0, -3.0]);
        let r = parse(&encode_i64(&[4], &[0, 9, -1, i64::MAX]).unwrap()).unwrap();
        assert_eq!(r.to_i64().unwrap(), [0, 9, -1, i64::MAX]);
        let r = parse(&encode_f64(&[], &[7.0]).unwrap()).unwrap();
        assert_eq!((r.shape.len(), r.to_f64()), (0, vec![7.0]));
        let r = parse(&encode_f64(&[0, 5], &[]).unwrap()).unwrap();
        assert_eq!(r.shape, [0, 5]);
        assert!(r.is_empty());
    }

    #[test]
    fn reads_versions_and_small_dtypes() {
        let h = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }\n";
        for v in [1, 2, 3] {
            let r = parse(&file(v, h, &[0, 1, 254, 255])).unwrap();
            assert_eq!(r.to_i64().unwrap(), [0, 1, 254, 255]);
        }
        let h = "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }";
        assert_eq!(parse(&file(1, h, &[0xff, 3])).unwrap().to_i64().unwrap(), [-1, 3]);
        let h = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
        let body: Vec<u8> = [-7i32, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse(&file(1, h, &body)).unwrap().to_i64().unwrap(), [-7, 8]);
        let h = "{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": (3,)}";
        assert_eq!(parse(&file(1, h, &[1, 0, 2])).unwrap().to_i64().unwrap(), [1, 0, 1]);
    }

    #[test]
    fn refusals_are_one_line_and_say_what_to_do() {
        let h = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
        assert_eq!(parse(&file(1, h, &[0; 32])).unwrap_err(), NpyError::Fortran);
        let h = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }";
        let e = parse(&file(1, h, &[0; 4])).unwrap_err();
        assert!(e.to_string().starts_with("big-endian dtype '>f4'"), "{e}");
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }";
        let e = parse(&file(1, h, &[0; 2])).unwrap_err();
        assert_eq!(e.to_string(), "dtype '<f2' is not supported (<f4, <f8, <i8, <i4, |u1, |i1, |b1 are)");
        let h = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }";
        assert!(matches!(parse(&file(1, h, &[0; 4])), Err(NpyError::Header(_))));
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        let e = parse(&file(1, h, &[0; 8])).unwrap_err();
        assert_eq!(e.to_string(), "header promises 12 data bytes (shape [3], <f4), file has 8");
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }";
        assert!(matches!(parse(&file(1, h, &[])), Err(NpyError::TooLarge(_))));
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }";
        assert!(matches!(parse(&file(1, h, &[])), Err(NpyError::Header(_))));
        assert_eq!(parse(b"PK\x03\x04 a zip").unwrap_err(), NpyError::Magic);
        assert_eq!(parse(b"\x93NUM").unwrap_err(), NpyError::Truncated);
        assert!(matches!(parse(b"\x93NUMPY\x04\x00\x00\x00"), Err(NpyError::Version(4, 0))));
        let mut big = file(2, "{}", &[]);
        big[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&big).unwrap_err(), NpyError::Truncated);
        let r = parse(&encode_f32(&[1], &[1.0]).unwrap()).unwrap();
        assert!(r.to_i64().unwrap_err().to_string().contains("integers expected, the array is <f4"));
        let e = encode_f64(&[2, 2], &[1.0]).unwrap_err();
        assert_eq!(e.to_string(), "shape [2, 2] needs 4 values, 1 given");
    }

    #[test]
    fn every_prefix_of_a_file_is_handled() {
        let a = encode_i64(&[3, 1], &[1, 2, 3]).unwrap();
        for cut in 0..a.len() {
            assert!(parse(&a[..cut]).is_err(), "cut {cut}");
        }
    }
}
