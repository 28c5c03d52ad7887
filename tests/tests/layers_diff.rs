//! Differential tests of the layers: each small network runs forward and backward on
//! shares (three parties in process, test keys) and on the float64 twin from the same
//! weights, input and output gradient; the reconstructed outputs and every parameter
//! gradient must agree within a documented bound.
//!
//! The bounds: each fixed-point product is off by less than `2^-20 ≈ 9.5e-7` (wrap-free
//! truncation: floor or one more) and encoding by `2^-21`; a layer of fan-in `K` with weights below
//! `1/sqrt(K)` carries an input error `ε` to about `sqrt(K)·ε + 2e-6`. With inputs in
//! `[-1, 1]` and at most three products deep, the linear layers stay below `1e-5`; the
//! nonlinear approximations dominate where present (tanh: `2e-3` absolute per element,
//! then multiplied by the next layer's gain; inverse square root in batch norm: `1e-2`
//! relative). Gradients that sum over positions (biases: `N·OH·OW` terms) are bounded by
//! the per-term error times the number of terms (the worst case, all errors of one sign;
//! they are zero-mean, so the measured error is far smaller). The bounds were set when
//! truncation was ABY3's (twice the error per product) and still hold; the measured errors
//! are printed by `--nocapture`. `tests/layers_spec.rs` checks exact enclosures instead.
#![allow(clippy::unwrap_used)]

use triad_layers::{Backend, Chain, ConvSpec, Graph, Model, Op, Plain, PoolSpec, SplitMix};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];

fn uniform(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut r = SplitMix(seed);
    (0..n).map(|_| (r.unit() * 2.0 - 1.0) * scale).collect()
}

/// Output, then every parameter gradient (parameter order).
type Run = (Vec<f64>, Vec<Vec<f64>>);

fn plain_run(net: &Graph, w: &[Vec<f64>], x: &[f64], xs: &[usize], g: &[f64], gs: &[usize]) -> Run {
    let b = Plain;
    let mut m = Model::new(&b, net, P0, Some(w)).unwrap();
    let y = m.forward(&b, b.input(P0, Some(x), xs).unwrap()).unwrap();
    m.backward(&b, b.input(P0, Some(g), gs).unwrap()).unwrap();
    let grads = m.params().iter().map(|p| p.grad.as_ref().unwrap().data.clone()).collect();
    (y.data, grads)
}

fn private_run(net: &Graph, w: &[Vec<f64>], x: &[f64], xs: &[usize], g: &[f64], gs: &[usize]) -> Run {
    let out = triad_tests::parties::in_process(11, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, net, P0, owner.then_some(w))?;
        let xin = p.input(P0, owner.then_some(x), xs)?;
        let y = m.forward(p, xin)?;
        m.backward(p, p.input(P0, owner.then_some(g), gs)?)?;
        let y = p.open(P0, &y)?;
        let mut grads = Vec::new();
        for prm in m.params() {
            grads.push(p.open(P0, prm.grad.as_ref().unwrap())?);
        }
        Ok((y, grads))
    })
    .unwrap();
    let [(y, grads), _, _] = out;
    (y.unwrap(), grads.into_iter().map(Option::unwrap).collect())
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Runs `net` on a batch both ways; asserts the output within `fwd` and every gradient
/// within `grad` (absolute).
fn check(net: &Graph, batch: usize, seed: u64, fwd: f64, grad: f64) {
    let w = net.init_weights(seed);
    let mut xs = vec![batch];
    xs.extend(net.input());
    let mut gs = vec![batch];
    gs.extend(net.out_dims().unwrap());
    let x = uniform(xs.iter().product(), seed + 1, 1.0);
    let g = uniform(gs.iter().product(), seed + 2, 0.5);
    let (py, pg) = plain_run(net, &w, &x, &xs, &g, &gs);
    let (sy, sg) = private_run(net, &w, &x, &xs, &g, &gs);
    let dy = max_diff(&py, &sy);
    println!("{}: forward max |private - twin| = {dy:.3e} (bound {fwd:.1e})", net.name);
    assert!(dy <= fwd, "{}: forward differs by {dy}", net.name);
    assert_eq!(pg.len(), sg.len());
    for (i, (a, b)) in pg.iter().zip(&sg).enumerate() {
        let d = max_diff(a, b);
        println!("{}: gradient of parameter {i} ({} values): max diff {d:.3e} (bound {grad:.1e})", net.name, a.len());
        assert!(d <= grad, "{}: gradient {i} differs by {d}", net.name);
    }
}

fn net(name: &str, input: &[usize], layers: Vec<Op>) -> Graph {
    Graph::chain(name, input, layers).unwrap()
}

fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> Op {
    Op::Conv(ConvSpec::square(in_c, out_c, k, stride, pad, true))
}

#[test]
fn linear_matches_twin() {
    let n = net("linear", &[3, 2, 2], vec![Op::Flatten, Op::Linear { inp: 12, out: 5, bias: true }]);
    // One product forward, two backward (fan-in 12, or batch 4 for dW): ~1e-6 each.
    check(&n, 4, 1, 1e-5, 1e-5);
}

#[test]
fn conv_then_linear_matches_twin() {
    let n = net(
        "conv-linear",
        &[2, 5, 5],
        vec![conv(2, 3, 3, 2, 1), Op::Flatten, Op::Linear { inp: 27, out: 4, bias: true }],
    );
    // Conv bias gradients sum the upstream gradient over N·OH·OW positions (27 here),
    // each off by up to ~2e-6; the bound assumes the worst case, all errors of one sign
    // (wrap-free rounding is zero-mean, so they usually cancel in part).
    check(&n, 3, 2, 2e-5, 27.0 * 4e-6);
}

#[test]
fn avgpool_matches_twin() {
    let n = net(
        "conv-avgpool-linear",
        &[1, 6, 6],
        vec![
            conv(1, 2, 3, 1, 1),
            Op::AvgPool(PoolSpec::square(2, 2, 0)),
            Op::Flatten,
            Op::Linear { inp: 18, out: 3, bias: true },
        ],
    );
    // Bias gradient: 2·6·6 = 72 positions, each through the pool's extra truncation.
    check(&n, 2, 3, 2e-5, 72.0 * 4e-6);
}

#[test]
fn relu_and_maxpool_match_twin() {
    let n = net(
        "conv-relu-maxpool-linear",
        &[1, 6, 6],
        vec![
            conv(1, 2, 3, 1, 1),
            Op::Relu,
            Op::MaxPool(PoolSpec::square(2, 2, 0)),
            Op::Flatten,
            Op::Linear { inp: 18, out: 3, bias: true },
        ],
    );
    // Exact comparisons: only the products' truncations remain (a tie or a value within
    // 1e-6 of zero could flip a bit; with random inputs that does not happen here).
    check(&n, 2, 4, 2e-5, 72.0 * 4e-6);
}

#[test]
fn tanh_matches_twin() {
    let n = net(
        "linear-tanh-linear",
        &[8],
        vec![Op::Linear { inp: 8, out: 6, bias: true }, Op::Tanh, Op::Linear { inp: 6, out: 3, bias: true }],
    );
    // tanh is within 2e-3 per element; the next layer (fan-in 6, |w| < 0.41) sums six.
    check(&n, 4, 5, 1e-2, 1e-2);
}

#[test]
fn batchnorm_residual_matches_twin() {
    let body = vec![
        Op::Conv(ConvSpec::square(2, 2, 3, 1, 1, false)),
        Op::BatchNorm { c: 2 },
        Op::Relu,
        Op::Conv(ConvSpec::square(2, 2, 1, 1, 0, false)),
    ];
    let mut c = Chain::new("residual-bn", &[2, 4, 4]);
    c.residual(body, vec![]);
    c.extend([Op::Relu, Op::Flatten, Op::Linear { inp: 32, out: 3, bias: true }]);
    let n = c.finish().unwrap();
    // Batch norm's inverse square root is within 1e-2 relative of the truth: x̂ (|x̂| ≲ 3)
    // carries up to ~3e-2, and downstream products scale that by their gains.
    check(&n, 4, 6, 5e-2, 5e-2);
}

/// Batch norm at inference: after a training pass has set the running statistics, two
/// inference passes (the first folds `γ / sqrt(var + eps)` and `β - μ·a` into a per-channel
/// affine map, the second reuses it) match the twin, and the second pass costs fewer
/// rounds than the first (no inverse square root).
#[test]
fn batchnorm_inference_folds_once_and_matches_twin() {
    let n = net(
        "conv-bn-relu-linear",
        &[2, 4, 4],
        vec![
            Op::Conv(ConvSpec::square(2, 3, 3, 1, 1, false)),
            Op::BatchNorm { c: 3 },
            Op::Relu,
            Op::Flatten,
            Op::Linear { inp: 48, out: 3, bias: true },
        ],
    );
    let w = n.init_weights(8);
    let xs = [4usize, 2, 4, 4];
    let x = uniform(xs.iter().product(), 9, 1.0);
    let b = Plain;
    let mut t = Model::new(&b, &n, P0, Some(&w)).unwrap();
    t.forward(&b, b.input(P0, Some(&x), &xs).unwrap()).unwrap();
    t.train = false;
    let want = t.forward(&b, b.input(P0, Some(&x), &xs).unwrap()).unwrap().data;
    let [(outs, rounds), _, _] = triad_tests::parties::in_process(12, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, &n, P0, owner.then_some(&w[..]))?;
        m.forward(p, p.input(P0, owner.then_some(&x[..]), &xs)?)?;
        m.train = false;
        let mut rounds = Vec::new();
        let mut outs = Vec::new();
        for pass in 0..3 {
            if pass == 2 {
                // Handing out the parameters for writing drops the folded map.
                for l in &mut m.layers {
                    l.params_mut();
                }
            }
            let xin = p.input(P0, owner.then_some(&x[..]), &xs)?;
            p.net.barrier()?;
            p.net.reset_costs();
            let y = m.forward(p, xin)?;
            rounds.push(p.net.costs().total().rounds);
            outs.push(p.open(P0, &y)?);
        }
        Ok((outs, rounds))
    })
    .unwrap();
    // As the training-mode test: the inverse square root's 1e-2 relative error dominates.
    for got in outs.into_iter().map(Option::unwrap) {
        let d = max_diff(&want, &got);
        println!("inference with folded batch norm: max |private - twin| = {d:.3e}");
        assert!(d <= 5e-2, "differs by {d}");
    }
    println!("rounds: first inference pass {}, second {}", rounds[0], rounds[1]);
    assert!(rounds[1] + 20 < rounds[0], "rounds {rounds:?}: the second pass should skip the inverse square root");
    assert_eq!(rounds[2], rounds[0], "rounds {rounds:?}: after params_mut the third pass folds again");
}

/// The graph ops the ONNX import brought (sigmoid, softmax, global average pooling,
/// concat, zero padding, reshape, sub of two branches, products by a public constant and
/// by a secret buffer, add of a buffer): forward and every gradient against the twin.
/// Bounds as above: sigmoid's approximation (1e-3 per element) and softmax's reciprocal
/// dominate, carried through a fan-in of at most 16 with weights below 0.5.
#[test]
fn graph_ops_match_twin() {
    use triad_layers::{Constant, GraphBuilder};
    let mut g = GraphBuilder::new("graph-ops", &[2, 4, 4]);
    let x = GraphBuilder::INPUT;
    let pad = g.node("pad", Op::Pad { top: 1, left: 0, bottom: 0, right: 1 }, &[x]).unwrap();
    let a = g.node("conv_a", Op::Conv(ConvSpec::square(2, 2, 2, 1, 0, true)), &[pad]).unwrap();
    let b =
        g.node("conv_b", Op::Conv(ConvSpec { groups: 2, ..ConvSpec::square(2, 2, 2, 1, 0, false) }), &[pad]).unwrap();
    let s = g.node("sub", Op::Sub, &[a, b]).unwrap();
    let sg = g.node("sigmoid", Op::Sigmoid, &[s]).unwrap();
    let half = Op::MulConst(Constant { dims: vec![1], values: vec![0.5] });
    let h = g.node("half", half, &[a]).unwrap();
    let cat = g.node("concat", Op::Concat { axis: 0 }, &[sg, h]).unwrap();
    let m = g.node("mulbuffer", Op::MulBuffer { dims: vec![4, 1, 1] }, &[cat]).unwrap();
    let ad = g.node("addbuffer", Op::AddBuffer { dims: vec![4, 1, 1] }, &[m]).unwrap();
    let gap = g.node("gap", Op::GlobalAvgPool { keep_dims: true }, &[ad]).unwrap();
    let r = g.node("reshape", Op::Reshape { dims: vec![4] }, &[gap]).unwrap();
    let fc = g.node("fc", Op::Linear { inp: 4, out: 3, bias: true }, &[r]).unwrap();
    g.node("softmax", Op::Softmax, &[fc]).unwrap();
    let n = g.finish().unwrap();
    check(&n, 3, 9, 5e-3, 5e-3);
}
