//! Every layer's backward pass on the plaintext twin against central finite differences
//! of its own forward pass, on random small shapes and values (proptest).
//!
//! For a layer `y = f(x, θ)` and a random upstream gradient `g`, the scalar
//! `L = <f(x, θ), g>` has `∂L/∂x = backward(g)` and `∂L/∂θ = θ.grad`. Each input and
//! parameter element is moved by `±H` and `(L(+H) - L(-H)) / 2H` compared with the
//! backward pass: the twin is exact `f64`, so the difference is the finite difference's
//! own error, `O(H²)` times the third derivative plus rounding `O(ε·|L| / H)`, below
//! `1e-8` on these sizes; a wrong formula (a sign, a missing factor) is off by the size of
//! the gradient itself. The tolerance is `TOL · (1 + |gradient|)`.
//!
//! ReLU and max pooling are differentiable away from their kinks: their inputs are drawn
//! at least `0.05` from zero (ReLU) and with distinct values `0.01` apart (max pooling),
//! so a step of `H` never crosses one.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use triad_layers::{Backend, Constant, ConvSpec, Layer, Op, PTensor, Plain, PoolSpec, SplitMix};

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;
/// Cases per property: each case runs two forward passes per element.
const CASES: u32 = 24;

/// How the inputs are drawn.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// Uniform in `[-1, 1]`.
    Uniform,
    /// At least `0.05` from zero (ReLU's kink).
    AwayFromZero,
    /// Distinct, `0.01` apart, shuffled (max pooling's ties).
    Distinct,
}

fn values(n: usize, rng: &mut SplitMix, how: Values) -> Vec<f64> {
    match how {
        Values::Uniform => (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect(),
        Values::AwayFromZero => (0..n)
            .map(|_| {
                let m = 0.05 + 0.95 * rng.unit();
                if rng.unit() < 0.5 {
                    -m
                } else {
                    m
                }
            })
            .collect(),
        Values::Distinct => {
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.01 - n as f64 * 0.005).collect();
            for i in (1..n).rev() {
                v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            v
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `L = <layer(xs), g>`.
fn loss(layer: &mut Layer<Plain>, xs: &[PTensor], g: &PTensor) -> f64 {
    let y = layer.forward(&Plain, xs.to_vec(), true).unwrap();
    assert_eq!(y.shape, g.shape, "output shape");
    dot(&y.data, &g.data)
}

fn close(what: &str, i: usize, analytic: f64, numeric: f64) -> Result<(), TestCaseError> {
    let err = (analytic - numeric).abs();
    prop_assert!(
        err <= TOL * (1.0 + analytic.abs()),
        "{}[{}]: backward {} but finite difference {} (error {:.2e})",
        what,
        i,
        analytic,
        numeric,
        err
    );
    Ok(())
}

/// Builds the layer of `op` with random tensors (positive running variances), runs it on
/// inputs of the batched shapes `ins` and checks every input and parameter gradient.
fn check(op: Op, ins: &[Vec<usize>], how: Values, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = SplitMix(seed);
    let mut tensors = |shape: &[usize]| -> triad_sharing::Result<PTensor> {
        let n = shape.iter().product();
        PTensor::new(shape.to_vec(), (0..n).map(|_| 0.5 + rng.unit()).collect())
    };
    let mut layer = Layer::<Plain>::build(&op, "layer", &mut tensors).unwrap();
    let mut rng = SplitMix(seed ^ 0x5eed);
    for p in layer.params_mut() {
        let n = p.value.data.len();
        p.value.data = values(n, &mut rng, Values::Uniform);
    }
    let mut xs: Vec<PTensor> =
        ins.iter().map(|s| PTensor::new(s.clone(), values(s.iter().product(), &mut rng, how)).unwrap()).collect();
    let y = layer.forward(&Plain, xs.clone(), true).unwrap();
    let g = PTensor::new(y.shape.clone(), values(y.data.len(), &mut rng, Values::Uniform)).unwrap();
    let dxs = layer.backward(&Plain, g.clone(), &vec![true; xs.len()]).unwrap();
    let dparams: Vec<Vec<f64>> = layer.params().iter().map(|p| p.grad.as_ref().unwrap().data.clone()).collect();
    prop_assert_eq!(dxs.len(), xs.len());
    for (k, dx) in dxs.into_iter().enumerate() {
        let dx = dx.unwrap();
        prop_assert_eq!(&dx.shape, &xs[k].shape);
        for i in 0..dx.data.len() {
            let v = xs[k].data[i];
            xs[k].data[i] = v + H;
            let up = loss(&mut layer, &xs, &g);
            xs[k].data[i] = v - H;
            let down = loss(&mut layer, &xs, &g);
            xs[k].data[i] = v;
            close(&format!("{op:?} input {k}"), i, dx.data[i], (up - down) / (2.0 * H))?;
        }
    }
    for (j, dp) in dparams.iter().enumerate() {
        prop_assert_eq!(dp.len(), layer.params[j].value.data.len());
        for (i, &want) in dp.iter().enumerate() {
            let v = layer.params[j].value.data[i];
            layer.params[j].value.data[i] = v + H;
            let up = loss(&mut layer, &xs, &g);
            layer.params[j].value.data[i] = v - H;
            let down = loss(&mut layer, &xs, &g);
            layer.params[j].value.data[i] = v;
            close(&format!("{op:?} parameter {j}"), i, want, (up - down) / (2.0 * H))?;
        }
    }
    Ok(())
}

/// A pooling window that fits `h x w` with its padding at most half the window.
fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2).prop_flat_map(|(kh, kw, sh, sw)| {
        (0..=kh / 2, 0..=kw / 2).prop_map(move |(ph, pw)| PoolSpec {
            kh,
            kw,
            stride_h: sh,
            stride_w: sw,
            pad_h: ph,
            pad_w: pw,
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn conv_backward_is_the_derivative(
        (n, groups, cin_g, cout_g) in (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (k, stride, pad, bias) in (1usize..=3, 1usize..=2, 0usize..=1, any::<bool>()),
        (extra_h, extra_w) in (0usize..=3, 0usize..=3),
        seed in any::<u64>(),
    ) {
        let spec = ConvSpec { groups, ..ConvSpec::square(groups * cin_g, groups * cout_g, k, stride, pad, bias) };
        let (h, w) = (k + extra_h, k + extra_w);
        check(Op::Conv(spec), &[vec![n, spec.in_c, h, w]], Values::Uniform, seed)?;
    }

    #[test]
    fn linear_backward_is_the_derivative(
        (n, inp, out, bias) in (1usize..=3, 1usize..=6, 1usize..=4, any::<bool>()),
        seed in any::<u64>(),
    ) {
        check(Op::Linear { inp, out, bias }, &[vec![n, inp]], Values::Uniform, seed)?;
    }

    #[test]
    fn pooling_backward_is_the_derivative(
        p in pool_spec(),
        (n, c, extra_h, extra_w, max) in (1usize..=2, 1usize..=2, 0usize..=3, 0usize..=3, any::<bool>()),
        seed in any::<u64>(),
    ) {
        let ins = [vec![n, c, p.kh + extra_h, p.kw + extra_w]];
        if max {
            check(Op::MaxPool(p), &ins, Values::Distinct, seed)?;
        } else {
            check(Op::AvgPool(p), &ins, Values::Uniform, seed)?;
        }
    }

    #[test]
    fn activations_backward_is_the_derivative(
        (n, c, h, w) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3),
        which in 0usize..4,
        seed in any::<u64>(),
    ) {
        let ins = [vec![n, c, h, w]];
        match which {
            0 => check(Op::Relu, &ins, Values::AwayFromZero, seed)?,
            1 => check(Op::Tanh, &ins, Values::Uniform, seed)?,
            2 => check(Op::Sigmoid, &ins, Values::Uniform, seed)?,
            _ => check(Op::Softmax, &[vec![n, c * h * w]], Values::Uniform, seed)?,
        }
    }

    #[test]
    fn batchnorm_backward_is_the_derivative(
        (n, c, h, w) in (2usize..=4, 1usize..=3, 2usize..=3, 1usize..=3),
        seed in any::<u64>(),
    ) {
        // At least 4 values per channel: a tiny batch variance (1/σ³ in the third
        // derivative) would make the finite difference itself inaccurate.
        check(Op::BatchNorm { c }, &[vec![n, c, h, w]], Values::Uniform, seed)?;
    }

    #[test]
    fn layout_ops_backward_is_the_derivative(
        (n, c, h, w) in (1usize..=2, 1usize..=3, 1usize..=3, 1usize..=3),
        (top, left, bottom, right) in (0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2),
        (axis, c2, keep_dims) in (0usize..=2, 1usize..=2, any::<bool>()),
        seed in any::<u64>(),
    ) {
        let x = vec![n, c, h, w];
        let one = [x.clone()];
        check(Op::Flatten, &one, Values::Uniform, seed)?;
        check(Op::Reshape { dims: vec![h, c * w] }, &one, Values::Uniform, seed)?;
        check(Op::GlobalAvgPool { keep_dims }, &one, Values::Uniform, seed)?;
        check(Op::Pad { top, left, bottom, right }, &one, Values::Uniform, seed)?;
        check(Op::Add, &[x.clone(), x.clone()], Values::Uniform, seed)?;
        check(Op::Sub, &[x.clone(), x.clone()], Values::Uniform, seed)?;
        let mut other = x.clone();
        other[axis + 1] = c2;
        check(Op::Concat { axis }, &[x.clone(), other], Values::Uniform, seed)?;
    }

    #[test]
    fn constant_and_buffer_ops_backward_is_the_derivative(
        (n, c, h, w) in (1usize..=2, 1usize..=3, 1usize..=3, 1usize..=3),
        seed in any::<u64>(),
    ) {
        let x = vec![n, c, h, w];
        let one = [x.clone()];
        let mut rng = SplitMix(seed);
        let per_channel = Constant { dims: vec![c, 1, 1], values: values(c, &mut rng, Values::Uniform) };
        check(Op::AddConst(per_channel.clone()), &one, Values::Uniform, seed)?;
        check(Op::MulConst(per_channel), &one, Values::Uniform, seed)?;
        check(Op::AddBuffer { dims: vec![c, 1, 1] }, &one, Values::Uniform, seed)?;
        check(Op::MulBuffer { dims: vec![h, w] }, &one, Values::Uniform, seed)?;
    }

    /// The loss: `softmax_xent_grad` is the derivative of `xent_loss(softmax(z), y)`.
    #[test]
    fn softmax_xent_grad_is_the_derivative_of_the_loss(
        (n, classes) in (1usize..=4, 2usize..=6),
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix(seed);
        let b = Plain;
        let mut z = PTensor::new(vec![n, classes], values(n * classes, &mut rng, Values::Uniform)).unwrap();
        let labels: Vec<u8> = (0..n).map(|_| (rng.next_u64() % classes as u64) as u8).collect();
        let y = PTensor::new(vec![n, classes], triad_layers::one_hot(&labels, classes)).unwrap();
        let lossf = |z: &PTensor| triad_layers::xent_loss(&b, &b.softmax(z).unwrap(), &y).unwrap().data[0];
        let (_, g) = triad_layers::softmax_xent_grad(&b, &z, &y).unwrap();
        for i in 0..z.data.len() {
            let v = z.data[i];
            z.data[i] = v + H;
            let up = lossf(&z);
            z.data[i] = v - H;
            let down = lossf(&z);
            z.data[i] = v;
            close("softmax cross-entropy logits", i, g.data[i], (up - down) / (2.0 * H))?;
        }
    }
}
