//! The overflow guard's check: is every value of a tensor inside the fixed-point range the
//! next product needs? One bit, opened to every party.

use triad_ring::{Device, Tensor};
use triad_sharing::{AShare, BShare, Error, Party, Result};

use crate::boolean::{a2b, and_packed};

/// Whether every element of `x`, read as a signed 64-bit ring value, lies in
/// `[-2^bits, 2^bits)`, opened to all three parties as one bit (nothing else about `x`,
/// not even how many elements are out of range). `bits` is in `1..=62`.
///
/// A value is in range exactly when its bits `bits..=63` all equal its sign: after one
/// [`a2b`], `d = x ^ (x >> 1)` (local) has a one in lane `j` exactly where bits `j` and
/// `j + 1` differ, so `x` is out of range when some lane `bits..=62` of `d` is set. The
/// lanes are OR-reduced across elements by a halving tree (`a | b = a ^ b ^ (a & b)`, one
/// masked AND per level), then within the last word by six shift-and-OR steps, and lane 0
/// is opened.
///
/// Cost: `a2b` (8 rounds, 85.25 bytes per element), then `ceil(log2 n)` rounds whose
/// ANDs send `(63 - bits)/8` bytes per element pair (`(63 - bits)/8` bytes per element in
/// all), `ceil(log2(63 - bits))` one-word rounds, and the opening (one round): at most
/// `15 + ceil(log2 n)` rounds and about `85.25 + (63 - bits)/8` bytes per element per
/// party, plus a few words per round.
pub fn all_in_range<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<bool> {
    let _g = p.net.scope("range_check");
    if !(1..=62).contains(&bits) {
        return Err(Error::Usage(format!("all_in_range: bits must be in 1..=62, not {bits}")));
    }
    let n = x.shape().numel();
    if n == 0 {
        return Ok(true);
    }
    let flat = x.try_clone()?.reshape(vec![n])?;
    let b = a2b(p, &flat)?;
    // Lanes bits..=62 of d, moved down to lanes 0..=62-bits.
    let lanes = 63 - bits;
    let wanted = (1u64 << lanes) - 1;
    let mut d = b.xor(&b.shr(1)?)?.shr(bits)?.and_mask(wanted)?;
    let mut len = n;
    while len > 1 {
        let half = len.div_ceil(2);
        let lo = slice(&d, 0, half)?;
        let hi = if len.is_multiple_of(2) {
            slice(&d, half, half)?
        } else {
            // Pad with a public zero (in range) to pair every word.
            let tail = slice(&d, half, half - 1)?;
            let zero = Tensor::zeros(&p.dev, [1])?;
            BShare { own: Tensor::concat(&[&tail.own, &zero], 0)?, next: Tensor::concat(&[&tail.next, &zero], 0)? }
        };
        d = or(p, &lo, &hi, wanted)?;
        len = half;
    }
    // Within the word: lane 0 becomes the OR of lanes 0..=62-bits.
    let mut width = lanes;
    while width > 1 {
        let shift = width.div_ceil(2);
        let low = (1u64 << shift) - 1;
        let hi = d.shr(shift)?.and_mask(low)?;
        d = or(p, &d.and_mask(low)?, &hi, low)?;
        width = shift;
    }
    let opened = p.reveal_all_xor(&d)?.to_vec()?;
    Ok(opened.first().is_some_and(|w| w & 1 == 0))
}

/// `x | y` on the `mask` lanes (one masked AND).
fn or<D: Device>(p: &Party<D>, x: &BShare<D>, y: &BShare<D>, mask: u64) -> Result<BShare<D>> {
    x.xor(y)?.xor(&and_packed(p, x, y, mask)?)
}

/// Elements `start..start + len` of a rank-1 binary sharing.
fn slice<D: Device>(x: &BShare<D>, start: usize, len: usize) -> Result<BShare<D>> {
    Ok(BShare { own: x.own.slice(0, start..start + len)?, next: x.next.slice(0, start..start + len)? })
}
