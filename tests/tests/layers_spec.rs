//! The layers against their specification: a small network (convolution, ReLU, average
//! pooling, flatten, linear, ReLU, linear) runs a forward pass, a backward pass from a
//! given output gradient and an SGD step with momentum and weight decay, on shares (three
//! parties in process) and on the enclosure backend built from `triad_spec::layers`
//! (`triad_tests::enclosure`), the same layer code on both. Every opened private value —
//! the output, each parameter gradient, each updated parameter and momentum buffer — must
//! lie inside its interval. The intervals are narrow (their widths are printed and
//! bounded), so the check has teeth: one unit outside is a failure.
#![allow(clippy::unwrap_used)]

use triad_fixed::FixedConfig;
use triad_layers::{Backend, ConvSpec, Graph, Model, Op, PoolSpec, Sgd, SplitMix};
use triad_tests::enclosure::{ETensor, Enclosure};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];

fn uniform(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut r = SplitMix(seed);
    (0..n).map(|_| (r.unit() * 2.0 - 1.0) * scale).collect()
}

fn small_net() -> Graph {
    Graph::chain(
        "conv-relu-avgpool-linear-relu-linear",
        &[1, 6, 6],
        vec![
            Op::Conv(ConvSpec::square(1, 2, 3, 1, 1, true)),
            Op::Relu,
            Op::AvgPool(PoolSpec::square(2, 2, 0)),
            Op::Flatten,
            Op::Linear { inp: 18, out: 5, bias: true },
            Op::Relu,
            Op::Linear { inp: 5, out: 3, bias: true },
        ],
    )
    .unwrap()
}

/// Output, gradients, parameters and momentum buffers after the step, in that order.
fn collect<B: Backend>(b: &B, net: &Graph, w: &[Vec<f64>], x: &[f64], g: &[f64], batch: usize) -> Vec<B::T> {
    let opt = Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
    let mut m = Model::new(b, net, P0, Some(w)).unwrap();
    let xs: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let y = m.forward(b, b.input(P0, Some(x), &xs).unwrap()).unwrap();
    m.backward(b, b.input(P0, Some(g), &[batch, 3]).unwrap()).unwrap();
    let mut out = vec![y];
    out.extend(m.params().iter().map(|p| b.copy(p.grad.as_ref().unwrap()).unwrap()));
    // Two steps, so the second one uses the momentum buffers.
    m.sgd_step(b, &opt).unwrap();
    m.sgd_step(b, &opt).unwrap();
    out.extend(m.params().iter().map(|p| b.copy(&p.value).unwrap()));
    out.extend(m.params().iter().map(|p| b.copy(p.velocity.as_ref().unwrap()).unwrap()));
    out
}

#[test]
fn private_forward_backward_and_sgd_lie_in_the_spec_enclosures() {
    let net = small_net();
    let batch = 2;
    let w = net.init_weights(5);
    let x = uniform(batch * 36, 6, 1.0);
    let g = uniform(batch * 3, 7, 0.5);
    let fixed = FixedConfig::default();
    let spec = collect(&Enclosure { fixed }, &net, &w, &x, &g, batch);
    let private = triad_tests::parties::in_process(13, |p| {
        let owner = p.id == P0;
        // The private run needs the data on the owner only.
        let opt = Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
        let mut m = Model::new(p, &net, P0, owner.then_some(&w[..]))?;
        let xs = [batch, 1, 6, 6];
        let y = m.forward(p, p.input(P0, owner.then_some(&x[..]), &xs)?)?;
        m.backward(p, p.input(P0, owner.then_some(&g[..]), &[batch, 3])?)?;
        let mut out = vec![p.open(P0, &y)?];
        for prm in m.params() {
            out.push(p.open(P0, prm.grad.as_ref().unwrap())?);
        }
        m.sgd_step(p, &opt)?;
        m.sgd_step(p, &opt)?;
        for prm in m.params() {
            out.push(p.open(P0, &prm.value)?);
        }
        for prm in m.params() {
            out.push(p.open(P0, prm.velocity.as_ref().unwrap())?);
        }
        Ok(out)
    })
    .unwrap();
    let [opened, _, _] = private;
    assert_eq!(opened.len(), spec.len());
    let names = ["output", "grad", "param after 2 steps", "velocity"];
    let per = (spec.len() - 1) / 3;
    for (k, (enc, got)) in spec.iter().zip(opened).enumerate() {
        let what = if k == 0 { names[0] } else { names[1 + (k - 1) / per] };
        let units: Vec<i128> = got.unwrap().iter().map(|v| (v * fixed.scale()).round() as i128).collect();
        let width = enc.max_width();
        println!("tensor {k} ({what}): widest interval {width} units");
        if let Some((i, v, (lo, hi))) = ETensor::first_outside(enc, &units) {
            panic!("tensor {k} ({what}), element {i}: private {v} outside the spec's [{lo}, {hi}]");
        }
        // Narrow enough to mean something (measured: at most 55 units, the conv bias
        // gradient and its momentum, which sum 72 positions' one-unit uncertainties).
        assert!(width <= 100, "tensor {k} ({what}): interval {width} units wide");
    }
}
