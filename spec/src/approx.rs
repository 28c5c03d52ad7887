//! Nonlinear approximations (the `triad-approx` crate): the exact fixed-point iterations,
//! enclosures of every protocol output, and the ideal functions with their error bounds.
//!
//! Values here are *raw* fixed-point numerators: the big integer `ṽ` standing for
//! `ṽ / 2^f` (the two's complement reading of a ring element, [`signed`](crate::signed)).
//! `S = 2^f` is the encoding of 1.
//!
//! ## Three layers per function
//!
//! 1. **The iteration** (`*_fixed`): the protocol's exact sequence of operations with
//!    every truncation a floor division by a power of two (`mul(a, b) = floor(ab / S)`,
//!    `trunc(a, k) = floor(a / 2^k)`). This is what the protocol computes when no share
//!    truncation carries.
//! 2. **The enclosure** (`*_enclosure`): share truncation returns `floor` *or `floor - 1`*
//!    (the two parts are shifted separately; see [`sharing`](crate::sharing)), unbiased and
//!    wrap-free truncation `floor` *or `floor + 1`* ([`Rounding`], chosen by
//!    [`Params::rounding`]), independently per element and per truncation. An [`Encl`] `[lo, hi]` contains every value the
//!    protocol can output for any pattern of those ±1-unit carries. Each step is enclosed
//!    as a whole (not operation by operation), so Newton's self-correction is kept: the
//!    step map's exact range over the input interval is computed (the maps are concave
//!    quadratics or cubics in `y`, monotone in the other inputs), then widened by the
//!    step's truncation slack (derivations on each step function). The width `hi - lo` is
//!    the accumulated per-step bound: it is what "the protocol may differ from the
//!    iteration by one unit per truncation" amounts to at the output.
//! 3. **The ideal** (`*_ideal`, `f64`) and its documented [`ErrorBound`] against the
//!    protocol output, measured over the domain by the error-table command and enforced by
//!    the tests.
//!
//! Out of scope, as everywhere in the protocol stack: the rare large error of share
//! truncation (probability about `|t| / 2^64` per truncated value `t`, below `2^-20` here).
//! Wrap-free truncation has none, so under [`Rounding::WrapFree`] the enclosures hold
//! without exception.
//!
//! | function | enclosure width (ulp, worst measured over the test domains) |
//! |---|---|
//! | exp (m = 9) on `[-512, 0]` | 1023 at `x = 0`, shrinking with `e^x` |
//! | softmax reciprocal on `[1, 399]` | ≤ 6 |
//! | reciprocal on `[0.01, 600]` | about `3 + 2/x` (202 at 0.01) |
//! | inverse sqrt on `[0.1, 150]` | grows as `x` falls: about 200 at 0.1 |
//! | sigmoid, tanh | 261, 522 |
//! | log (plain interval arithmetic over the Householder step) | up to ~150 000 (0.14): loose |

use std::cmp::Ordering;

use num_integer::Integer;
use num_traits::{Signed, Zero};

use crate::{pow2, BigInt};

/// How the protocol's truncations round (`triad_sharing::Rounding`, re-declared): which
/// integers around `floor(v / 2^k)` one truncation of `v` may return.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rounding {
    /// ABY3 share truncation: `floor` or `floor - 1`.
    #[default]
    Floor,
    /// Share truncation with party 0's unit added: `floor` or `floor + 1`.
    Unbiased,
    /// Wrap-free truncation: `floor` or `floor + 1`, and never a large error.
    WrapFree,
}

impl Rounding {
    /// `(down, up)`: one truncation returns an integer in `[floor - down, floor + up]`.
    pub fn slack(self) -> (u32, u32) {
        match self {
            Rounding::Floor => (1, 0),
            Rounding::Unbiased | Rounding::WrapFree => (0, 1),
        }
    }
}

/// The iteration counts and guesses of `triad_approx::ApproxParams` (re-declared: the spec
/// depends on no protocol crate). Defaults are the same.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// `m` of `(1 + x/2^m)^(2^m)`.
    pub exp_iters: u32,
    /// Newton steps of the softmax reciprocal.
    pub softmax_recip_iters: u32,
    /// Its public initial guess.
    pub softmax_recip_guess: f64,
    /// Newton steps of the general reciprocal.
    pub recip_iters: u32,
    /// Guess `scale · exp(shift - x) + offset`.
    pub recip_guess_scale: f64,
    /// ... shift.
    pub recip_guess_shift: f64,
    /// ... offset.
    pub recip_guess_offset: f64,
    /// Newton steps of sigmoid's reciprocal on `[1, 2]`.
    pub sigmoid_recip_iters: u32,
    /// Newton steps of the inverse square root.
    pub invsqrt_iters: u32,
    /// Guess `scale · exp(-(x/2 + shift)) + offset - x / 2^slope_bits`.
    pub invsqrt_guess_scale: f64,
    /// ... shift.
    pub invsqrt_guess_shift: f64,
    /// ... offset.
    pub invsqrt_guess_offset: f64,
    /// ... slope bits.
    pub invsqrt_guess_slope_bits: u32,
    /// Householder steps of log.
    pub log_iters: u32,
    /// `m` of the exp inside log.
    pub log_exp_iters: u32,
    /// Order of the Householder step.
    pub log_order: u32,
    /// How every truncation rounds.
    pub rounding: Rounding,
}

impl Params {
    /// These parameters with every truncation rounding as `rounding`.
    pub fn with_rounding(self, rounding: Rounding) -> Self {
        Params { rounding, ..self }
    }

    /// Mirrors `triad_approx::ApproxParams::for_softmax_rows(d)`: the softmax reciprocal's
    /// guess `1.9 / (d + 1)` and its step count for rows of length `d`.
    pub fn for_softmax_rows(d: usize, steps: u32) -> Self {
        Params { softmax_recip_guess: 1.9 / (d.max(1) as f64 + 1.0), softmax_recip_iters: steps, ..Params::default() }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            exp_iters: 9,
            softmax_recip_iters: 13,
            softmax_recip_guess: 1.0 / 200.0,
            recip_iters: 10,
            recip_guess_scale: 3.0,
            recip_guess_shift: 0.5,
            recip_guess_offset: 0.003,
            sigmoid_recip_iters: 3,
            invsqrt_iters: 3,
            invsqrt_guess_scale: 2.2,
            invsqrt_guess_shift: 0.2,
            invsqrt_guess_offset: 0.2,
            invsqrt_guess_slope_bits: 10,
            log_iters: 2,
            log_exp_iters: 8,
            log_order: 8,
            rounding: Rounding::Floor,
        }
    }
}

// ---- documented error bounds -------------------------------------------------------------------

/// A documented error bound of a protocol output `got` against the ideal `want` on a domain:
/// `|got - want| <= abs + rel · |want|` for every `x` in `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorBound {
    /// Smallest input of the domain.
    pub lo: f64,
    /// Largest input of the domain.
    pub hi: f64,
    /// Absolute part.
    pub abs: f64,
    /// Relative part.
    pub rel: f64,
}

impl ErrorBound {
    /// Whether `got` is within the bound of `want`.
    pub fn holds(&self, got: f64, want: f64) -> bool {
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }
}

/// exp (m = 9) on `[-512, 0]`: the squarings amplify the first step's truncation by `2^9`
/// (about `1.1e-3` at `x = 0`); the limit's own error `x²/2^10` relative is largest in
/// absolute terms near `x = -2` (`e^-2 · 4/1024 ≈ 5e-4`).
pub const EXP_BOUND: ErrorBound = ErrorBound { lo: -512.0, hi: 0.0, abs: 1.6e-3, rel: 0.0 };
/// Softmax reciprocal (13 steps from 1/200) on `[1, 399]`: converged; a few units of the
/// last place.
pub const SOFTMAX_RECIP_BOUND: ErrorBound = ErrorBound { lo: 1.0, hi: 399.0, abs: 5.0 / 1048576.0, rel: 1e-5 };
/// General reciprocal (CrypTen guess, 10 steps) on `[0.01, 600]`.
pub const RECIP_BOUND: ErrorBound = ErrorBound { lo: 0.01, hi: 600.0, abs: 5.0 / 1048576.0, rel: 2e-5 };
/// Inverse square root (CrypTen guess, 3 steps) on `[0.1, 150]`: CrypTen's 3 steps leave a
/// convergence error up to 0.5% relative (at `x = 0.1` and near 1, 10 and 150).
pub const INV_SQRT_BOUND: ErrorBound = ErrorBound { lo: 0.1, hi: 150.0, abs: 2e-4, rel: 6e-3 };
/// Sigmoid on `[-512, 512]`: exp's error scaled by `σ'`-like factors, at most `1e-3`.
pub const SIGMOID_BOUND: ErrorBound = ErrorBound { lo: -512.0, hi: 512.0, abs: 1e-3, rel: 0.0 };
/// tanh on `[-256, 256]`: twice sigmoid's.
pub const TANH_BOUND: ErrorBound = ErrorBound { lo: -256.0, hi: 256.0, abs: 2e-3, rel: 0.0 };
/// log (CrypTen: Householder order 8, 2 steps, exp with m = 8) on `[0.05, 100]`: the
/// iteration converges to the inverse of the approximate exp, off by about
/// `(ln x)² / 2^9` (0.04 at `x = 100`, 0.018 at `x = 0.05`).
pub const LOG_BOUND: ErrorBound = ErrorBound { lo: 0.05, hi: 100.0, abs: 5e-2, rel: 0.0 };
/// Softmax of rows of at most 10 entries (spread `max x - x ≤ 512`), per output entry.
///
/// Two sources. exp's limit `(1 + z/2^9)^(2^9)` is low by about `z²/2^10` relative, so
/// the other entries' share of the sum is too small: with `p` the output and the other
/// entries at `-δ`, the error is about `p (1 - p) δ²/2^10`, at most `2.0e-3` for rows of
/// 10 (nine entries at `δ ≈ 3.5`, computed in float64 without rounding); the truncations
/// add at most `5e-4`. The sweep measures `1.85e-3` at spread 8. Longer rows weigh the
/// limit's error more: up to about `7.8e-3` for 200 entries and `1.3e-2` for 1,000.
pub const SOFTMAX_BOUND: ErrorBound = ErrorBound { lo: -512.0, hi: 0.0, abs: 2.5e-3, rel: 0.0 };

// ---- ideals ------------------------------------------------------------------------------------

/// `e^x`.
pub fn exp_ideal(x: f64) -> f64 {
    x.exp()
}
/// `1/x`.
pub fn reciprocal_ideal(x: f64) -> f64 {
    1.0 / x
}
/// `1/sqrt(x)`.
pub fn inv_sqrt_ideal(x: f64) -> f64 {
    1.0 / x.sqrt()
}
/// `1 / (1 + e^-x)`, evaluated stably.
pub fn sigmoid_ideal(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
/// `tanh x`.
pub fn tanh_ideal(x: f64) -> f64 {
    x.tanh()
}
/// `ln x`.
pub fn log_ideal(x: f64) -> f64 {
    x.ln()
}
/// `exp(x_i - max x) / Σ_j exp(x_j - max x)` over one row.
pub fn softmax_ideal(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| (v - m).exp() / s).collect()
}

// ---- fixed-point primitives ----------------------------------------------------------------------

/// `S = 2^f`.
fn one(f: u32) -> BigInt {
    pow2(f)
}

/// `floor(a / 2^k)`.
pub fn trunc(a: &BigInt, k: u32) -> BigInt {
    a.div_floor(&pow2(k))
}

/// The fixed-point product `floor(a b / 2^f)`.
pub fn mul(a: &BigInt, b: &BigInt, f: u32) -> BigInt {
    trunc(&(a * b), f)
}

/// The raw encoding of a real constant (as the protocol's `FixedConfig::encode`: round to
/// nearest, ties away from zero).
pub fn constant(v: f64, f: u32) -> BigInt {
    let e = crate::fixed::encode(v, f).unwrap_or_else(|_| panic!("constant {v} is not encodable"));
    crate::signed(e)
}

/// The raw value of a ring element.
pub fn raw(v: u64) -> BigInt {
    crate::signed(v)
}

/// The ring element of a raw value.
pub fn ring(v: &BigInt) -> u64 {
    crate::reduce(v)
}

// ---- enclosures ----------------------------------------------------------------------------------

/// A closed interval `[lo, hi]` of raw values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encl {
    /// Smallest possible value.
    pub lo: BigInt,
    /// Largest possible value.
    pub hi: BigInt,
}

impl Encl {
    /// The single value `v`.
    pub fn point(v: BigInt) -> Self {
        Encl { lo: v.clone(), hi: v }
    }
    /// Whether `v` lies in the interval.
    pub fn contains(&self, v: &BigInt) -> bool {
        &self.lo <= v && v <= &self.hi
    }
    /// `hi - lo` in units of the last place.
    pub fn width(&self) -> BigInt {
        &self.hi - &self.lo
    }
    /// `self + c`.
    pub fn add_const(&self, c: &BigInt) -> Self {
        Encl { lo: &self.lo + c, hi: &self.hi + c }
    }
    /// `self + o`.
    pub fn add(&self, o: &Encl) -> Self {
        Encl { lo: &self.lo + &o.lo, hi: &self.hi + &o.hi }
    }
    /// `-self`.
    pub fn neg(&self) -> Self {
        Encl { lo: -&self.hi, hi: -&self.lo }
    }
    /// `self - o`.
    pub fn sub(&self, o: &Encl) -> Self {
        self.add(&o.neg())
    }
    /// `c · self` for an integer `c ≥ 0` (a local product by a public ring scalar, exact).
    pub fn scale(&self, c: &BigInt) -> Self {
        assert!(!c.is_negative(), "scale by a negative constant");
        Encl { lo: &self.lo * c, hi: &self.hi * c }
    }
    /// `[floor(lo / 2^k) - down, floor(hi / 2^k) + up]` for the rounding's slack.
    fn trunc_span(lo: &BigInt, hi: &BigInt, k: u32, r: Rounding) -> Self {
        let (down, up) = r.slack();
        Encl { lo: trunc(lo, k) - down, hi: trunc(hi, k) + up }
    }
    /// Truncation by `k` bits of any value in the interval, rounding as `r` (share
    /// truncation: `floor(v / 2^k)` or one less).
    pub fn trunc(&self, k: u32, r: Rounding) -> Self {
        Self::trunc_span(&self.lo, &self.hi, k, r)
    }
    /// The fixed-point product of any two values of the intervals (interval arithmetic:
    /// the extreme products are at the corners), rounding as `r`.
    pub fn mul(&self, o: &Encl, f: u32, r: Rounding) -> Self {
        let c = [&self.lo * &o.lo, &self.lo * &o.hi, &self.hi * &o.lo, &self.hi * &o.hi];
        let min = c.iter().min().cloned().unwrap_or_default();
        let max = c.iter().max().cloned().unwrap_or_default();
        Self::trunc_span(&min, &max, f, r)
    }
    /// The fixed-point square of any value of the interval (one sharing times itself),
    /// rounding as `r`.
    pub fn square(&self, f: u32, r: Rounding) -> Self {
        let (a, b) = (&self.lo * &self.lo, &self.hi * &self.hi);
        let (min, max) = if !self.lo.is_negative() {
            (a, b)
        } else if !self.hi.is_positive() {
            (b, a)
        } else {
            (BigInt::zero(), a.max(b))
        };
        Self::trunc_span(&min, &max, f, r)
    }
}

fn floor_q(num: &BigInt, den: &BigInt) -> BigInt {
    num.div_floor(den)
}

// ---- exp -----------------------------------------------------------------------------------------

/// The iteration of `exp`: `y = S + floor(x / 2^m)`, then `m` times `y = floor(y² / S)`.
pub fn exp_fixed(x: &BigInt, m: u32, f: u32) -> BigInt {
    let mut y = trunc(x, m) + one(f);
    for _ in 0..m {
        y = mul(&y, &y, f);
    }
    y
}

/// Everything `exp` can output for an input in `x` with truncations rounding as `r`: the
/// first truncation gives `[S + floor(lo/2^m) - 1, S + floor(hi/2^m)]` (share truncation;
/// `+ 1` at the top instead for wrap-free), each squaring [`Encl::square`] (monotone for
/// `y ≥ 0`, so the endpoints iterate as points and the width only grows by the squarings'
/// amplification `2y` plus one unit per step).
pub fn exp_enclosure(x: &Encl, m: u32, f: u32, r: Rounding) -> Encl {
    let mut y = x.trunc(m, r).add_const(&one(f));
    for _ in 0..m {
        y = y.square(f, r);
    }
    y
}

// ---- reciprocal ----------------------------------------------------------------------------------

/// The iteration of Newton's reciprocal: `iters` times `t = mul(x, y)`,
/// `y = mul(y, 2S - t)` (a public start takes the same arithmetic).
pub fn newton_reciprocal_fixed(x: &BigInt, y0: &BigInt, iters: u32, f: u32) -> BigInt {
    let two = one(f) * 2u8;
    let mut y = y0.clone();
    for _ in 0..iters {
        let t = mul(x, &y, f);
        y = mul(&y, &(&two - t), f);
    }
    y
}

/// One Newton reciprocal step over intervals `x = [X_a, X_b]` (`X_a > 0`) and
/// `y = [Y_a, Y_b]` (`Y_a ≥ 0`), truncations rounding as `r`.
///
/// A truncation of a real `z` returns an integer in `(z - 1 - d, z + u]` with
/// `(d, u) = r.slack()` (`(1, 0)` for share truncation, `(0, 1)` for wrap-free). For one
/// `(X, Y)` the protocol gives `T ∈ (XY/S - 1 - d, XY/S + u]`, then
/// `Y' = trunc(Y (2S - T) / S)`, so with `q(X, Y) = Y (2S² - XY) / S²` (the exact real
/// step) and `Y ≥ 0`: `q - uY/S - 1 - d < Y' ≤ q + (1 + d)Y/S + u` (share truncation:
/// `q - 2 < Y' < q + 2Y/S`). `q` decreases in `X` and is a concave parabola in `Y` with
/// its top `S²/X` at `Y = S²/X`; its range over the box is exact: minimum at `X_b` and an
/// endpoint of `y`, maximum at `X_a` and the vertex or an endpoint.
pub fn newton_reciprocal_step_enclosure(x: &Encl, y: &Encl, f: u32, r: Rounding) -> Encl {
    assert!(x.lo.is_positive(), "reciprocal of a non-positive value");
    assert!(!y.lo.is_negative(), "Newton reciprocal from a negative iterate");
    let s2 = one(2 * f);
    let q = |xv: &BigInt, yv: &BigInt| -> BigInt { floor_q(&(yv * (&s2 * 2u8 - xv * yv)), &s2) };
    let qmin = q(&x.hi, &y.lo).min(q(&x.hi, &y.hi));
    let vertex = floor_q(&s2, &x.lo);
    let qmax = if y.lo <= vertex && vertex <= y.hi {
        // q(vertex) = S²/X_a exactly; its floor bounds the real vertex from below by < 1.
        vertex + 1
    } else {
        q(&x.lo, &y.lo).max(q(&x.lo, &y.hi))
    };
    // Below: Y' > floor(q) - uY_b/S - 1 - d, and uY_b/S < floor(uY_b/S) + 1 when u > 0.
    // Above: Y' < (floor(q) + 1) + (floor((1 + d)Y_b/S) + 1) + u.
    let (d, u) = r.slack();
    let down = if u > 0 { trunc(&(&y.hi * u), f) + 1u8 } else { BigInt::zero() };
    Encl { lo: qmin - d - down, hi: qmax + trunc(&(&y.hi * (1 + d)), f) + 1u8 + u }
}

/// [`newton_reciprocal_fixed`] over intervals: `iters` steps of
/// [`newton_reciprocal_step_enclosure`].
pub fn newton_reciprocal_enclosure(x: &Encl, y0: &Encl, iters: u32, f: u32, r: Rounding) -> Encl {
    let mut y = y0.clone();
    for _ in 0..iters {
        y = newton_reciprocal_step_enclosure(x, &y, f, r);
    }
    y
}

/// The softmax reciprocal's iteration: Newton from the public guess.
pub fn softmax_reciprocal_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    newton_reciprocal_fixed(x, &constant(p.softmax_recip_guess, f), p.softmax_recip_iters, f)
}

/// Its enclosure (for an input interval: the softmax denominator is itself uncertain).
pub fn softmax_reciprocal_enclosure(x: &Encl, p: &Params, f: u32) -> Encl {
    let c = Encl::point(constant(p.softmax_recip_guess, f));
    newton_reciprocal_enclosure(x, &c, p.softmax_recip_iters, f, p.rounding)
}

/// The general reciprocal's iteration: `y0 = exp(c - x) + offset` with
/// `c = shift + ln scale` encoded, then Newton.
pub fn reciprocal_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    let c = constant(p.recip_guess_shift + p.recip_guess_scale.ln(), f);
    let e = exp_fixed(&(c - x), p.exp_iters, f);
    let y0 = e + constant(p.recip_guess_offset, f);
    newton_reciprocal_fixed(x, &y0, p.recip_iters, f)
}

/// Its enclosure.
pub fn reciprocal_enclosure(x: &BigInt, p: &Params, f: u32) -> Encl {
    let c = constant(p.recip_guess_shift + p.recip_guess_scale.ln(), f);
    let e = exp_enclosure(&Encl::point(c - x), p.exp_iters, f, p.rounding);
    let y0 = e.add_const(&constant(p.recip_guess_offset, f));
    newton_reciprocal_enclosure(&Encl::point(x.clone()), &y0, p.recip_iters, f, p.rounding)
}

// ---- softmax -------------------------------------------------------------------------------------

/// Softmax of one row: `z = x - max x` (exact), `e = exp(z)`, `s = Σ e`,
/// `r = softmax reciprocal of s`, result `mul(e_i, r)`.
pub fn softmax_fixed(row: &[BigInt], p: &Params, f: u32) -> Vec<BigInt> {
    let m = row.iter().max().cloned().unwrap_or_default();
    let e: Vec<BigInt> = row.iter().map(|x| exp_fixed(&(x - &m), p.exp_iters, f)).collect();
    let s: BigInt = e.iter().sum();
    let r = softmax_reciprocal_fixed(&s, p, f);
    e.iter().map(|ei| mul(ei, &r, f)).collect()
}

/// Its enclosure, entry by entry (the sum's interval ignores its correlation with each
/// entry: sound, slightly wide).
pub fn softmax_enclosure(row: &[BigInt], p: &Params, f: u32) -> Vec<Encl> {
    let m = row.iter().max().cloned().unwrap_or_default();
    let e: Vec<Encl> = row.iter().map(|x| exp_enclosure(&Encl::point(x - &m), p.exp_iters, f, p.rounding)).collect();
    let s = e.iter().skip(1).fold(e[0].clone(), |a, b| a.add(b));
    let r = softmax_reciprocal_enclosure(&s, p, f);
    e.iter().map(|ei| ei.mul(&r, f, p.rounding)).collect()
}

// ---- inverse square root -----------------------------------------------------------------------

/// The iteration of the inverse square root: `xh = floor(x/2)`, `xs = floor(x/2^k)`,
/// `y0 = exp(ln scale - shift - xh) + offset - xs`, then `iters` times
/// `y2 = mul(y, y)`, `t = mul(xh, y2)`, `y = mul(y, 3S/2 - t)`.
pub fn inv_sqrt_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    let k = p.invsqrt_guess_slope_bits;
    let xh = trunc(&(x * pow2(k - 1)), k);
    let xs = trunc(x, k);
    let c = constant(p.invsqrt_guess_scale.ln() - p.invsqrt_guess_shift, f);
    let e = exp_fixed(&(c - &xh), p.exp_iters, f);
    let mut y = e + constant(p.invsqrt_guess_offset, f) - xs;
    let th = constant(1.5, f);
    for _ in 0..p.invsqrt_iters {
        let y2 = mul(&y, &y, f);
        let t = mul(&xh, &y2, f);
        y = mul(&y, &(&th - t), f);
    }
    y
}

/// One inverse-square-root step over intervals `xh = [H_a, H_b]` (`H_a ≥ 0`) and
/// `y = [Y_a, Y_b]` (`Y_a ≥ 0`), truncations rounding as `r` (`(d, u) = r.slack()`, as in
/// [`newton_reciprocal_step_enclosure`]).
///
/// For one `(H, Y)`: `Y2 ∈ (Y²/S - 1 - d, Y²/S + u]`,
/// `T ∈ (H Y²/S² - (1 + d)H/S - 1 - d, H Y²/S² + uH/S + u]`,
/// `Y' ∈ (h - uY(H/S + 1)/S - 1 - d, h + (1 + d)Y(H/S + 1)/S + u]` with the exact step
/// `h(H, Y) = Y (3S/2 - H Y²/S²)/S` (share truncation: `Y' ∈ (h - 2, h + Y (2H/S + 2)/S)`).
/// `h` decreases in `H` and is concave in `Y ≥ 0` with its top `Y_v = sqrt(S³/(2H))`
/// (where `h(Y_v) = Y_v`): minimum at `H_b` and an endpoint, maximum at `H_a` and the
/// vertex or an endpoint.
pub fn inv_sqrt_step_enclosure(xh: &Encl, y: &Encl, f: u32, r: Rounding) -> Encl {
    assert!(!xh.lo.is_negative(), "inverse square root of a negative value");
    assert!(!y.lo.is_negative(), "inverse square root iterate went negative");
    let s = one(f);
    let s3 = one(3 * f);
    let h = |hv: &BigInt, yv: &BigInt| -> BigInt { floor_q(&(yv * (&s3 * 3u8 - hv * yv * yv * 2u8)), &(&s3 * 2u8)) };
    let hmin = h(&xh.hi, &y.lo).min(h(&xh.hi, &y.hi));
    let ends = h(&xh.lo, &y.lo).max(h(&xh.lo, &y.hi));
    let hmax = if xh.lo.is_zero() {
        ends
    } else {
        let v2 = floor_q(&s3, &(&xh.lo * 2u8));
        let inside = &y.lo * &y.lo <= &v2 + 1u8 && v2.cmp(&(&y.hi * &y.hi)) != Ordering::Greater;
        if inside {
            // sqrt(S³/(2H)) < isqrt(floor(S³/(2H)) + 1) + 1.
            (floor_q(&s3, &(&xh.lo * 2u8)) + 1u8).sqrt() + 1u8
        } else {
            ends
        }
    };
    let (d, u) = r.slack();
    let slack = trunc(&(&y.hi * (&xh.hi + &s) * (1 + d)), 2 * f) + 1u8;
    let down = if u > 0 { trunc(&(&y.hi * (&xh.hi + &s) * u), 2 * f) + 1u8 } else { BigInt::zero() };
    Encl { lo: hmin - d - down, hi: hmax + slack + 1u8 + u }
}

/// Enclosure of [`inv_sqrt_fixed`].
pub fn inv_sqrt_enclosure(x: &BigInt, p: &Params, f: u32) -> Encl {
    let k = p.invsqrt_guess_slope_bits;
    let r = p.rounding;
    let xh = Encl::point(x * pow2(k - 1)).trunc(k, r);
    let xs = Encl::point(x.clone()).trunc(k, r);
    let c = constant(p.invsqrt_guess_scale.ln() - p.invsqrt_guess_shift, f);
    let e = exp_enclosure(&xh.neg().add_const(&c), p.exp_iters, f, r);
    let mut y = e.add_const(&constant(p.invsqrt_guess_offset, f)).sub(&xs);
    for _ in 0..p.invsqrt_iters {
        y = inv_sqrt_step_enclosure(&xh, &y, f, r);
    }
    y
}

// ---- sigmoid and tanh ----------------------------------------------------------------------------

/// The iteration of sigmoid: `b = [x ≥ 0]`, `a = |x|` (exact), `e = exp(-a)`, `d = S + e`,
/// `y0 = 3S/2 - floor(d/2)`, Newton for `1/d`, then `s` if `b` else `S - s`.
pub fn sigmoid_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    let s1 = one(f);
    let e = exp_fixed(&-x.abs(), p.exp_iters, f);
    let d = &s1 + e;
    let y0 = &s1 * 3u8 / 2u8 - trunc(&d, 1);
    let s = newton_reciprocal_fixed(&d, &y0, p.sigmoid_recip_iters, f);
    if x.is_negative() {
        s1 - s
    } else {
        s
    }
}

/// Its enclosure (the sign bit and `|x|` are exact; the select maps `[lo, hi]` to
/// `[S - hi, S - lo]` for negative `x`).
pub fn sigmoid_enclosure(x: &BigInt, p: &Params, f: u32) -> Encl {
    let s1 = one(f);
    let e = exp_enclosure(&Encl::point(-x.abs()), p.exp_iters, f, p.rounding);
    let d = e.add_const(&s1);
    let y0 = d.trunc(1, p.rounding).neg().add_const(&(&s1 * 3u8 / 2u8));
    let s = newton_reciprocal_enclosure(&d, &y0, p.sigmoid_recip_iters, f, p.rounding);
    if x.is_negative() {
        s.neg().add_const(&s1)
    } else {
        s
    }
}

/// The iteration of tanh: `2 sigmoid(2x) - S`.
pub fn tanh_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    sigmoid_fixed(&(x * 2u8), p, f) * 2u8 - one(f)
}

/// Its enclosure.
pub fn tanh_enclosure(x: &BigInt, p: &Params, f: u32) -> Encl {
    sigmoid_enclosure(&(x * 2u8), p, f).scale(&BigInt::from(2u8)).add_const(&-one(f))
}

// ---- log -----------------------------------------------------------------------------------------

/// The coefficients `encode(1/k)`, `k = 1..=order`, of the Householder polynomial.
fn log_coeffs(order: usize, f: u32) -> Vec<BigInt> {
    (1..=order).map(|k| constant(1.0 / k as f64, f)).collect()
}

/// The doubling order of the powers (as the protocol): `h^(k+j+1) = h^k · h^(j+1)`.
fn power_plan(order: usize) -> Vec<(usize, usize)> {
    let mut plan = Vec::new();
    let mut have = 1;
    while have < order {
        let want = (order - have).min(have);
        for j in 0..want {
            plan.push((have - 1, j));
        }
        have += want;
    }
    plan
}

/// The iteration of log: `y = floor(x c/S) - 20 exp(-2x - S) + 3S` (`c = encode(1/120)`,
/// exp with `m = log_exp_iters`), then `log_iters` times `e = exp(-y)`,
/// `h = S - mul(x, e)`, the powers `h^k` by doubling, `y = y - floor(Σ encode(1/k) h^k / S)`.
pub fn log_fixed(x: &BigInt, p: &Params, f: u32) -> BigInt {
    let m = p.log_exp_iters;
    let s1 = one(f);
    let t1 = mul(x, &constant(1.0 / 120.0, f), f);
    let e0 = exp_fixed(&(-(x * 2u8) - &s1), m, f);
    let mut y = t1 - e0 * 20u8 + &s1 * 3u8;
    let order = p.log_order.max(1) as usize;
    let coeffs = log_coeffs(order, f);
    for _ in 0..p.log_iters {
        let e = exp_fixed(&-&y, m, f);
        let h = &s1 - mul(x, &e, f);
        let mut pw = vec![h];
        for (a, b) in power_plan(order) {
            let v = mul(&pw[a], &pw[b], f);
            pw.push(v);
        }
        let acc: BigInt = pw.iter().zip(&coeffs).map(|(hk, c)| hk * c).sum();
        y -= trunc(&acc, f);
    }
    y
}

/// Its enclosure, by plain interval arithmetic operation by operation (squares where the
/// protocol multiplies a sharing by itself). Unlike the Newton steps this loses the
/// iteration's self-correction (the dependency of `h` on `y`), so it is much wider; it is
/// still a sound enclosure.
pub fn log_enclosure(x: &BigInt, p: &Params, f: u32) -> Encl {
    let m = p.log_exp_iters;
    let r = p.rounding;
    let s1 = one(f);
    let xe = Encl::point(x.clone());
    let t1 = Encl::point(x * constant(1.0 / 120.0, f)).trunc(f, r);
    let e0 = exp_enclosure(&Encl::point(-(x * 2u8) - &s1), m, f, r);
    let mut y = t1.sub(&e0.scale(&BigInt::from(20u8))).add_const(&(&s1 * 3u8));
    let order = p.log_order.max(1) as usize;
    let coeffs = log_coeffs(order, f);
    for _ in 0..p.log_iters {
        let e = exp_enclosure(&y.neg(), m, f, r);
        let h = xe.mul(&e, f, r).neg().add_const(&s1);
        let mut pw = vec![h];
        for (a, b) in power_plan(order) {
            let v = if a == b { pw[a].square(f, r) } else { pw[a].mul(&pw[b], f, r) };
            pw.push(v);
        }
        let acc = pw.iter().zip(&coeffs).map(|(hk, c)| hk.scale(c)).fold(Encl::point(BigInt::zero()), |a, b| a.add(&b));
        y = y.sub(&acc.trunc(f, r));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u32 = 20;

    fn r(v: f64) -> BigInt {
        constant(v, F)
    }
    fn val(v: &BigInt) -> f64 {
        crate::fixed::decode(ring(v), F)
    }
    /// The input as the protocol sees it (encoded, then read back).
    fn q(x: f64) -> f64 {
        val(&r(x))
    }

    #[test]
    fn iterations_near_ideal() {
        let p = Params::default();
        for x in [-10.0, -1.0, -0.1, 0.0] {
            assert!(EXP_BOUND.holds(val(&exp_fixed(&r(x), 9, F)), exp_ideal(q(x))), "exp {x}");
        }
        for x in [1.0, 7.0, 100.0, 399.0] {
            let got = val(&softmax_reciprocal_fixed(&r(x), &p, F));
            assert!(SOFTMAX_RECIP_BOUND.holds(got, 1.0 / q(x)), "softmax recip {x}: {got}");
        }
        for x in [0.01, 0.5, 3.0, 600.0] {
            assert!(RECIP_BOUND.holds(val(&reciprocal_fixed(&r(x), &p, F)), 1.0 / q(x)), "recip {x}");
        }
        for x in [0.1, 1.0, 30.0, 150.0] {
            assert!(INV_SQRT_BOUND.holds(val(&inv_sqrt_fixed(&r(x), &p, F)), inv_sqrt_ideal(q(x))), "isqrt {x}");
        }
        for x in [-30.0, -1.0, 0.0, 2.0, 512.0] {
            assert!(SIGMOID_BOUND.holds(val(&sigmoid_fixed(&r(x), &p, F)), sigmoid_ideal(q(x))), "sigmoid {x}");
            assert!(TANH_BOUND.holds(val(&tanh_fixed(&r(x / 2.0), &p, F)), tanh_ideal(q(x / 2.0))), "tanh {x}");
        }
        for x in [0.05, 0.5, 1.0, 10.0, 100.0] {
            assert!(LOG_BOUND.holds(val(&log_fixed(&r(x), &p, F)), log_ideal(q(x))), "log {x}");
        }
        let row: Vec<BigInt> = [1.0, -2.0, 0.5, 3.0].iter().map(|&v| r(v)).collect();
        let want = softmax_ideal(&[1.0, -2.0, 0.5, 3.0]);
        for (g, w) in softmax_fixed(&row, &p, F).iter().zip(want) {
            assert!(SOFTMAX_BOUND.holds(val(g), w));
        }
    }

    #[test]
    fn enclosures_contain_the_iteration() {
        let p = Params::default();
        for x in [-500.0, -3.0, 0.0] {
            assert!(exp_enclosure(&Encl::point(r(x)), 9, F, Rounding::Floor).contains(&exp_fixed(&r(x), 9, F)));
        }
        for x in [1.0, 250.0] {
            assert!(softmax_reciprocal_enclosure(&Encl::point(r(x)), &p, F).contains(&softmax_reciprocal_fixed(
                &r(x),
                &p,
                F
            )));
        }
        for x in [0.01, 2.0, 600.0] {
            assert!(reciprocal_enclosure(&r(x), &p, F).contains(&reciprocal_fixed(&r(x), &p, F)));
        }
        for x in [0.1, 2.0, 150.0] {
            assert!(inv_sqrt_enclosure(&r(x), &p, F).contains(&inv_sqrt_fixed(&r(x), &p, F)));
        }
        for x in [-3.0, 0.0, 4.0] {
            assert!(sigmoid_enclosure(&r(x), &p, F).contains(&sigmoid_fixed(&r(x), &p, F)));
            assert!(tanh_enclosure(&r(x), &p, F).contains(&tanh_fixed(&r(x), &p, F)));
        }
        for x in [0.05, 1.0, 100.0] {
            assert!(log_enclosure(&r(x), &p, F).contains(&log_fixed(&r(x), &p, F)));
        }
        assert_eq!(power_plan(8), vec![(0, 0), (1, 0), (1, 1), (3, 0), (3, 1), (3, 2), (3, 3)]);
    }
}
