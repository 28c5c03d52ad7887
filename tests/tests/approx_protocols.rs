//! Differential tests of the nonlinear approximations (`triad-approx`): three parties over
//! real in-process links, each output checked against
//!
//! 1. the spec's enclosure (`triad_spec::approx::*_enclosure`): every value the protocol can
//!    produce when each share truncation gives `floor` or `floor - 1` (wrap-free truncation:
//!    `floor` or `floor + 1`); the spec's exact floor iteration must lie in it too, so
//!    `|protocol - iteration| <= width`;
//! 2. float64 at the input the protocol sees, within the documented `ErrorBound`.
//!
//! Every function runs twice: with the default `Rounding::Floor` (CryptGPU's share
//! truncation) and with `Rounding::WrapFree` (what the layers use).
//!
//! Inputs are a fresh random sample every run (the seed is printed on failure;
//! `TRIAD_APPROX_SEED=<seed> cargo test -p triad-tests --test approx_protocols` replays it). Share
//! truncation's rare large error (about `|t|/2^64` per truncation) is outside every bound,
//! and a run hits one about once in a thousand. It depends on the random share components,
//! that is on the keys, while a bug depends on the input: so under `Floor` a point (or
//! softmax row) that misses is re-run alone under other keys, where it must pass, and a run
//! may see at most two such points (one row). Under `WrapFree` nothing may miss.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use triad_approx::{
    exp, inv_sqrt, log, reciprocal, sigmoid, softmax, softmax_from_max, softmax_reciprocal, tanh, ApproxParams,
};
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, Party, Result, Rounding};
use triad_spec::approx::{self as spec, Encl, ErrorBound};
use triad_spec::BigInt;
use triad_transport::{LinkConfig, PartyId};

type P = Party<CpuDevice>;
type S = AShare<CpuDevice>;

const F: u32 = 20;

/// The protocol's and the spec's parameters: defaults with every truncation rounding as `r`.
fn params(r: Rounding) -> (ApproxParams, spec::Params) {
    (ApproxParams::default().with_rounding(r), spec::Params::default().with_rounding(spec_rounding(r)))
}

fn spec_rounding(r: Rounding) -> spec::Rounding {
    match r {
        Rounding::Floor => spec::Rounding::Floor,
        Rounding::Unbiased => spec::Rounding::Unbiased,
        Rounding::WrapFree => spec::Rounding::WrapFree,
    }
}

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(20), ..LinkConfig::default() }
}

/// The sample's seed: `TRIAD_APPROX_SEED` when set (to replay a printed seed), else fresh
/// from the clock. Every failure message names it.
fn fresh_seed() -> u64 {
    if let Some(s) = std::env::var("TRIAD_APPROX_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `[lo, hi]`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// Log-uniform in `[lo, hi]` (`lo > 0`).
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.uniform(lo.ln(), hi.ln()).exp().clamp(lo, hi)
    }
}

fn enc(x: f64) -> u64 {
    FixedConfig::default().encode(x).unwrap()
}
fn dec(v: u64) -> f64 {
    FixedConfig::default().decode(v)
}

/// Runs `f` on the shared `[rows, cols]` input and opens the result to everyone.
fn run_protocol(xs: &[u64], cols: usize, f: impl Fn(&P, &S) -> Result<S> + Sync) -> Vec<u64> {
    run_protocol_keys(xs, cols, 11, f)
}

/// [`run_protocol`] with PRG keys from `key_seed`.
fn run_protocol_keys(xs: &[u64], cols: usize, key_seed: u64, f: impl Fn(&P, &S) -> Result<S> + Sync) -> Vec<u64> {
    let shape = Shape::new([xs.len() / cols, cols]);
    let out = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), key_seed, |p| {
        let owner = PartyId::ALL[0];
        let t = Tensor::from_vec(&p.dev, shape.clone(), xs.to_vec())?;
        let x = p.share_input(owner, (p.id == owner).then_some(&t), &shape)?;
        let y = f(p, &x)?;
        p.reveal_all(&y)?.to_vec().map_err(Into::into)
    })
    .unwrap();
    assert_eq!(out[0], out[1]);
    assert_eq!(out[1], out[2]);
    out[0].clone()
}

/// No bound beyond the function's `ErrorBound`.
fn nothing_else(_x: f64, _got: f64) -> bool {
    true
}

/// exp relative to its value, so that an output of 0 fails wherever `e^x` is above a few
/// ulp (the absolute `EXP_BOUND`, 1.6e-3, lets 0 pass for every `x < -6.4`): the limit
/// `(1 + x/2^9)^(2^9)` is low by at most `x²/2^10` relative, the first step's truncation
/// amplified by the squarings adds about `1.1e-3` relative, the last ones a few ulp.
fn exp_relative(x: f64, got: f64) -> bool {
    let want = x.exp();
    (got - want).abs() <= want * (x * x / 1024.0 + 1.5e-3) + 4.0 / 1048576.0
}

/// Checks one elementwise function on `xs` (reals, encoded here): each output in the
/// spec's enclosure, within `bound` of float64, and `also(x, output)`. Returns the largest
/// enclosure width seen (ulp); each caller bounds it.
#[allow(clippy::too_many_arguments)]
fn check(
    name: &str,
    r: Rounding,
    seed: u64,
    xs: &[f64],
    bound: ErrorBound,
    ideal: fn(f64) -> f64,
    also: fn(f64, f64) -> bool,
    iteration: impl Fn(&BigInt) -> BigInt,
    enclosure: impl Fn(&BigInt) -> Encl,
    f: impl Fn(&P, &S) -> Result<S> + Sync,
) -> BigInt {
    let raw: Vec<u64> = xs.iter().map(|&x| enc(x)).collect();
    let got = run_protocol(&raw, 1, &f);
    let mut widest = BigInt::from(0);
    // Points that miss: a share-truncation wrap depends on the random share components (the
    // keys), a bug on the input. Misses are re-run alone under other keys, where they must
    // pass: that is what catches a bug. A run may see at most six: exp with share
    // truncation (its nine squarings truncate values near the top of the range) missed 21
    // points in 60 runs of 300 (0.35 a run, at most 2; every other function none in 30
    // runs), so seven or more in a run has probability below 1e-6 (Poisson). The bound
    // was two, and a clean-clone CI run met three (seed 1796652843818736179, all three
    // wraps that passed under other keys). Measured with, for s in 60 seeds,
    // `TRIAD_APPROX_SEED=$s <test binary> exp_matches_spec_and_float --nocapture | grep -c "missed once"`
    // with the bound lifted.
    let mut missed = Vec::new();
    for (&xr, &g) in raw.iter().zip(&got) {
        let x = spec::raw(xr);
        let it = iteration(&x);
        let en = enclosure(&x);
        assert!(
            en.contains(&it),
            "{name} (seed {seed}) x = {}: spec iteration {it} outside its enclosure {en:?}",
            dec(xr)
        );
        widest = widest.max(en.width());
        if !(en.contains(&spec::raw(g)) && bound.holds(dec(g), ideal(dec(xr))) && also(dec(xr), dec(g))) {
            missed.push(xr);
        }
    }
    let allowed = if r == Rounding::WrapFree { 0 } else { 6 };
    assert!(missed.len() <= allowed, "{name} {r:?} (seed {seed}): {} points missed their bounds", missed.len());
    let again = if missed.is_empty() { Vec::new() } else { run_protocol_keys(&missed, 1, 12, &f) };
    for (&xr, &g) in missed.iter().zip(&again) {
        let x = spec::raw(xr);
        let (xv, it, en, gv) = (dec(xr), iteration(&x), enclosure(&x), spec::raw(g));
        assert!(
            en.contains(&gv),
            "{name} (seed {seed}) x = {xv}: protocol {gv} outside the enclosure {en:?} (iteration {it}), also under other keys"
        );
        let want = ideal(xv);
        assert!(also(xv, dec(g)), "{name} (seed {seed}) x = {xv}: protocol {} fails the extra bound", dec(g));
        assert!(
            bound.holds(dec(g), want),
            "{name} (seed {seed}) x = {xv}: protocol {} vs float64 {want}: error {:.3e} above {bound:?}, also under other keys",
            dec(g),
            (dec(g) - want).abs()
        );
        eprintln!("{name}: x = {xv} missed once and passed under other keys (a truncation wrap)");
    }
    eprintln!("{name} {r:?}: {} points, widest enclosure {widest} ulp", xs.len());
    widest
}

fn sample(seed: u64, n: usize, edges: &[f64], mut draw: impl FnMut(&mut Rng) -> f64) -> Vec<f64> {
    let mut r = Rng(seed);
    let mut xs: Vec<f64> = edges.to_vec();
    while xs.len() < n {
        xs.push(draw(&mut r));
    }
    xs
}

const N: usize = 300;

#[test]
fn exp_matches_spec_and_float() {
    exp_case(Rounding::Floor);
}

#[test]
fn exp_wrap_free_matches_spec_and_float() {
    exp_case(Rounding::WrapFree);
}

fn exp_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::EXP_BOUND;
    // Half near 0 (largest errors), half over the whole domain.
    let mut k = 0;
    let xs = sample(seed, N, &[0.0, -1e-6, -512.0, -1.0], |r| {
        k += 1;
        if k % 2 == 0 {
            r.uniform(-8.0, 0.0)
        } else {
            r.uniform(b.lo, b.hi)
        }
    });
    let w = check(
        "exp",
        r,
        seed,
        &xs,
        b,
        spec::exp_ideal,
        exp_relative,
        |x| spec::exp_fixed(x, 9, F),
        |x| spec::exp_enclosure(&Encl::point(x.clone()), 9, F, sp.rounding),
        |p, x| exp(p, x, &pr),
    );
    assert!(w <= BigInt::from(1280), "exp enclosure width {w} ulp");
}

#[test]
fn softmax_reciprocal_matches_spec_and_float() {
    softmax_reciprocal_case(Rounding::Floor);
}

#[test]
fn softmax_reciprocal_wrap_free_matches_spec_and_float() {
    softmax_reciprocal_case(Rounding::WrapFree);
}

fn softmax_reciprocal_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::SOFTMAX_RECIP_BOUND;
    let xs = sample(seed, N, &[1.0, 399.0, 200.0], |r| r.log_uniform(b.lo, b.hi));
    let w = check(
        "softmax_reciprocal",
        r,
        seed,
        &xs,
        b,
        spec::reciprocal_ideal,
        nothing_else,
        |x| spec::softmax_reciprocal_fixed(x, &sp, F),
        |x| spec::softmax_reciprocal_enclosure(&Encl::point(x.clone()), &sp, F),
        |p, x| softmax_reciprocal(p, x, &pr),
    );
    assert!(w <= BigInt::from(8), "softmax reciprocal enclosure width {w} ulp");
}

#[test]
fn reciprocal_matches_spec_and_float() {
    reciprocal_case(Rounding::Floor);
}

#[test]
fn reciprocal_wrap_free_matches_spec_and_float() {
    reciprocal_case(Rounding::WrapFree);
}

fn reciprocal_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::RECIP_BOUND;
    let xs = sample(seed, N, &[0.01, 1.0, 600.0], |r| r.log_uniform(b.lo, b.hi));
    let w = check(
        "reciprocal",
        r,
        seed,
        &xs,
        b,
        spec::reciprocal_ideal,
        nothing_else,
        |x| spec::reciprocal_fixed(x, &sp, F),
        |x| spec::reciprocal_enclosure(x, &sp, F),
        |p, x| reciprocal(p, x, &pr),
    );
    assert!(w <= BigInt::from(256), "reciprocal enclosure width {w} ulp");
}

#[test]
fn inv_sqrt_matches_spec_and_float() {
    inv_sqrt_case(Rounding::Floor);
}

#[test]
fn inv_sqrt_wrap_free_matches_spec_and_float() {
    inv_sqrt_case(Rounding::WrapFree);
}

fn inv_sqrt_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::INV_SQRT_BOUND;
    let xs = sample(seed, N, &[0.1, 1.0, 150.0], |r| r.log_uniform(b.lo, b.hi));
    let w = check(
        "inv_sqrt",
        r,
        seed,
        &xs,
        b,
        spec::inv_sqrt_ideal,
        nothing_else,
        |x| spec::inv_sqrt_fixed(x, &sp, F),
        |x| spec::inv_sqrt_enclosure(x, &sp, F),
        |p, x| inv_sqrt(p, x, &pr),
    );
    assert!(w <= BigInt::from(256), "inv_sqrt enclosure width {w} ulp");
}

#[test]
fn sigmoid_and_tanh_match_spec_and_float() {
    sigmoid_and_tanh_case(Rounding::Floor);
}

#[test]
fn sigmoid_and_tanh_wrap_free_match_spec_and_float() {
    sigmoid_and_tanh_case(Rounding::WrapFree);
}

fn sigmoid_and_tanh_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::SIGMOID_BOUND;
    let mut k = 0;
    let xs = sample(seed, N, &[0.0, -1e-6, 1e-6, 512.0, -512.0], |r| {
        k += 1;
        if k % 2 == 0 {
            r.uniform(-10.0, 10.0)
        } else {
            r.uniform(b.lo, b.hi)
        }
    });
    let w = check(
        "sigmoid",
        r,
        seed,
        &xs,
        b,
        spec::sigmoid_ideal,
        nothing_else,
        |x| spec::sigmoid_fixed(x, &sp, F),
        |x| spec::sigmoid_enclosure(x, &sp, F),
        |p, x| sigmoid(p, x, &pr),
    );
    assert!(w <= BigInt::from(330), "sigmoid enclosure width {w} ulp");
    let xs: Vec<f64> = xs.iter().map(|x| x / 2.0).collect();
    let w = check(
        "tanh",
        r,
        seed,
        &xs,
        spec::TANH_BOUND,
        spec::tanh_ideal,
        nothing_else,
        |x| spec::tanh_fixed(x, &sp, F),
        |x| spec::tanh_enclosure(x, &sp, F),
        |p, x| tanh(p, x, &pr),
    );
    assert!(w <= BigInt::from(660), "tanh enclosure width {w} ulp");
}

#[test]
fn log_matches_spec_and_float() {
    log_case(Rounding::Floor);
}

#[test]
fn log_wrap_free_matches_spec_and_float() {
    log_case(Rounding::WrapFree);
}

fn log_case(r: Rounding) {
    let seed = fresh_seed();
    let (pr, sp) = params(r);
    let b = spec::LOG_BOUND;
    let xs = sample(seed, N, &[0.05, 1.0, 100.0], |r| r.log_uniform(b.lo, b.hi));
    let w = check(
        "log",
        r,
        seed,
        &xs,
        b,
        spec::log_ideal,
        nothing_else,
        |x| spec::log_fixed(x, &sp, F),
        |x| spec::log_enclosure(x, &sp, F),
        |p, x| log(p, x, &pr),
    );
    assert!(w <= BigInt::from(250_000), "log enclosure width {w} ulp");
}

fn check_softmax(name: &str, r: Rounding, seed: u64, xs: &[f64], d: usize, use_compare_max: bool) {
    let (pr, sp) = params(r);
    check_softmax_with(name, seed, xs, d, use_compare_max, pr, sp);
}

/// The float64 bound for a softmax row of length `d`: `spec::SOFTMAX_BOUND` (sized for
/// rows of 10) for short rows; for the rows of 200 here (logits in `[-3, 3]`) one relative
/// to each entry, since entries near `1/200` would pass `2.5e-3` with 50% error. exp's
/// limit is low by `δ²/2^10` relative at distance `δ ≤ 6` from the maximum, so the
/// normalised entries are off by at most `36/1024 ≈ 3.5%` relative, plus the truncations.
fn softmax_bound(d: usize) -> ErrorBound {
    if d <= 10 {
        spec::SOFTMAX_BOUND
    } else {
        ErrorBound { abs: 2e-5, rel: 4e-2, ..spec::SOFTMAX_BOUND }
    }
}

fn check_softmax_with(
    name: &str,
    seed: u64,
    xs: &[f64],
    d: usize,
    use_compare_max: bool,
    pr: ApproxParams,
    sp: spec::Params,
) {
    let bound = softmax_bound(d);
    let raw: Vec<u64> = xs.iter().map(|&x| enc(x)).collect();
    let run = |rows: &[u64], key_seed: u64| {
        if use_compare_max {
            run_protocol_keys(rows, d, key_seed, |p, x| softmax(p, x, 1, &pr))
        } else {
            // The maxima shared from party 0 instead of computed: isolates the approximation.
            let maxima: Vec<u64> = rows.chunks(d).map(|r| *r.iter().max_by_key(|v| **v as i64).unwrap()).collect();
            run_protocol_keys(rows, d, key_seed, |p, x| {
                let sh = Shape::new([maxima.len()]);
                let owner = PartyId::ALL[0];
                let t = Tensor::from_vec(&p.dev, sh.clone(), maxima.clone())?;
                let m = p.share_input(owner, (p.id == owner).then_some(&t), &sh)?;
                softmax_from_max(p, x, &m, 1, &pr)
            })
        }
    };
    // Why a row misses, if it does.
    let miss = |row: &[u64], out: &[u64]| -> Option<String> {
        let brow: Vec<BigInt> = row.iter().map(|&v| spec::raw(v)).collect();
        let it = spec::softmax_fixed(&brow, &sp, F);
        let en = spec::softmax_enclosure(&brow, &sp, F);
        let want = spec::softmax_ideal(&row.iter().map(|&v| dec(v)).collect::<Vec<_>>());
        for j in 0..d {
            assert!(en[j].contains(&it[j]), "{name} (seed {seed}): iteration outside enclosure");
            let g = spec::raw(out[j]);
            if !en[j].contains(&g) {
                return Some(format!("entry {j}: {g} outside {:?}", en[j]));
            }
            if !bound.holds(dec(out[j]), want[j]) {
                return Some(format!("entry {j}: {} vs {}", dec(out[j]), want[j]));
            }
        }
        None
    };
    // As for the elementwise functions: a row that misses is re-run under other keys (a
    // truncation wrap depends on the keys, a bug on the input), and at most one may miss.
    let got = run(&raw, 11);
    let mut worst = 0.0f64;
    for (row, out) in raw.chunks(d).zip(got.chunks(d)) {
        let want = spec::softmax_ideal(&row.iter().map(|&v| dec(v)).collect::<Vec<_>>());
        worst = out.iter().zip(&want).fold(worst, |m, (g, w)| m.max((dec(*g) - w).abs()));
    }
    eprintln!("{name} {:?}: max error {worst:.2e} (bound {bound:?})", pr.rounding);
    let why: Vec<(&[u64], String)> =
        raw.chunks(d).zip(got.chunks(d)).filter_map(|(row, out)| miss(row, out).map(|w| (row, w))).collect();
    let allowed = if pr.rounding == Rounding::WrapFree { 0 } else { 1 };
    assert!(
        why.len() <= allowed,
        "{name} {:?} (seed {seed}): {} rows missed their bounds, the first: {:?}",
        pr.rounding,
        why.len(),
        why.first().map(|(row, w)| (row.iter().map(|&v| dec(v)).collect::<Vec<_>>(), w))
    );
    let missed: Vec<&[u64]> = why.iter().map(|(row, _)| *row).collect();
    for row in missed {
        let again = run(row, 12);
        if let Some(why) = miss(row, &again) {
            panic!("{name} (seed {seed}): a row misses under two sets of keys: {why}");
        }
        eprintln!("{name}: a row missed once and passed under other keys (a truncation wrap)");
    }
}

#[test]
fn softmax_matches_spec_and_float() {
    softmax_case(Rounding::Floor);
}

#[test]
fn softmax_wrap_free_matches_spec_and_float() {
    softmax_case(Rounding::WrapFree);
}

fn softmax_case(r: Rounding) {
    let seed = fresh_seed();
    let mut rng = Rng(seed);
    // 20 rows of 10 classes, spreads from 1 to 500; one row of 200 classes (Tiny ImageNet).
    let mut xs = Vec::new();
    for r in 0..20 {
        let spread = [1.0, 8.0, 30.0, 500.0][r % 4];
        let off = rng.uniform(-50.0, 50.0);
        for _ in 0..10 {
            xs.push(off + rng.uniform(-spread / 2.0, spread / 2.0));
        }
    }
    check_softmax("softmax d=10", r, seed, &xs, 10, true);
    let wide: Vec<f64> = (0..200).map(|_| rng.uniform(-3.0, 3.0)).collect();
    check_softmax("softmax d=200 (given max)", r, seed, &wide, 200, false);
    // Equal logits: the denominator is d, every entry 1/d.
    check_softmax("softmax equal", r, seed, &[2.5; 10], 10, true);
    // The reciprocal fitted to the row length (what the layers use): 8 Newton steps for
    // rows of 10 and 12 for rows of 200, against the same bound; equal logits put the
    // denominator at the far end, d.
    // The step counts are derived here, not taken from the implementation: from the guess
    // 1.9/(d + 1) the relative error over sums in [1, d] is at most e = 1 - 1.9/(d + 1), and
    // k Newton steps leave e^(2^k); the first k with e^(2^k) <= 2^-24, plus one step:
    // d = 10: e = 0.827, k = 7, so 8; d = 200: e = 0.9905, k = 11, so 12.
    let fitted = |d: usize, steps: u32| {
        let pr = ApproxParams::for_softmax_rows(d).with_rounding(r);
        assert_eq!(pr.softmax_recip_iters, steps, "Newton steps for rows of {d}");
        let sp = spec::Params::for_softmax_rows(d, steps).with_rounding(spec_rounding(r));
        (pr, sp)
    };
    let (pr, sp) = fitted(10, 8);
    check_softmax_with("softmax d=10, fitted reciprocal", seed, &xs, 10, true, pr, sp);
    let (pr, sp) = fitted(10, 8);
    check_softmax_with("softmax equal, fitted reciprocal", seed, &[2.5; 10], 10, true, pr, sp);
    let (pr, sp) = fitted(200, 12);
    check_softmax_with("softmax d=200 (given max), fitted reciprocal", seed, &wide, 200, false, pr, sp);
}

/// The float64 bounds above reject what they are there to reject: exp's relative bound an
/// output of 0 wherever `e^x` is several ulp (the absolute bound alone accepts it below
/// `x = -6.4`), the softmax bound for rows of 200 an entry of `1/200` off by half.
#[test]
fn the_bounds_reject_the_errors_they_guard_against() {
    for x in [-6.0, -6.5, -8.0, -10.0, -12.0] {
        assert!(!exp_relative(x, 0.0), "exp({x}) = 0 accepted");
        assert!(exp_relative(x, x.exp()), "exp({x}) exact rejected");
    }
    assert!(spec::EXP_BOUND.holds(0.0, (-8.0f64).exp()), "the absolute bound alone accepts 0 at x = -8");
    assert!(spec::SOFTMAX_BOUND.holds(0.0075, 0.005), "rows of 10's bound accepts 50% at 1/200");
    assert!(!softmax_bound(200).holds(0.0075, 0.005), "50% at 1/200 accepted for rows of 200");
    assert!(softmax_bound(200).holds(0.005 * 1.03, 0.005), "3% at 1/200 rejected for rows of 200");
}
