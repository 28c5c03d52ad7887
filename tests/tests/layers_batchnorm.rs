//! Batch norm at the ImageNet stem's shapes (`[N, C, 112, 112]` after the 7×7 stride-2
//! convolution), training mode, at batch 8, 32 and 128: `m = N·112·112` is 100,352,
//! 401,408 and 1,605,632, none a power of two, the last above `2^21`. With `1/m` encoded
//! in 20 fractional bits these means were off by 4%, 15% and 100% (`2^20/m` rounds to 10,
//! 3 and 1); `Backend::scale` now gives a small public multiplier 12 significant bits
//! (`triad_layers::scale_bits`), so the private layer agrees with the float64 twin within
//! the bounds of its products and of the inverse square root.
//!
//! Each case runs the layer forward and backward on shares (three parties in process,
//! test keys) and on the twin from the same input, weights and output gradient, and
//! compares the output and the input gradient element by element, and the parameter
//! gradients (sums over `m` terms) relative to their size.
#![allow(clippy::unwrap_used)]

use triad_layers::{check_public_multiplier, scale_bits, Backend, Layer, Op, Plain, SplitMix, SCALE_SIGNIFICANT_BITS};
use triad_transport::PartyId;

const P0: PartyId = PartyId::ALL[0];
const F: u32 = 20;

/// The layer's output, its input gradient, then `dγ` and `dβ`.
type Run = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// `γ`, `β`, running mean, running variance (the order the layer asks for them).
fn weights(c: usize) -> Vec<Vec<f64>> {
    let gamma = (0..c).map(|i| 0.8 + 0.3 * i as f64).collect();
    let beta = (0..c).map(|i| 0.1 - 0.2 * i as f64).collect();
    vec![gamma, beta, vec![0.0; c], vec![1.0; c]]
}

/// Channel `k` has mean `0.5 + k` and variance about `1.3`: values of a stem's output.
fn input(dims: &[usize], seed: u64) -> Vec<f64> {
    let mut r = SplitMix(seed);
    let per: usize = dims[2..].iter().product();
    (0..dims.iter().product::<usize>())
        .map(|i| 0.5 + ((i / per) % dims[1]) as f64 + (r.unit() * 2.0 - 1.0) * 2.0)
        .collect()
}

fn gradient(dims: &[usize], seed: u64) -> Vec<f64> {
    let mut r = SplitMix(seed);
    (0..dims.iter().product::<usize>()).map(|_| (r.unit() * 2.0 - 1.0) * 0.5).collect()
}

fn run_on<B: Backend>(
    b: &B,
    owner: bool,
    w: &[Vec<f64>],
    x: &[f64],
    g: &[f64],
    dims: &[usize],
) -> triad_sharing::Result<Run> {
    let mut next = 0;
    let mut tensor = |d: &[usize]| {
        next += 1;
        b.input(P0, owner.then(|| w[next - 1].as_slice()), d)
    };
    let mut bn = Layer::build(&Op::BatchNorm { c: dims[1] }, "bn", &mut tensor)?;
    let y = bn.forward(b, vec![b.input(P0, owner.then_some(x), dims)?], true)?;
    let dx = bn.backward(b, b.input(P0, owner.then_some(g), dims)?, &[true])?.remove(0);
    let dx = dx.ok_or_else(|| triad_sharing::Error::Usage("no input gradient".into()))?;
    let grads: Vec<&B::T> = bn.params().iter().map(|p| p.grad.as_ref().unwrap()).collect();
    let open = |t: &B::T| b.open(P0, t).map(|v| v.unwrap_or_default());
    Ok((open(&y)?, open(&dx)?, open(grads[0])?, open(grads[1])?))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn stem(n: usize, c: usize, seed: u64) {
    let dims = [n, c, 112, 112];
    let w = weights(c);
    let x = input(&dims, seed);
    let g = gradient(&dims, seed + 1);
    let twin = run_on(&Plain, true, &w, &x, &g, &dims).unwrap();
    let out = triad_tests::parties::in_process(seed, |p| run_on(p, p.id == P0, &w, &x, &g, &dims)).unwrap();
    let [private, _, _] = out;

    // Measured (the test prints them): output 2.7e-3, input gradient 6.6e-4, dγ 8e-7 and
    // dβ 7e-10 relative; with 1/m in 20 bits they were 0.10 to 0.44, 9e-3 to 7e-2 and
    // 3e-5 to 1.3e-4. Output: x̂ = (x - mean)·inv, where the inverse square root's
    // relative error (about 1e-3 here) dominates, plus the products' 1e-6.
    let dy = max_diff(&twin.0, &private.0);
    // Input gradient: inv·(γg - mean(γg) - x̂·mean(γg·x̂)): the same relative error of
    // inv on terms below ~2.5 in magnitude.
    let dx = max_diff(&twin.1, &private.1);
    // dγ = Σ g·x̂ and dβ = Σ g over m terms, relative to Σ |g|·max(1, |x̂|).
    let scale: f64 = g.iter().map(|v| v.abs()).sum::<f64>() * 3.5 / c as f64;
    let dgamma = max_diff(&twin.2, &private.2) / scale;
    let dbeta = max_diff(&twin.3, &private.3) / scale;
    println!(
        "batch norm [N={n}, C={c}, 112, 112], m = {}: output {dy:.2e}, input gradient {dx:.2e}, dγ {dgamma:.2e} and dβ {dbeta:.2e} relative",
        n * 112 * 112
    );
    assert!(dy <= 1e-2, "output differs by {dy}");
    assert!(dx <= 5e-3, "input gradient differs by {dx}");
    assert!(dgamma <= 1e-5, "dγ differs by {dgamma} relative");
    assert!(dbeta <= 1e-8, "dβ differs by {dbeta} relative");
}

#[test]
fn batchnorm_imagenet_stem_batch_8_matches_twin() {
    stem(8, 2, 81);
}

#[test]
fn batchnorm_imagenet_stem_batch_32_matches_twin() {
    stem(32, 2, 82);
}

#[test]
fn batchnorm_imagenet_stem_batch_128_matches_twin() {
    stem(128, 1, 83);
}

/// The encoding of `1/m` itself: at least 12 significant bits for every stem size, and
/// no change (20 bits) for multipliers that already have them.
#[test]
fn small_public_multipliers_keep_twelve_significant_bits() {
    for n in [1usize, 8, 32, 128, 1024] {
        let m = (n * 112 * 112) as f64;
        let bits = scale_bits(F, 1.0 / m);
        let enc = (2f64.powi(bits as i32) / m).round();
        let rel = (enc / 2f64.powi(bits as i32) * m - 1.0).abs();
        assert!(enc >= f64::from(1u32 << SCALE_SIGNIFICANT_BITS), "1/{m}: encoding {enc} with {bits} bits");
        assert!(rel <= 2f64.powi(-(SCALE_SIGNIFICANT_BITS as i32)), "1/{m}: relative error {rel}");
    }
    for c in [0.01, 0.1, 0.9, 1.0 / 128.0, 1.0 / 4.0, 2.0, -0.05] {
        assert_eq!(scale_bits(F, c), F, "{c} keeps f bits");
    }
    assert_eq!(scale_bits(F, 0.0), F);
    // Never more than 2f, nor more than the encoder allows.
    assert_eq!(scale_bits(F, 1e-30), 2 * F);
    assert_eq!(scale_bits(30, 1e-30), triad_fixed::MAX_FRAC_BITS);
}

/// A public multiplier too small for the range is refused, not computed with: every
/// constant a job uses passes, `1e-13` (past `2^(8 - 2f)`) does not.
#[test]
fn public_multipliers_too_small_for_the_range_are_refused() {
    for c in [0.05, 0.9, 5e-4, 1e-6, 1.0 / (128.0 * 112.0 * 112.0), 1.0 / 9.0, 0.0] {
        assert!(check_public_multiplier(c, scale_bits(F, c)).is_ok(), "{c}");
    }
    for c in [1e-13, -1e-13, f64::NAN] {
        let e = check_public_multiplier(c, scale_bits(F, c)).unwrap_err().to_string();
        assert!(e.contains("too small for the fixed-point range") || c.is_nan(), "{c}: {e}");
    }
    // With f bits only (no extra bits), 1e-5 would lose 5% of itself: refused.
    assert!(check_public_multiplier(1e-5, F).is_err());
}
