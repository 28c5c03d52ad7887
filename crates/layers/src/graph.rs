//! A network: a DAG of nodes, each an [`Op`] on the outputs of earlier nodes, without
//! weights or a backend. Shape inference, parameter names and counts, the summary table
//! and the initial weights come from here alone.
//!
//! Node 0 is always the graph's input ([`Op::Input`]); every other node names its inputs
//! by node index, and inputs always come before the node (the nodes are in topological
//! order, which is also the order of execution). The last node's output is the graph's
//! output (the logits). Shapes are per sample (`[C, H, W]` or `[F]`); the batch dimension
//! is added at run time.
//!
//! The model zoo and the ONNX import both build graphs with [`GraphBuilder`];
//! [`Graph::chain`] builds a straight chain of one-input ops.

use triad_sharing::{Error, Result};

/// A 2-d convolution: weight `[out_c, in_c / groups, kh, kw]`, optional bias `[out_c]`;
/// zero padding, the same on both sides of each axis (asymmetric padding is an
/// [`Op::Pad`] before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows above and below.
    pub pad_h: usize,
    /// Zero columns left and right.
    pub pad_w: usize,
    /// Groups (1: dense; `in_c`: depthwise).
    pub groups: usize,
    /// Whether the layer has a bias (ResNet convolutions before batch norm do not).
    pub bias: bool,
}

impl ConvSpec {
    /// A square kernel `k`, stride, padding, one group.
    pub fn square(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize, bias: bool) -> Self {
        ConvSpec {
            in_c,
            out_c,
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
            groups: 1,
            bias,
        }
    }
}

/// A pooling window: `kh x kw`, strides, symmetric padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding above and below.
    pub pad_h: usize,
    /// Padding left and right.
    pub pad_w: usize,
}

impl PoolSpec {
    /// A square window `k`, stride and padding.
    pub fn square(k: usize, stride: usize, pad: usize) -> Self {
        PoolSpec { kh: k, kw: k, stride_h: stride, stride_w: stride, pad_h: pad, pad_w: pad }
    }
}

/// A public constant tensor, broadcast (NumPy rules) against the per-sample shape it meets.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// Its shape (rank at most the other operand's per-sample rank).
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f64>,
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The graph's input (node 0 only): the per-sample shape.
    Input {
        /// `[C, H, W]`, or `[F]`.
        dims: Vec<usize>,
    },
    /// Convolution ([`ConvSpec`]).
    Conv(ConvSpec),
    /// Fully connected `y = x·Wᵀ + b`: weight `[out, inp]`, optional bias `[out]`.
    Linear {
        /// Input features.
        inp: usize,
        /// Output features.
        out: usize,
        /// Whether there is a bias.
        bias: bool,
    },
    /// Average pooling; padding counts as zero and the divisor is always `kh·kw`
    /// (PyTorch's `count_include_pad`).
    AvgPool(PoolSpec),
    /// Max pooling (padded positions never win).
    MaxPool(PoolSpec),
    /// The mean over `H, W`: `[C, H, W] -> [C, 1, 1]` (`keep_dims`) or `[C]`.
    GlobalAvgPool {
        /// Keep the two unit axes (ONNX `GlobalAveragePool`, `ReduceMean` with keepdims).
        keep_dims: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Softmax over the features of a `[F]` sample.
    Softmax,
    /// Batch normalisation over the channel axis (axis 0 of a sample), with learnable `γ`,
    /// `β` (`[c]`) and running mean and variance.
    BatchNorm {
        /// Channels.
        c: usize,
    },
    /// `[C, H, W] -> [C·H·W]`.
    Flatten,
    /// Same elements, a new per-sample shape.
    Reshape {
        /// The new per-sample shape.
        dims: Vec<usize>,
    },
    /// The sum of two inputs of one shape (a residual connection).
    Add,
    /// The first input minus the second (one shape).
    Sub,
    /// `x + c` for a public constant `c`.
    AddConst(Constant),
    /// `x ⊙ c` for a public constant `c` (one truncation on shares).
    MulConst(Constant),
    /// `x + t` for a tensor `t` of the model (secret on shares, not trained: an
    /// imported model's constant, such as a normalising mean), broadcast to `x`.
    AddBuffer {
        /// The tensor's shape.
        dims: Vec<usize>,
    },
    /// `x ⊙ t` for a tensor `t` of the model (secret on shares, not trained), broadcast
    /// to `x`: one product.
    MulBuffer {
        /// The tensor's shape.
        dims: Vec<usize>,
    },
    /// The inputs joined along a per-sample axis (0: channels).
    Concat {
        /// Per-sample axis.
        axis: usize,
    },
    /// Zero padding of `[C, H, W]`.
    Pad {
        /// Rows above.
        top: usize,
        /// Columns left.
        left: usize,
        /// Rows below.
        bottom: usize,
        /// Columns right.
        right: usize,
    },
}

/// `(k, stride, pad)` output size of one spatial dimension.
fn out_size(n: usize, k: usize, stride: usize, pad: usize) -> Result<usize> {
    if stride == 0 || k == 0 || n + 2 * pad < k {
        return Err(Error::Usage(format!("window {k} (stride {stride}, pad {pad}) does not fit {n}")));
    }
    Ok((n + 2 * pad - k) / stride + 1)
}

/// NumPy broadcasting of `c` against `d`: the result must be `d` itself.
fn broadcasts_to(c: &[usize], d: &[usize]) -> bool {
    c.len() <= d.len() && c.iter().rev().zip(d.iter().rev()).all(|(&a, &b)| a == b || a == 1)
}

impl Op {
    /// A short lowercase name (`conv2d`, `linear`, ...), used in scope names.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv(_) => "conv2d",
            Op::Linear { .. } => "linear",
            Op::AvgPool(_) => "avgpool",
            Op::MaxPool(_) => "maxpool",
            Op::GlobalAvgPool { .. } => "globalavgpool",
            Op::Relu => "relu",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Softmax => "softmax",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Flatten => "flatten",
            Op::Reshape { .. } => "reshape",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::AddConst(_) => "addconst",
            Op::MulConst(_) => "mulconst",
            Op::AddBuffer { .. } => "addbuffer",
            Op::MulBuffer { .. } => "mulbuffer",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
        }
    }

    /// A one-line description with the hyper-parameters.
    pub fn describe(&self) -> String {
        match self {
            Op::Input { dims } => format!("input {dims:?}"),
            Op::Conv(c) => {
                let k = if c.kh == c.kw { format!("k{}", c.kh) } else { format!("k{}x{}", c.kh, c.kw) };
                let s = if c.stride_h == c.stride_w {
                    format!("s{}", c.stride_h)
                } else {
                    format!("s{}x{}", c.stride_h, c.stride_w)
                };
                let p = if c.pad_h == c.pad_w { format!("p{}", c.pad_h) } else { format!("p{}x{}", c.pad_h, c.pad_w) };
                let g = if c.groups == 1 { String::new() } else { format!(" g{}", c.groups) };
                format!("conv2d {}->{} {k} {s} {p}{g}{}", c.in_c, c.out_c, if c.bias { "" } else { " nobias" })
            }
            Op::Linear { inp, out, bias } => format!("linear {inp}->{out}{}", if *bias { "" } else { " nobias" }),
            Op::AvgPool(p) | Op::MaxPool(p) => {
                let k = if p.kh == p.kw { format!("k{}", p.kh) } else { format!("k{}x{}", p.kh, p.kw) };
                let s = if p.stride_h == p.stride_w {
                    format!("s{}", p.stride_h)
                } else {
                    format!("s{}x{}", p.stride_h, p.stride_w)
                };
                let pd = if p.pad_h == p.pad_w { format!("p{}", p.pad_h) } else { format!("p{}x{}", p.pad_h, p.pad_w) };
                format!("{} {k} {s} {pd}", self.kind())
            }
            Op::BatchNorm { c } => format!("batchnorm {c}"),
            Op::Reshape { dims } => format!("reshape {dims:?}"),
            Op::AddConst(c) => format!("addconst {:?}", c.dims),
            Op::MulConst(c) => format!("mulconst {:?}", c.dims),
            Op::AddBuffer { dims } => format!("addbuffer {dims:?}"),
            Op::MulBuffer { dims } => format!("mulbuffer {dims:?}"),
            Op::Concat { axis } => format!("concat axis {axis}"),
            Op::Pad { top, left, bottom, right } => format!("pad t{top} l{left} b{bottom} r{right}"),
            other => other.kind().to_string(),
        }
    }

    /// How many inputs the op takes (`None`: one or more, [`Op::Concat`]).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input { .. } => Some(0),
            Op::Add | Op::Sub => Some(2),
            Op::Concat { .. } => None,
            _ => Some(1),
        }
    }

    /// Shapes of the trainable parameters, in the order [`crate::Layer`] keeps them:
    /// weight then bias; `γ` then `β`.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            Op::Conv(c) => {
                let mut v = vec![vec![c.out_c, c.in_c / c.groups.max(1), c.kh, c.kw]];
                if c.bias {
                    v.push(vec![c.out_c]);
                }
                v
            }
            Op::Linear { inp, out, bias } => {
                let mut v = vec![vec![*out, *inp]];
                if *bias {
                    v.push(vec![*out]);
                }
                v
            }
            Op::BatchNorm { c } => vec![vec![*c], vec![*c]],
            _ => vec![],
        }
    }

    /// Shapes of the state that is not trained by SGD: batch norm's running mean and
    /// variance.
    pub fn buffer_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            Op::BatchNorm { c } => vec![vec![*c], vec![*c]],
            Op::AddBuffer { dims } | Op::MulBuffer { dims } => vec![dims.clone()],
            _ => vec![],
        }
    }

    /// The default suffixes of the parameter and buffer names (`weight`, `bias`; `gamma`,
    /// `beta`, `running_mean`, `running_var`).
    pub fn tensor_suffixes(&self) -> Vec<&'static str> {
        match self {
            Op::Conv(ConvSpec { bias: true, .. }) | Op::Linear { bias: true, .. } => vec!["weight", "bias"],
            Op::Conv(_) | Op::Linear { .. } => vec!["weight"],
            Op::BatchNorm { .. } => vec!["gamma", "beta", "running_mean", "running_var"],
            Op::AddBuffer { .. } | Op::MulBuffer { .. } => vec!["value"],
            _ => vec![],
        }
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        self.param_shapes().iter().map(|s| s.iter().product::<usize>()).sum()
    }

    /// The per-sample output shape for the per-sample input shapes.
    pub fn out_dims(&self, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let bad = || Error::Usage(format!("{} cannot take input {ins:?}", self.describe()));
        if let Some(n) = self.arity() {
            if ins.len() != n {
                return Err(Error::Usage(format!("{} takes {n} inputs, not {}", self.describe(), ins.len())));
            }
        } else if ins.is_empty() {
            return Err(bad());
        }
        let d = ins.first().copied().unwrap_or(&[]);
        match self {
            Op::Input { dims } => Ok(dims.clone()),
            Op::Conv(c) => match d {
                [ch, h, w] if *ch == c.in_c && c.groups > 0 && c.in_c % c.groups == 0 && c.out_c % c.groups == 0 => {
                    Ok(vec![
                        c.out_c,
                        out_size(*h, c.kh, c.stride_h, c.pad_h)?,
                        out_size(*w, c.kw, c.stride_w, c.pad_w)?,
                    ])
                }
                _ => Err(bad()),
            },
            Op::AvgPool(p) | Op::MaxPool(p) => match d {
                [c, h, w] => {
                    Ok(vec![*c, out_size(*h, p.kh, p.stride_h, p.pad_h)?, out_size(*w, p.kw, p.stride_w, p.pad_w)?])
                }
                _ => Err(bad()),
            },
            Op::GlobalAvgPool { keep_dims } => match d {
                [c, _, _] => Ok(if *keep_dims { vec![*c, 1, 1] } else { vec![*c] }),
                _ => Err(bad()),
            },
            Op::Linear { inp, out, .. } => match d {
                [f] if f == inp => Ok(vec![*out]),
                _ => Err(bad()),
            },
            Op::Softmax => match d {
                [_] => Ok(d.to_vec()),
                _ => Err(bad()),
            },
            Op::Relu | Op::Tanh | Op::Sigmoid => Ok(d.to_vec()),
            Op::Flatten => Ok(vec![d.iter().product()]),
            Op::Reshape { dims } => {
                if dims.iter().product::<usize>() == d.iter().product::<usize>() {
                    Ok(dims.clone())
                } else {
                    Err(bad())
                }
            }
            Op::BatchNorm { c } => match d.first() {
                Some(x) if x == c && d.len() >= 2 => Ok(d.to_vec()),
                _ => Err(bad()),
            },
            Op::Add | Op::Sub => {
                if ins[0] == ins[1] {
                    Ok(d.to_vec())
                } else {
                    Err(bad())
                }
            }
            Op::AddConst(c) | Op::MulConst(c) => {
                if c.values.len() == c.dims.iter().product::<usize>() && broadcasts_to(&c.dims, d) {
                    Ok(d.to_vec())
                } else {
                    Err(bad())
                }
            }
            Op::AddBuffer { dims } | Op::MulBuffer { dims } => {
                if broadcasts_to(dims, d) {
                    Ok(d.to_vec())
                } else {
                    Err(bad())
                }
            }
            Op::Concat { axis } => {
                let mut out = d.to_vec();
                if *axis >= out.len() {
                    return Err(bad());
                }
                for other in &ins[1..] {
                    let same_rest = other.len() == d.len()
                        && other.iter().zip(d).enumerate().all(|(i, (a, b))| i == *axis || a == b);
                    if !same_rest {
                        return Err(bad());
                    }
                    out[*axis] += other[*axis];
                }
                Ok(out)
            }
            Op::Pad { top, left, bottom, right } => match d {
                [c, h, w] => Ok(vec![*c, h + top + bottom, w + left + right]),
                _ => Err(bad()),
            },
        }
    }
}

/// One node: an op, its inputs (indices of earlier nodes) and the names of its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// A unique name, used as its cost scope (`03_relu`, `04_residual/body/00_conv2d`,
    /// or the ONNX node's name).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Its inputs: indices of earlier nodes.
    pub inputs: Vec<usize>,
    /// The names of its parameters then its buffers (as many as
    /// [`Op::param_shapes`] and [`Op::buffer_shapes`]), e.g. `conv1.weight`.
    pub tensors: Vec<String>,
}

/// A named network for inputs of a given per-sample shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Name, e.g. `lenet-relu-avg` or `resnet50-imagenet`.
    pub name: String,
    /// The nodes in topological order; node 0 is the input, the last the output.
    pub nodes: Vec<Node>,
}

/// One row of [`Graph::summary_rows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The node's name.
    pub name: String,
    /// [`Op::describe`].
    pub what: String,
    /// Per-sample output shape.
    pub out: Vec<usize>,
    /// Parameters of this node.
    pub params: usize,
}

/// One parameter or buffer of a graph, in state order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name (`00_conv2d.weight`, `conv1.bias`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Trained by SGD (a parameter), or not (a buffer: batch norm's running statistics).
    pub trainable: bool,
}

/// The scope name of top-level layer `i` of kind `kind`: `"{i:02}_{kind}"` (the zoo's).
pub fn layer_name(i: usize, op: &Op) -> String {
    format!("{i:02}_{}", op.kind())
}

impl Graph {
    /// A chain of one-input ops on an input of per-sample shape `input`, named as the zoo
    /// names layers (`00_conv2d`, `01_relu`, ...).
    pub fn chain(name: &str, input: &[usize], ops: Vec<Op>) -> Result<Graph> {
        let mut c = Chain::new(name, input);
        c.extend(ops);
        c.finish()
    }

    /// The per-sample input shape.
    pub fn input(&self) -> &[usize] {
        match self.nodes.first().map(|n| &n.op) {
            Some(Op::Input { dims }) => dims,
            _ => &[],
        }
    }

    /// Every node's per-sample output shape (checks the whole graph).
    pub fn node_dims(&self) -> Result<Vec<Vec<usize>>> {
        let mut dims: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            if (i == 0) != matches!(n.op, Op::Input { .. }) {
                return Err(Error::Usage(format!("graph {}: node {} ({}) is misplaced", self.name, i, n.name)));
            }
            let ins = n
                .inputs
                .iter()
                .map(|&j| {
                    dims.get(j).map(Vec::as_slice).ok_or_else(|| {
                        Error::Usage(format!(
                            "graph {}: node {} takes node {j}, which is not before it",
                            self.name, n.name
                        ))
                    })
                })
                .collect::<Result<Vec<&[usize]>>>()?;
            let d = n.op.out_dims(&ins).map_err(|e| Error::Usage(format!("node {}: {e}", n.name)))?;
            let want = n.op.param_shapes().len() + n.op.buffer_shapes().len();
            if n.tensors.len() != want {
                return Err(Error::Usage(format!(
                    "node {}: {} tensor names for {want} tensors",
                    n.name,
                    n.tensors.len()
                )));
            }
            dims.push(d);
        }
        if dims.len() < 2 {
            return Err(Error::Usage(format!("graph {} has no nodes", self.name)));
        }
        Ok(dims)
    }

    /// Per-sample output shape (the logits).
    pub fn out_dims(&self) -> Result<Vec<usize>> {
        Ok(self.node_dims()?.pop().unwrap_or_default())
    }

    /// For each node, how many later nodes read its output (the last node: one more, the
    /// graph's output).
    pub fn consumers(&self) -> Vec<usize> {
        let mut c = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                if let Some(x) = c.get_mut(i) {
                    *x += 1;
                }
            }
        }
        if let Some(last) = c.last_mut() {
            *last += 1;
        }
        c
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        self.nodes.iter().map(|n| n.op.num_params()).sum()
    }

    /// Every parameter and buffer in state order: node by node, a node's parameters then
    /// its buffers (the order of [`Graph::init_weights`] and of
    /// [`Model::new`](crate::Model::new)'s weights).
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let shapes = n.op.param_shapes().into_iter().map(|s| (s, true));
            let shapes = shapes.chain(n.op.buffer_shapes().into_iter().map(|s| (s, false)));
            for ((shape, trainable), name) in shapes.zip(&n.tensors) {
                out.push(TensorInfo { name: name.clone(), shape, trainable });
            }
        }
        out
    }

    /// Whether any node is a batch norm.
    pub fn has_batchnorm(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm { .. }))
    }

    /// Every node but the input, with its output shape.
    pub fn summary_rows(&self) -> Result<Vec<SummaryRow>> {
        let dims = self.node_dims()?;
        Ok(self
            .nodes
            .iter()
            .zip(dims)
            .skip(1)
            .map(|(n, out)| SummaryRow { name: n.name.clone(), what: n.op.describe(), out, params: n.op.num_params() })
            .collect())
    }

    /// The summary table: node, output shape, parameters; then the totals. With
    /// `collapse_blocks`, nodes whose names share a first path component (`04_residual/…`)
    /// show as one row with their parameter total (for the deep ResNets).
    pub fn summary(&self, collapse_blocks: bool) -> Result<String> {
        let mut rows = self.summary_rows()?;
        if collapse_blocks {
            rows = collapse(rows, |r| r.name.split('/').next().unwrap_or("").to_string());
            for (r, (_, what)) in rows.iter_mut().zip(self.blocks()) {
                r.what = what;
            }
        }
        let w = rows.iter().map(|r| r.name.len() + r.what.len() + 2).max().unwrap_or(10).max(10);
        let mut s = format!("{} (input {:?})\n", self.name, self.input());
        s.push_str(&format!("{:<w$}  {:<16}  {:>12}\n", "layer", "output", "params"));
        for r in &rows {
            let lw = format!("{}  {}", r.name, r.what);
            s.push_str(&format!("{lw:<w$}  {:<16}  {:>12}\n", format!("{:?}", r.out), r.params));
        }
        s.push_str(&format!("{:<w$}  {:<16}  {:>12}\n", "total", format!("{:?}", self.out_dims()?), self.num_params()));
        Ok(s)
    }

    /// The blocks of the graph: runs of nodes whose names share a first path component
    /// (`04_residual` for `04_residual/body/00_conv2d`, ..., `04_residual`), in order,
    /// with a description (the node's own; `residual (N nodes)` for a block that ends in its
    /// own `Add` node; else `block of N nodes`).
    pub fn blocks(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String, usize)> = Vec::new();
        for n in self.nodes.iter().skip(1) {
            let top = n.name.split('/').next().unwrap_or("").to_string();
            match out.last_mut() {
                Some(last) if last.0 == top => {
                    last.2 += 1;
                    if n.name == top {
                        last.1 = n.op.describe();
                    }
                }
                _ => out.push((top, n.op.describe(), 1)),
            }
        }
        out.into_iter()
            .map(|(name, what, count)| {
                let what = match (count, what.as_str()) {
                    (1, _) => what,
                    (_, "add") => format!("residual ({count} nodes)"),
                    _ => format!("block of {count} nodes"),
                };
                (name, what)
            })
            .collect()
    }

    /// Initial weights in state order ([`Graph::tensors`]), from a public seed: weights
    /// and biases uniform in `±1/sqrt(fan_in)` (PyTorch's default), `γ = 1`, `β = 0`,
    /// running mean 0 and variance 1.
    pub fn init_weights(&self, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = SplitMix(seed);
        let mut out = Vec::new();
        for n in &self.nodes {
            let fan_in = match &n.op {
                Op::Conv(c) => c.in_c / c.groups.max(1) * c.kh * c.kw,
                Op::Linear { inp, .. } => *inp,
                _ => 0,
            };
            if let Op::AddBuffer { dims } | Op::MulBuffer { dims } = &n.op {
                // The identity: add 0, multiply by 1.
                let v = if matches!(n.op, Op::AddBuffer { .. }) { 0.0 } else { 1.0 };
                out.push(vec![v; dims.iter().product()]);
                continue;
            }
            if let Op::BatchNorm { c } = n.op {
                // γ = 1, β = 0, running mean 0, running variance 1: no draws from the seed.
                out.extend([vec![1.0; c], vec![0.0; c], vec![0.0; c], vec![1.0; c]]);
                continue;
            }
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            for s in n.op.param_shapes() {
                let len: usize = s.iter().product();
                out.push((0..len).map(|_| (rng.unit() * 2.0 - 1.0) * bound).collect());
            }
        }
        out
    }
}

fn collapse(rows: Vec<SummaryRow>, key: impl Fn(&SummaryRow) -> String) -> Vec<SummaryRow> {
    let mut out: Vec<(String, SummaryRow)> = Vec::new();
    for r in rows {
        let k = key(&r);
        match out.last_mut() {
            Some((lk, last)) if *lk == k => {
                last.params += r.params;
                if r.name == k {
                    last.what = r.what;
                }
                last.out = r.out;
            }
            _ => {
                let mut r = r;
                if r.name != k {
                    r.name = k.clone();
                }
                out.push((k, r));
            }
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// Builds a [`Graph`] node by node, checking shapes as it goes.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    dims: Vec<Vec<usize>>,
}

impl GraphBuilder {
    /// The input node's index.
    pub const INPUT: usize = 0;

    /// A graph with only its input (per-sample shape `input`).
    pub fn new(name: &str, input: &[usize]) -> Self {
        let node =
            Node { name: "input".into(), op: Op::Input { dims: input.to_vec() }, inputs: vec![], tensors: vec![] };
        GraphBuilder { graph: Graph { name: name.to_string(), nodes: vec![node] }, dims: vec![input.to_vec()] }
    }

    /// Adds a node named `name` with the default tensor names (`name.weight`, ...);
    /// returns its index.
    pub fn node(&mut self, name: &str, op: Op, inputs: &[usize]) -> Result<usize> {
        let tensors = op.tensor_suffixes().iter().map(|s| format!("{name}.{s}")).collect();
        self.node_named(name, op, inputs, tensors)
    }

    /// Adds a node with explicit tensor names (parameters then buffers).
    pub fn node_named(&mut self, name: &str, op: Op, inputs: &[usize], tensors: Vec<String>) -> Result<usize> {
        if matches!(op, Op::Input { .. }) {
            return Err(Error::Usage(format!("node {name}: a graph has one input")));
        }
        if self.graph.nodes.iter().any(|n| n.name == name) {
            return Err(Error::Usage(format!("node {name}: the name is taken")));
        }
        let ins = inputs
            .iter()
            .map(|&i| {
                self.dims
                    .get(i)
                    .map(Vec::as_slice)
                    .ok_or_else(|| Error::Usage(format!("node {name}: input {i} does not exist")))
            })
            .collect::<Result<Vec<&[usize]>>>()?;
        let d = op.out_dims(&ins).map_err(|e| Error::Usage(format!("node {name}: {e}")))?;
        let want = op.param_shapes().len() + op.buffer_shapes().len();
        if tensors.len() != want {
            return Err(Error::Usage(format!("node {name}: {} tensor names for {want} tensors", tensors.len())));
        }
        self.graph.nodes.push(Node { name: name.to_string(), op, inputs: inputs.to_vec(), tensors });
        self.dims.push(d);
        Ok(self.dims.len() - 1)
    }

    /// How many nodes there are, the input included.
    pub fn len(&self) -> usize {
        self.graph.nodes.len()
    }

    /// Whether only the input is there.
    pub fn is_empty(&self) -> bool {
        self.graph.nodes.len() <= 1
    }

    /// Gives the linear layer at node `i`, built without a bias, the bias named `name`
    /// (the ONNX importer's `MatMul` then `Add`).
    pub fn add_linear_bias(&mut self, i: usize, name: String) -> Result<()> {
        match self.graph.nodes.get_mut(i) {
            Some(Node { op: Op::Linear { bias: bias @ false, .. }, tensors, .. }) => {
                *bias = true;
                tensors.push(name);
                Ok(())
            }
            _ => Err(Error::Usage(format!("node {i} is not a linear layer without a bias"))),
        }
    }

    /// The per-sample output shape of node `i`.
    pub fn dims(&self, i: usize) -> &[usize] {
        self.dims.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The graph; its output is the last node added.
    pub fn finish(self) -> Result<Graph> {
        self.graph.node_dims()?;
        Ok(self.graph)
    }
}

/// Layers in a row, as the zoo builds its graphs, named `00_conv2d`, `01_relu`, ...;
/// a residual block takes one index (`04_residual`): its branches' nodes are
/// `04_residual/body/00_conv2d`, ..., `04_residual/shortcut/00_conv2d`, ..., and the
/// node `04_residual` adds them.
#[derive(Debug)]
pub struct Chain {
    g: GraphBuilder,
    x: usize,
    i: usize,
    /// The first layer that did not fit.
    err: Option<Error>,
}

impl Chain {
    /// A chain on an input of per-sample shape `input`.
    pub fn new(name: &str, input: &[usize]) -> Self {
        Chain { g: GraphBuilder::new(name, input), x: GraphBuilder::INPUT, i: 0, err: None }
    }
    fn add(&mut self, name: &str, op: Op, inputs: &[usize]) -> usize {
        match self.g.node(name, op, inputs) {
            Ok(x) => x,
            Err(e) => {
                self.err.get_or_insert(e);
                inputs.first().copied().unwrap_or(0)
            }
        }
    }
    /// Appends one layer.
    pub fn push(&mut self, op: Op) {
        let name = layer_name(self.i, &op);
        self.i += 1;
        self.x = self.add(&name, op, &[self.x]);
    }
    /// Appends layers.
    pub fn extend(&mut self, ops: impl IntoIterator<Item = Op>) {
        ops.into_iter().for_each(|op| self.push(op));
    }
    fn branch(&mut self, prefix: &str, ops: Vec<Op>) -> usize {
        let mut x = self.x;
        for (j, op) in ops.into_iter().enumerate() {
            let name = format!("{prefix}/{}", layer_name(j, &op));
            x = self.add(&name, op, &[x]);
        }
        x
    }
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity.
    pub fn residual(&mut self, body: Vec<Op>, shortcut: Vec<Op>) {
        let name = format!("{:02}_residual", self.i);
        self.i += 1;
        let a = self.branch(&format!("{name}/body"), body);
        let s = self.branch(&format!("{name}/shortcut"), shortcut);
        self.x = self.add(&name, Op::Add, &[a, s]);
    }
    /// The per-sample shape of the last output.
    pub fn dims(&self) -> &[usize] {
        self.g.dims(self.x)
    }
    /// The size of the last output, flattened.
    pub fn flat(&self) -> usize {
        self.dims().iter().product()
    }
    /// The graph, or the first layer that did not fit.
    pub fn finish(self) -> Result<Graph> {
        match self.err {
            Some(e) => Err(e),
            None => self.g.finish(),
        }
    }
}

/// splitmix64, for reproducible initial weights and synthetic inputs.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` words.
    pub fn words(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next_u64()).collect()
    }
}
