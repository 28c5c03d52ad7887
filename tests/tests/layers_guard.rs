//! The overflow guard (`Model::guard`, `triad ... --guard`) on LeNet.
//!
//! A LeNet whose first convolution's bias is `1e7` loads (the encoding limit is about
//! `4e12`) and, without the guard, runs to the end with logits wrong by millions: the
//! first layer's products pass `2^62` and wrap. With the guard every party stops with
//! `Error::OutOfRange` naming that node, and the twin stops at the same node. On the
//! ordinary LeNet the guard passes forward and backward and changes nothing but the
//! cost: its bytes and rounds are printed (BENCHMARKS.md records them).
#![allow(clippy::unwrap_used)]

use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, Graph, Guard, Model, Plain, Pooling, Sgd};
use triad_sharing::Error;
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];
const BATCH: usize = 2;

fn digits() -> (Vec<f64>, Vec<f64>) {
    let m = Mnist::bundled().unwrap();
    let x = (0..BATCH).flat_map(|i| m.train.image_f64(i)).collect();
    (x, one_hot(&m.train.labels[..BATCH], 10))
}

/// LeNet's weights with the first convolution's bias set to `bias`.
fn weights(net: &Graph, bias: f64) -> Vec<Vec<f64>> {
    let mut w = net.init_weights(9);
    w[1].iter_mut().for_each(|v| *v = bias);
    w
}

fn guard() -> Option<Guard> {
    Guard::for_frac_bits(20)
}

/// Each party's outcome: the opened outputs (`Some` at party 0), or the error it stopped with.
type Outcome = Result<Option<Vec<f64>>, Error>;

/// Private inference (or a training step, returning the probabilities): each party's
/// outcome and the bytes party 0 sent.
fn private(net: &Graph, w: &[Vec<f64>], guard: Option<Guard>, train: bool) -> ([Outcome; 3], u64) {
    let (x, y) = digits();
    let out = triad_tests::parties::in_process(4, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, net, P0, owner.then_some(w))?;
        m.guard = guard;
        p.net.reset_costs();
        let xs = p.input(P0, owner.then_some(&x[..]), &[BATCH, 1, 28, 28])?;
        let r = if train {
            let ys = p.input(P0, owner.then_some(&y[..]), &[BATCH, 10])?;
            m.train_step(p, xs, &ys, &Sgd { lr: 0.05, momentum: 0.9, weight_decay: 5e-4 })
                .and_then(|probs| p.open(P0, &probs))
        } else {
            m.forward(p, xs).and_then(|z| p.open(P0, &z))
        };
        Ok((r, p.net.costs().total().bytes_sent))
    })
    .unwrap();
    let bytes = out[0].1;
    let [a, b, c] = out;
    ([a.0, b.0, c.0], bytes)
}

fn twin(net: &Graph, w: &[Vec<f64>], guard: Option<Guard>) -> Result<Vec<f64>, Error> {
    let b = Plain;
    let mut m = Model::new(&b, net, P0, Some(w)).unwrap();
    m.guard = guard;
    let (x, _) = digits();
    m.forward(&b, b.input(P0, Some(&x), &[BATCH, 1, 28, 28]).unwrap()).map(|t| t.data)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn guard_stops_every_party_at_the_layer_that_overflows() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w = weights(&net, 1e7);
    let first = net.nodes[1].name.clone();

    // Without the guard: exit 0, logits wrong by millions.
    let (plain, _) = private(&net, &w, None, false);
    let got = plain[0].as_ref().unwrap().clone().unwrap();
    let want = twin(&net, &w, None).unwrap();
    let err = max_diff(&got, &want);
    println!("without the guard: logits off by {err:.3e}");
    assert!(err > 1e3, "the wrap-around this test is about did not happen (off by {err})");

    // With it: every party stops, naming the first convolution's output.
    let (guarded, _) = private(&net, &w, guard(), false);
    for (i, r) in guarded.iter().enumerate() {
        match r {
            Err(Error::OutOfRange { at, .. }) => {
                assert!(at.contains(&first) && at.contains("output"), "party {i} names {at}, not {first}'s output")
            }
            other => panic!("party {i}: expected the guard to stop the run, got {other:?}"),
        }
    }
    println!("with the guard: {}", guarded[0].as_ref().unwrap_err());
    // The twin stops at the same node.
    match twin(&net, &w, guard()) {
        Err(Error::OutOfRange { at, .. }) => assert!(at.contains(&first), "the twin stopped at {at}"),
        other => panic!("the twin did not stop: {other:?}"),
    }
}

#[test]
fn guard_passes_an_ordinary_lenet_forward_and_training_step() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w = net.init_weights(9);
    let want = twin(&net, &w, guard()).unwrap();
    let (bare, bytes_bare) = private(&net, &w, None, false);
    let (guarded, bytes_guarded) = private(&net, &w, guard(), false);
    let got = guarded[0].as_ref().unwrap().clone().unwrap();
    assert!(max_diff(&got, &want) < 1e-3, "guarded logits off by {}", max_diff(&got, &want));
    assert!(bare[0].is_ok());
    println!(
        "LeNet inference, batch {BATCH}: {bytes_bare} bytes sent by party 0 without the guard, {bytes_guarded} with it ({:.2}x)",
        bytes_guarded as f64 / bytes_bare as f64
    );
    assert!(bytes_guarded > bytes_bare, "the guard sent nothing");

    let (bare, bytes_bare) = private(&net, &w, None, true);
    let (guarded, bytes_guarded) = private(&net, &w, guard(), true);
    assert!(bare[0].is_ok() && guarded.iter().all(|r| r.is_ok()), "{:?}", guarded[0]);
    println!(
        "LeNet training step, batch {BATCH}: {bytes_bare} bytes sent by party 0 without the guard, {bytes_guarded} with it ({:.2}x)",
        bytes_guarded as f64 / bytes_bare as f64
    );
}

#[test]
fn the_guard_bound_follows_the_fractional_bits() {
    assert_eq!(Guard::for_frac_bits(20), Some(Guard { log2_bound: 21 }));
    assert_eq!(Guard::for_frac_bits(16), Some(Guard { log2_bound: 29 }));
    assert_eq!(Guard::for_frac_bits(30), Some(Guard { log2_bound: 1 }));
    assert_eq!(Guard::for_frac_bits(31), None);
}
