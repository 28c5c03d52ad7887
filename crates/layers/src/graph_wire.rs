//! A [`Graph`] as bytes, for the model owner to send its public architecture to the other
//! parties: [`encode`] and the checked [`decode`].
//!
//! The encoding is small and explicit (little-endian; no serde), so that the decoder can
//! check every field as it reads it: a string or a list is read only after its length is
//! checked against a bound and against the bytes left; every size is at most
//! [`MAX_DIM`]; every node's inputs point to earlier nodes, its shapes infer
//! ([`Op::out_dims`]), its tensor names are as many as its tensors, and every activation,
//! tensor and convolution's unfolded input has at most [`MAX_ELEMENTS`] elements per
//! sample. So bytes from a peer give a graph the layers can run, or a [`DecodeError`];
//! nothing is allocated by a word that has not been checked.
//!
//! Layout: the magic `TRIADG01`; the graph's name; the node count (`u32`); then each
//! node: its name, its op (a tag byte and the op's fields in declaration order: sizes as
//! `u32`, flags as one byte 0 or 1, shapes as a rank byte and `u32` sizes, constants as a
//! shape then its `f64` values), its inputs (a `u32` count and `u32` indices) and its
//! tensor names (a count byte and the names). A string is a `u32` byte length and UTF-8.
//! The encoding of a graph is canonical: [`decode`] then [`encode`] gives the same bytes,
//! so their SHA-256 names the graph.

use std::collections::HashSet;
use std::fmt;

use crate::graph::{Constant, ConvSpec, Graph, Node, Op, PoolSpec};

/// The first bytes of an encoded graph.
pub const MAGIC: &[u8; 8] = b"TRIADG01";
/// The most nodes a graph may have (the input included).
pub const MAX_NODES: usize = 1 << 16;
/// The longest name (graph, node or tensor), in bytes.
pub const MAX_NAME: usize = 1024;
/// The largest size (a channel count, a kernel size, a stride, an axis, a dimension).
pub const MAX_DIM: usize = 1 << 24;
/// The most elements of one activation (per sample), one tensor, or one convolution's
/// unfolded input (per sample).
pub const MAX_ELEMENTS: usize = 1 << 28;
/// The most elements of all tensors together.
pub const MAX_TOTAL_ELEMENTS: usize = 1 << 30;
/// The highest rank of a shape.
pub const MAX_RANK: usize = 8;
/// The most inputs of one node (a concatenation).
pub const MAX_INPUTS: usize = 1024;

/// Why bytes are not a graph: where (the byte offset) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The byte offset where reading stopped.
    pub at: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for DecodeError {
    /// One line: names quoted from the bytes are shown with their control characters
    /// escaped (a name may hold a newline; found by the `service_request` fuzz target).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid graph (byte {}): ", self.at)?;
        for c in self.what.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

/// The bytes of `g`; `None` if a size of `g` does not fit the encoding's `u32` (no graph
/// that [`decode`] accepts has one).
pub fn encode(g: &Graph) -> Option<Vec<u8>> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.str(&g.name)?;
    w.size(g.nodes.len())?;
    for n in &g.nodes {
        w.str(&n.name)?;
        w.op(&n.op)?;
        w.size(n.inputs.len())?;
        for &i in &n.inputs {
            w.size(i)?;
        }
        w.0.push(u8::try_from(n.tensors.len()).ok()?);
        for t in &n.tensors {
            w.str(t)?;
        }
    }
    Some(w.0)
}

struct Writer(Vec<u8>);

impl Writer {
    fn size(&mut self, v: usize) -> Option<()> {
        self.0.extend_from_slice(&u32::try_from(v).ok()?.to_le_bytes());
        Some(())
    }
    fn flag(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }
    fn str(&mut self, s: &str) -> Option<()> {
        self.size(s.len())?;
        self.0.extend_from_slice(s.as_bytes());
        Some(())
    }
    fn dims(&mut self, d: &[usize]) -> Option<()> {
        self.0.push(u8::try_from(d.len()).ok()?);
        d.iter().try_for_each(|&x| self.size(x))
    }
    fn sizes(&mut self, v: &[usize]) -> Option<()> {
        v.iter().try_for_each(|&x| self.size(x))
    }
    fn constant(&mut self, c: &Constant) -> Option<()> {
        self.dims(&c.dims)?;
        if c.values.len() != c.dims.iter().product::<usize>() {
            return None;
        }
        c.values.iter().for_each(|v| self.0.extend_from_slice(&v.to_bits().to_le_bytes()));
        Some(())
    }
    fn op(&mut self, op: &Op) -> Option<()> {
        self.0.push(tag(op));
        match op {
            Op::Input { dims } | Op::Reshape { dims } | Op::AddBuffer { dims } | Op::MulBuffer { dims } => {
                self.dims(dims)?
            }
            Op::Conv(c) => {
                self.sizes(&[c.in_c, c.out_c, c.kh, c.kw, c.stride_h, c.stride_w, c.pad_h, c.pad_w, c.groups])?;
                self.flag(c.bias);
            }
            Op::Linear { inp, out, bias } => {
                self.sizes(&[*inp, *out])?;
                self.flag(*bias);
            }
            Op::AvgPool(p) | Op::MaxPool(p) => self.sizes(&[p.kh, p.kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w])?,
            Op::GlobalAvgPool { keep_dims } => self.flag(*keep_dims),
            Op::BatchNorm { c } => self.size(*c)?,
            Op::AddConst(c) | Op::MulConst(c) => self.constant(c)?,
            Op::Concat { axis } => self.size(*axis)?,
            Op::Pad { top, left, bottom, right } => self.sizes(&[*top, *left, *bottom, *right])?,
            Op::Relu | Op::Tanh | Op::Sigmoid | Op::Softmax | Op::Flatten | Op::Add | Op::Sub => {}
        }
        Some(())
    }
}

fn tag(op: &Op) -> u8 {
    match op {
        Op::Input { .. } => 0,
        Op::Conv(_) => 1,
        Op::Linear { .. } => 2,
        Op::AvgPool(_) => 3,
        Op::MaxPool(_) => 4,
        Op::GlobalAvgPool { .. } => 5,
        Op::Relu => 6,
        Op::Tanh => 7,
        Op::Sigmoid => 8,
        Op::Softmax => 9,
        Op::BatchNorm { .. } => 10,
        Op::Flatten => 11,
        Op::Reshape { .. } => 12,
        Op::Add => 13,
        Op::Sub => 14,
        Op::AddConst(_) => 15,
        Op::MulConst(_) => 16,
        Op::AddBuffer { .. } => 17,
        Op::MulBuffer { .. } => 18,
        Op::Concat { .. } => 19,
        Op::Pad { .. } => 20,
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError { at: self.at, what: what.into() })
    }
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.b.len() - self.at < n {
            return self.err(format!("{n} more bytes needed, {} left", self.b.len() - self.at));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize, DecodeError> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(w) as usize)
    }
    /// A size, at most `max`.
    fn bounded(&mut self, max: usize, what: &str) -> Result<usize, DecodeError> {
        let v = self.u32()?;
        if v > max {
            return self.err(format!("{what} {v} exceeds {max}"));
        }
        Ok(v)
    }
    fn size(&mut self) -> Result<usize, DecodeError> {
        self.bounded(MAX_DIM, "size")
    }
    fn sizes<const N: usize>(&mut self) -> Result<[usize; N], DecodeError> {
        let mut out = [0; N];
        for o in &mut out {
            *o = self.size()?;
        }
        Ok(out)
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => self.err(format!("flag byte {b} is neither 0 nor 1")),
        }
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.bounded(MAX_NAME, "name length")?;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("a name is not UTF-8"),
        }
    }
    fn dims(&mut self) -> Result<Vec<usize>, DecodeError> {
        let rank = usize::from(self.byte()?);
        if rank > MAX_RANK {
            return self.err(format!("rank {rank} exceeds {MAX_RANK}"));
        }
        let mut d = Vec::with_capacity(rank);
        for _ in 0..rank {
            d.push(self.size()?);
        }
        if elements(&d).is_none_or(|n| n > MAX_ELEMENTS) {
            return self.err(format!("shape {d:?} has more than {MAX_ELEMENTS} elements"));
        }
        Ok(d)
    }
    fn constant(&mut self) -> Result<Constant, DecodeError> {
        let dims = self.dims()?;
        let n = dims.iter().product::<usize>();
        if n > (self.b.len() - self.at) / 8 {
            return self.err(format!("a constant of {n} values is longer than the bytes left"));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let mut w = [0u8; 8];
            w.copy_from_slice(self.take(8)?);
            let v = f64::from_bits(u64::from_le_bytes(w));
            if !v.is_finite() {
                return self.err("a constant is not finite");
            }
            values.push(v);
        }
        Ok(Constant { dims, values })
    }
    fn op(&mut self) -> Result<Op, DecodeError> {
        let t = self.byte()?;
        Ok(match t {
            0 => Op::Input { dims: self.dims()? },
            1 => {
                let [in_c, out_c, kh, kw, stride_h, stride_w, pad_h, pad_w, groups] = self.sizes()?;
                let bias = self.flag()?;
                Op::Conv(ConvSpec { in_c, out_c, kh, kw, stride_h, stride_w, pad_h, pad_w, groups, bias })
            }
            2 => {
                let [inp, out] = self.sizes()?;
                Op::Linear { inp, out, bias: self.flag()? }
            }
            3 | 4 => {
                let [kh, kw, stride_h, stride_w, pad_h, pad_w] = self.sizes()?;
                let p = PoolSpec { kh, kw, stride_h, stride_w, pad_h, pad_w };
                if t == 3 {
                    Op::AvgPool(p)
                } else {
                    Op::MaxPool(p)
                }
            }
            5 => Op::GlobalAvgPool { keep_dims: self.flag()? },
            6 => Op::Relu,
            7 => Op::Tanh,
            8 => Op::Sigmoid,
            9 => Op::Softmax,
            10 => Op::BatchNorm { c: self.size()? },
            11 => Op::Flatten,
            12 => Op::Reshape { dims: self.dims()? },
            13 => Op::Add,
            14 => Op::Sub,
            15 => Op::AddConst(self.constant()?),
            16 => Op::MulConst(self.constant()?),
            17 => Op::AddBuffer { dims: self.dims()? },
            18 => Op::MulBuffer { dims: self.dims()? },
            19 => Op::Concat { axis: self.size()? },
            20 => {
                let [top, left, bottom, right] = self.sizes()?;
                Op::Pad { top, left, bottom, right }
            }
            other => return self.err(format!("unknown op tag {other}")),
        })
    }
}

/// The product of `d`, or `None` on overflow.
fn elements(d: &[usize]) -> Option<usize> {
    d.iter().try_fold(1usize, |a, &x| a.checked_mul(x))
}

/// The graph encoded in `bytes`, checked as the module docs say.
pub fn decode(bytes: &[u8]) -> Result<Graph, DecodeError> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(DecodeError { at: 0, what: "no graph magic".into() });
    }
    let name = r.str()?;
    let count = r.bounded(MAX_NODES, "node count")?;
    if count < 2 {
        return r.err("a graph has an input and at least one more node");
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut dims: Vec<Vec<usize>> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut total = 0usize;
    for i in 0..count {
        let node_name = r.str()?;
        let op = r.op()?;
        if (i == 0) != matches!(op, Op::Input { .. }) {
            return r.err(format!("node {i} ({node_name}): the input is node 0 and only node 0"));
        }
        let k = r.bounded(MAX_INPUTS, "input count")?;
        let mut inputs = Vec::with_capacity(k);
        for _ in 0..k {
            let j = r.u32()?;
            if j >= i {
                return r.err(format!("node {i} ({node_name}) takes node {j}, which is not before it"));
            }
            inputs.push(j);
        }
        let t = usize::from(r.byte()?);
        let want = op.param_shapes().len() + op.buffer_shapes().len();
        if t != want {
            return r.err(format!("node {node_name}: {t} tensor names for {want} tensors"));
        }
        let mut tensors = Vec::with_capacity(t);
        for _ in 0..t {
            tensors.push(r.str()?);
        }
        if !names.insert(node_name.clone()) {
            return r.err(format!("node name {node_name} is taken"));
        }
        let ins: Vec<&[usize]> = inputs.iter().map(|&j| dims[j].as_slice()).collect();
        let out = op.out_dims(&ins).or_else(|e| r.err(format!("node {node_name}: {e}")))?;
        if elements(&out).is_none_or(|n| n > MAX_ELEMENTS) {
            return r.err(format!("node {node_name}: output {out:?} has more than {MAX_ELEMENTS} elements"));
        }
        if let (Op::Conv(c), Some(&[_, oh, ow])) = (&op, Some(out.as_slice())) {
            // The unfolded input of one sample: (in_c · kh · kw) x (oh · ow).
            if elements(&[c.in_c, c.kh, c.kw, oh, ow]).is_none_or(|n| n > MAX_ELEMENTS) {
                return r.err(format!("node {node_name}: the convolution's unfolded input is too large"));
            }
        }
        for s in op.param_shapes().iter().chain(&op.buffer_shapes()) {
            match elements(s) {
                Some(n) if n <= MAX_ELEMENTS && total + n <= MAX_TOTAL_ELEMENTS => total += n,
                _ => return r.err(format!("node {node_name}: its tensors exceed the element bounds")),
            }
        }
        dims.push(out);
        nodes.push(Node { name: node_name, op, inputs, tensors });
    }
    if r.at != bytes.len() {
        return r.err(format!("{} bytes after the last node", bytes.len() - r.at));
    }
    Ok(Graph { name, nodes })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::zoo;

    fn sample() -> Graph {
        let mut g = crate::GraphBuilder::new("sample", &[3, 8, 8]);
        let c = g.node("c", Op::Conv(ConvSpec::square(3, 4, 3, 1, 1, true)), &[0]).unwrap();
        let b = g.node("b", Op::BatchNorm { c: 4 }, &[c]).unwrap();
        let m = g.node("m", Op::MulConst(Constant { dims: vec![4, 1, 1], values: vec![0.5, 1.0, 2.0, -1.5] }), &[b]);
        let a = g.node("a", Op::Add, &[c, m.unwrap()]).unwrap();
        let p = g.node("p", Op::MaxPool(PoolSpec::square(2, 2, 0)), &[a]).unwrap();
        let f = g.node("f", Op::Flatten, &[p]).unwrap();
        g.node("l", Op::Linear { inp: 64, out: 10, bias: true }, &[f]).unwrap();
        g.finish().unwrap()
    }

    /// A decoded graph is one the layers run: a forward pass of one sample on the float64
    /// twin gives a result or an error, and never panics (checked for graphs of small
    /// activations, to keep the test short).
    pub(crate) fn runs(g: &Graph) {
        let widest = g.node_dims().unwrap().iter().map(|d| d.iter().product::<usize>()).max().unwrap_or(0);
        if widest > 1 << 16 || g.num_params() > 1 << 16 {
            return;
        }
        let b = crate::Plain;
        let owner = triad_transport::PartyId::ALL[0];
        if let Ok(mut m) = crate::Model::new(&b, g, owner, Some(&g.init_weights(1))) {
            m.train = false;
            let mut dims = vec![1];
            dims.extend(g.input());
            let x = vec![0.5; dims.iter().product()];
            if let Ok(x) = crate::Backend::input(&b, owner, Some(&x), &dims) {
                let _ = m.forward(&b, x);
            }
        }
    }

    #[test]
    fn round_trips_canonically() {
        let lenet = zoo::lenet(zoo::Activation::Relu, zoo::Pooling::Avg);
        for g in [sample(), lenet] {
            let bytes = encode(&g).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(back, g);
            assert_eq!(encode(&back).unwrap(), bytes);
        }
    }

    /// Every prefix and every single bit flip of an encoded graph decodes to a graph or
    /// to an error, never a panic; and a decoded graph always has shapes.
    #[test]
    fn every_prefix_and_bit_flip_is_a_graph_or_an_error() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n} decoded");
        }
        let mut decoded = 0;
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            if let Ok(g) = decode(&b) {
                assert_eq!(encode(&g).as_ref(), Some(&b), "flip {i}: the encoding is canonical");
                runs(&g);
                decoded += 1;
            }
        }
        // Flips in names and constants' values still decode; most others do not.
        assert!(decoded > 0 && decoded < bytes.len() * 8, "{decoded} flips decoded");
    }

    #[test]
    fn oversized_and_inconsistent_graphs_are_errors() {
        let huge = Op::Linear { inp: 64, out: MAX_DIM, bias: true };
        let mut g = sample();
        g.nodes.last_mut().unwrap().op = huge;
        assert!(decode(&encode(&g).unwrap()).unwrap_err().what.contains("element"));
        let mut g = sample();
        g.nodes[4].inputs = vec![1, 6];
        assert!(decode(&encode(&g).unwrap()).unwrap_err().what.contains("not before it"));
        let mut g = sample();
        g.nodes[2].inputs = vec![0];
        assert!(decode(&encode(&g).unwrap()).unwrap_err().what.contains("batchnorm 4"));
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert!(decode(&bytes).unwrap_err().what.contains("after the last node"));
        // A node count of 2^32 - 1 is refused before anything is allocated for it.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&bytes).unwrap_err().what.contains("node count"));
    }
}
