//! DReLU, comparisons and ReLU.

use triad_ring::Device;
use triad_sharing::{AShare, BShare, Party, Product, Result};

use crate::boolean::{not_bit_owned, not_bit_owned_at};
use crate::inject::inject_bit;
use crate::sign::{msb, msb_within_top};

/// `DReLU(x) = [x ≥ 0] = 1 ^ MSB(x)` as a lane-0 bit sharing. Exact for every ring value
/// (the two's complement sign). 8 rounds, about 202.3 bits per element per party.
pub fn drelu<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("drelu");
    not_bit_owned(p, msb(p, x)?)
}

/// `[x ≥ 0]` as an arithmetic sharing of 0 or 1: [`drelu`] then bit injection. 9 rounds.
pub fn drelu_arith<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<AShare<D>> {
    let _g = p.net.scope("drelu");
    let b = not_bit_owned(p, msb(p, x)?)?;
    inject_bit(p, &b, 0)
}

/// `[x < y] = MSB(x - y)`, a lane-0 bit sharing. Exact whenever `x - y` does not overflow
/// the signed ring, i.e. `|x - y| < 2^63`: always for fixed-point values in range
/// (`|x|, |y| < 2^62`).
pub fn lt<D: Device>(p: &Party<D>, x: &AShare<D>, y: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("lt");
    msb(p, &x.sub(y)?)
}

/// `[x > y] = MSB(y - x)` (same domain as [`lt`]).
pub fn gt<D: Device>(p: &Party<D>, x: &AShare<D>, y: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("gt");
    msb(p, &y.sub(x)?)
}

/// `[x ≥ y] = 1 ^ MSB(x - y)` (same domain as [`lt`]).
pub fn ge<D: Device>(p: &Party<D>, x: &AShare<D>, y: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("ge");
    not_bit_owned(p, msb(p, &x.sub(y)?)?)
}

/// `[x > 0] = MSB(-x)`. Exact for every ring value except the most negative, `-2^63`
/// (whose negation is itself).
pub fn gtz<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("gtz");
    msb(p, &x.neg()?)
}

/// The result of [`relu`]: the output and the injected DReLU bit kept for the backward pass.
#[derive(Debug)]
pub struct Relu<D: Device> {
    /// `ReLU(x) = x · [x ≥ 0]`.
    pub out: AShare<D>,
    /// `[x ≥ 0]` as an arithmetic sharing of 0 / 1.
    pub mask: AShare<D>,
}

/// `ReLU(x) = x · DReLU(x)`, exact (no truncation: the bit is an integer 0 / 1) for every
/// ring value read as two's complement. 10 rounds: 8 (MSB) + 1 (bit injection) + 1 (ring
/// product); about 25.3 + 10.7 + 8 = 44.0 bytes per element per party.
pub fn relu<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<Relu<D>> {
    relu_within(p, x, 64)
}

/// [`relu`] with the sign taken from the low `bits` bits ([`msb_within`]): exact for `x`
/// in `[-2^(bits-1), 2^(bits-1))`; outside it the output is `x` or 0 by bit `bits - 1` of
/// `x`. 10 rounds; at 48 bits 18.63 + 10.67 + 8 = 37.29 bytes per element per party.
pub fn relu_within<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<Relu<D>> {
    let _g = p.net.scope("relu");
    // The sign left in lane 63: DReLU = 1 ^ MSB there, injected from there.
    let b = not_bit_owned_at(p, msb_within_top(p, x, bits)?, 63)?;
    let mask = inject_bit(p, &b, 63)?;
    let out = p.product(Product::Elementwise, x, &mask)?;
    Ok(Relu { out, mask })
}

/// The width of the sign circuit for a network's activations at `frac_bits` fractional
/// bits: `68 - f` bits (48 at `f = 20`), at most 64, so [`relu_within`] is exact for
/// values below `2^(67 - 2f)` in magnitude (`2^27 ≈ 1.3e8` at `f = 20`).
///
/// That is 64 times the overflow guard's range, `2^(61 - 2f)`: a value beyond
/// `2^(62 - 2f)` already wraps the ring in the next layer's product by a weight of
/// magnitude 1 (its encoding times the weight's passes `2^62` before truncation), so the
/// narrower circuit changes no result a network can use, and it saves about a quarter of
/// the sign circuit's bytes (150 bits per element instead of 202.3).
pub fn activation_sign_bits(frac_bits: u32) -> u32 {
    68u32.saturating_sub(frac_bits).clamp(2, 64)
}

/// ReLU backward: `grad · [x ≥ 0]` with the bit kept by [`relu`]. One round, 8 bytes per
/// element per party.
pub fn relu_backward<D: Device>(p: &Party<D>, grad: &AShare<D>, mask: &AShare<D>) -> Result<AShare<D>> {
    let _g = p.net.scope("relu_backward");
    p.product(Product::Elementwise, grad, mask)
}
