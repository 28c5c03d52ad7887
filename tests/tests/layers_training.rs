//! Private training smoke test: LeNet (ReLU, average pooling) on the bundled MNIST
//! digits, batch 8, a few SGD steps with secret images, labels and weights, next to the
//! plaintext twin trained from the same initial weights on the same batches.
//!
//! Asserts (1) the loss falls: the twin's cross-entropy, evaluated with the privately
//! trained weights (opened to party 0 only at the end) on the 48 digits trained on, is
//! below the loss of the initial weights; (2) the private and twin weights stay within
//! `WEIGHT_BOUND` of each other.
//!
//! The bound: each step moves a weight by `lr · g`, so after `s` steps the drift is about
//! `lr · s · (gradient error)`. Each product's truncation (wrap-free) is off by less than
//! one unit either way, zero-mean; the worst gradient is the first conv's bias, which sums
//! its upstream gradient over `8 · 24 · 24 = 4608` positions: at most
//! `4608 · 2^-20 ≈ 4.4e-3` per step if every error had the same sign, typically
//! `sqrt(4608)` units. With `lr = 0.1` and 6 steps the worst case is `2.6e-3`; softmax's
//! `1.5e-3` absolute error per probability, divided by the batch, adds about as much again
//! to the weight gradients. Measured: `7e-4` on the worst weight (the second linear
//! layer's bias), under `WEIGHT_BOUND = 1e-2`.
#![allow(clippy::unwrap_used)]

use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, Graph, Model, Plain, Pooling, Sgd};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];
const BATCH: usize = 8;
const STEPS: usize = 6;
const LR: f64 = 0.1;
const WEIGHT_BOUND: f64 = 1e-2;

fn batch(m: &Mnist, start: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::new();
    for i in start..start + n {
        x.extend(m.train.image_f64(i));
    }
    (x, one_hot(&m.train.labels[start..start + n], 10))
}

/// The twin's loss with weights `w` on `n` digits from `start`.
fn twin_loss(net: &Graph, w: &[Vec<f64>], m: &Mnist, start: usize, n: usize) -> f64 {
    let b = Plain;
    let mut model = Model::new(&b, net, P0, Some(w)).unwrap();
    let (x, y) = batch(m, start, n);
    let logits = model.forward(&b, b.input(P0, Some(&x), &[n, 1, 28, 28]).unwrap()).unwrap();
    let p = b.softmax(&logits).unwrap();
    let loss = triad_layers::xent_loss(&b, &p, &b.input(P0, Some(&y), &[n, 10]).unwrap()).unwrap();
    loss.data[0]
}

#[test]
fn lenet_private_training_lowers_the_loss_and_tracks_the_twin() {
    let m = Mnist::bundled().unwrap();
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w0 = net.init_weights(2024);
    let opt = Sgd::new(LR);

    // The twin.
    let b = Plain;
    let mut twin = Model::new(&b, &net, P0, Some(&w0)).unwrap();
    for s in 0..STEPS {
        let (x, y) = batch(&m, s * BATCH, BATCH);
        let x = b.input(P0, Some(&x), &[BATCH, 1, 28, 28]).unwrap();
        let y = b.input(P0, Some(&y), &[BATCH, 10]).unwrap();
        twin.train_step(&b, x, &y, &opt).unwrap();
    }
    let w_twin = twin.open_weights(&b, P0).unwrap().unwrap();

    // The private model: party 0 holds the data, labels and initial weights.
    let out = triad_tests::parties::in_process(3, |p| {
        let owner = p.id == P0;
        let mut model = Model::new(p, &net, P0, owner.then_some(&w0[..]))?;
        for s in 0..STEPS {
            let (x, y) = batch(&m, s * BATCH, BATCH);
            let x = p.input(P0, owner.then_some(&x[..]), &[BATCH, 1, 28, 28])?;
            let y = p.input(P0, owner.then_some(&y[..]), &[BATCH, 10])?;
            model.train_step(p, x, &y, &opt)?;
        }
        model.open_weights(p, P0)
    })
    .unwrap();
    let [w_priv, _, _] = out;
    let w_priv = w_priv.unwrap();

    let mut worst: f64 = 0.0;
    assert_eq!(w_priv.len(), w_twin.len(), "the private and twin models have different tensors");
    for (i, (a, b)) in w_priv.iter().zip(&w_twin).enumerate() {
        assert_eq!(a.len(), b.len(), "tensor {i}");
        let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        println!("parameter {i} ({} values): max |private - twin| = {d:.3e}", a.len());
        worst = worst.max(d);
    }
    let (l0, lt, lp) = (
        twin_loss(&net, &w0, &m, 0, STEPS * BATCH),
        twin_loss(&net, &w_twin, &m, 0, STEPS * BATCH),
        twin_loss(&net, &w_priv, &m, 0, STEPS * BATCH),
    );
    println!("loss on the {} training digits:", STEPS * BATCH);
    println!(" initial {l0:.4}, twin {lt:.4}, private {lp:.4}");
    println!("max |private - twin| weight after {STEPS} steps: {worst:.3e} (bound {WEIGHT_BOUND:.0e})");
    assert!(lp < l0, "private training did not lower the loss: {l0} -> {lp}");
    assert!(worst <= WEIGHT_BOUND, "weights drifted by {worst}");
}
