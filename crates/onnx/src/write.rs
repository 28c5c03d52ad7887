//! Writing trained weights back: the same ONNX file with new initializer values, which
//! onnxruntime and PyTorch load as they loaded the original.
//!
//! The rewrite works on the protobuf wire format: every field of the model and of its
//! graph is copied byte for byte except the initializers, which are all written inline
//! (external data resolved), the trained ones with their new values. Nothing the reader
//! does not declare is lost.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::import::{ImportError, Imported};
use crate::{elem_type, proto, OnnxTensor, TensorData};

fn bad(what: impl std::fmt::Display) -> ImportError {
    ImportError(what.to_string())
}

fn varint(b: &[u8], at: &mut usize) -> Result<u64, ImportError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| bad("truncated protobuf varint"))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("protobuf varint too long"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field of a message: its number, its bytes with the key, and the payload of a
/// length-delimited field.
type Field<'a> = (u64, &'a [u8], Option<&'a [u8]>);

/// The top-level fields of a message.
fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, ImportError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let start = at;
        let key = varint(b, &mut at)?;
        let payload = match key & 7 {
            0 => {
                varint(b, &mut at)?;
                None
            }
            1 => {
                at += 8;
                None
            }
            5 => {
                at += 4;
                None
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).map_err(|_| bad("protobuf length too large"))?;
                let end =
                    at.checked_add(len).filter(|&e| e <= b.len()).ok_or_else(|| bad("truncated protobuf field"))?;
                let p = &b[at..end];
                at = end;
                Some(p)
            }
            w => return Err(bad(format!("protobuf wire type {w} is not supported"))),
        };
        if at > b.len() {
            return Err(bad("truncated protobuf field"));
        }
        out.push((key >> 3, &b[start..at], payload));
    }
    Ok(out)
}

fn put_field(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// An initializer as an inline `TensorProto` of its own data type.
fn tensor_proto(name: &str, t: &OnnxTensor) -> Vec<u8> {
    let (data_type, raw): (i32, Vec<u8>) = match &t.data {
        TensorData::F32(v) => (elem_type::FLOAT, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::F64(v) => (elem_type::DOUBLE, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::F16(v) => (elem_type::FLOAT16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I64(v) => (elem_type::INT64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I32(v) => (elem_type::INT32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I8(v) => (elem_type::INT8, v.iter().map(|&x| x as u8).collect()),
        TensorData::U8(v) => (elem_type::UINT8, v.clone()),
        TensorData::Bool(v) => (elem_type::BOOL, v.iter().map(|&x| u8::from(x)).collect()),
    };
    proto::TensorProto {
        dims: t.dims.iter().map(|&d| d as i64).collect(),
        data_type,
        name: name.to_string(),
        raw_data: Some(raw),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Writes `src` (an ONNX file) to `dst` with the trained values of `state` (in
/// `imported.graph`'s state order, as `Model::open_weights` gives them) in place of the
/// initializers they came from, in each initializer's own data type and layout. Tensors
/// the import derived from a constant (a negated or inverted normaliser) are written
/// unchanged. The file gets the default mode; a caller that must keep it private writes
/// [`trained_model`]'s bytes itself.
pub fn write_trained(src: &Path, dst: &Path, imported: &Imported, state: &[Vec<f64>]) -> Result<(), ImportError> {
    let out = trained_model(src, dst, imported, state)?;
    std::fs::write(dst, out).map_err(|e| ImportError(format!("{}: {}", dst.display(), bad(e).0)))
}

/// The bytes [`write_trained`] writes (`dst` only names the file in errors).
pub fn trained_model(src: &Path, dst: &Path, imported: &Imported, state: &[Vec<f64>]) -> Result<Vec<u8>, ImportError> {
    let at = |e: ImportError| ImportError(format!("{}: {}", dst.display(), e.0));
    let model = crate::load(src).map_err(|e| bad(e.to_string()))?;
    let tensors = imported.graph.tensors();
    if tensors.len() != state.len() {
        return Err(at(bad(format!("{} values for {} tensors", state.len(), tensors.len()))));
    }
    let mut trained: HashMap<&str, Vec<f64>> = HashMap::new();
    for (t, v) in tensors.iter().zip(state) {
        if let Some(src) = imported.sources.get(&t.name) {
            trained.insert(t.name.as_str(), src.to_onnx(v));
        }
    }
    let mut inits = Vec::new();
    for (name, t) in &model.graph.initializers {
        let t = match trained.get(name.as_str()) {
            Some(v) if v.len() == t.len() => OnnxTensor {
                dims: t.dims.clone(),
                data: match t.data {
                    TensorData::F64(_) => TensorData::F64(v.clone()),
                    _ => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
                },
            },
            Some(_) => return Err(at(bad(format!("tensor {name}: the trained value has another size")))),
            None => t.clone(),
        };
        inits.push(tensor_proto(name, &t));
    }
    let bytes = std::fs::read(src).map_err(|e| bad(format!("{}: {e}", src.display())))?;
    let mut out = Vec::with_capacity(bytes.len());
    for (field, whole, payload) in fields(&bytes).map_err(at)? {
        match (field, payload) {
            (7, Some(graph)) => {
                let mut g = Vec::with_capacity(graph.len());
                for (gf, gwhole, _) in fields(graph).map_err(at)? {
                    if gf != 5 {
                        g.extend_from_slice(gwhole);
                    }
                }
                for t in &inits {
                    put_field(&mut g, 5, t);
                }
                put_field(&mut out, 7, &g);
            }
            _ => out.extend_from_slice(whole),
        }
    }
    Ok(out)
}
