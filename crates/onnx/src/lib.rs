//! ONNX reader: a `ModelProto` file parsed into a plain IR that depends on nothing of
//! ours, for the lowering of PyTorch-exported models into triad's network graph
//! (issue 13).
//!
//! What it reads: ONNX files of IR version 3 and later, opset 13 to 21 of the default
//! domain ([`OPSET_MIN`], [`OPSET_MAX`]), as both PyTorch exporters write them: the
//! TorchScript one (`dynamo=False`, weights inside the file) and the dynamo one
//! (weights in `model.onnx.data` beside the file, `data_location = EXTERNAL`).
//! Tensors of FLOAT, DOUBLE, FLOAT16, INT64, INT32, INT8, UINT8 and BOOL, from
//! `raw_data`, the typed fields, or an external file. What it does not judge: which ops
//! triad supports. That is the lowering's job; the reader keeps every node as it is.
//!
//! Every error is one line naming the file and what is wrong ([`Error`]). The reader
//! never panics on any input and never allocates on a length read from the file
//! without checking it against the bytes present: the protobuf decoder checks every
//! length against the buffer, tensor sizes are checked (with overflow checks) against
//! the bytes that hold them, and external data is bounds-checked against its file's
//! length before it is read. External-data paths are resolved relative to the model's
//! folder and may not leave it.
//!
//! ```no_run
//! let model = triad_onnx::load("model.onnx")?;
//! for node in &model.graph.nodes {
//!     let group = node.int("group", 1)?;
//!     println!("{} {} group={group}", node.op_type, node.name);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use prost::Message;

mod import;
mod proto;

mod write;

pub use import::{import, import_file, ImportError, Imported, Source, SUPPORTED};
pub use write::{trained_model, write_trained};

/// The lowest opset of the default domain the reader accepts.
pub const OPSET_MIN: i64 = 13;
/// The highest opset of the default domain the reader accepts.
pub const OPSET_MAX: i64 = 21;

/// ONNX `TensorProto.DataType` codes the reader knows by name.
pub mod elem_type {
    /// float32
    pub const FLOAT: i32 = 1;
    /// uint8
    pub const UINT8: i32 = 2;
    /// int8
    pub const INT8: i32 = 3;
    /// int32
    pub const INT32: i32 = 6;
    /// int64
    pub const INT64: i32 = 7;
    /// bool
    pub const BOOL: i32 = 9;
    /// float16
    pub const FLOAT16: i32 = 10;
    /// float64
    pub const DOUBLE: i32 = 11;

    /// The ONNX name of a data type code (`"FLOAT"`, …), or `"type N"`.
    pub fn name(code: i32) -> String {
        let known = [
            (1, "FLOAT"),
            (2, "UINT8"),
            (3, "INT8"),
            (4, "UINT16"),
            (5, "INT16"),
            (6, "INT32"),
            (7, "INT64"),
            (8, "STRING"),
            (9, "BOOL"),
            (10, "FLOAT16"),
            (11, "DOUBLE"),
            (12, "UINT32"),
            (13, "UINT64"),
            (14, "COMPLEX64"),
            (15, "COMPLEX128"),
            (16, "BFLOAT16"),
        ];
        match known.iter().find(|(c, _)| *c == code) {
            Some((_, n)) => (*n).to_string(),
            None => format!("type {code}"),
        }
    }
}

/// A parsed ONNX model.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxModel {
    /// `ModelProto.ir_version` (PyTorch writes 8 to 10).
    pub ir_version: i64,
    /// The opset version of the default domain (`""` or `"ai.onnx"`).
    pub opset: i64,
    /// The exporter, e.g. `"pytorch"`.
    pub producer_name: String,
    /// The exporter's version, e.g. `"2.15.0"`.
    pub producer_version: String,
    /// The main graph.
    pub graph: OnnxGraph,
}

/// The main graph of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxGraph {
    /// `GraphProto.name`.
    pub name: String,
    /// Nodes in file order (ONNX requires topological order).
    pub nodes: Vec<OnnxNode>,
    /// Initializers (the weights and constant tensors), by name, in file order. Names
    /// are unique (checked).
    pub initializers: Vec<(String, OnnxTensor)>,
    /// The graph's real inputs: graph inputs that are also initializers are left out.
    pub inputs: Vec<ValueInfo>,
    /// The graph's outputs.
    pub outputs: Vec<ValueInfo>,
}

impl OnnxGraph {
    /// The initializer of this name (a linear search).
    pub fn initializer(&self, name: &str) -> Option<&OnnxTensor> {
        self.initializers.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The op types of the nodes, in order.
    pub fn op_types(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.op_type.as_str()).collect()
    }
}

/// A graph input or output: its name, element type and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// A `TensorProto.DataType` code ([`elem_type`]); 0 when not a tensor or not given.
    pub elem_type: i32,
    /// The shape; empty for a scalar or when the file gives no shape.
    pub dims: Vec<Dim>,
}

/// One dimension of a [`ValueInfo`]'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Known(i64),
    /// A named symbolic size, e.g. `"batch"` (from `dynamic_axes` or the dynamo
    /// exporter's `dynamic_shapes`).
    Param(String),
    /// Neither given.
    Unknown,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxNode {
    /// The node's name (may be empty in hand-written files).
    pub name: String,
    /// The operator, e.g. `"Conv"`.
    pub op_type: String,
    /// The operator's domain; `""` for the default ONNX domain.
    pub domain: String,
    /// Input value names; an empty string is an omitted optional input.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attrs: BTreeMap<String, Attr>,
}

/// A node attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`
    Int(i64),
    /// `FLOAT`
    Float(f32),
    /// `INTS`
    Ints(Vec<i64>),
    /// `FLOATS`
    Floats(Vec<f32>),
    /// `STRING` (UTF-8, lossily decoded)
    Str(String),
    /// `STRINGS`
    Strs(Vec<String>),
    /// `TENSOR` (e.g. `Constant`'s `value`)
    Tensor(OnnxTensor),
    /// `TENSORS`
    Tensors(Vec<OnnxTensor>),
    /// Any other kind (graphs of `If`/`Loop`, sparse tensors, type protos, or a
    /// reference to a function attribute): its `AttributeType` code.
    Unsupported(i32),
}

impl Attr {
    /// The attribute kind's ONNX name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Int(_) => "int",
            Attr::Float(_) => "float",
            Attr::Ints(_) => "ints",
            Attr::Floats(_) => "floats",
            Attr::Str(_) => "string",
            Attr::Strs(_) => "strings",
            Attr::Tensor(_) => "tensor",
            Attr::Tensors(_) => "tensors",
            Attr::Unsupported(_) => "unsupported kind",
        }
    }
}

/// An attribute of the wrong kind, or a required one missing: one line naming the
/// node, its op and the attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node '{node}' ({op_type}): attribute '{attr}': {what}")]
pub struct AttrError {
    /// The node's name.
    pub node: String,
    /// The node's op type.
    pub op_type: String,
    /// The attribute's name.
    pub attr: String,
    /// What is wrong.
    pub what: String,
}

impl OnnxNode {
    fn attr_error(&self, attr: &str, what: String) -> AttrError {
        AttrError { node: self.name.clone(), op_type: self.op_type.clone(), attr: attr.to_string(), what }
    }

    fn wrong_kind(&self, attr: &str, want: &str, got: &Attr) -> AttrError {
        self.attr_error(attr, format!("expected {want}, found {}", got.kind()))
    }

    /// The attribute of this name, if present.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.get(name)
    }

    /// Input `i`, or `None` when absent or omitted (empty name).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// An `INT` attribute, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, AttrError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    /// An `INT` attribute, or `None` when absent.
    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(a) => Err(self.wrong_kind(name, "int", a)),
        }
    }

    /// A `FLOAT` attribute, or `default` when absent.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, AttrError> {
        match self.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(a) => Err(self.wrong_kind(name, "float", a)),
        }
    }

    /// An `INTS` attribute, or `None` when absent.
    pub fn ints(&self, name: &str) -> Result<Option<&[i64]>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v)),
            Some(a) => Err(self.wrong_kind(name, "ints", a)),
        }
    }

    /// An `INTS` attribute that must be present.
    pub fn ints_req(&self, name: &str) -> Result<&[i64], AttrError> {
        self.ints(name)?.ok_or_else(|| self.attr_error(name, "required, missing".to_string()))
    }

    /// A `FLOATS` attribute, or `None` when absent.
    pub fn floats(&self, name: &str) -> Result<Option<&[f32]>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v)),
            Some(a) => Err(self.wrong_kind(name, "floats", a)),
        }
    }

    /// A `STRING` attribute, or `None` when absent.
    pub fn str(&self, name: &str) -> Result<Option<&str>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Str(v)) => Ok(Some(v)),
            Some(a) => Err(self.wrong_kind(name, "string", a)),
        }
    }

    /// A `TENSOR` attribute, or `None` when absent.
    pub fn tensor(&self, name: &str) -> Result<Option<&OnnxTensor>, AttrError> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(v)) => Ok(Some(v)),
            Some(a) => Err(self.wrong_kind(name, "tensor", a)),
        }
    }
}

/// A tensor: its shape and its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor {
    /// The shape; empty for a scalar (one element).
    pub dims: Vec<usize>,
    /// The elements, `dims.iter().product()` of them.
    pub data: TensorData,
}

/// A tensor's elements, in their file type.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// FLOAT
    F32(Vec<f32>),
    /// DOUBLE
    F64(Vec<f64>),
    /// FLOAT16, as its IEEE half-precision bits.
    F16(Vec<u16>),
    /// INT64
    I64(Vec<i64>),
    /// INT32
    I32(Vec<i32>),
    /// INT8
    I8(Vec<i8>),
    /// UINT8
    U8(Vec<u8>),
    /// BOOL
    Bool(Vec<bool>),
}

impl OnnxTensor {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// Whether the tensor has no elements (a zero in its shape).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX data type code ([`elem_type`]).
    pub fn elem_type(&self) -> i32 {
        match &self.data {
            TensorData::F32(_) => elem_type::FLOAT,
            TensorData::F64(_) => elem_type::DOUBLE,
            TensorData::F16(_) => elem_type::FLOAT16,
            TensorData::I64(_) => elem_type::INT64,
            TensorData::I32(_) => elem_type::INT32,
            TensorData::I8(_) => elem_type::INT8,
            TensorData::U8(_) => elem_type::UINT8,
            TensorData::Bool(_) => elem_type::BOOL,
        }
    }

    /// The elements as `f64` (exact for every type but INT64 beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|&x| f16_to_f64(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    /// The elements as `i64`, for integer and bool tensors (shapes, axes, pads);
    /// `None` for floating-point ones.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        match &self.data {
            TensorData::I64(v) => Some(v.clone()),
            TensorData::I32(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::I8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::U8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::Bool(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            TensorData::F32(_) | TensorData::F64(_) | TensorData::F16(_) => None,
        }
    }
}

/// IEEE 754 half precision to `f64`, exactly.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A reading error: one line, naming the file and what is wrong (names taken from the
/// file have their control characters escaped, so a newline in a tensor's name cannot
/// make the message two lines).
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", one_line(.file), one_line(&.kind.to_string()))]
pub struct Error {
    /// The model file (or `<bytes>` for [`parse`] without a name).
    pub file: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// `s` with every control character escaped (`\n`, `\u{1b}`, ...).
pub(crate) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// What is wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The model file cannot be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// The file ends inside a protobuf field.
    #[error("truncated file: it ends inside a protobuf field ({0})")]
    Truncated(String),
    /// The bytes are not an ONNX `ModelProto`.
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    /// The default domain's opset is outside the supported range, or missing.
    #[error("opset {0} of the default ONNX domain is not supported (opset {OPSET_MIN} to {OPSET_MAX}; re-export with `torch.onnx.export(..., opset_version=17)`)")]
    Opset(i64),
    /// The model file has no opset for the default domain.
    #[error("no opset is declared for the default ONNX domain")]
    NoOpset,
    /// A tensor's element type is not one the reader decodes.
    #[error("tensor '{tensor}': data type {dtype} is not supported (FLOAT, DOUBLE, FLOAT16, INT64, INT32, INT8, UINT8, BOOL are)")]
    Dtype {
        /// The tensor's name.
        tensor: String,
        /// The type's ONNX name.
        dtype: String,
    },
    /// A tensor's shape is invalid or does not match its data.
    #[error("tensor '{tensor}': {what}")]
    Tensor {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        what: String,
    },
    /// An external-data file is missing or unreadable.
    #[error("tensor '{tensor}': external data file '{location}' ({path}): {what}")]
    ExternalData {
        /// The tensor's name.
        tensor: String,
        /// The `location` as written in the model.
        location: String,
        /// The path it resolved to.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// Anything else structurally wrong with the graph.
    #[error("{0}")]
    Graph(String),
}

/// Reads and parses the ONNX model at `path`; external data is resolved relative to
/// the model's folder.
pub fn load(path: impl AsRef<Path>) -> Result<OnnxModel, Error> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error { file: file.clone(), kind: ErrorKind::Io(e.to_string()) })?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parse_named(&bytes, &file, Some(&base))
}

/// Parses an ONNX model from memory. External data, if any, is resolved relative to
/// `base_dir`; without one a model with external data is an error. Errors name the
/// file as `<bytes>`.
pub fn parse(bytes: &[u8], base_dir: Option<&Path>) -> Result<OnnxModel, Error> {
    parse_named(bytes, "<bytes>", base_dir)
}

/// [`parse`], with `file` as the name errors give.
pub fn parse_named(bytes: &[u8], file: &str, base_dir: Option<&Path>) -> Result<OnnxModel, Error> {
    let err = |kind| Error { file: file.to_string(), kind };
    if bytes.is_empty() {
        return Err(err(ErrorKind::NotOnnx("the file is empty".into())));
    }
    let m = match proto::ModelProto::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            // A model starts with its ir_version (field 1, varint: byte 0x08); a file
            // that starts so and runs out of bytes is taken for a truncated model.
            let kind = if bytes[0] == 0x08 && msg.contains("underflow") {
                ErrorKind::Truncated(msg)
            } else {
                ErrorKind::NotOnnx(format!("protobuf decoding failed ({msg})"))
            };
            return Err(err(kind));
        }
    };
    if m.ir_version <= 0 {
        return Err(err(ErrorKind::NotOnnx("no ir_version".into())));
    }
    let Some(g) = m.graph else {
        return Err(err(ErrorKind::NotOnnx("no graph".into())));
    };
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| err(ErrorKind::NoOpset))?;
    if !(OPSET_MIN..=OPSET_MAX).contains(&opset) {
        return Err(err(ErrorKind::Opset(opset)));
    }
    let ctx = Ctx { base_dir };
    let graph = convert_graph(g, &ctx).map_err(err)?;
    Ok(OnnxModel {
        ir_version: m.ir_version,
        opset,
        producer_name: m.producer_name,
        producer_version: m.producer_version,
        graph,
    })
}

struct Ctx<'a> {
    base_dir: Option<&'a Path>,
}

fn convert_graph(g: proto::GraphProto, ctx: &Ctx) -> Result<OnnxGraph, ErrorKind> {
    if !g.sparse_initializer.is_empty() {
        return Err(ErrorKind::Graph(format!(
            "the graph has {} sparse initializers, which are not supported",
            g.sparse_initializer.len()
        )));
    }
    let mut names = HashSet::new();
    let mut initializers = Vec::with_capacity(g.initializer.len());
    for t in g.initializer {
        if !names.insert(t.name.clone()) {
            return Err(ErrorKind::Graph(format!("initializer '{}' is given twice", t.name)));
        }
        let name = t.name.clone();
        initializers.push((name, convert_tensor(t, ctx)?));
    }
    let inputs = g.input.into_iter().filter(|v| !names.contains(&v.name)).map(convert_value_info).collect();
    let outputs = g.output.into_iter().map(convert_value_info).collect();
    let nodes = g.node.into_iter().map(|n| convert_node(n, ctx)).collect::<Result<_, _>>()?;
    Ok(OnnxGraph { name: g.name, nodes, initializers, inputs, outputs })
}

fn convert_value_info(v: proto::ValueInfoProto) -> ValueInfo {
    let (elem_type, dims) = match v.r#type.and_then(|t| t.tensor_type) {
        Some(t) => (
            t.elem_type,
            t.shape
                .map(|s| {
                    s.dim
                        .into_iter()
                        .map(|d| match (d.dim_value, d.dim_param) {
                            (Some(k), _) => Dim::Known(k),
                            (None, Some(p)) if !p.is_empty() => Dim::Param(p),
                            _ => Dim::Unknown,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => (0, Vec::new()),
    };
    ValueInfo { name: v.name, elem_type, dims }
}

fn convert_node(n: proto::NodeProto, ctx: &Ctx) -> Result<OnnxNode, ErrorKind> {
    let mut attrs = BTreeMap::new();
    for a in n.attribute {
        let name = a.name.clone();
        let value = convert_attr(a, ctx)?;
        if attrs.insert(name.clone(), value).is_some() {
            return Err(ErrorKind::Graph(format!(
                "node '{}' ({}): attribute '{name}' is given twice",
                n.name, n.op_type
            )));
        }
    }
    Ok(OnnxNode { name: n.name, op_type: n.op_type, domain: n.domain, inputs: n.input, outputs: n.output, attrs })
}

fn convert_attr(a: proto::AttributeProto, ctx: &Ctx) -> Result<Attr, ErrorKind> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    if !a.ref_attr_name.is_empty() {
        return Ok(Attr::Unsupported(a.r#type));
    }
    Ok(match a.r#type {
        1 => Attr::Float(a.f),
        2 => Attr::Int(a.i),
        3 => Attr::Str(text(a.s)),
        4 => match a.t {
            Some(t) => Attr::Tensor(convert_tensor(t, ctx)?),
            None => Attr::Unsupported(4),
        },
        6 => Attr::Floats(a.floats),
        7 => Attr::Ints(a.ints),
        8 => Attr::Strs(a.strings.into_iter().map(text).collect()),
        9 => Attr::Tensors(a.tensors.into_iter().map(|t| convert_tensor(t, ctx)).collect::<Result<_, _>>()?),
        other => Attr::Unsupported(other),
    })
}

/// The most elements a tensor may claim before its bytes are looked at: a guard
/// against shape products that overflow `usize` arithmetic further on.
const MAX_ELEMENTS: usize = 1 << 40;

fn convert_tensor(t: proto::TensorProto, ctx: &Ctx) -> Result<OnnxTensor, ErrorKind> {
    let bad = |what: String| ErrorKind::Tensor { tensor: t.name.clone(), what };
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut numel: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?;
        numel = numel
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| bad(format!("shape {:?} is too large", t.dims)))?;
        dims.push(d);
    }
    let width = match t.data_type {
        elem_type::FLOAT | elem_type::INT32 => 4,
        elem_type::DOUBLE | elem_type::INT64 => 8,
        elem_type::FLOAT16 => 2,
        elem_type::INT8 | elem_type::UINT8 | elem_type::BOOL => 1,
        other => return Err(ErrorKind::Dtype { tensor: t.name.clone(), dtype: elem_type::name(other) }),
    };
    let raw = if t.data_location == 1 { Some(read_external(&t, numel * width, ctx)?) } else { t.raw_data.clone() };
    let data = match raw {
        Some(raw) => {
            if raw.len() != numel * width {
                return Err(bad(format!(
                    "shape {dims:?} needs {} bytes of {}, the data has {}",
                    numel * width,
                    elem_type::name(t.data_type),
                    raw.len()
                )));
            }
            from_raw(t.data_type, &raw)
        }
        None => from_typed(&t)?,
    };
    let out = OnnxTensor { dims, data };
    if out.len() != numel {
        return Err(bad(format!("shape {:?} needs {numel} elements, the data has {}", out.dims, out.len())));
    }
    Ok(out)
}

fn from_raw(dtype: i32, raw: &[u8]) -> TensorData {
    fn le<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect()
    }
    match dtype {
        elem_type::FLOAT => TensorData::F32(le(raw, f32::from_le_bytes)),
        elem_type::DOUBLE => TensorData::F64(le(raw, f64::from_le_bytes)),
        elem_type::FLOAT16 => TensorData::F16(le(raw, u16::from_le_bytes)),
        elem_type::INT64 => TensorData::I64(le(raw, i64::from_le_bytes)),
        elem_type::INT32 => TensorData::I32(le(raw, i32::from_le_bytes)),
        elem_type::INT8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        elem_type::BOOL => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
        _ => TensorData::U8(raw.to_vec()),
    }
}

fn from_typed(t: &proto::TensorProto) -> Result<TensorData, ErrorKind> {
    // Per onnx.proto, int32_data also holds INT8, UINT8, BOOL and FLOAT16 (as bits).
    let narrow = |what: &str| ErrorKind::Tensor {
        tensor: t.name.clone(),
        what: format!("int32_data value out of range for {what}"),
    };
    Ok(match t.data_type {
        elem_type::FLOAT => TensorData::F32(t.float_data.clone()),
        elem_type::DOUBLE => TensorData::F64(t.double_data.clone()),
        elem_type::INT64 => TensorData::I64(t.int64_data.clone()),
        elem_type::INT32 => TensorData::I32(t.int32_data.clone()),
        elem_type::FLOAT16 => TensorData::F16(
            t.int32_data.iter().map(|&v| u16::try_from(v).map_err(|_| narrow("FLOAT16"))).collect::<Result<_, _>>()?,
        ),
        elem_type::INT8 => TensorData::I8(
            t.int32_data.iter().map(|&v| i8::try_from(v).map_err(|_| narrow("INT8"))).collect::<Result<_, _>>()?,
        ),
        elem_type::UINT8 => TensorData::U8(
            t.int32_data.iter().map(|&v| u8::try_from(v).map_err(|_| narrow("UINT8"))).collect::<Result<_, _>>()?,
        ),
        _ => TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
    })
}

/// Reads `want` bytes of an external tensor, after checking its location stays in the
/// model's folder and its range lies inside the file.
fn read_external(t: &proto::TensorProto, want: usize, ctx: &Ctx) -> Result<Vec<u8>, ErrorKind> {
    let bad = |what: String| ErrorKind::Tensor { tensor: t.name.clone(), what };
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for e in &t.external_data {
        let num = |v: &str| {
            v.trim().parse::<u64>().map_err(|_| bad(format!("external data {} '{v}' is not a number", e.key)))
        };
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = num(&e.value)?,
            "length" => length = Some(num(&e.value)?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| bad("external data without a location".into()))?;
    let ext = |path: &Path, what: String| ErrorKind::ExternalData {
        tensor: t.name.clone(),
        location: location.clone(),
        path: path.display().to_string(),
        what,
    };
    let rel = Path::new(&location);
    if location.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad(format!(
            "external data location '{location}' must be a relative path inside the model's folder"
        )));
    }
    let Some(base) = ctx.base_dir else {
        return Err(bad(format!("external data in '{location}', but no folder to find it in was given")));
    };
    let path = base.join(rel);
    let mut f = std::fs::File::open(&path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "not found (it must lie beside the model file)".to_string()
        } else {
            e.to_string()
        };
        ext(&path, what)
    })?;
    // A symbolic link may still point outside the folder: compare the real paths.
    if let (Ok(real), Ok(real_base)) = (path.canonicalize(), base.canonicalize()) {
        if !real.starts_with(&real_base) {
            return Err(ext(&path, "resolves outside the model's folder".into()));
        }
    }
    let size = f.metadata().map_err(|e| ext(&path, e.to_string()))?.len();
    let want64 = want as u64;
    if let Some(l) = length {
        if l != want64 {
            return Err(ext(&path, format!("length {l} does not match the tensor's {want} bytes")));
        }
    }
    let end = offset.checked_add(want64);
    if end.is_none_or(|end| end > size) {
        return Err(ext(&path, format!("bytes {offset}..{offset}+{want} lie beyond its end ({size} bytes)")));
    }
    f.seek(SeekFrom::Start(offset)).map_err(|e| ext(&path, e.to_string()))?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf).map_err(|e| ext(&path, e.to_string()))?;
    Ok(buf)
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(k) => write!(f, "{k}"),
            Dim::Param(p) => write!(f, "{p}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

#[cfg(test)]
mod tests;
