//! A model: layers in order, the loss, SGD, and per-layer cost tables.

use triad_sharing::{Error, Product, Result};
use triad_transport::{CostTable, PartyId};

use crate::backend::Backend;
use crate::layer::{weight_source, Layer, Param};
use crate::net::{layer_name, Net};

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
/// (`B = Plain`), built from the same [`Net`] and the same initial weights.
#[derive(Debug)]
pub struct Model<B: Backend> {
    /// The architecture.
    pub net: Net,
    /// The layers, in order.
    pub layers: Vec<Layer<B>>,
    /// Training mode (batch statistics in batch norm); on by default.
    pub train: bool,
}

impl<B: Backend> Model<B> {
    /// Builds the model with the given initial weights (in the order of
    /// [`Net::init_weights`]): on shares, `owner` passes `Some(weights)` and secret-shares
    /// them, the other parties pass `None`; the plaintext twin needs `Some`.
    pub fn new(b: &B, net: &Net, owner: PartyId, weights: Option<&[Vec<f64>]>) -> Result<Self> {
        net.out_dims()?;
        let mut src = weight_source(b, owner, weights);
        let mut layers = Vec::with_capacity(net.layers.len());
        for (i, spec) in net.layers.iter().enumerate() {
            layers.push(Layer::build(b, spec, layer_name(i, spec), &mut src)?);
        }
        Ok(Model { net: net.clone(), layers, train: true })
    }

    /// Every parameter, depth first (the order of [`Net::init_weights`]).
    pub fn params(&self) -> Vec<&Param<B>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Forward pass on a batch `[N, C, H, W]`; returns the logits `[N, classes]`. Costs go
    /// to the scopes `forward/<layer>`.
    pub fn forward(&mut self, b: &B, x: B::T) -> Result<B::T> {
        let _s = b.scope("forward");
        let mut x = x;
        for l in &mut self.layers {
            x = l.forward(b, x, self.train)?;
        }
        Ok(x)
    }

    /// Backward pass from `∂loss/∂logits`; leaves every parameter's gradient in
    /// [`Param::grad`]. Costs go to `backward/<layer>`.
    pub fn backward(&mut self, b: &B, g: B::T) -> Result<()> {
        let _s = b.scope("backward");
        let mut g = g;
        let n = self.layers.len();
        for (i, l) in self.layers.iter_mut().enumerate().rev() {
            match l.backward(b, g, i > 0)? {
                Some(next) => g = next,
                None if i == 0 => return Ok(()),
                None => return Err(Error::Usage(format!("layer {i} of {n} gave no input gradient"))),
            }
        }
        Ok(())
    }

    /// One SGD step on every parameter with a gradient: `w ← w - lr (g + λ w)` (with
    /// momentum `v ← μ v + g + λ w`, `w ← w - lr v`). Each product by a public real is one
    /// truncation on shares. Costs go to `sgd`.
    pub fn sgd_step(&mut self, b: &B, opt: &Sgd) -> Result<()> {
        let _s = b.scope("sgd");
        for l in &mut self.layers {
            for p in l.params_mut() {
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

    /// Opens every parameter to party `to` (`Some` there; always `Some` on the twin), in
    /// parameter order: the model owner's copy of the trained weights, and the tests'
    /// comparison with the twin.
    pub fn open_weights(&self, b: &B, to: PartyId) -> Result<Option<Vec<Vec<f64>>>> {
        let _s = b.scope("open_weights");
        let mut out = Vec::new();
        for p in self.params() {
            out.push(b.open(to, &p.value)?);
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

/// A per-layer cost table from the three parties' cost tables: one row per top-level
/// layer of `net` under `phase` (`"forward"` or `"backward"`), then `other` scopes
/// (`"loss"`, `"sgd"`) and the total. Columns: rounds (the most any party counted) and
/// bytes sent by each party.
pub fn layer_cost_table(net: &Net, costs: &[CostTable; 3], phase: &str, other: &[&str]) -> String {
    let mut rows: Vec<(String, [u64; 3], u64)> = Vec::new();
    let mut add = |label: String, path: String| {
        let c: Vec<_> = costs.iter().map(|t| t.subtree(&path)).collect();
        rows.push((
            label,
            [c[0].bytes_sent, c[1].bytes_sent, c[2].bytes_sent],
            c.iter().map(|c| c.rounds).max().unwrap_or(0),
        ));
    };
    for (i, l) in net.layers.iter().enumerate() {
        let name = layer_name(i, l);
        add(format!("{name}  {}", l.describe()), format!("{phase}/{name}"));
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
