//! The approximations. Each public function opens a cost scope named after itself; the
//! `*_inner` versions do the work without a scope so composites nest cleanly.

use triad_compare::{drelu_arith, max_axis};
use triad_ring::Device;
use triad_sharing::{AShare, Party, Product, Result, Rounding};

use crate::util::{
    add_const, broadcast_axis, concat, const_sub, enc, mul, mul_many, mul_public_raw, one, split, square, trunc,
};
use crate::ApproxParams;

/// The starting point of a Newton iteration.
#[derive(Debug)]
pub enum Guess<D: Device> {
    /// A public constant (a ring element: the encoding of a real). The first iteration
    /// then needs only products by a public value: 2 rounds instead of 4.
    Public(u64),
    /// A secret-shared guess.
    Shared(AShare<D>),
}

// ---- exp ---------------------------------------------------------------------------------------

/// `exp(x) ≈ (1 + x/2^m)^(2^m)` with `m = params.exp_iters` (CryptGPU §3; default 9).
///
/// `y_0 = 1 + trunc(x, m)` (one truncation by `m` bits), then `m` fixed-point squarings.
/// Domain: `-2^m ≤ x ≤ 0` (softmax after max-normalisation, `exp(-|x|)` in sigmoid), where
/// the error is at most the bound in the crate docs. For `0 < x ≲ 7.9` (at `f = 20`) the
/// result is still usable with relative error about `x²/2^(m+1)`; above that the squarings
/// overflow. Below `-2^m`, `1 + x/2^m` is negative and the result is meaningless.
/// Cost: `m + 1` truncations (15 rounds of depth, 80 bytes per element for `m = 9`).
pub fn exp<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("exp");
    exp_inner(p, x, params.exp_iters, params.rounding)
}

/// [`exp`] with an explicit `m` and rounding, and no cost scope.
pub fn exp_inner<D: Device>(p: &Party<D>, x: &AShare<D>, m: u32, r: Rounding) -> Result<AShare<D>> {
    let t = trunc(p, x, m, r)?;
    let mut y = p.add_scalar(&t, one(p))?;
    for _ in 0..m {
        y = square(p, &y, r)?;
    }
    Ok(y)
}

// ---- reciprocal ---------------------------------------------------------------------------------

/// `iters` Newton-Raphson steps `y ← y (2 - x y)` for `1/x` from `y0` (no cost scope).
///
/// Each step is two sequential fixed-point products (4 rounds, 16 bytes per element per
/// party); a [`Guess::Public`] start makes the first step two public products (2 rounds).
/// Converges when `0 < x y0 < 2`; the relative error `e = 1 - x y` squares at each step.
pub fn newton_reciprocal<D: Device>(
    p: &Party<D>,
    x: &AShare<D>,
    y0: Guess<D>,
    iters: u32,
    r: Rounding,
) -> Result<AShare<D>> {
    let two = 2 * one(p);
    let (mut y, rest) = match y0 {
        Guess::Shared(y) => (y, iters),
        Guess::Public(c) => {
            if iters == 0 {
                return crate::util::public_full(p, x.shape(), c);
            }
            let t = mul_public_raw(p, x, c, r)?;
            let u = p.add_scalar(&t.neg()?, two)?;
            (mul_public_raw(p, &u, c, r)?, iters - 1)
        }
    };
    for _ in 0..rest {
        let t = mul(p, x, &y, r)?;
        let u = p.add_scalar(&t.neg()?, two)?;
        y = mul(p, &y, &u, r)?;
    }
    Ok(y)
}

/// CryptGPU's softmax reciprocal: `params.softmax_recip_iters` (13) Newton steps from the
/// public guess `params.softmax_recip_guess` (1/200). Valid for `x ∈ [1, d]` with
/// `d < 2 / guess` (`d < 400` by default). Cost: 38 rounds, 208 bytes per element.
pub fn softmax_reciprocal<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("softmax_reciprocal");
    let c = enc(p, params.softmax_recip_guess)?;
    newton_reciprocal(p, x, Guess::Public(c), params.softmax_recip_iters, params.rounding)
}

/// The general positive reciprocal (CrypTen's): `y0 = 3 exp(0.5 - x) + 0.003`, evaluated
/// as `exp(0.5 + ln 3 - x) + 0.003` (the factor folded into the exponent, an exact
/// identity that saves a truncation), then `params.recip_iters` (10) Newton steps.
/// Domain: `x ∈ [0.01, 600]`. Cost: 45 rounds, 240 bytes per element.
pub fn reciprocal<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("reciprocal");
    let arg = const_sub(p, params.recip_guess_shift + params.recip_guess_scale.ln(), x)?;
    let e = exp_inner(p, &arg, params.exp_iters, params.rounding)?;
    let y0 = add_const(p, &e, params.recip_guess_offset)?;
    newton_reciprocal(p, x, Guess::Shared(y0), params.recip_iters, params.rounding)
}

// ---- softmax ------------------------------------------------------------------------------------

/// Softmax along `axis` with max-normalisation (CryptGPU §5): `z = x - max x` (max from
/// `triad-compare`, exact), `e = exp(z)` (every `z ≤ 0`), `s = Σ e ∈ [1, d]`,
/// `r = softmax_reciprocal(s)`, result `e · r`.
/// Domain: spread `max x - x ≤ 2^m` (512) within each row, rows of length `d < 400` with the
/// default guess. Cost (rows of 10): 94 rounds, about 158 bytes per input element.
pub fn softmax<D: Device>(p: &Party<D>, x: &AShare<D>, axis: usize, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("softmax");
    let m = max_axis(p, x, axis)?;
    softmax_from_max(p, x, &m, axis, params)
}

/// Softmax given the row maxima `m` (shape of `x` without `axis`); no max protocol, no
/// cost scope. The maxima need not be exact: any `m ≥ max x` with `m - x ≤ 2^m` works,
/// and the sum is then in `[exp(max x - m), d]`.
pub fn softmax_from_max<D: Device>(
    p: &Party<D>,
    x: &AShare<D>,
    m: &AShare<D>,
    axis: usize,
    params: &ApproxParams,
) -> Result<AShare<D>> {
    let z = x.sub(&broadcast_axis(m, x.shape(), axis)?)?;
    let e = {
        let _g = p.net.scope("exp");
        exp_inner(p, &z, params.exp_iters, params.rounding)?
    };
    let s = e.sum_axis(axis)?;
    let r = softmax_reciprocal(p, &s, params)?;
    mul(p, &e, &broadcast_axis(&r, x.shape(), axis)?, params.rounding)
}

// ---- inverse square root ----------------------------------------------------------------------

/// `1/sqrt(x)` by Newton `y ← y (3 - x y²) / 2`, computed as `y (1.5 - (x/2) y²)` with
/// `x/2` truncated once, from CrypTen's guess
/// `y0 = 2.2 exp(-(x/2 + 0.2)) + 0.2 - x/1024` (the factor 2.2 folded into the exponent as
/// `+ ln 2.2`), `params.invsqrt_iters` (3) steps. `x/2` and `x/1024` come from one
/// truncation of `[x·2^9, x]` by 10 bits. Domain `[0.1, 150]` (3 steps leave up to 0.5%
/// relative error there). Cost: 29 rounds, 168 bytes per element.
pub fn inv_sqrt<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("inv_sqrt");
    let k = params.invsqrt_guess_slope_bits;
    let r = params.rounding;
    let both = trunc(p, &concat(&[&x.shl(k - 1)?, x])?, k, r)?;
    let mut parts = split(&both, &[x.shape().clone(), x.shape().clone()])?.into_iter();
    let (xh, xs) = match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(triad_sharing::Error::Usage("inv_sqrt: split".into())),
    };
    let arg = const_sub(p, params.invsqrt_guess_scale.ln() - params.invsqrt_guess_shift, &xh)?;
    let e = exp_inner(p, &arg, params.exp_iters, r)?;
    let mut y = add_const(p, &e, params.invsqrt_guess_offset)?.sub(&xs)?;
    let three_halves = enc(p, 1.5)?;
    for _ in 0..params.invsqrt_iters {
        let y2 = square(p, &y, r)?;
        let t = mul(p, &xh, &y2, r)?;
        let u = p.add_scalar(&t.neg()?, three_halves)?;
        y = mul(p, &y, &u, r)?;
    }
    Ok(y)
}

// ---- sigmoid and tanh --------------------------------------------------------------------------

/// `σ(x) = 1 / (1 + exp(-x))`: `b = [x ≥ 0]` (DReLU + bit injection), `|x| = x (2b - 1)`
/// (ring product, exact), `s = σ(|x|) = 1/d` with `d = 1 + exp(-|x|) ∈ [1, 2]` by Newton
/// from the linear guess `1.5 - d/2` (relative error at most 1/8, so 3 steps reach
/// `8^-8 < 2^-20`), then the select `σ(x) = (1 - s) + b (2s - 1)` (ring product).
/// Domain: `|x| ≤ 2^m` (512). Cost: 36 rounds, about 198 bytes per element.
pub fn sigmoid<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("sigmoid");
    sigmoid_inner(p, x, params)
}

fn sigmoid_inner<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let s1 = one(p);
    let b = drelu_arith(p, x)?;
    let sign = p.add_scalar(&b.shl(1)?, 1u64.wrapping_neg())?;
    let abs = p.product(Product::Elementwise, x, &sign)?;
    let e = {
        let _g = p.net.scope("exp");
        exp_inner(p, &abs.neg()?, params.exp_iters, params.rounding)?
    };
    let d = p.add_scalar(&e, s1)?;
    let y0 = p.add_scalar(&trunc(p, &d, 1, params.rounding)?.neg()?, s1 + s1 / 2)?;
    let s = newton_reciprocal(p, &d, Guess::Shared(y0), params.sigmoid_recip_iters, params.rounding)?;
    let two_s_minus_1 = p.add_scalar(&s.shl(1)?, s1.wrapping_neg())?;
    let sel = p.product(Product::Elementwise, &b, &two_s_minus_1)?;
    p.add_scalar(&sel.sub(&s)?, s1)
}

/// `tanh(x) = 2 σ(2x) - 1` (local doubling and affine map around [`sigmoid`]).
/// Domain: `|x| ≤ 2^(m-1)` (256). Cost: as sigmoid.
pub fn tanh<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("tanh");
    let s = sigmoid_inner(p, &x.shl(1)?, params)?;
    p.add_scalar(&s.shl(1)?, one(p).wrapping_neg())
}

// ---- log ----------------------------------------------------------------------------------------

/// Natural log by CrypTen's Householder iteration on exp: `y0 = x/120 - 20 exp(-2x - 1) + 3`,
/// then `params.log_iters` (2) steps `h = 1 - x exp(-y)`, `y ← y - Σ_{k=1..order} h^k / k`
/// (order 8), with exp at `m = params.log_exp_iters` (8). The powers of `h` are built by
/// doubling (3 batched products for order 8); the weighted sum takes one truncation.
/// Domain `[0.05, 100]`, error `≤ 0.05`. Cost: 50 rounds, 368 bytes per element.
pub fn log<D: Device>(p: &Party<D>, x: &AShare<D>, params: &ApproxParams) -> Result<AShare<D>> {
    let _g = p.net.scope("log");
    let m = params.log_exp_iters;
    let f = p.fixed.frac_bits;
    let r = params.rounding;
    let t1 = mul_public_raw(p, x, enc(p, 1.0 / 120.0)?, r)?;
    let e0 = exp_inner(p, &const_sub(p, -1.0, &x.shl(1)?)?, m, r)?;
    let mut y = add_const(p, &t1.sub(&e0.mul_scalar(20)?)?, 3.0)?;
    let order = params.log_order.max(1) as usize;
    for _ in 0..params.log_iters {
        let e = exp_inner(p, &y.neg()?, m, r)?;
        let h = p.add_scalar(&mul(p, x, &e, r)?.neg()?, one(p))?;
        let pw = powers(p, h, order, r)?;
        let mut acc = pw[0].mul_scalar(one(p))?;
        for (k, hk) in pw.iter().enumerate().skip(1) {
            acc.add_assign(&hk.mul_scalar(enc(p, 1.0 / (k + 1) as f64)?)?)?;
        }
        y = y.sub(&trunc(p, &acc, f, r)?)?;
    }
    Ok(y)
}

/// `[h, h², ..., h^order]` by doubling: with `h^1..h^k` known, `h^(k+j) = h^k · h^j` for
/// `j = 1..=k` in one batched product (`ceil(log2 order)` products).
fn powers<D: Device>(p: &Party<D>, h: AShare<D>, order: usize, r: Rounding) -> Result<Vec<AShare<D>>> {
    let mut pw = vec![h];
    while pw.len() < order {
        let k = pw.len();
        let top = &pw[k - 1];
        let want = (order - k).min(k);
        let pairs: Vec<(&AShare<D>, &AShare<D>)> = (0..want).map(|j| (top, &pw[j])).collect();
        let new = mul_many(p, &pairs, r)?;
        pw.extend(new);
    }
    Ok(pw)
}
