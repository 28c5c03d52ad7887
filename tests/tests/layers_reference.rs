//! Every op against an independent reference: PyTorch in float64
//! (`tools/layer-ref/make.py`, `tests/fixtures/layers/ops.json`; CI only reads it).
//!
//! For each op (conv with stride and padding, grouped conv, linear, average and max pooling
//! with and without padding, ReLU, tanh, sigmoid, softmax, batch norm in training and in
//! inference, residual add, flatten, global average pooling): the output, the input
//! gradients of `<output, g>` and the parameter gradients (batch norm in training also its
//! running statistics) on fixed inputs. The twin matches to `1e-9`; the private backend
//! within the bounds of `tests/tests/layers_diff.rs` (products: the truncations' `2^-20`
//! per term times the fan-in; the approximations: their documented errors). Softmax
//! cross-entropy: the probabilities, the loss and `softmax_xent_grad`.
//!
//! The twin runs the same layer code as the private model, so only a reference like this
//! one (or the finite differences of `layers_gradients.rs`) catches a wrong formula.
//! Measured errors are printed by `--nocapture` and recorded in ACCURACY.md.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use triad_layers::{one_hot, softmax_xent_grad, xent_loss, Backend, ConvSpec, Layer, Op, Plain, PoolSpec};
use triad_sharing::Result;
use triad_tests::reference::{field, fixture, floats, max_diff, usizes};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];
/// The twin against PyTorch: both float64, only the order of the sums differs.
const TWIN_BOUND: f64 = 1e-9;

fn op_of(v: &Value) -> Op {
    let pool = || PoolSpec::square(field(v, "k"), field(v, "stride"), field(v, "pad"));
    match v["kind"].as_str().unwrap() {
        "conv" => Op::Conv(ConvSpec {
            groups: field(v, "groups"),
            ..ConvSpec::square(
                field(v, "in_c"),
                field(v, "out_c"),
                field(v, "k"),
                field(v, "stride"),
                field(v, "pad"),
                v["bias"].as_bool().unwrap(),
            )
        }),
        "linear" => Op::Linear { inp: field(v, "inp"), out: field(v, "out"), bias: v["bias"].as_bool().unwrap() },
        "avgpool" => Op::AvgPool(pool()),
        "maxpool" => Op::MaxPool(pool()),
        "relu" => Op::Relu,
        "tanh" => Op::Tanh,
        "sigmoid" => Op::Sigmoid,
        "softmax" => Op::Softmax,
        "batchnorm" => Op::BatchNorm { c: field(v, "c") },
        "add" => Op::Add,
        "flatten" => Op::Flatten,
        "globalavgpool" => Op::GlobalAvgPool { keep_dims: false },
        other => panic!("unknown op {other}"),
    }
}

/// The private backend's bounds `(output, gradients)` for an op, as in `layers_diff.rs`.
fn private_bounds(op: &Op) -> (f64, f64) {
    match op {
        // Products of fan-in up to 27 (weights below 0.5): ~1e-6 per truncation; a conv
        // bias gradient sums up to 18 positions, a weight gradient as many products.
        Op::Conv(_) | Op::Linear { .. } => (2e-5, 1e-4),
        // One truncation (the 1/k² scale, 2^-20) or none, and the inputs' encoding
        // (2^-21); an input of overlapping windows (k 3, stride 2) sums up to 4 of them.
        Op::AvgPool(_) | Op::MaxPool(_) | Op::GlobalAvgPool { .. } | Op::Relu | Op::Add | Op::Flatten => (1e-5, 1e-5),
        // The approximations: tanh within 2e-3 (its backward squares it), sigmoid 1e-3,
        // softmax's reciprocal 1.5e-3.
        Op::Tanh => (1e-2, 1e-2),
        Op::Sigmoid | Op::Softmax => (5e-3, 5e-3),
        // The inverse square root, 1e-2 relative, carried through x̂ (|x̂| ≲ 3).
        Op::BatchNorm { .. } => (5e-2, 5e-2),
        _ => (0.0, 0.0),
    }
}

/// One op's fixture: the op, its inputs `(shape, data)`, its tensors in state order, the
/// upstream gradient, training mode, and the expected tensors by name.
struct Case {
    name: String,
    op: Op,
    inputs: Vec<(Vec<usize>, Vec<f64>)>,
    tensors: Vec<Vec<f64>>,
    g: Vec<f64>,
    train: bool,
    want: Vec<(String, Vec<f64>)>,
}

fn case_of(v: &Value) -> Case {
    let op = op_of(&v["op"]);
    let inputs: Vec<_> =
        v["inputs"].as_array().unwrap().iter().map(|x| (usizes(&x["shape"]), floats(&x["data"]))).collect();
    let mut want = vec![("output".to_string(), floats(&v["out"]["data"]))];
    for (i, d) in v["dx"].as_array().unwrap().iter().enumerate() {
        want.push((format!("input gradient {i}"), floats(d)));
    }
    for (i, d) in v["dparams"].as_array().unwrap().iter().enumerate() {
        want.push((format!("parameter gradient {i}"), floats(d)));
    }
    let train = v["train"].as_bool().unwrap();
    if train {
        for (i, d) in v["buffers_after"].as_array().unwrap().iter().enumerate() {
            want.push((format!("buffer {i} after"), floats(d)));
        }
    }
    Case {
        name: v["name"].as_str().unwrap().to_string(),
        op,
        inputs,
        tensors: v["tensors"].as_array().unwrap().iter().map(floats).collect(),
        g: floats(&v["g"]),
        train,
        want,
    }
}

/// Runs a case on backend `b` (party 0 owns every input) and opens to party 0, in the
/// order of [`Case::want`].
fn run_case<B: Backend>(b: &B, mine: bool, c: &Case) -> Result<Vec<Option<Vec<f64>>>> {
    let mut next = 0;
    let mut src = |shape: &[usize]| {
        let t = &c.tensors[next];
        next += 1;
        b.input(P0, mine.then_some(&t[..]), shape)
    };
    let mut layer = Layer::<B>::build(&c.op, &c.name, &mut src)?;
    let mut xs = Vec::new();
    for (shape, data) in &c.inputs {
        xs.push(b.input(P0, mine.then_some(&data[..]), shape)?);
    }
    let y = layer.forward(b, xs, c.train)?;
    let mut opened = vec![b.open(P0, &y)?];
    if c.train {
        let g = b.input(P0, mine.then_some(&c.g[..]), &b.dims(&y))?;
        for dx in layer.backward(b, g, &vec![true; c.inputs.len()])? {
            opened.push(b.open(P0, &dx.unwrap())?);
        }
        for p in layer.params() {
            opened.push(b.open(P0, p.grad.as_ref().unwrap())?);
        }
        for t in &layer.buffers {
            opened.push(b.open(P0, t)?);
        }
    }
    Ok(opened)
}

/// Asserts each opened tensor within `bound(name)` of the fixture; returns the worst error.
fn compare(who: &str, c: &Case, got: Vec<Option<Vec<f64>>>, bound: impl Fn(&str) -> f64) -> f64 {
    assert_eq!(got.len(), c.want.len(), "{}: {who} gave {} tensors, PyTorch {}", c.name, got.len(), c.want.len());
    let mut worst: f64 = 0.0;
    for ((name, want), got) in c.want.iter().zip(got) {
        let d = max_diff(want, &got.unwrap());
        let b = bound(name);
        println!("{:<22} {who:<7} {name:<20} max error {d:.2e} (bound {b:.0e})", c.name);
        assert!(d <= b, "{}: {who} {name} differs from PyTorch by {d} (bound {b})", c.name);
        worst = worst.max(d);
    }
    worst
}

fn cases() -> Vec<Case> {
    fixture("ops.json")["cases"].as_array().unwrap().iter().map(case_of).collect()
}

#[test]
fn every_op_on_the_twin_matches_pytorch() {
    let cases = cases();
    assert!(cases.len() >= 16, "ops.json has {} cases", cases.len());
    for c in &cases {
        let got = run_case(&Plain, true, c).unwrap();
        compare("twin", c, got, |_| TWIN_BOUND);
    }
}

#[test]
fn every_op_on_shares_matches_pytorch_within_its_bound() {
    let cases = cases();
    let opened = triad_tests::parties::in_process(19, |p| {
        let mut all = Vec::new();
        for c in &cases {
            all.push(run_case(p, p.id == P0, c)?);
        }
        Ok(all)
    })
    .unwrap();
    let [mine, _, _] = opened;
    for (c, got) in cases.iter().zip(mine) {
        let (fwd, grad) = private_bounds(&c.op);
        compare("private", c, got, |name| if name == "output" { fwd } else { grad });
    }
}

#[test]
fn softmax_cross_entropy_matches_pytorch() {
    let v = &fixture("ops.json")["softmax_xent"];
    let shape = usizes(&v["logits"]["shape"]);
    let labels: Vec<u8> = usizes(&v["labels"]).into_iter().map(|l| l as u8).collect();
    let y = one_hot(&labels, shape[1]);
    let b = Plain;
    let z = b.input(P0, Some(&floats(&v["logits"]["data"])), &shape).unwrap();
    let yt = b.input(P0, Some(&y), &shape).unwrap();
    let (p, g) = softmax_xent_grad(&b, &z, &yt).unwrap();
    let loss = xent_loss(&b, &p, &yt).unwrap().data[0];
    assert!(max_diff(&p.data, &floats(&v["probs"])) <= TWIN_BOUND);
    assert!(max_diff(&g.data, &floats(&v["grad"])) <= TWIN_BOUND);
    assert!((loss - v["loss"].as_f64().unwrap()).abs() <= TWIN_BOUND, "loss {loss}");

    let [opened, _, _] = triad_tests::parties::in_process(20, |p| {
        let mine = p.id == P0;
        let z = p.input(P0, mine.then_some(&floats(&v["logits"]["data"])[..]), &shape)?;
        let yt = p.input(P0, mine.then_some(&y[..]), &shape)?;
        let (probs, g) = softmax_xent_grad(p, &z, &yt)?;
        Ok((p.open(P0, &probs)?, p.open(P0, &g)?))
    })
    .unwrap();
    let dp = max_diff(&opened.0.unwrap(), &floats(&v["probs"]));
    let dg = max_diff(&opened.1.unwrap(), &floats(&v["grad"]));
    println!("softmax cross-entropy on shares: probabilities {dp:.2e}, gradient {dg:.2e} (bound 5e-3, 5e-3 / N)");
    assert!(dp <= 5e-3, "probabilities differ by {dp}");
    assert!(dg <= 5e-3 / shape[0] as f64, "gradient differs by {dg}");
}
