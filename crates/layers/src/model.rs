//! A model: a graph's layers, the loss, SGD, and per-block cost tables.

use triad_sharing::{Error, Product, Result};
use triad_transport::{CostTable, PartyId};

use crate::backend::Backend;
use crate::graph::{Graph, Op};
use crate::layer::{weight_source, Layer, Param, BN_EPS};

/// Minibatch SGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate (a public real, encoded in fixed point on shares).
    pub lr: f64,
    /// Momentum `μ`: `v ← μ v + g`, `w ← w - lr v` (0: plain SGD).
    pub momentum: f64,
    /// Weight decay `λ`: `g ← g + λ w` (0: none).
    pub weight_decay: f64,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd { lr, momentum: 0.0, weight_decay: 0.0 }
    }
}

/// A model on backend `B`: the private model (`B = Party<D>`) or its plaintext twin
/// (`B = Plain`), built from the same [`Graph`] and the same initial weights.
#[derive(Debug)]
pub struct Model<B: Backend> {
    /// The architecture.
    pub graph: Graph,
    /// One layer per graph node (node 0, the input, has none of its own state).
    pub layers: Vec<Layer<B>>,
    /// Training mode (batch statistics in batch norm); on by default.
    pub train: bool,
    /// The overflow guard; off by default.
    pub guard: Option<Guard>,
}

/// The overflow guard (opt-in: `triad ... --guard`). Fixed-point wrap-around is silent:
/// a product whose value reaches `2^(62 - 2f)` wraps the ring and the run goes on with
/// garbage. With the guard the parties check, securely, that every node's forward output,
/// every gradient of the backward pass and every parameter after an SGD step lies below
/// `2^log2_bound` in magnitude, and stop with [`Error::OutOfRange`] naming the node at the
/// first violation.
///
/// Leakage: one opened bit per checked tensor, "all in range", known to every party
/// (nothing about which values or how many). Off by default, because it costs an A2B per
/// checked value (about 88 bytes per element per party and `15 + log2 n` rounds per
/// tensor; `triad_compare::all_in_range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Values must lie in `[-2^log2_bound, 2^log2_bound)`.
    pub log2_bound: u32,
}

impl Guard {
    /// The guard for `f` fractional bits: `|v| < 2^(61 - 2f)` (`2^21 ≈ 2.1e6` at `f = 20`),
    /// the range in which a product by a value below 2 in magnitude stays below `2^62`
    /// before its truncation, and beyond which a wrapped value lands with probability
    /// `1 - 2^(22 + f - 64)`. `None` for `f > 30`, where no value range is left.
    pub fn for_frac_bits(f: u32) -> Option<Guard> {
        61u32.checked_sub(2 * f).filter(|&b| b >= 1).map(|log2_bound| Guard { log2_bound })
    }

    /// `Err(OutOfRange)` naming `at` unless every value of `x` is in range.
    fn check<B: Backend>(&self, b: &B, x: &B::T, at: impl FnOnce() -> String) -> Result<()> {
        let _s = b.scope("guard");
        if b.all_in_range(x, self.log2_bound)? {
            Ok(())
        } else {
            Err(Error::OutOfRange { at: at(), bound: 2f64.powi(self.log2_bound as i32) })
        }
    }
}

impl<B: Backend> Model<B> {
    /// Builds the model with the given initial weights in state order
    /// ([`Graph::tensors`], [`Graph::init_weights`]: each node's parameters, then its
    /// buffers): on shares, `owner` passes `Some(weights)` and secret-shares them, the
    /// other parties pass `None`; the plaintext twin needs `Some`. The owner also folds
    /// every batch norm's running statistics into its inference map in float64 and shares
    /// that (two tensors of `c` values per batch norm), so inference on imported weights
    /// needs no inverse square root on shares.
    pub fn new(b: &B, graph: &Graph, owner: PartyId, weights: Option<&[Vec<f64>]>) -> Result<Self> {
        graph.node_dims()?;
        if let Some(w) = weights {
            let want = graph.tensors().len();
            if w.len() != want {
                return Err(Error::Usage(format!(
                    "model {}: {} weight tensors for {want} parameters and buffers",
                    graph.name,
                    w.len()
                )));
            }
        }
        let mut src = weight_source(b, owner, weights);
        let mut layers = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            layers.push(Layer::build(&n.op, &n.name, &mut src)?);
        }
        let mut at = 0;
        for (n, l) in graph.nodes.iter().zip(&mut layers) {
            let count = n.op.param_shapes().len() + n.op.buffer_shapes().len();
            if let Op::BatchNorm { c } = n.op {
                let folded = weights.map(|w| fold_batchnorm(&w[at..at + 4]));
                let (a, sh) = match &folded {
                    Some((a, sh)) => (Some(a.as_slice()), Some(sh.as_slice())),
                    None => (None, None),
                };
                l.folded = Some((b.input(owner, a, &[c])?, b.input(owner, sh, &[c])?));
            }
            at += count;
        }
        Ok(Model { graph: graph.clone(), layers, train: true, guard: None })
    }

    /// Builds an inference model from tensors that are already on the backend, as a
    /// server of `triad serve` holds a model its owner uploaded as shares: `next` yields
    /// them in the order of [`serving_shapes`] (every state tensor in [`Graph::tensors`]
    /// order, then each batch norm's folded inference map). [`serving_tensors`] gives the
    /// owner's plaintext in the same order. `train` is off.
    pub fn from_tensors(graph: &Graph, next: &mut dyn FnMut(&[usize]) -> Result<B::T>) -> Result<Self> {
        graph.node_dims()?;
        let mut layers = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            layers.push(Layer::build(&n.op, &n.name, next)?);
        }
        for (n, l) in graph.nodes.iter().zip(&mut layers) {
            if let Op::BatchNorm { c } = n.op {
                l.folded = Some((next(&[c])?, next(&[c])?));
            }
        }
        Ok(Model { graph: graph.clone(), layers, train: false, guard: None })
    }

    /// Every parameter, node by node (the order of [`Graph::tensors`] without buffers).
    pub fn params(&self) -> Vec<&Param<B>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Forward pass on a batch `[N, ...]`; returns the last node's output (the logits,
    /// `[N, classes]`). Costs go to the scopes `forward/<node>`. A value read by several
    /// nodes is copied for all but its last reader.
    pub fn forward(&mut self, b: &B, x: B::T) -> Result<B::T> {
        self.forward_observed(b, x, &mut |_| {})
    }

    /// [`forward`](Self::forward), calling `done(i)` as node `i` finishes (the bench's
    /// per-node timings).
    pub fn forward_observed(&mut self, b: &B, x: B::T, done: &mut dyn FnMut(usize)) -> Result<B::T> {
        let _s = b.scope("forward");
        let mut left = self.graph.consumers();
        let mut values: Vec<Option<B::T>> = Vec::with_capacity(self.layers.len());
        if let Some(g) = self.guard {
            g.check(b, &x, || "the input".into())?;
        }
        values.push(Some(x));
        for (i, node) in self.graph.nodes.iter().enumerate().skip(1) {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for &j in &node.inputs {
                left[j] -= 1;
                let v =
                    if left[j] == 0 { values[j].take() } else { values[j].as_ref().map(|v| b.copy(v)).transpose()? };
                ins.push(v.ok_or_else(|| Error::Usage(format!("node {}: input {j} is gone", node.name)))?);
            }
            let y = self.layers[i].forward(b, ins, self.train)?;
            if let Some(g) = self.guard {
                g.check(b, &y, || format!("node {} ({}): its output", node.name, node.op.kind()))?;
            }
            values.push(Some(y));
            done(i);
        }
        values.pop().flatten().ok_or_else(|| Error::Usage(format!("model {} has no output", self.graph.name)))
    }

    /// Backward pass from `∂loss/∂output`; leaves every parameter's gradient in
    /// [`Param::grad`]. Gradients of a value read by several nodes are summed. No
    /// gradient is computed for the graph's input. Costs go to `backward/<node>`.
    pub fn backward(&mut self, b: &B, g: B::T) -> Result<()> {
        self.backward_observed(b, g, &mut |_| {})
    }

    /// [`backward`](Self::backward), calling `done(i)` as node `i` finishes.
    pub fn backward_observed(&mut self, b: &B, g: B::T, done: &mut dyn FnMut(usize)) -> Result<()> {
        let _s = b.scope("backward");
        let n = self.layers.len();
        let mut grads: Vec<Option<B::T>> = (0..n).map(|_| None).collect();
        grads[n - 1] = Some(g);
        for i in (1..n).rev() {
            let Some(g) = grads[i].take() else { continue };
            let node = &self.graph.nodes[i];
            let need: Vec<bool> = node.inputs.iter().map(|&j| j != 0).collect();
            let outs = self.layers[i].backward(b, g, &need)?;
            for (&j, gj) in node.inputs.iter().zip(outs) {
                let Some(gj) = gj else { continue };
                if let Some(guard) = self.guard {
                    guard.check(b, &gj, || {
                        format!("node {} ({}): the gradient of its input", node.name, node.op.kind())
                    })?;
                }
                grads[j] = Some(match grads[j].take() {
                    Some(acc) => b.add(&acc, &gj)?,
                    None => gj,
                });
            }
            done(i);
        }
        Ok(())
    }

    /// One SGD step on every parameter with a gradient: `w ← w - lr (g + λ w)` (with
    /// momentum `v ← μ v + g + λ w`, `w ← w - lr v`). Each product by a public real is one
    /// truncation on shares. Costs go to `sgd`.
    pub fn sgd_step(&mut self, b: &B, opt: &Sgd) -> Result<()> {
        let _s = b.scope("sgd");
        let guard = self.guard;
        for l in &mut self.layers {
            let name = l.name.clone();
            for (k, p) in l.params_mut().into_iter().enumerate() {
                let Some(mut g) = p.grad.take() else { continue };
                if opt.weight_decay != 0.0 {
                    g = b.add(&g, &b.scale(&p.value, opt.weight_decay)?)?;
                }
                if opt.momentum != 0.0 {
                    let v = match p.velocity.take() {
                        Some(v) => b.add(&b.scale(&v, opt.momentum)?, &g)?,
                        None => g,
                    };
                    p.value = b.sub(&p.value, &b.scale(&v, opt.lr)?)?;
                    p.velocity = Some(v);
                } else {
                    p.value = b.sub(&p.value, &b.scale(&g, opt.lr)?)?;
                }
                if let Some(guard) = guard {
                    guard.check(b, &p.value, || format!("node {name}: parameter {k} after the SGD step"))?;
                }
            }
        }
        Ok(())
    }

    /// One training step on a batch: forward, softmax cross-entropy gradient against the
    /// one-hot labels `y` (secret on shares), backward, SGD. Returns the softmax
    /// probabilities (still secret on shares).
    pub fn train_step(&mut self, b: &B, x: B::T, y: &B::T, opt: &Sgd) -> Result<B::T> {
        let logits = self.forward(b, x)?;
        let (probs, g) = softmax_xent_grad(b, &logits, y)?;
        self.backward(b, g)?;
        self.sgd_step(b, opt)?;
        Ok(probs)
    }

    /// Opens every parameter and buffer to party `to` (`Some` there; always `Some` on the
    /// twin), in state order ([`Graph::tensors`]): the model owner's copy of the trained
    /// weights, and the tests' comparison with the twin.
    pub fn open_weights(&self, b: &B, to: PartyId) -> Result<Option<Vec<Vec<f64>>>> {
        let _s = b.scope("open_weights");
        let mut out = Vec::new();
        for l in &self.layers {
            for t in l.params.iter().map(|p| &p.value).chain(&l.buffers) {
                out.push(b.open(to, t)?);
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Softmax cross-entropy at the output: `p = softmax(z)` along the classes and the
/// gradient `(p - y) / N` for one-hot labels `y` `[N, classes]` (CryptGPU: no logarithm
/// in backpropagation). On shares the softmax is `triad-approx`'s (max-normalised; spread
/// of a row at most 512), and the division by the public batch size one truncation.
pub fn softmax_xent_grad<B: Backend>(b: &B, logits: &B::T, y: &B::T) -> Result<(B::T, B::T)> {
    let _s = b.scope("loss");
    let p = b.softmax(logits)?;
    let n = b.dims(logits)[0];
    let g = b.scale(&b.sub(&p, y)?, 1.0 / n as f64)?;
    Ok((p, g))
}

/// The cross-entropy loss `-(1/N) Σ_n log p[n, y_n]` from probabilities and one-hot
/// labels, as a one-element tensor (for reporting only). On shares the log is
/// `triad-approx`'s, accurate for `p[n, y_n]` in about `[0.05, 1]`.
pub fn xent_loss<B: Backend>(b: &B, probs: &B::T, y: &B::T) -> Result<B::T> {
    let _s = b.scope("loss_value");
    let n = b.dims(probs)[0];
    let py = b.sum_axis(&b.product(Product::Elementwise, probs, y)?, 1)?;
    let l = b.ln(&py)?;
    let s = b.reshape(b.sum_axis(&l, 0)?, &[1])?;
    b.scale(&s, -1.0 / n as f64)
}

/// One-hot rows for labels in `0..classes` (a label outside gives a row of zeros; loaders
/// reject such labels before they get here).
pub fn one_hot(labels: &[u8], classes: usize) -> Vec<f64> {
    let mut v = vec![0.0; labels.len() * classes];
    for (row, &l) in v.chunks_exact_mut(classes.max(1)).zip(labels) {
        if let Some(x) = row.get_mut(usize::from(l)) {
            *x = 1.0;
        }
    }
    v
}

/// Index of the largest entry of each row.
pub fn argmax_rows(data: &[f64], classes: usize) -> Vec<usize> {
    data.chunks(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
                .0
        })
        .collect()
}

/// A per-block cost table from the three parties' cost tables: one row per block of
/// `graph` ([`Graph::blocks`]: a node, or the nodes sharing a first name component such
/// as a residual block) under `phase` (`"forward"` or `"backward"`), then `other` scopes
/// (`"loss"`, `"sgd"`) and the total. Columns: rounds (the most any party counted) and
/// bytes sent by each party.
pub fn layer_cost_table(graph: &Graph, costs: &[CostTable; 3], phase: &str, other: &[&str]) -> String {
    let mut rows: Vec<(String, [u64; 3], u64)> = Vec::new();
    let mut add = |label: String, path: String| {
        let c: Vec<_> = costs.iter().map(|t| t.subtree(&path)).collect();
        rows.push((
            label,
            [c[0].bytes_sent, c[1].bytes_sent, c[2].bytes_sent],
            c.iter().map(|c| c.rounds).max().unwrap_or(0),
        ));
    };
    for (name, what) in graph.blocks() {
        add(format!("{name}  {what}"), format!("{phase}/{name}"));
    }
    for o in other {
        add((*o).to_string(), (*o).to_string());
    }
    let total: Vec<_> = costs.iter().map(|t| t.total()).collect();
    rows.push((
        "total".into(),
        [total[0].bytes_sent, total[1].bytes_sent, total[2].bytes_sent],
        total.iter().map(|c| c.rounds).max().unwrap_or(0),
    ));
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    let mut s =
        format!("{:<w$}  {:>7}  {:>14}  {:>14}  {:>14}\n", "layer", "rounds", "bytes p0", "bytes p1", "bytes p2");
    for (label, bytes, rounds) in rows {
        s.push_str(&format!("{label:<w$}  {rounds:>7}  {:>14}  {:>14}  {:>14}\n", bytes[0], bytes[1], bytes[2]));
    }
    s
}

/// The shapes of the tensors a served model is made of, in the order
/// [`Model::from_tensors`] takes them: every state tensor ([`Graph::tensors`]), then the
/// folded inference map (two tensors of `c` values) of each batch norm, node by node.
pub fn serving_shapes(graph: &Graph) -> Vec<Vec<usize>> {
    let mut shapes: Vec<Vec<usize>> = graph.tensors().into_iter().map(|t| t.shape).collect();
    for n in &graph.nodes {
        if let Op::BatchNorm { c } = n.op {
            shapes.push(vec![c]);
            shapes.push(vec![c]);
        }
    }
    shapes
}

/// The model owner's plaintext of a served model, in [`serving_shapes`] order: `weights`
/// (state order, as [`Model::new`] takes them) followed by each batch norm's inference
/// map folded in float64.
pub fn serving_tensors(graph: &Graph, weights: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    let infos = graph.tensors();
    if weights.len() != infos.len() {
        return Err(Error::Usage(format!(
            "model {}: {} weight tensors for {} parameters and buffers",
            graph.name,
            weights.len(),
            infos.len()
        )));
    }
    for (w, t) in weights.iter().zip(&infos) {
        if w.len() != t.shape.iter().product::<usize>() {
            return Err(Error::Usage(format!("weight tensor {}: {} values for shape {:?}", t.name, w.len(), t.shape)));
        }
    }
    let mut out = weights.to_vec();
    let mut at = 0;
    for n in &graph.nodes {
        if let Op::BatchNorm { .. } = n.op {
            let (a, sh) = fold_batchnorm(&weights[at..at + 4]);
            out.push(a);
            out.push(sh);
        }
        at += n.op.param_shapes().len() + n.op.buffer_shapes().len();
    }
    Ok(out)
}

/// A batch norm's inference map from its plaintext `[γ, β, running mean, running var]`:
/// `a = γ / sqrt(var + eps)`, `c = β - mean · a` (float64, by the weights' owner).
fn fold_batchnorm(t: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let a: Vec<f64> = t[0].iter().zip(&t[3]).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
    let c = t[1].iter().zip(&t[2]).zip(&a).map(|((be, m), a)| be - m * a).collect();
    (a, c)
}
