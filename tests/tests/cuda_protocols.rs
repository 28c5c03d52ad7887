//! Every protocol layer on the CUDA device gives the CPU device's shares bit for bit:
//! comparisons (ReLU and its backward, max/argmax, max pooling), approximations (exp,
//! softmax, sigmoid) and a LeNet training step on real digits. Three parties in process with
//! the test keys, once per device. The GPU tests are `#[ignore]`d (a plain `cargo test`
//! counts them as ignored); `tools/cuda-emu/test` and `tools/gpu-check` run them with
//! `--include-ignored` and `TRIAD_REQUIRE_GPU=1`, where a missing GPU fails.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_approx::ApproxParams;
use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, Model, Pooling, Sgd};
use triad_ring::{CpuDevice, Device, Pool2dParams, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, Party};
use triad_tests::gpu::cuda;
use triad_transport::{LinkConfig, PartyId};

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(120), ..LinkConfig::default() }
}

type Parts = Vec<Vec<u64>>;

fn push<D: Device>(out: &mut Parts, s: &AShare<D>) -> triad_sharing::Result<()> {
    out.push(s.own.to_vec()?);
    out.push(s.next.to_vec()?);
    Ok(())
}

/// Shares `words(n, seed)` scaled down to fixed-point magnitudes below 2^(20+k).
fn input<D: Device>(p: &Party<D>, shape: &Shape, seed: u64, k: u32) -> triad_sharing::Result<AShare<D>> {
    let owner = PartyId::ALL[0];
    let vals: Vec<u64> =
        triad_tests::words(shape.numel(), seed).into_iter().map(|v| ((v as i64) >> (43 - k)) as u64).collect();
    let t = if p.id == owner { Some(Tensor::from_vec(&p.dev, shape.clone(), vals)?) } else { None };
    p.share_input(owner, t.as_ref(), shape)
}

fn compare_and_approx<D: Device>(dev: D) -> [Parts; 3] {
    run_in_process_with_test_keys(dev, &link(), FixedConfig::default(), 21, |p: &Party<D>| {
        let mut out = Parts::new();
        let x = input(p, &Shape::new([6, 10]), 1, 4)?;
        let r = triad_compare::relu(p, &x)?;
        push(&mut out, &r.out)?;
        push(&mut out, &triad_compare::relu_backward(p, &x, &r.mask)?)?;
        let am = triad_compare::argmax_axis(p, &x, 1)?;
        push(&mut out, &am.max)?;
        push(&mut out, &am.onehot)?;
        let pp = Pool2dParams::square(1, 2, 5, 3, 2, 1);
        let img = input(p, &pp.input_shape(), 2, 3)?;
        let mp = triad_compare::maxpool(p, &img, &pp)?;
        push(&mut out, &mp.out)?;
        let params = ApproxParams::default();
        let neg = input(p, &Shape::new([60]), 3, 2)?;
        let neg = p.add_scalar(&neg, (-(8i64 << 20)) as u64)?;
        push(&mut out, &triad_approx::exp(p, &neg, &params)?)?;
        push(&mut out, &triad_approx::softmax(p, &x, 1, &params)?)?;
        push(&mut out, &triad_approx::sigmoid(p, &x, &params)?)?;
        Ok(out)
    })
    .unwrap()
}

#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn comparisons_and_approximations_match_the_cpu_bit_for_bit() {
    let Some(gpu) = cuda() else { return };
    assert_eq!(compare_and_approx(gpu), compare_and_approx(CpuDevice), "CUDA and CPU shares differ");
}

fn lenet_step<D: Device>(dev: D) -> [Parts; 3] {
    const BATCH: usize = 8;
    let mnist = Mnist::bundled().unwrap();
    let net = lenet(Activation::Relu, Pooling::Max);
    let w0 = net.init_weights(5);
    let idx: Vec<usize> = (0..BATCH).collect();
    let x: Vec<f64> = idx.iter().flat_map(|&i| mnist.train.image_f64(i)).collect();
    let labels: Vec<u8> = idx.iter().map(|&i| mnist.train.labels[i]).collect();
    let y = one_hot(&labels, 10);
    let owner = PartyId::ALL[0];
    run_in_process_with_test_keys(dev, &link(), FixedConfig::default(), 22, |p: &Party<D>| {
        let mine = p.id == owner;
        let mut model = Model::new(p, &net, owner, mine.then_some(&w0[..]))?;
        let xs = p.input(owner, mine.then_some(&x[..]), &[BATCH, 1, 28, 28])?;
        let ys = p.input(owner, mine.then_some(&y[..]), &[BATCH, 10])?;
        model.train_step(p, xs, &ys, &Sgd { momentum: 0.9, ..Sgd::new(0.05) })?;
        let mut out = Parts::new();
        for w in model.params() {
            push(&mut out, &w.value)?;
        }
        Ok(out)
    })
    .unwrap()
}

#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn a_lenet_training_step_matches_the_cpu_bit_for_bit() {
    let Some(gpu) = cuda() else { return };
    assert_eq!(lenet_step(gpu), lenet_step(CpuDevice), "CUDA and CPU weights differ after a training step");
}

/// The flows above run on the CPU in every CI run (so a GPU session finds them working) and
/// are deterministic from the test keys, which the bit-for-bit comparison relies on.
#[test]
fn the_flows_run_on_the_cpu_and_are_deterministic() {
    let a = compare_and_approx(CpuDevice);
    assert_eq!(a, compare_and_approx(CpuDevice));
    let w = lenet_step(CpuDevice);
    assert!(w[0].len() >= 8, "LeNet has at least four parameter tensors");
}
