//! Know your model's fixed-point range before running it: magnitude bounds propagated
//! through the graph from the plaintext weights and a bound on the inputs, and a warning
//! for every node whose bound threatens the range.
//!
//! **The limit.** A fixed-point product multiplies two encodings (`f` fractional bits
//! each) into `t = Σ x̃·ỹ` with `2f` fractional bits, and the layers truncate it with the
//! wrap-free truncation (`triad_sharing::Rounding::WrapFree`), exact for `|t| < 2^62`
//! (`triad-sharing`'s `truncate_wrap_free`; `triad-fixed`'s range section: an encoding
//! stays below `2^62` so that a sum of two is below `2^63`). In real units: a product
//! (or a sum of products: a convolution's or linear layer's dot product, before its bias)
//! must stay below `2^(62 - 2f)`, `2^22 ≈ 4.19e6` for `f = 20`. A value itself must stay
//! below `2^(62 - f)` (`4.4e12`). The approximations have domains of their own
//! (`triad-approx`): sigmoid `|x| ≤ 512`, tanh `|x| ≤ 256`, softmax a spread of at most
//! 512, and batch norm's inverse square root `var + eps` in `[0.1, 150]`.
//!
//! **The bounds.** `B(input)` is the given input bound; a convolution or linear layer
//! gives `max over outputs o of |b_o| + Σ_i |w_oi|·B(x)` (its product bound is the sum
//! alone); pooling, ReLU, padding, flatten, reshape and concatenation keep the largest
//! input bound; add and sub add the bounds; a constant or tensor added adds its largest
//! magnitude, one multiplied multiplies it; batch norm at inference is folded to
//! `a x + c` with `a = γ / sqrt(var + eps)`, `c = β - μ a` per channel, so it gives
//! `max_c |c_c| + |a_c|·B(x)`; sigmoid and softmax give 1, tanh 1. The bounds are worst
//! cases (every term at its bound with aligned signs): a warning says the range *may* be
//! exceeded, not that it is. They cover inference and the forward pass of training;
//! training moves the weights, so a model near the limit should be checked again.

use triad_layers::{Graph, Op, BN_EPS};

use crate::error::{Error, Result};

/// A node whose bound threatens the fixed-point range.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RangeWarning {
    /// The node's name.
    pub node: String,
    /// [`Op::describe`].
    pub what: String,
    /// What may leave the range, with the bound and the limit.
    pub detail: String,
}

impl RangeWarning {
    /// The warning as one line (`warning: node ...`).
    pub fn line(&self) -> String {
        format!("warning: node {} ({}): {}", self.node, self.what, self.detail)
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `max over rows of (|bias_o| + Σ|row_o|·bound)` and `max over rows of Σ|row_o|·bound`.
fn dot_bounds(w: &[f64], rows: usize, bias: Option<&[f64]>, bound: f64) -> (f64, f64) {
    let len = w.len() / rows.max(1);
    let mut out = (0.0f64, 0.0f64);
    for (o, row) in w.chunks(len.max(1)).enumerate() {
        let p = row.iter().map(|x| x.abs()).sum::<f64>() * bound;
        let b = bias.and_then(|b| b.get(o)).map_or(0.0, |b| b.abs());
        out = (out.0.max(b + p), out.1.max(p));
    }
    out
}

/// Every node's output bound, and the warnings, for inputs bounded by `input_bound` and
/// `weights` in state order ([`Graph::tensors`]).
pub fn check(g: &Graph, weights: &[Vec<f64>], input_bound: f64, frac_bits: u32) -> Result<Vec<RangeWarning>> {
    if weights.len() != g.tensors().len() {
        return Err(Error::Usage(format!(
            "{} weights for the {} tensors of {}",
            weights.len(),
            g.tensors().len(),
            g.name
        )));
    }
    let product_limit = 2f64.powi(62 - 2 * frac_bits as i32);
    let value_limit = 2f64.powi(62 - frac_bits as i32);
    let mut bounds: Vec<f64> = Vec::with_capacity(g.nodes.len());
    let mut warnings = Vec::new();
    let mut cursor = 0usize;
    for n in &g.nodes {
        let k = n.op.param_shapes().len() + n.op.buffer_shapes().len();
        let t = &weights[cursor..cursor + k];
        cursor += k;
        let ins: Vec<f64> = n.inputs.iter().map(|&i| bounds.get(i).copied().unwrap_or(0.0)).collect();
        let x = ins.iter().fold(0.0f64, |m, &b| m.max(b));
        let mut issues: Vec<String> = Vec::new();
        let product = |p: f64, issues: &mut Vec<String>| {
            if p >= product_limit {
                issues.push(format!(
                    "a product before truncation may reach {p:.3e}, beyond the {product_limit:.3e} (2^{}) that {frac_bits} fractional bits allow",
                    62 - 2 * frac_bits as i32
                ));
            }
        };
        let out = match &n.op {
            Op::Input { .. } => input_bound,
            Op::Conv(c) => {
                let (o, p) = dot_bounds(&t[0], c.out_c, t.get(1).map(Vec::as_slice), x);
                product(p, &mut issues);
                o
            }
            Op::Linear { out, .. } => {
                let (o, p) = dot_bounds(&t[0], *out, t.get(1).map(Vec::as_slice), x);
                product(p, &mut issues);
                o
            }
            Op::AvgPool(_) | Op::GlobalAvgPool { .. } => {
                product(x, &mut issues);
                x
            }
            Op::MaxPool(_) | Op::Relu | Op::Flatten | Op::Reshape { .. } | Op::Concat { .. } | Op::Pad { .. } => x,
            Op::Sigmoid | Op::Tanh | Op::Softmax => {
                let (domain, what) = match n.op {
                    Op::Sigmoid => (512.0, "|x|"),
                    Op::Tanh => (256.0, "|x|"),
                    _ => (256.0, "half the spread of x"),
                };
                if x > domain {
                    issues.push(format!("{what} may reach {x:.3e}, beyond the approximation's domain ({domain})"));
                }
                1.0
            }
            Op::BatchNorm { .. } => {
                let (gamma, beta, mean, var) = (&t[0], &t[1], &t[2], &t[3]);
                let mut o = 0.0f64;
                let mut p = 0.0f64;
                for c in 0..gamma.len() {
                    let v = var[c] + BN_EPS;
                    if !(0.1..=150.0).contains(&v) {
                        issues.push(format!(
                            "channel {c}: running variance + eps {v:.3e} is outside the inverse square root's domain [0.1, 150]"
                        ));
                    }
                    let a = gamma[c] / v.max(f64::MIN_POSITIVE).sqrt();
                    o = o.max((beta[c] - mean[c] * a).abs() + a.abs() * x);
                    p = p.max(a.abs() * x);
                }
                product(p, &mut issues);
                o
            }
            Op::Add | Op::Sub => ins.iter().sum(),
            Op::AddConst(c) => x + max_abs(&c.values),
            Op::MulConst(c) => {
                product(x * max_abs(&c.values), &mut issues);
                x * max_abs(&c.values)
            }
            Op::AddBuffer { .. } => x + max_abs(&t[0]),
            Op::MulBuffer { .. } => {
                product(x * max_abs(&t[0]), &mut issues);
                x * max_abs(&t[0])
            }
        };
        if out >= value_limit {
            issues.push(format!("its output may reach {out:.3e}, beyond the {value_limit:.3e} that can be encoded"));
        }
        if !issues.is_empty() {
            warnings.push(RangeWarning { node: n.name.clone(), what: n.op.describe(), detail: issues.join("; ") });
        }
        bounds.push(out);
    }
    Ok(warnings)
}

/// The largest magnitude of the owner's inputs (the bound `infer` and `train` check with).
pub fn input_bound(x: &[f64]) -> f64 {
    max_abs(x)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use triad_layers::{ConvSpec, GraphBuilder};

    /// conv (Σ|w| = 4·0.5 = 2 per channel, bias 3) -> relu -> batch norm (a = 2, c = 1)
    /// -> flatten -> linear (Σ|w| = 16·0.25 = 4, bias 1), inputs bounded by 10.
    fn graph() -> (Graph, Vec<Vec<f64>>) {
        let mut g = GraphBuilder::new("t", &[1, 3, 3]);
        let c = g.node("c", Op::Conv(ConvSpec::square(1, 2, 2, 1, 0, true)), &[0]).unwrap();
        let r = g.node("r", Op::Relu, &[c]).unwrap();
        let b = g.node("b", Op::BatchNorm { c: 2 }, &[r]).unwrap();
        let f = g.node("f", Op::Flatten, &[b]).unwrap();
        g.node("l", Op::Linear { inp: 8, out: 1, bias: true }, &[f]).unwrap();
        let var = 4.0 - BN_EPS;
        let w = vec![
            vec![0.5; 8],
            vec![3.0, -1.0],
            vec![4.0; 2],
            vec![1.0 + 2.0 * 5.0; 2],
            vec![5.0; 2],
            vec![var; 2],
            vec![0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25],
            vec![1.0],
        ];
        (g.finish().unwrap(), w)
    }

    #[test]
    fn bounds_follow_the_graph() {
        let (g, w) = graph();
        // conv: 3 + 2·10 = 23; batch norm: a = 4/2 = 2, c = 11 - 5·2 = 1: 1 + 2·23 = 47;
        // linear product: 8·0.25·47 = 94. Below 2^22 at f = 20: no warning.
        assert!(check(&g, &w, 10.0, 20).unwrap().is_empty());
        // At f = 28 the product limit is 2^6 = 64 < 94: the linear layer only (the
        // convolution's 20 and the batch norm's 46 stay below).
        let warn = check(&g, &w, 10.0, 28).unwrap();
        assert_eq!(warn.len(), 1, "{warn:?}");
        assert_eq!(warn[0].node, "l");
        assert!(warn[0].detail.contains("9.400e1"), "{}", warn[0].detail);
        // A variance outside the inverse square root's domain is named by channel.
        let (g, mut w) = graph();
        w[5][1] = 1e3;
        let warn = check(&g, &w, 10.0, 20).unwrap();
        assert!(warn[0].node == "b" && warn[0].detail.contains("channel 1"), "{warn:?}");
    }
}
