//! # triad-approx: nonlinear functions over replicated shares
//!
//! exp, reciprocal, softmax, inverse square root, sigmoid, tanh and log on 2-out-of-3
//! replicated sharings of fixed-point values (`triad-sharing`, `f = 20` by default), by the
//! iterations of CryptGPU (§3, §5) and CrypTen. Every function takes the calling
//! [`Party`](triad_sharing::Party) and an [`ApproxParams`], is called by all three parties in
//! the same order, and opens a cost scope named after itself.
//!
//! The exact fixed-point iterations (each truncation a floor division) and rigorous
//! enclosures of what the protocol can output are in `triad_spec::approx`; the book's
//! "Nonlinear approximations" chapter has the derivations and the measured error tables
//! (`cargo run --release -p triad-approx --example error_table` regenerates them, also in
//! `ACCURACY.md`).
//!
//! ## Functions, domains, errors and costs (defaults, `f = 20`)
//!
//! Errors are against float64, measured over a dense sweep of the domain through the real
//! protocol; the tests assert the "bound" column on a fresh random sample every run.
//! Costs are per element and party (bytes are exact; parties 0 and 1 send more than party
//! 2 on truncations).
//!
//! | function | method | domain | bound (abs + rel·|f|) | rounds | bytes p0 / p2 |
//! |---|---|---|---|---|---|
//! | [`exp`] | `(1 + x/2^9)^(2^9)` | `[-512, 0]` | `1.6e-3` | 15 | 80 / 72 |
//! | [`softmax_reciprocal`] | Newton ×13 from 1/200 | `[1, 399]` | `5 ulp + 1e-5 rel` | 38 | 208 / 192 |
//! | [`reciprocal`] | CrypTen guess, Newton ×10 | `[0.01, 600]` | `5 ulp + 2e-5 rel` | 45 | 240 / 232 |
//! | [`softmax`] (rows of 10) | max, exp, sum, reciprocal, product | spread `≤ 512`, `d ≤ 10` | `2.5e-3` | 94 | 158 / 148 |
//! | [`inv_sqrt`] | CrypTen guess, Newton ×3 | `[0.1, 150]` | `2e-4 + 6e-3 rel` | 29 | 168 / 144 |
//! | [`sigmoid`] | `exp(-|x|)`, Newton ×3 on `[1, 2]`, select | `[-512, 512]` | `1e-3` | 36 | 198 / 182 |
//! | [`tanh`] | `2σ(2x) - 1` | `[-256, 256]` | `2e-3` | 36 | 198 / 182 |
//! | [`log`] | Householder (order 8) ×2 on exp (m = 8) | `[0.05, 100]` | `5e-2` | 50 | 368 / 320 |
//!
//! Rounds are the causal depth the transport measures from synchronised parties (a fused
//! fixed-point product costs less than two full rounds of depth on some parties).
//! The bytes and rounds are pinned by `tests/tests/approx_costs.rs`; the error figures are
//! the ones `ACCURACY.md` reports.
//!
//! ## Why the errors are what they are
//!
//! - **Truncation goes down.** Every fixed-point product is floored, and share truncation
//!   adds at most one more unit downward (`floor` or `floor - 1`). Errors are one-sided
//!   and accumulate.
//! - **exp amplifies.** `y = 1 + x/2^m` carries one or two units of error, and `m` squarings
//!   multiply a relative error by `2^m`: about `2^m · 2^-f ≈ 5e-4` relative at `x ≈ 0`,
//!   plus the limit's own `x²/2^(m+1)` relative (negligible for `x ≤ 0` where `e^x` is small
//!   where `x²` is large).
//! - **Newton forgets.** Reciprocal and inverse square root iterations are self-correcting:
//!   only the last step's truncations and the convergence remainder remain.
//!
//! Share truncation fails with probability about `|t|/2^64` per element (`t` the value
//! truncated, below `2^44` here): a rare large error the bounds do not cover. With
//! [`ApproxParams::rounding`] set to [`Rounding::WrapFree`] (the layers' choice) there is
//! no such error: every truncation is `floor` or `floor + 1`, and the spec's enclosures
//! (`triad_spec::approx`, given the same rounding) hold without exception.

mod funcs;
pub mod util;

pub use triad_sharing::Rounding;

pub use funcs::{
    exp, exp_inner, inv_sqrt, log, newton_reciprocal, reciprocal, sigmoid, softmax, softmax_from_max,
    softmax_reciprocal, tanh, Guess,
};

/// Iteration counts and initial guesses. [`Default`] gives CryptGPU's released values where
/// CryptGPU has the function, CrypTen's elsewhere, and wrap-free truncation (the safe
/// rounding; CryptGPU's share truncation is `with_rounding(Rounding::Floor)`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApproxParams {
    /// `m` of `exp(x) ≈ (1 + x/2^m)^(2^m)`: 9 (CryptGPU's code; CrypTen uses 8).
    pub exp_iters: u32,
    /// Newton steps of the softmax reciprocal: 13 (CryptGPU).
    pub softmax_recip_iters: u32,
    /// Public initial guess of the softmax reciprocal: 1/200 (CryptGPU). Newton converges
    /// for denominators below `2 / guess`; for rows longer than 399 use about `1/d` and
    /// `log2(40 d)` steps.
    pub softmax_recip_guess: f64,
    /// Newton steps of the general reciprocal: 10 (CrypTen).
    pub recip_iters: u32,
    /// General reciprocal guess `scale · exp(shift - x) + offset`: scale 3 (CrypTen).
    pub recip_guess_scale: f64,
    /// ... shift 0.5 (CrypTen).
    pub recip_guess_shift: f64,
    /// ... offset 0.003 (CrypTen).
    pub recip_guess_offset: f64,
    /// Newton steps of the reciprocal inside sigmoid (denominator in `[1, 2]`, linear guess
    /// `1.5 - d/2`): 3.
    pub sigmoid_recip_iters: u32,
    /// Newton steps of the inverse square root: 3 (CrypTen).
    pub invsqrt_iters: u32,
    /// Inverse square root guess `scale · exp(-(x/2 + shift)) + offset - x/2^slope_bits`:
    /// scale 2.2 (CrypTen).
    pub invsqrt_guess_scale: f64,
    /// ... shift 0.2 (CrypTen).
    pub invsqrt_guess_shift: f64,
    /// ... offset 0.2 (CrypTen).
    pub invsqrt_guess_offset: f64,
    /// ... slope `2^-10` (CrypTen's `x/1024`); at least 1.
    pub invsqrt_guess_slope_bits: u32,
    /// Householder steps of log: 2 (CrypTen).
    pub log_iters: u32,
    /// `m` of the exp inside log: 8 (CrypTen).
    pub log_exp_iters: u32,
    /// Order of the Householder step (terms of `-ln(1 - h)`): 8 (CrypTen).
    pub log_order: u32,
    /// How every truncation of the function rounds: [`Rounding::WrapFree`] by default
    /// (what the layers use: it never makes share truncation's rare large error; it sends
    /// one more element per truncation per party and takes two rounds per truncation).
    /// [`Rounding::Floor`] is ABY3 share truncation, CryptGPU's protocol (one round bare,
    /// about one and a half fused with a product), kept by name for measurement:
    /// `ApproxParams::default().with_rounding(Rounding::Floor)`.
    pub rounding: Rounding,
}

impl ApproxParams {
    /// These parameters with every truncation rounding as `rounding`.
    pub fn with_rounding(self, rounding: Rounding) -> Self {
        ApproxParams { rounding, ..self }
    }

    /// The defaults with the softmax reciprocal fitted to rows of length `d`: the row sum
    /// after max-normalisation lies in `[1, d]`, so the public guess `1.9 / (d + 1)` starts
    /// Newton with relative error at most `e = 1 - 1.9 / (d + 1)`, and
    /// [`softmax_recip_steps`] steps (the fewest with `e^(2^k) ≤ 2^-24`, plus one, as the
    /// default's 13 are for CryptGPU's `1/200`) reach full precision. Rows of 10 take 8 steps
    /// instead of 13 (15 rounds fewer per softmax with share truncation, 20 wrap-free); rows longer than 399 get more
    /// steps and a guess inside the convergence region, which the default lacks.
    pub fn for_softmax_rows(d: usize) -> Self {
        let d = d.max(1);
        ApproxParams {
            softmax_recip_guess: 1.9 / (d as f64 + 1.0),
            softmax_recip_iters: softmax_recip_steps(d),
            ..ApproxParams::default()
        }
    }
}

/// Newton steps for the softmax reciprocal of rows of length `d` from the guess
/// `1.9 / (d + 1)` (see [`ApproxParams::for_softmax_rows`]).
pub fn softmax_recip_steps(d: usize) -> u32 {
    let d = d.max(1) as f64;
    // The relative error 1 - s·guess over s in [1, d], at its worse end.
    let e = (1.0 - 1.9 / (d + 1.0)).abs().max((1.0 - 1.9 * d / (d + 1.0)).abs()).max(1e-3);
    let mut k = 0u32;
    let mut err = e;
    while err > 2f64.powi(-24) && k < 40 {
        err *= err;
        k += 1;
    }
    k + 1
}

impl Default for ApproxParams {
    fn default() -> Self {
        ApproxParams {
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
            rounding: Rounding::WrapFree,
        }
    }
}
