//! Two LeNet SGD steps with momentum and weight decay against an independent reference:
//! PyTorch in float64 (`tools/layer-ref/make.py`, `tests/fixtures/layers/lenet.json`; CI
//! only reads it), from triad's initial weights (`init_weights(2024)`, recomputed by the
//! script) on a fixed synthetic batch of 4.
//!
//! Checked: the loss of each step and the weights after it (64 spread entries of each
//! tensor, all of a small one, and the dot product of its change with a fixed ±1 vector,
//! which any wrong element moves). The twin matches to `1e-9`; the private model's entries
//! within `LENET_PRIVATE_BOUND`. `torch.optim.SGD`'s convention is triad's `Sgd`'s:
//! `d = g + λw` on every parameter (biases too), `v = μv + d` (`v = d` at first),
//! `w -= lr·v`; the loss is the batch mean.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, Model, Plain, Pooling, Sgd, SplitMix};
use triad_sharing::Result;
use triad_tests::reference::{field, fixture, floats, max_diff, usizes};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];
/// The twin against PyTorch: both float64, only the order of the sums differs.
const TWIN_BOUND: f64 = 1e-9;
/// The private LeNet's weights after two steps (lr 0.05). The worst gradient is the first
/// conv's bias, a sum over `4 · 24 · 24 = 2304` positions each within `2^-20`: at most
/// `2.2e-3` if every error had one sign, typically `sqrt(2304) · 2^-20 ≈ 5e-5`; times the
/// learning rate and the momentum's `1 + 0.9` over two steps, at most `2e-4`, typically
/// `5e-6`. Measured `4.5e-6`.
const LENET_PRIVATE_BOUND: f64 = 5e-5;

/// A tensor's summary in `lenet.json`: values at indices, and the dot product of its
/// change with the ±1 vector from `SplitMix(1000 + i)`.
fn check_summary(who: &str, what: &str, i: usize, s: &Value, w: &[f64], w0: &[f64], bound: f64) -> f64 {
    let idx = usizes(&s["indices"]);
    let want = floats(&s["values"]);
    let got: Vec<f64> = idx.iter().map(|&k| w[k]).collect();
    let d = max_diff(&want, &got);
    assert!(d <= bound, "{who} {what} tensor {i}: entries differ from PyTorch by {d} (bound {bound})");
    if who == "twin" {
        let mut r = SplitMix(1000 + i as u64);
        let dot: f64 = w.iter().zip(w0).map(|(a, b)| if r.next_u64() >> 63 == 1 { a - b } else { b - a }).sum();
        let dd = (dot - s["change_dot"].as_f64().unwrap()).abs();
        assert!(dd <= TWIN_BOUND, "{who} {what} tensor {i}: the change's dot product differs by {dd}");
    }
    d
}

fn lenet_batch(v: &Value) -> (Vec<f64>, Vec<f64>, usize) {
    let seed = v["seed"].as_u64().unwrap();
    let n = field(v, "batch");
    let mut rx = SplitMix(seed + 1);
    let x: Vec<f64> = (0..n * 784).map(|_| rx.unit()).collect();
    let mut ry = SplitMix(seed + 2);
    let labels: Vec<u8> = (0..n).map(|_| (ry.next_u64() % 10) as u8).collect();
    assert_eq!(labels, usizes(&v["labels"]).into_iter().map(|l| l as u8).collect::<Vec<_>>());
    (x, one_hot(&labels, 10), n)
}

fn lenet_sgd(v: &Value) -> Sgd {
    Sgd {
        lr: v["lr"].as_f64().unwrap(),
        momentum: v["momentum"].as_f64().unwrap(),
        weight_decay: v["weight_decay"].as_f64().unwrap(),
    }
}

/// A training step's loss and the weights after it, opened to party 0 (`None` elsewhere).
type Step = (Option<f64>, Option<Vec<Vec<f64>>>);

/// Two steps on backend `b`: the loss of each (opened) and the weights after each.
fn lenet_steps<B: Backend>(b: &B, mine: bool, v: &Value) -> Result<Vec<Step>> {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w0 = net.init_weights(v["seed"].as_u64().unwrap());
    let (x, y, n) = lenet_batch(v);
    let mut m = Model::new(b, &net, P0, mine.then_some(&w0[..]))?;
    let mut out = Vec::new();
    for _ in 0..v["steps"].as_array().unwrap().len() {
        let xs = b.input(P0, mine.then_some(&x[..]), &[n, 1, 28, 28])?;
        let ys = b.input(P0, mine.then_some(&y[..]), &[n, 10])?;
        let probs = m.train_step(b, xs, &ys, &lenet_sgd(v))?;
        // The loss from the probabilities in float64 (on shares the log is approximate).
        let p = b.open(P0, &probs)?;
        let loss = p.map(|p| {
            -(0..n).map(|r| (0..10).map(|k| p[r * 10 + k] * y[r * 10 + k]).sum::<f64>().ln()).sum::<f64>() / n as f64
        });
        out.push((loss, m.open_weights(b, P0)?));
    }
    Ok(out)
}

fn check_lenet(who: &str, v: &Value, steps: Vec<Step>, bound: f64, loss_bound: f64) {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w0 = net.init_weights(v["seed"].as_u64().unwrap());
    let want = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len());
    for (s, ((loss, w), ws)) in steps.into_iter().zip(want).enumerate() {
        let (loss, w) = (loss.unwrap(), w.unwrap());
        let dl = (loss - ws["loss"].as_f64().unwrap()).abs();
        println!("lenet {who} step {s}: loss {loss:.6} (PyTorch {:.6}, error {dl:.2e})", ws["loss"].as_f64().unwrap());
        assert!(dl <= loss_bound, "{who} step {s}: loss differs by {dl}");
        let params = ws["params"].as_array().unwrap();
        assert_eq!(w.len(), params.len());
        let mut worst: f64 = 0.0;
        for (i, (t, s_i)) in w.iter().zip(params).enumerate() {
            assert_eq!(t.len(), w0[i].len());
            worst = worst.max(check_summary(who, &format!("step {s}"), i, s_i, t, &w0[i], bound));
        }
        println!("lenet {who} step {s}: weights max error {worst:.2e} (bound {bound:.0e})");
    }
}

#[test]
fn lenet_initial_weights_are_the_fixtures() {
    let v = fixture("lenet.json");
    let w0 = lenet(Activation::Relu, Pooling::Avg).init_weights(v["seed"].as_u64().unwrap());
    let init = v["init"].as_array().unwrap();
    assert_eq!(w0.len(), init.len());
    for (i, (w, s)) in w0.iter().zip(init).enumerate() {
        check_summary("twin", "initial", i, s, w, &vec![0.0; w.len()], 1e-15);
    }
}

#[test]
fn lenet_sgd_steps_on_the_twin_match_pytorch() {
    let v = fixture("lenet.json");
    let steps = lenet_steps(&Plain, true, &v).unwrap();
    check_lenet("twin", &v, steps, TWIN_BOUND, TWIN_BOUND);
}

#[test]
fn lenet_sgd_steps_on_shares_match_pytorch_within_the_bound() {
    let v = fixture("lenet.json");
    let [steps, _, _] = triad_tests::parties::in_process(21, |p| lenet_steps(p, p.id == P0, &v)).unwrap();
    // The loss from the private probabilities: softmax within 1.5e-3 absolute.
    check_lenet("private", &v, steps, LENET_PRIVATE_BOUND, 1e-2);
}
