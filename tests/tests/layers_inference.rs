//! Private inference of whole models (batch 1, random inputs of the dataset's shape, the
//! paper's timing setting) against the plaintext twin from the same weights: the logits
//! opened to the model owner must match within a documented bound. The large models run in
//! `cargo run --release -p triad-layers --example infer_models` (see BENCHMARKS.md).
#![allow(clippy::unwrap_used)]

use triad_layers::zoo::{alexnet, lenet, Dataset};
use triad_layers::{Activation, Backend, Graph, Model, Plain, Pooling, SplitMix};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];

/// Largest |private - twin| logit over one random input.
fn logit_gap(net: &Graph, seed: u64) -> f64 {
    let dims: Vec<usize> = std::iter::once(1).chain(net.input().iter().copied()).collect();
    let mut rng = SplitMix(seed);
    let x: Vec<f64> = (0..dims.iter().product::<usize>()).map(|_| rng.unit()).collect();
    let w = net.init_weights(seed);
    let out = triad_tests::parties::in_process(seed, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, net, P0, owner.then_some(&w[..]))?;
        m.train = false;
        let xs = p.input(P0, owner.then_some(&x[..]), &dims)?;
        let logits = m.forward(p, xs)?;
        p.open(P0, &logits)
    })
    .unwrap();
    let private = out[0].clone().unwrap();
    assert!(out[1].is_none() && out[2].is_none(), "only the owner sees the logits");
    let mut twin = Model::new(&Plain, net, P0, Some(&w)).unwrap();
    twin.train = false;
    let t = twin.forward(&Plain, Plain.input(P0, Some(&x), &dims).unwrap()).unwrap();
    let t = Plain.open(P0, &t).unwrap().unwrap();
    assert_eq!(private.len(), t.len());
    let gap = private.iter().zip(&t).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("{}: max |private - twin| logit = {gap:.3e}", net.name);
    gap
}

/// ReLU networks: exact comparisons, so only the fixed-point rounding of the products
/// (about 2^-20 per truncation, growing slowly with depth) separates the logits.
const RELU_BOUND: f64 = 1e-4;
/// Tanh networks also carry the approximation's error (about 1e-3 per activation).
const TANH_BOUND: f64 = 2e-2;

#[test]
fn lenet_relu_avgpool_logits_match_the_twin() {
    let gap = logit_gap(&lenet(Activation::Relu, Pooling::Avg), 1);
    assert!(gap <= RELU_BOUND, "gap {gap}");
}

#[test]
fn lenet_tanh_maxpool_logits_match_the_twin() {
    let gap = logit_gap(&lenet(Activation::Tanh, Pooling::Max), 2);
    assert!(gap <= TANH_BOUND, "gap {gap}");
}

#[test]
fn alexnet_cifar10_logits_match_the_twin() {
    let gap = logit_gap(&alexnet(Dataset::Cifar10, Pooling::Avg), 3);
    assert!(gap <= RELU_BOUND, "gap {gap}");
}
