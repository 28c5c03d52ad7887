//! From an [`OnnxModel`] to a triad [`Graph`] and its weights, or one error line naming
//! the node that cannot be imported.
//!
//! The model's input is the first graph input that is not an initializer, of shape
//! `[N, C, H, W]` or `[N, F]`; the batch axis `N` may be symbolic or fixed (the exporters'
//! example batch), and the imported graph takes any batch. The output is the first graph
//! output.
//!
//! **What stays secret.** Every initializer is the model owner's: weights and biases
//! become parameters, batch norm's statistics and any other tensor constant (a
//! normalising mean or standard deviation) become buffers, all secret-shared by the
//! owner. Only scalars (`x / 255`, `x * 0.5`) and shape arithmetic are public, as the
//! architecture is.
//!
//! **Shape arithmetic.** Subgraphs that compute shapes or pads from constants and from
//! `Shape` of a value (the TorchScript exporter's `x.view(x.size(0), -1)` and `F.pad`
//! chains) are evaluated here; the batch size stays a symbol, so a `Reshape` to
//! `[N, -1]` is understood whatever `N` is. A shape that depends on anything else is an
//! error.

use std::collections::HashMap;
use std::fmt;

use triad_layers::{Constant, ConvSpec, Graph, GraphBuilder, Op, PoolSpec, BN_EPS};

use crate::{Attr, AttrError, Dim, OnnxModel, OnnxNode, OnnxTensor};

/// A model imported from ONNX: the graph and the owner's weights in state order
/// ([`Graph::tensors`]), named after the ONNX initializers.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network.
    pub graph: Graph,
    /// The weights, in the graph's state order.
    pub weights: Vec<Vec<f64>>,
    /// The ONNX name of the input.
    pub input: String,
    /// The ONNX name of the output.
    pub output: String,
    /// For each graph tensor that is an ONNX initializer, how its value was laid out
    /// (for writing trained values back); tensors derived from a constant are absent.
    pub sources: HashMap<String, Source>,
}

/// How a graph tensor relates to the initializer of the same name: the graph holds
/// `scale · orig`, transposed when `transposed` gives the initializer's `[rows, cols]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    /// The initializer's matrix shape, when the graph holds its transpose.
    pub transposed: Option<(usize, usize)>,
    /// The factor folded in (Gemm's `alpha`, `beta`).
    pub scale: f64,
}

impl Source {
    const SAME: Source = Source { transposed: None, scale: 1.0 };

    /// The initializer's values from the graph tensor's.
    pub fn to_onnx(&self, v: &[f64]) -> Vec<f64> {
        let v: Vec<f64> = v.iter().map(|x| x / self.scale).collect();
        match self.transposed {
            Some((r, k)) => transpose(&v, k, r),
            None => v,
        }
    }
}

/// Why a model cannot be imported: one line, naming the node. Shown with its control
/// characters escaped: names quoted from the file (a node's, a tensor's) cannot make it
/// two lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError(pub String);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::one_line(&self.0))
    }
}

impl std::error::Error for ImportError {}

impl From<AttrError> for ImportError {
    fn from(e: AttrError) -> Self {
        ImportError(e.to_string())
    }
}

/// The operators the importer takes.
pub const SUPPORTED: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "BatchNormalization",
    "Flatten",
    "Reshape",
    "Concat",
    "Pad",
    "Identity",
    "Dropout",
    "Constant",
    // shape arithmetic on constants
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Slice",
    "Cast",
    "ConstantOfShape",
    "Transpose",
];

/// The symbolic batch size inside evaluated shape arithmetic.
const BATCH: f64 = -4_503_599_627_370_496.0; // -2^52

/// A constant tensor known at import time: an initializer, a `Constant`, or evaluated
/// shape arithmetic.
#[derive(Debug, Clone)]
struct Ct {
    dims: Vec<usize>,
    data: Vec<f64>,
    /// The initializer it is (its name becomes the tensor's name in the graph).
    init: Option<String>,
}

impl Ct {
    fn from_tensor(t: &OnnxTensor, init: Option<String>) -> Ct {
        Ct { dims: t.dims.clone(), data: t.to_f64(), init }
    }
    fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
    fn scalar(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }
}

#[derive(Debug, Clone)]
enum Val {
    /// A node of the graph being built (its per-sample output).
    Node(usize),
    Const(Ct),
}

struct Importer<'a> {
    model: &'a OnnxModel,
    g: GraphBuilder,
    weights: Vec<Vec<f64>>,
    vals: HashMap<String, Val>,
    names: HashMap<String, usize>,
    /// A Linear node made from a MatMul, still without its bias.
    bare_linear: HashMap<usize, (usize, usize)>,
    sources: HashMap<String, Source>,
}

fn err(n: &OnnxNode, what: impl fmt::Display) -> ImportError {
    let name = if n.name.is_empty() { "(unnamed)" } else { &n.name };
    ImportError(format!("node '{name}' ({}): {what}", n.op_type))
}

fn usize_of(n: &OnnxNode, v: i64, what: &str) -> Result<usize, ImportError> {
    usize::try_from(v).map_err(|_| err(n, format!("{what} {v} is negative")))
}

/// Normalises an axis of a rank-`rank` tensor.
fn axis_of(n: &OnnxNode, a: i64, rank: usize) -> Result<usize, ImportError> {
    let r = rank as i64;
    let a2 = if a < 0 { a + r } else { a };
    if (0..r).contains(&a2) {
        Ok(a2 as usize)
    } else {
        Err(err(n, format!("axis {a} out of range for rank {rank}")))
    }
}

/// Imports a parsed model; `file` names it in errors.
pub fn import(model: &OnnxModel, file: &str) -> Result<Imported, ImportError> {
    let at = |e: ImportError| ImportError(format!("{file}: {}", e.0));
    let input = model
        .graph
        .inputs
        .first()
        .ok_or_else(|| at(ImportError("the graph has no input (every input is an initializer)".into())))?;
    if model.graph.inputs.len() > 1 {
        let names: Vec<&str> = model.graph.inputs.iter().map(|v| v.name.as_str()).collect();
        return Err(at(ImportError(format!(
            "the graph has {} inputs ({}); triad takes one",
            names.len(),
            names.join(", ")
        ))));
    }
    let mut dims = Vec::new();
    for (i, d) in input.dims.iter().enumerate().skip(1) {
        match d {
            Dim::Known(k) if *k > 0 => dims.push(*k as usize),
            _ => {
                return Err(at(ImportError(format!(
                    "input '{}': axis {i} has no fixed size ({d:?}); only the batch axis may vary",
                    input.name
                ))))
            }
        }
    }
    if !(dims.len() == 1 || dims.len() == 3) {
        return Err(at(ImportError(format!(
            "input '{}' has rank {}; triad takes [N, C, H, W] or [N, F]",
            input.name,
            dims.len() + 1
        ))));
    }
    let output = model.graph.outputs.first().ok_or_else(|| at(ImportError("the graph has no output".into())))?;
    let name = if model.graph.name.is_empty() { file.to_string() } else { model.graph.name.clone() };
    let mut im = Importer {
        model,
        g: GraphBuilder::new(&name, &dims),
        weights: Vec::new(),
        vals: HashMap::new(),
        names: HashMap::new(),
        bare_linear: HashMap::new(),
        sources: HashMap::new(),
    };
    im.vals.insert(input.name.clone(), Val::Node(GraphBuilder::INPUT));
    for n in &model.graph.nodes {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(at(err(
                n,
                format!("operator domain '{}' is not supported (only the default ONNX domain)", n.domain),
            )));
        }
        im.node(n).map_err(at)?;
    }
    match im.vals.get(&output.name) {
        Some(Val::Node(i)) if *i + 1 == im.g.len() => {}
        Some(Val::Node(_)) => {
            return Err(at(ImportError(format!("output '{}' is not the graph's last computation", output.name))))
        }
        _ => return Err(at(ImportError(format!("output '{}' is not computed from the input", output.name)))),
    }
    let graph = im.g.finish().map_err(|e| at(ImportError(e.to_string())))?;
    Ok(Imported {
        graph,
        weights: im.weights,
        input: input.name.clone(),
        output: output.name.clone(),
        sources: im.sources,
    })
}

/// Reads and imports an ONNX file (its external data beside it).
pub fn import_file(path: &std::path::Path) -> Result<Imported, ImportError> {
    let model = crate::load(path).map_err(|e| ImportError(e.to_string()))?;
    import(&model, &path.display().to_string())
}

impl Importer<'_> {
    fn val(&self, n: &OnnxNode, i: usize) -> Result<Val, ImportError> {
        let name = n.input(i).ok_or_else(|| err(n, format!("input {i} is missing")))?;
        if let Some(v) = self.vals.get(name) {
            return Ok(v.clone());
        }
        if let Some(t) = self.model.graph.initializer(name) {
            return Ok(Val::Const(Ct::from_tensor(t, Some(name.to_string()))));
        }
        Err(err(n, format!("input '{name}' is not defined before it")))
    }
    fn node_in(&self, n: &OnnxNode, i: usize) -> Result<usize, ImportError> {
        match self.val(n, i)? {
            Val::Node(x) => Ok(x),
            Val::Const(_) => Err(err(n, format!("input {i} must be computed from the model's input, not a constant"))),
        }
    }
    fn const_in(&self, n: &OnnxNode, i: usize) -> Result<Ct, ImportError> {
        match self.val(n, i)? {
            Val::Const(c) => Ok(c),
            Val::Node(_) => Err(err(n, format!("input {i} must be a constant known when the model is exported"))),
        }
    }
    fn opt_const(&self, n: &OnnxNode, i: usize) -> Result<Option<Ct>, ImportError> {
        match n.input(i) {
            Some(_) => self.const_in(n, i).map(Some),
            None => Ok(None),
        }
    }
    fn dims(&self, x: usize) -> Vec<usize> {
        self.g.dims(x).to_vec()
    }
    fn set(&mut self, n: &OnnxNode, v: Val) -> Result<(), ImportError> {
        let out = n.outputs.first().ok_or_else(|| err(n, "no output"))?;
        self.vals.insert(out.clone(), v);
        Ok(())
    }
    fn name(&mut self, n: &OnnxNode) -> String {
        let base = base_name(n);
        let k = self.names.entry(base.clone()).or_insert(0);
        *k += 1;
        if *k == 1 {
            base
        } else {
            format!("{base}_{k}")
        }
    }
    /// Adds a node with its tensors (names and the owner's values, in state order).
    fn push(
        &mut self,
        n: &OnnxNode,
        op: Op,
        inputs: &[usize],
        tensors: Vec<(String, Vec<f64>)>,
    ) -> Result<usize, ImportError> {
        let name = self.name(n);
        let (names, values): (Vec<String>, Vec<Vec<f64>>) = tensors.into_iter().unzip();
        let i = self.g.node_named(&name, op, inputs, names).map_err(|e| err(n, e))?;
        self.weights.extend(values);
        self.set(n, Val::Node(i))?;
        Ok(i)
    }
    fn unary(&mut self, n: &OnnxNode, op: Op) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        self.push(n, op, &[x], vec![]).map(|_| ())
    }
    /// Records how the graph tensor made from `c` relates to its initializer.
    fn source(&mut self, c: &Ct, s: Source) {
        if let Some(name) = &c.init {
            self.sources.insert(name.clone(), s);
        }
    }
    fn tensor_name(&self, n: &OnnxNode, c: &Ct, what: &str) -> String {
        c.init.clone().unwrap_or_else(|| format!("{}.{what}", if n.name.is_empty() { &n.op_type } else { &n.name }))
    }

    fn node(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        // Shape arithmetic and constants fold first: any node whose inputs are all
        // constants is evaluated here.
        if let Some(v) = self.fold(n)? {
            return self.set(n, Val::Const(v));
        }
        match n.op_type.as_str() {
            "Identity" | "Dropout" => {
                if n.outputs.len() > 1 && n.outputs.get(1).is_some_and(|o| !o.is_empty()) {
                    return Err(err(n, "the dropout mask output is not supported (export in eval mode)"));
                }
                let v = self.val(n, 0)?;
                self.set(n, v)
            }
            "Relu" => self.unary(n, Op::Relu),
            "Sigmoid" => self.unary(n, Op::Sigmoid),
            "Tanh" => self.unary(n, Op::Tanh),
            "Softmax" => {
                let x = self.node_in(n, 0)?;
                let rank = self.dims(x).len() + 1;
                let axis = axis_of(n, n.int("axis", -1)?, rank)?;
                if rank != 2 || axis != 1 {
                    return Err(err(n, "softmax is supported over the features of [N, F] only"));
                }
                self.unary(n, Op::Softmax)
            }
            "Flatten" => {
                let x = self.node_in(n, 0)?;
                let rank = self.dims(x).len() + 1;
                if axis_of(n, n.int("axis", 1)?, rank)? != 1 {
                    return Err(err(n, "flatten is supported from axis 1 only"));
                }
                self.unary(n, Op::Flatten)
            }
            "Conv" => self.conv(n),
            "Gemm" => self.gemm(n),
            "MatMul" => self.matmul(n),
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n),
            "MaxPool" | "AveragePool" => self.pool(n),
            "GlobalAveragePool" => self.unary(n, Op::GlobalAvgPool { keep_dims: true }),
            "ReduceMean" => {
                let x = self.node_in(n, 0)?;
                let rank = self.dims(x).len() + 1;
                let axes = match n.ints("axes")? {
                    Some(a) => a.to_vec(),
                    None => match self.opt_const(n, 1)? {
                        Some(c) => c.ints(),
                        None => return Err(err(n, "a mean over every axis is not supported")),
                    },
                };
                let mut axes: Vec<usize> = axes.iter().map(|&a| axis_of(n, a, rank)).collect::<Result<_, _>>()?;
                axes.sort_unstable();
                if rank != 4 || axes != [2, 3] {
                    return Err(err(
                        n,
                        format!("a mean over axes {axes:?} is not supported (only the spatial axes 2, 3)"),
                    ));
                }
                let keep_dims = n.int("keepdims", 1)? != 0;
                self.unary(n, Op::GlobalAvgPool { keep_dims })
            }
            "BatchNormalization" => self.batchnorm(n),
            "Reshape" => {
                let x = self.node_in(n, 0)?;
                let shape = self.const_in(n, 1).map_err(|_| {
                    err(n, "the target shape is computed at run time (a dynamic reshape); export with a fixed shape or use torch.flatten")
                })?;
                let dims = self.reshape_target(n, &self.dims(x), &shape, n.int("allowzero", 0)? != 0)?;
                self.push(n, Op::Reshape { dims }, &[x], vec![]).map(|_| ())
            }
            "Concat" => {
                let mut ins = Vec::new();
                for i in 0..n.inputs.len() {
                    ins.push(self.node_in(n, i)?);
                }
                let first = ins.first().copied().ok_or_else(|| err(n, "no inputs"))?;
                let rank = self.dims(first).len() + 1;
                let axis = axis_of(n, n.int_opt("axis")?.ok_or_else(|| err(n, "no axis"))?, rank)?;
                if axis == 0 {
                    return Err(err(n, "concatenation along the batch axis is not supported"));
                }
                self.push(n, Op::Concat { axis: axis - 1 }, &ins, vec![]).map(|_| ())
            }
            "Pad" => self.pad(n),
            other => Err(err(
                n,
                format!("unsupported operator {other}; triad supports {}", SUPPORTED[..SUPPORTED.len() - 9].join(", ")),
            )),
        }
    }

    fn conv(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        let w = self.const_in(n, 1)?;
        let b = self.opt_const(n, 2)?;
        let d = self.dims(x);
        let [out_c, cg, kh, kw] = w.dims[..] else {
            return Err(err(n, format!("weight of shape {:?}: only 2-d convolutions are supported", w.dims)));
        };
        if d.len() != 3 {
            return Err(err(n, format!("input of per-sample shape {d:?}: a 2-d convolution needs [C, H, W]")));
        }
        if n.ints("dilations")?.is_some_and(|v| v.iter().any(|&x| x != 1)) {
            return Err(err(n, "dilated convolutions are not supported"));
        }
        let auto_pad = n.str("auto_pad")?.unwrap_or("NOTSET");
        if !(auto_pad == "NOTSET" || auto_pad == "VALID") {
            return Err(err(n, format!("auto_pad {auto_pad} is not supported (export with explicit pads)")));
        }
        let groups = usize_of(n, n.int("group", 1)?, "group")?;
        let strides = n.ints("strides")?.map(<[i64]>::to_vec).unwrap_or(vec![1, 1]);
        let pads = n.ints("pads")?.map(<[i64]>::to_vec).unwrap_or(vec![0, 0, 0, 0]);
        let [sh, sw] = strides[..] else { return Err(err(n, "strides must have two entries")) };
        let [pt, pl, pb, pr] = pads[..] else { return Err(err(n, "pads must have four entries")) };
        let (pt, pl, pb, pr) =
            (usize_of(n, pt, "pad")?, usize_of(n, pl, "pad")?, usize_of(n, pb, "pad")?, usize_of(n, pr, "pad")?);
        let mut x = x;
        let (pad_h, pad_w) = if pt == pb && pl == pr {
            (pt, pl)
        } else {
            // Asymmetric padding: explicit zero rows and columns first.
            let pname = format!("{}/pad", base_name(n));
            let op = Op::Pad { top: pt, left: pl, bottom: pb, right: pr };
            x = self.g.node_named(&pname, op, &[x], vec![]).map_err(|e| err(n, e))?;
            (0, 0)
        };
        let spec = ConvSpec {
            in_c: d[0],
            out_c,
            kh,
            kw,
            stride_h: usize_of(n, sh, "stride")?,
            stride_w: usize_of(n, sw, "stride")?,
            pad_h,
            pad_w,
            groups,
            bias: b.is_some(),
        };
        if groups == 0 || d[0] != cg * groups {
            return Err(err(n, format!("{} input channels do not fit weight {:?} with {groups} groups", d[0], w.dims)));
        }
        self.source(&w, Source::SAME);
        let mut tensors = vec![(self.tensor_name(n, &w, "weight"), w.data)];
        if let Some(b) = b {
            self.source(&b, Source::SAME);
            tensors.push((self.tensor_name(n, &b, "bias"), b.data));
        }
        self.push(n, Op::Conv(spec), &[x], tensors).map(|_| ())
    }

    fn gemm(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        let w = self.const_in(n, 1)?;
        let c = self.opt_const(n, 2)?;
        if n.int("transA", 0)? != 0 {
            return Err(err(n, "transA = 1 is not supported"));
        }
        let (alpha, beta) = (f64::from(n.float("alpha", 1.0)?), f64::from(n.float("beta", 1.0)?));
        let [r, k] = w.dims[..] else { return Err(err(n, format!("weight of shape {:?} is not a matrix", w.dims))) };
        let trans_b = n.int("transB", 0)? != 0;
        let (out, inp) = if trans_b { (r, k) } else { (k, r) };
        let mut wv = if trans_b { w.data.clone() } else { transpose(&w.data, r, k) };
        wv.iter_mut().for_each(|v| *v *= alpha);
        self.source(&w, Source { transposed: (!trans_b).then_some((r, k)), scale: alpha });
        let mut tensors = vec![(self.tensor_name(n, &w, "weight"), wv)];
        if let Some(c) = &c {
            self.source(c, Source { transposed: None, scale: beta });
            if c.data.len() != out {
                return Err(err(n, format!("bias of shape {:?} for {out} outputs", c.dims)));
            }
            tensors.push((self.tensor_name(n, c, "bias"), c.data.iter().map(|v| v * beta).collect()));
        }
        self.push(n, Op::Linear { inp, out, bias: c.is_some() }, &[x], tensors).map(|_| ())
    }

    fn matmul(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        let w = self.const_in(n, 1)?;
        let [inp, out] = w.dims[..] else {
            return Err(err(n, format!("weight of shape {:?} is not a matrix", w.dims)));
        };
        self.source(&w, Source { transposed: Some((inp, out)), scale: 1.0 });
        let tensors = vec![(self.tensor_name(n, &w, "weight"), transpose(&w.data, inp, out))];
        let i = self.push(n, Op::Linear { inp, out, bias: false }, &[x], tensors)?;
        self.bare_linear.insert(i, (inp, out));
        Ok(())
    }

    fn arith(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let (a, b) = (self.val(n, 0)?, self.val(n, 1)?);
        let op = n.op_type.as_str();
        match (a, b) {
            (Val::Node(x), Val::Node(y)) => match op {
                "Add" => self.push(n, Op::Add, &[x, y], vec![]).map(|_| ()),
                "Sub" => self.push(n, Op::Sub, &[x, y], vec![]).map(|_| ()),
                _ => Err(err(n, "a product of two computed values is not supported (only by constants)")),
            },
            (Val::Node(x), Val::Const(c)) => {
                // MatMul then Add of a vector: the linear layer's bias.
                if op == "Add" && x + 1 == self.g.len() {
                    if let Some(&(_, out)) = self.bare_linear.get(&x) {
                        if c.data.len() == out && c.scalar().is_none() {
                            return self.attach_bias(n, x, c);
                        }
                    }
                }
                let (kind, values) = match op {
                    "Add" => ("add", c.data.clone()),
                    "Sub" => ("add", c.data.iter().map(|v| -v).collect()),
                    "Mul" => ("mul", c.data.clone()),
                    _ => {
                        if c.data.contains(&0.0) {
                            return Err(err(n, "division by a constant that holds a zero"));
                        }
                        ("mul", c.data.iter().map(|v| 1.0 / v).collect())
                    }
                };
                self.by_constant(n, x, kind, Ct { data: values, ..c })
            }
            (Val::Const(c), Val::Node(x)) => match op {
                "Add" | "Mul" => self.by_constant(n, x, if op == "Add" { "add" } else { "mul" }, c),
                "Sub" => {
                    // c - x = (-1)·x + c
                    let neg_name = format!("{}/neg", base_name(n));
                    let op = Op::MulConst(Constant { dims: vec![1], values: vec![-1.0] });
                    let y = self.g.node_named(&neg_name, op, &[x], vec![]).map_err(|e| err(n, e))?;
                    self.by_constant(n, y, "add", c)
                }
                _ => Err(err(n, "division of a constant by a computed value is not supported")),
            },
            (Val::Const(_), Val::Const(_)) => Err(err(n, "internal: constants should have been folded")),
        }
    }

    fn attach_bias(&mut self, n: &OnnxNode, x: usize, c: Ct) -> Result<(), ImportError> {
        // Rebuild the MatMul's node as a linear layer with this bias: it is the last node,
        // so only its own entry changes.
        self.bare_linear.remove(&x);
        self.source(&c, Source::SAME);
        let bias_name = self.tensor_name(n, &c, "bias");
        self.g.add_linear_bias(x, bias_name).map_err(|e| err(n, e))?;
        self.weights.push(c.data);
        self.set(n, Val::Node(x))
    }

    /// `x + c` or `x ⊙ c`: public for a scalar, a secret buffer for a tensor.
    fn by_constant(&mut self, n: &OnnxNode, x: usize, kind: &str, c: Ct) -> Result<(), ImportError> {
        let d = self.dims(x);
        let mut dims = c.dims.clone();
        // A constant of the batched rank with a unit batch axis: drop that axis.
        if dims.len() == d.len() + 1 {
            if dims[0] != 1 {
                return Err(err(n, format!("constant of shape {:?} varies along the batch axis", c.dims)));
            }
            dims.remove(0);
        }
        if c.scalar().is_some() {
            let k = Constant { dims: vec![1], values: c.data };
            let op = if kind == "add" { Op::AddConst(k) } else { Op::MulConst(k) };
            return self.push(n, op, &[x], vec![]).map(|_| ());
        }
        let name = self.tensor_name(n, &c, "value");
        let op = if kind == "add" { Op::AddBuffer { dims } } else { Op::MulBuffer { dims } };
        self.push(n, op, &[x], vec![(name, c.data)]).map(|_| ())
    }

    fn pool(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        if self.dims(x).len() != 3 {
            return Err(err(n, "2-d pooling needs [N, C, H, W]"));
        }
        let k = n.ints_req("kernel_shape")?.to_vec();
        let strides = n.ints("strides")?.map(<[i64]>::to_vec).unwrap_or(vec![1, 1]);
        let pads = n.ints("pads")?.map(<[i64]>::to_vec).unwrap_or(vec![0, 0, 0, 0]);
        if n.int("ceil_mode", 0)? != 0 {
            return Err(err(n, "ceil_mode = 1 is not supported"));
        }
        if n.ints("dilations")?.is_some_and(|v| v.iter().any(|&x| x != 1)) {
            return Err(err(n, "dilated pooling is not supported"));
        }
        let auto_pad = n.str("auto_pad")?.unwrap_or("NOTSET");
        if !(auto_pad == "NOTSET" || auto_pad == "VALID") {
            return Err(err(n, format!("auto_pad {auto_pad} is not supported (export with explicit pads)")));
        }
        let (&[kh, kw], &[sh, sw], &[pt, pl, pb, pr]) = (&k[..], &strides[..], &pads[..]) else {
            return Err(err(n, "kernel_shape, strides and pads must be 2-d"));
        };
        if pt != pb || pl != pr {
            return Err(err(n, format!("asymmetric pooling pads {pads:?} are not supported")));
        }
        let avg = n.op_type == "AveragePool";
        if avg && (pt > 0 || pl > 0) && n.int("count_include_pad", 0)? == 0 {
            return Err(err(
                n,
                "padded average pooling that excludes the padding is not supported (count_include_pad=1 is)",
            ));
        }
        let p = PoolSpec {
            kh: usize_of(n, kh, "kernel")?,
            kw: usize_of(n, kw, "kernel")?,
            stride_h: usize_of(n, sh, "stride")?,
            stride_w: usize_of(n, sw, "stride")?,
            pad_h: usize_of(n, pt, "pad")?,
            pad_w: usize_of(n, pl, "pad")?,
        };
        self.unary(n, if avg { Op::AvgPool(p) } else { Op::MaxPool(p) })
    }

    fn batchnorm(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        let c = *self.dims(x).first().ok_or_else(|| err(n, "input has no channel axis"))?;
        let eps = f64::from(n.float("epsilon", 1e-5)?);
        if (eps - BN_EPS).abs() > 1e-9 {
            return Err(err(n, format!("epsilon {eps} is not supported (triad uses {BN_EPS}, PyTorch's default)")));
        }
        if n.int("training_mode", 0)? != 0 {
            return Err(err(n, "training_mode = 1 is not supported (export in eval mode)"));
        }
        let mut tensors = Vec::new();
        for (i, what) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
            let t = self.const_in(n, i)?;
            if t.data.len() != c {
                return Err(err(n, format!("{what} has {} values for {c} channels", t.data.len())));
            }
            self.source(&t, Source::SAME);
            tensors.push((self.tensor_name(n, &t, what), t.data));
        }
        self.push(n, Op::BatchNorm { c }, &[x], tensors).map(|_| ())
    }

    fn pad(&mut self, n: &OnnxNode) -> Result<(), ImportError> {
        let x = self.node_in(n, 0)?;
        let mode = n.str("mode")?.unwrap_or("constant");
        if mode != "constant" {
            return Err(err(n, format!("pad mode {mode} is not supported (only zeros)")));
        }
        let pads = match n.ints("pads")? {
            Some(p) => p.to_vec(),
            None => self.const_in(n, 1)?.ints(),
        };
        let value = match self.opt_const(n, 2)? {
            Some(v) => v.scalar().unwrap_or(f64::NAN),
            None => f64::from(n.float("value", 0.0)?),
        };
        if value != 0.0 {
            return Err(err(n, format!("padding with {value} is not supported (only zeros)")));
        }
        if n.input(3).is_some() {
            return Err(err(n, "padding chosen axes is not supported"));
        }
        let [0, 0, t, l, 0, 0, b, r] = pads[..] else {
            return Err(err(n, format!("pads {pads:?}: only the spatial axes of [N, C, H, W] may be padded")));
        };
        let op = Op::Pad {
            top: usize_of(n, t, "pad")?,
            left: usize_of(n, l, "pad")?,
            bottom: usize_of(n, b, "pad")?,
            right: usize_of(n, r, "pad")?,
        };
        self.push(n, op, &[x], vec![]).map(|_| ())
    }

    /// The per-sample shape of a reshape of per-sample `d` to `shape` (batched).
    fn reshape_target(
        &self,
        n: &OnnxNode,
        d: &[usize],
        shape: &Ct,
        allowzero: bool,
    ) -> Result<Vec<usize>, ImportError> {
        let s = &shape.data;
        let first = *s.first().ok_or_else(|| err(n, "empty target shape"))?;
        let batch_fixed = match self.model.graph.inputs.first().and_then(|v| v.dims.first()) {
            Some(Dim::Known(k)) => Some(*k as f64),
            _ => None,
        };
        let keeps_batch = first == BATCH || first == -1.0 || (first == 0.0 && !allowzero) || Some(first) == batch_fixed;
        if !keeps_batch {
            return Err(err(n, format!("target shape {:?} does not keep the batch axis", shape.ints())));
        }
        let total: usize = d.iter().product();
        let mut out = Vec::new();
        let mut infer = None;
        for (i, &v) in s.iter().enumerate().skip(1) {
            if v == -1.0 {
                if infer.replace(out.len()).is_some() {
                    return Err(err(n, "two -1 entries in the target shape"));
                }
                out.push(1);
            } else if v == 0.0 && !allowzero {
                out.push(*d.get(i - 1).ok_or_else(|| err(n, "0 copies an axis the input does not have"))?);
            } else if v >= 1.0 && v.fract() == 0.0 {
                out.push(v as usize);
            } else {
                return Err(err(n, format!("target shape entry {v} is not supported")));
            }
        }
        if first == -1.0 && infer.is_none() {
            // [-1, rest...]: the batch absorbs nothing else, rest is the sample.
        } else if first == -1.0 {
            return Err(err(n, "-1 on the batch axis and on another axis"));
        }
        let known: usize = out.iter().product();
        if let Some(i) = infer {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(err(n, format!("cannot reshape per-sample {d:?} to {:?}", shape.ints())));
            }
            out[i] = total / known;
        }
        if out.iter().product::<usize>() != total {
            return Err(err(n, format!("cannot reshape per-sample {d:?} to {:?}", shape.ints())));
        }
        Ok(out)
    }

    /// Evaluates a node whose result is known at import time (constants and shape
    /// arithmetic); `None` when the node computes on the model's input.
    fn fold(&self, n: &OnnxNode) -> Result<Option<Ct>, ImportError> {
        let op = n.op_type.as_str();
        if op == "Constant" {
            let t = match n.attrs.iter().next() {
                Some((_, Attr::Tensor(t))) => Ct::from_tensor(t, None),
                Some((_, Attr::Float(v))) => Ct { dims: vec![], data: vec![f64::from(*v)], init: None },
                Some((_, Attr::Int(v))) => Ct { dims: vec![], data: vec![*v as f64], init: None },
                Some((_, Attr::Ints(v))) => {
                    Ct { dims: vec![v.len()], data: v.iter().map(|&x| x as f64).collect(), init: None }
                }
                Some((_, Attr::Floats(v))) => {
                    Ct { dims: vec![v.len()], data: v.iter().map(|&x| f64::from(x)).collect(), init: None }
                }
                _ => return Err(err(n, "a constant of this kind is not supported")),
            };
            return Ok(Some(t));
        }
        if op == "Shape" {
            let Val::Node(x) = self.val(n, 0)? else { return Ok(None) };
            let mut data = vec![BATCH];
            data.extend(self.dims(x).iter().map(|&v| v as f64));
            let (start, end) = (n.int_opt("start")?, n.int_opt("end")?);
            let r = data.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (start.map_or(0, clamp), end.map_or(data.len(), clamp));
            let data = data.get(s..e.max(s)).unwrap_or(&[]).to_vec();
            return Ok(Some(Ct { dims: vec![data.len()], data, init: None }));
        }
        let mut ins = Vec::new();
        for i in 0..n.inputs.len() {
            if n.input(i).is_none() {
                ins.push(None);
                continue;
            }
            match self.val(n, i)? {
                Val::Const(c) => ins.push(Some(c)),
                Val::Node(_) => return Ok(None),
            }
        }
        let get = |i: usize| ins.get(i).cloned().flatten().ok_or_else(|| err(n, format!("input {i} is missing")));
        let small = |c: &Ct| c.init.is_none() || c.data.len() <= 64;
        let out = match op {
            "Identity" | "Cast" | "Dropout" => get(0)?,
            "ConstantOfShape" => {
                let dims: Vec<usize> =
                    get(0)?.ints().iter().map(|&v| usize_of(n, v, "size")).collect::<Result<_, _>>()?;
                let v = match n.tensor("value")? {
                    Some(t) => t.to_f64().first().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                let len: usize = dims.iter().product();
                if len > 1 << 20 {
                    return Err(err(n, "a constant of over 2^20 values"));
                }
                Ct { data: vec![v; len], dims, init: None }
            }
            "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => {
                let c = get(0)?;
                let len = c.data.len();
                let dims = if op == "Reshape" {
                    let s = get(1)?.ints();
                    let known: i64 = s.iter().filter(|&&v| v > 0).product();
                    s.iter().map(|&v| if v == -1 { len / known.max(1) as usize } else { v.max(0) as usize }).collect()
                } else {
                    vec![len]
                };
                Ct { dims, ..c }
            }
            "Concat" => {
                let mut data = Vec::new();
                for c in ins.iter().flatten() {
                    if c.dims.len() > 1 {
                        return Err(err(n, "concatenation of constant matrices is not supported"));
                    }
                    data.extend(&c.data);
                }
                Ct { dims: vec![data.len()], data, init: None }
            }
            "Gather" => {
                let (c, idx) = (get(0)?, get(1)?);
                if c.dims.len() > 1 || n.int("axis", 0)? != 0 {
                    return Err(err(n, "gathering from a constant matrix is not supported"));
                }
                let len = c.data.len() as i64;
                let mut data = Vec::new();
                for i in idx.ints() {
                    let j = if i < 0 { i + len } else { i };
                    data.push(*c.data.get(j as usize).ok_or_else(|| err(n, format!("index {i} out of range")))?);
                }
                Ct { dims: idx.dims.clone(), data, init: None }
            }
            "Slice" => {
                let c = get(0)?;
                let (s, e) = (get(1)?.ints(), get(2)?.ints());
                let axes = ins.get(3).cloned().flatten().map(|c| c.ints()).unwrap_or(vec![0]);
                let step = ins.get(4).cloned().flatten().map(|c| c.ints()).unwrap_or(vec![1]);
                let (&[st], &[en], &[ax], &[sp]) = (&s[..], &e[..], &axes[..], &step[..]) else {
                    return Err(err(n, "slicing several axes of a constant is not supported"));
                };
                let rank = c.dims.len().max(1);
                let ax = axis_of(n, ax, rank)?;
                if rank > 2 {
                    return Err(err(n, "slicing a constant of rank above 2 is not supported"));
                }
                let dims = if c.dims.is_empty() { vec![c.data.len()] } else { c.dims.clone() };
                let (rows, cols) = if rank == 1 { (dims[0], 1) } else { (dims[0], dims[1]) };
                let len = if ax == 0 { rows } else { cols } as i64;
                let picked = slice_indices(st, en, sp, len).ok_or_else(|| err(n, "slice step 0"))?;
                let mut data = Vec::new();
                let mut out = dims.clone();
                out[ax] = picked.len();
                if ax == 0 {
                    for i in &picked {
                        data.extend_from_slice(&c.data[i * cols..(i + 1) * cols]);
                    }
                } else {
                    for r in 0..rows {
                        data.extend(picked.iter().map(|j| c.data[r * cols + j]));
                    }
                }
                Ct { dims: out, data, init: None }
            }
            "Transpose" => {
                let c = get(0)?;
                match c.dims[..] {
                    [r, k] => {
                        if let Some(p) = n.ints("perm")? {
                            if p != [1, 0] {
                                return Err(err(n, format!("perm {p:?} of a matrix")));
                            }
                        }
                        Ct { dims: vec![k, r], data: transpose(&c.data, r, k), init: None }
                    }
                    _ if c.dims.len() < 2 => c,
                    _ => return Err(err(n, "transposing a constant of rank above 2 is not supported")),
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let (a, b) = (get(0)?, get(1)?);
                if !(small(&a) && small(&b)) {
                    // Arithmetic between two weight tensors: keep them as the owner's
                    // (this importer supports no such model).
                    return Err(err(n, "arithmetic between two weight tensors is not supported"));
                }
                let f = |x: f64, y: f64| match op {
                    "Add" => x + y,
                    "Sub" => x - y,
                    "Mul" => x * y,
                    _ => x / y,
                };
                let (big, other) = if a.data.len() >= b.data.len() { (&a, &b) } else { (&b, &a) };
                if !(other.data.len() == 1 || other.data.len() == big.data.len()) {
                    return Err(err(n, "broadcasting between constants is not supported"));
                }
                let data = (0..big.data.len())
                    .map(|i| {
                        let (x, y) = (a.data[i % a.data.len()], b.data[i % b.data.len()]);
                        if x == BATCH || y == BATCH {
                            f64::NAN
                        } else {
                            f(x, y)
                        }
                    })
                    .collect();
                Ct { dims: big.dims.clone(), data, init: None }
            }
            _ => return Ok(None),
        };
        Ok(Some(out))
    }
}

/// The indices `Slice` picks from an axis of length `len` (ONNX's clamping rules).
fn slice_indices(start: i64, end: i64, step: i64, len: i64) -> Option<Vec<usize>> {
    let norm = |v: i64| if v < 0 { v + len } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (norm(start).clamp(0, len), norm(end).clamp(0, len));
        while i < e {
            out.push(i as usize);
            i += step;
        }
    } else if step < 0 {
        let (mut i, e) = (norm(start).clamp(-1, len - 1), norm(end).clamp(-1, len - 1));
        while i > e {
            out.push(i as usize);
            i += step;
        }
    } else {
        return None;
    }
    Some(out)
}

/// A node's name, or its operator's for an unnamed node.
/// TorchScript's names are module paths (`/layer1/conv1/Conv`): the leading `/` goes, so
/// a module's nodes share a first name component and show as one block in cost tables.
fn base_name(n: &OnnxNode) -> String {
    match n.name.trim_start_matches('/') {
        "" => n.op_type.to_lowercase(),
        name => name.to_string(),
    }
}

/// The transpose of a row-major `r x k` matrix.
fn transpose(v: &[f64], r: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..k {
            out[j * r + i] = v[i * k + j];
        }
    }
    out
}
