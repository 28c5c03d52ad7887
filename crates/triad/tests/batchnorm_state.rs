//! Batch norm's running statistics are part of the model: a residual network with batch
//! norm, trained privately, opened to its owner, written with `--save-weights`' writer and
//! read back with `--weights`' reader, infers the logits the trained model inferred.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use triad::weights::{load_plain, save_plain};
use triad_fixed::FixedConfig;
use triad_layers::{one_hot, Backend, ConvSpec, Graph, Model, Op, Plain, Sgd};
use triad_ring::CpuDevice;
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

const OWNER: PartyId = PartyId::ALL[0];
const BATCH: usize = 4;
const CLASSES: usize = 3;

/// A small ResNet: a conv stem with batch norm, one residual block with batch norm in its
/// body, global average pooling and a linear head.
fn resnet() -> Graph {
    let mut c = triad_layers::Chain::new("tiny-resnet", &[2, 6, 6]);
    c.extend([Op::Conv(ConvSpec::square(2, 4, 3, 1, 1, false)), Op::BatchNorm { c: 4 }, Op::Relu]);
    c.residual(vec![Op::Conv(ConvSpec::square(4, 4, 3, 1, 1, false)), Op::BatchNorm { c: 4 }], vec![]);
    c.extend([Op::Relu, Op::GlobalAvgPool { keep_dims: false }, Op::Linear { inp: 4, out: CLASSES, bias: true }]);
    c.finish().unwrap()
}

/// Inputs far from batch norm's initial statistics (mean 0, variance 1), so that training
/// moves the running statistics a long way and a reload that lost them shows.
fn batch(k: usize) -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..BATCH * 2 * 36).map(|i| 3.0 + 2.0 * (((i * 7 + k * 13) % 23) as f64 / 23.0 - 0.5)).collect();
    let labels: Vec<u8> = (0..BATCH).map(|n| ((n + k) % CLASSES) as u8).collect();
    (x, one_hot(&labels, CLASSES))
}

/// Privately: trains `steps` steps from `w0`, then returns (on the owner) the trained
/// model's logits on `x` in inference mode and its opened weights.
fn train_privately(net: &Graph, w0: &[Vec<f64>], steps: usize, x: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let dims = [BATCH, 2, 6, 6];
    let out = run_in_process(CpuDevice::new(), &LinkConfig::default(), FixedConfig::default(), |p| {
        let owner = p.id == OWNER;
        let mut model = Model::new(p, net, OWNER, owner.then_some(w0))?;
        let opt = Sgd { lr: 0.05, momentum: 0.9, weight_decay: 0.0 };
        for k in 0..steps {
            let (xb, yb) = batch(k);
            let xs = p.input(OWNER, owner.then_some(&xb[..]), &dims)?;
            let ys = p.input(OWNER, owner.then_some(&yb[..]), &[BATCH, CLASSES])?;
            model.train_step(p, xs, &ys, &opt)?;
        }
        model.train = false;
        let xs = p.input(OWNER, owner.then_some(x), &dims)?;
        let logits = model.forward(p, xs)?;
        let logits = Backend::open(p, OWNER, &logits)?;
        let w = model.open_weights(p, OWNER)?;
        Ok((logits, w))
    })
    .unwrap();
    let [(logits, w), ..] = out;
    (logits.unwrap(), w.unwrap())
}

/// Privately: the logits on `x` of a model built from the owner's plaintext weights.
fn infer_privately(net: &Graph, w: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    let out = run_in_process(CpuDevice::new(), &LinkConfig::default(), FixedConfig::default(), |p| {
        let owner = p.id == OWNER;
        let mut model = Model::new(p, net, OWNER, owner.then_some(w))?;
        model.train = false;
        let xs = p.input(OWNER, owner.then_some(x), &[BATCH, 2, 6, 6])?;
        let logits = model.forward(p, xs)?;
        Backend::open(p, OWNER, &logits)
    })
    .unwrap();
    let [logits, ..] = out;
    logits.unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn a_privately_trained_resnet_saved_and_reloaded_infers_the_same_logits() {
    let net = resnet();
    let w0 = net.init_weights(7);
    let (x, _) = batch(99);
    let (trained_logits, w) = train_privately(&net, &w0, 4, &x);

    // Save with --save-weights' writer and read back with --weights' reader.
    let dir = tempdir();
    let path = dir.join("trained.safetensors");
    save_plain(&path, &net, &w).unwrap();
    let back = load_plain(&path, &net).unwrap();
    assert_eq!(back, w, "the weights file changed the weights");

    // The running statistics moved during training (so losing them would show).
    let names: Vec<String> = net.tensors().iter().map(|t| t.name.clone()).collect();
    let means: Vec<usize> = (0..names.len()).filter(|&i| names[i].ends_with("running_mean")).collect();
    assert!(means.iter().all(|&i| names[i + 1].ends_with("running_var")));
    assert_eq!(means.len(), 2, "{names:?}");
    for &i in &means {
        let mean_moved = w[i].iter().map(|m| m.abs()).fold(0.0, f64::max);
        let var_moved = w[i + 1].iter().map(|v| (v - 1.0).abs()).fold(0.0, f64::max);
        assert!(
            mean_moved.max(var_moved) > 0.02,
            "{} and its variance barely moved: {:?} {:?}",
            names[i],
            w[i],
            w[i + 1]
        );
    }

    let reloaded = infer_privately(&net, &back, &x);
    let d = max_diff(&trained_logits, &reloaded);
    // Both are private inferences of one model: fixed-point noise, and the trained model's
    // inverse square root on shares against the reloaded model's fold in float64.
    assert!(d < 5e-3, "reloaded logits differ from the trained model's by {d}");

    // The plaintext twin of the reloaded weights agrees too.
    let mut twin = Model::new(&Plain, &net, OWNER, Some(&back)).unwrap();
    twin.train = false;
    let xt = Backend::input(&Plain, OWNER, Some(&x), &[BATCH, 2, 6, 6]).unwrap();
    let yt = twin.forward(&Plain, xt).unwrap();
    let twin_logits = Backend::open(&Plain, OWNER, &yt).unwrap().unwrap();
    assert!(max_diff(&twin_logits, &reloaded) < 1e-2);

    // The check can fail: the same weights with the initial running statistics (what a
    // weights file without them would give) infer other logits.
    let mut stale = back.clone();
    for (i, t) in stale.iter_mut().enumerate() {
        if names[i].ends_with("running_mean") {
            t.iter_mut().for_each(|v| *v = 0.0);
        } else if names[i].ends_with("running_var") {
            t.iter_mut().for_each(|v| *v = 1.0);
        }
    }
    let wrong = infer_privately(&net, &stale, &x);
    let gap = max_diff(&trained_logits, &wrong);
    eprintln!("reloaded: {d:.2e} from the trained logits; stale statistics: {gap:.2e}");
    assert!(gap > 10.0 * d.max(1e-3), "stale statistics went unnoticed: {gap} against {d}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("triad-bn-state-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    assert!(Path::new(&d).is_dir());
    d
}
