//! Fixed point (the `triad-fixed` crate): exact ideals and error bounds.
//!
//! A ring element `v` with `f` fractional bits stands for the rational `ṽ / 2^f`, `ṽ` the
//! two's complement reading of `v` ([`signed`]). Every real here is a [`Dyadic`] rational
//! (a big integer over a power of two) so that ideals and bounds are compared exactly, with
//! no floating-point rounding in the judge.
//!
//! | operation | ideal | bound |
//! |---|---|---|
//! | `encode(x)` | `round(x·2^f)` (ties away from 0) mod 2^64; error iff `x` is not finite or `|x|·2^f >= 2^62` | [`roundtrip_bound`]: `|decode(encode(x)) - x| <= 2^-(f+1)` |
//! | `decode(v)` | the `f64` nearest `ṽ / 2^f` (ties to even) | exact when `|ṽ| <= 2^53` |
//! | `truncate(v)` | `floor(ṽ / 2^f)` mod 2^64 | [`truncation_bound`]: `0 <= exact - result < 2^-f` |
//! | `mul(x, y)` | `floor(x̃ỹ / 2^f)` mod 2^64 while `|x̃ỹ| < 2^63` ([`product_fits`]) | `0 <= x̂ŷ - result < 2^-f` |
//! | `mul_public(x, c)` | `mul(x, encode(c))` | [`mul_public_bound`]: `< 2^-f + |x̂|·2^-(f+1)` |

use std::cmp::Ordering;

use num_integer::Integer;
use num_traits::Signed;

use crate::{lift, pow2, reduce, signed, BigInt};

pub use triad_fixed::{DEFAULT_FRAC_BITS, MAX_FRAC_BITS, RANGE_BITS};

/// An exact dyadic rational `num / 2^shift`. Equality and order are by value
/// (`1/2 == 2/4`).
#[derive(Clone, Debug)]
pub struct Dyadic {
    /// Numerator.
    pub num: BigInt,
    /// Power of two of the denominator.
    pub shift: u32,
}

impl Dyadic {
    /// The integer `n`.
    pub fn int(n: BigInt) -> Self {
        Dyadic { num: n, shift: 0 }
    }

    /// `2^e` for any integer `e`.
    pub fn pow2(e: i32) -> Self {
        if e >= 0 {
            Dyadic::int(pow2(e as u32))
        } else {
            Dyadic { num: BigInt::from(1u8), shift: e.unsigned_abs() }
        }
    }

    /// The exact value of a finite `f64` (`None` for NaN and the infinities), read from its
    /// IEEE 754 fields: `(-1)^s · m · 2^e`.
    pub fn from_f64(x: f64) -> Option<Self> {
        let b = x.to_bits();
        let sign = b >> 63;
        let exp = ((b >> 52) & 0x7ff) as i32;
        let frac = b & ((1u64 << 52) - 1);
        if exp == 0x7ff {
            return None;
        }
        let (mant, e) = if exp == 0 {
            (frac, -1074) // subnormal
        } else {
            (frac | (1 << 52), exp - 1075)
        };
        let m = BigInt::from(mant);
        let m = if sign == 1 { -m } else { m };
        Some(if e >= 0 { Dyadic::int(m * pow2(e as u32)) } else { Dyadic { num: m, shift: e.unsigned_abs() } })
    }

    /// The value of ring element `v` with `f` fractional bits: `ṽ / 2^f`.
    pub fn from_fixed(v: u64, f: u32) -> Self {
        Dyadic { num: signed(v), shift: f }
    }

    /// Both numerators over the common denominator `2^max(shift)`.
    fn aligned(&self, other: &Self) -> (BigInt, BigInt, u32) {
        let s = self.shift.max(other.shift);
        (&self.num * pow2(s - self.shift), &other.num * pow2(s - other.shift), s)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Self) -> Self {
        let (a, b, s) = self.aligned(other);
        Dyadic { num: a - b, shift: s }
    }

    /// `self + other`.
    pub fn add(&self, other: &Self) -> Self {
        let (a, b, s) = self.aligned(other);
        Dyadic { num: a + b, shift: s }
    }

    /// `self · other`.
    pub fn mul(&self, other: &Self) -> Self {
        Dyadic { num: &self.num * &other.num, shift: self.shift + other.shift }
    }

    /// `|self|`.
    pub fn abs(&self) -> Self {
        Dyadic { num: self.num.abs(), shift: self.shift }
    }

    /// `self · 2^f` (exact).
    pub fn scale(&self, f: u32) -> Self {
        if self.shift >= f {
            Dyadic { num: self.num.clone(), shift: self.shift - f }
        } else {
            Dyadic::int(&self.num * pow2(f - self.shift))
        }
    }

    /// The nearest integer, ties away from zero.
    pub fn round_half_away(&self) -> BigInt {
        if self.shift == 0 {
            return self.num.clone();
        }
        let twice: BigInt = self.num.abs() * 2u8 + pow2(self.shift);
        let q = twice.div_floor(&pow2(self.shift + 1));
        if self.num.is_negative() {
            -q
        } else {
            q
        }
    }

    /// The nearest `f64` (ties to even). Domain: results whose exponent stays within the
    /// normal range (every value this module produces).
    pub fn to_f64_nearest(&self) -> f64 {
        if self.num == BigInt::from(0u8) {
            return 0.0;
        }
        let m = self.num.abs();
        let len = m.bits() as i64;
        // Keep 53 significant bits; round the dropped ones to nearest, ties to even.
        let drop = (len - 53).max(0) as u32;
        let (mut q, r) = m.div_mod_floor(&pow2(drop));
        if drop > 0 {
            let half = pow2(drop - 1);
            if r > half || (r == half && q.is_odd()) {
                q += 1;
            }
        }
        // q <= 2^53 is exact in an f64; the power of two is exact too.
        let q = q.to_u64_digits().1.first().copied().unwrap_or(0) as f64;
        let e = drop as i64 - i64::from(self.shift);
        assert!((-1022..=1023).contains(&e), "exponent {e} outside the normal range");
        let v = q * f64::from_bits(((e + 1023) as u64) << 52);
        if self.num.is_negative() {
            -v
        } else {
            v
        }
    }
}

impl PartialEq for Dyadic {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Dyadic {}

impl PartialOrd for Dyadic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dyadic {
    /// Exact comparison over the common denominator.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b, _) = self.aligned(other);
        a.cmp(&b)
    }
}

/// Why a real cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// NaN or an infinity.
    NotFinite,
    /// `|x| · 2^f >= 2^62`.
    OutOfRange,
}

/// The exclusive bound on encodable magnitudes, `2^(62 - f)`.
pub fn max_abs(f: u32) -> Dyadic {
    Dyadic::pow2(RANGE_BITS as i32 - f as i32)
}

/// Ideal encoding: `round(x · 2^f) mod 2^64` (ties away from zero), or the reason it is
/// refused.
pub fn encode(x: f64, f: u32) -> Result<u64, EncodeError> {
    let d = Dyadic::from_f64(x).ok_or(EncodeError::NotFinite)?;
    let scaled = d.scale(f);
    if scaled.abs().cmp(&Dyadic::pow2(RANGE_BITS as i32)) != Ordering::Less {
        return Err(EncodeError::OutOfRange);
    }
    Ok(reduce(&scaled.round_half_away()))
}

/// Ideal integer encoding: `n · 2^f mod 2^64`, refused when `|n| · 2^f >= 2^62`.
pub fn encode_int(n: i64, f: u32) -> Result<u64, EncodeError> {
    let scaled = BigInt::from(n) * pow2(f);
    if scaled.abs() >= pow2(RANGE_BITS) {
        return Err(EncodeError::OutOfRange);
    }
    Ok(reduce(&scaled))
}

/// The exact value of `v`: `ṽ / 2^f`.
pub fn decode_exact(v: u64, f: u32) -> Dyadic {
    Dyadic::from_fixed(v, f)
}

/// Ideal decoding: the `f64` nearest to `ṽ / 2^f`.
pub fn decode(v: u64, f: u32) -> f64 {
    decode_exact(v, f).to_f64_nearest()
}

/// Truncation: `floor(ṽ / 2^f) mod 2^64` (an arithmetic shift right by `f`).
pub fn truncate(v: u64, f: u32) -> u64 {
    reduce(&signed(v).div_floor(&pow2(f)))
}

/// Whether the double-width product fits the ring: `|x̃ · ỹ| < 2^63`.
pub fn product_fits(x: u64, y: u64) -> bool {
    (signed(x) * signed(y)).abs() < pow2(63)
}

/// The ideal fixed-point product `floor(x̃ỹ / 2^f) mod 2^64`. Meaningful (and equal to
/// [`mul_ring`]) when [`product_fits`].
pub fn mul(x: u64, y: u64, f: u32) -> u64 {
    reduce(&(signed(x) * signed(y)).div_floor(&pow2(f)))
}

/// What the ring computes for a fixed-point product in every case: the product reduced
/// mod 2^64, read as two's complement, then truncated.
pub fn mul_ring(x: u64, y: u64, f: u32) -> u64 {
    truncate(reduce(&(lift(x) * lift(y))), f)
}

/// Multiplication by a public real: [`mul_ring`] with the encoding of `c`.
pub fn mul_public(x: u64, c: f64, f: u32) -> Result<u64, EncodeError> {
    Ok(mul_ring(x, encode(c, f)?, f))
}

/// `2^-(f+1)`: `|decode(encode(x)) - x|` is at most this on the encodable range.
pub fn roundtrip_bound(f: u32) -> Dyadic {
    Dyadic::pow2(-(f as i32) - 1)
}

/// `2^-f`: truncation errs by less than this, always downward.
pub fn truncation_bound(f: u32) -> Dyadic {
    Dyadic::pow2(-(f as i32))
}

/// `2^-f + |x̂| · 2^-(f+1)`: the strict bound on `|mul_public(x, c) - x̂ c|` (when the
/// product fits), truncation plus the rounding of `c` scaled by `x̂`.
pub fn mul_public_bound(x: u64, f: u32) -> Dyadic {
    truncation_bound(f).add(&decode_exact(x, f).abs().mul(&roundtrip_bound(f)))
}

/// Whether `decoded` is within [`roundtrip_bound`] of `x`.
pub fn roundtrip_ok(x: f64, decoded: f64, f: u32) -> bool {
    match (Dyadic::from_f64(x), Dyadic::from_f64(decoded)) {
        (Some(a), Some(b)) => a.sub(&b).abs().cmp(&roundtrip_bound(f)) != Ordering::Greater,
        _ => false,
    }
}

/// Whether `got` (with `f` fractional bits) is a correct truncation of `exact`:
/// `0 <= exact - got < 2^-f`.
pub fn truncation_ok(exact: &Dyadic, got: u64, f: u32) -> bool {
    let err = exact.sub(&decode_exact(got, f));
    err.num >= BigInt::from(0u8) && err.cmp(&truncation_bound(f)) == Ordering::Less
}

/// Whether `got` is an acceptable fixed-point product of `x` and `y`: within
/// [`truncation_bound`] below the real product `x̂ŷ`.
pub fn mul_ok(x: u64, y: u64, got: u64, f: u32) -> bool {
    truncation_ok(&decode_exact(x, f).mul(&decode_exact(y, f)), got, f)
}

/// Whether `got` is within [`mul_public_bound`] of `x̂ · c`.
pub fn mul_public_ok(x: u64, c: f64, got: u64, f: u32) -> bool {
    let Some(c) = Dyadic::from_f64(c) else {
        return false;
    };
    let err = decode_exact(got, f).sub(&decode_exact(x, f).mul(&c)).abs();
    err.cmp(&mul_public_bound(x, f)) == Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        assert_eq!(encode(1.0, 20), Ok(1 << 20));
        assert_eq!(encode(-0.5 / 1048576.0, 20), Ok(u64::MAX));
        assert_eq!(encode(0.25 / 1048576.0, 20), Ok(0));
        assert_eq!(encode(f64::NAN, 20), Err(EncodeError::NotFinite));
        assert_eq!(encode(4398046511104.0, 20), Err(EncodeError::OutOfRange));
        assert_eq!(decode(u64::MAX, 20), -1.0 / 1048576.0);
        assert_eq!(decode(1 << 63, 0), -9223372036854775808.0);
        assert_eq!(decode((1 << 53) + 1, 0), 9007199254740992.0); // tie to even
        assert_eq!(decode((1 << 53) + 3, 0), 9007199254740996.0);
        assert_eq!(truncate(u64::MAX, 20), u64::MAX);
        assert_eq!(mul(encode(1.5, 20).unwrap_or(0), encode(-2.0, 20).unwrap_or(0), 20), encode(-3.0, 20).unwrap_or(0));
        assert!(roundtrip_ok(0.1, decode(encode(0.1, 20).unwrap_or(0), 20), 20));
        let three_quarters = Dyadic { num: BigInt::from(-3), shift: 2 };
        assert_eq!(Dyadic::from_f64(-0.75).map(|d| d.cmp(&three_quarters)), Some(Ordering::Equal));
    }
}
