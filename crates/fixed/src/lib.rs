//! # triad-fixed: fixed-point reals in Z_{2^64}
//!
//! Protocols compute on ring elements; models compute on reals. This crate is the bridge:
//! a real `x` is stored as the ring element `round(x * 2^f) mod 2^64`, i.e. a two's
//! complement integer with `f` fractional bits ([`DEFAULT_FRAC_BITS`] = 20, as CryptGPU).
//!
//! ## Representation
//!
//! A ring element `v` is read as the signed integer `ṽ` (`v` if `v < 2^63`, else
//! `v - 2^64`) and stands for the real `ṽ / 2^f`. Addition and subtraction of encodings
//! are ring addition and subtraction. A product of two encodings carries `2f` fractional
//! bits and is brought back to `f` by an arithmetic shift right by `f` ([`FixedConfig::truncate`]).
//!
//! ## Range: |x| · 2^f < 2^62
//!
//! Two's complement on 64 bits represents `|ṽ| < 2^63`. Encoding refuses (with a
//! [`FixedError`] that names the value and the limit; never a silent wrap) any value whose
//! scaled magnitude reaches [`RANGE_LIMIT`] = 2^62, i.e. `|x| >= 2^(62 - f)`
//! (`2^42 ≈ 4.4e12` for `f = 20`). The spare bit is headroom: the sum or difference of two
//! encodable values is below 2^63 in magnitude, so it still decodes to the right sign and
//! value. Comparisons rely on this (they take the most significant bit of `x - y`), and so
//! does every accumulation of two in-range terms. NaN and ±infinity are errors too.
//!
//! Products have their own, tighter condition: the double-width product `x̃ · ỹ` must stay
//! below 2^63 in magnitude before truncation, i.e. `|x · y| < 2^(63 - 2f)` (`2^23 ≈ 8.4e6`
//! for `f = 20`). [`FixedConfig::mul`] wraps like the ring protocol it mirrors;
//! [`FixedConfig::mul_checked`] reports the overflow instead.
//!
//! ## Fractional bits: 0 ..= 40
//!
//! [`MAX_FRAC_BITS`] = 40. Encoding, decoding and truncation are exact (up to the stated
//! rounding) for every `f` in `0..=40`; beyond that the encodable range `2^(62 - f)` falls
//! below `2^22` and is of no use for training. Products need `|x · y| < 2^(63 - 2f)`, which
//! for `f > 31` excludes even `|x · y| >= 1`: configurations that multiply should keep `f`
//! near the default (≤ 24 or so).
//!
//! ## Rounding and error bounds
//!
//! - [`FixedConfig::encode`] rounds to nearest, ties away from zero. Scaling by `2^f` is
//!   exact in `f64`, so `|ṽ - x · 2^f| <= 1/2` and the round trip
//!   `|decode(encode(x)) - x| <= 2^-(f+1)` ([`FixedConfig::roundtrip_bound`]) on the whole
//!   encodable range. (Above 2^52 in scaled magnitude every `f64` is already an integer, so
//!   the round trip is exact there.)
//! - [`FixedConfig::decode`] returns the `f64` nearest to `ṽ / 2^f` (exact when
//!   `|ṽ| <= 2^53`; relative error at most 2^-53 above).
//! - [`FixedConfig::truncate`] is floor division by 2^f: for an input with `2f` fractional
//!   bits the result's value lies in `(exact - 2^-f, exact]`
//!   ([`FixedConfig::truncation_bound`]: one unit in the last place, one-sided).
//! - [`FixedConfig::mul`]: `decode(mul(x, y))` lies in `(x̂ŷ - 2^-f, x̂ŷ]` where
//!   `x̂, ŷ` are the decoded operands, whenever the product fits (see above).
//! - [`FixedConfig::mul_public`] encodes the constant first, so it adds the constant's
//!   rounding: `|decode(mul_public(x, c)) - x̂ c| < 2^-f + |x̂| · 2^-(f+1)`
//!   ([`FixedConfig::mul_public_bound`]).
//!
//! ```
//! use triad_fixed::FixedConfig;
//! let fx = FixedConfig::default();
//! let a = fx.encode(1.5).unwrap();
//! let b = fx.encode(-2.25).unwrap();
//! assert_eq!(fx.decode(fx.mul(a, b)), -3.375);
//! assert_eq!(fx.decode(a.wrapping_add(b)), -0.75);
//! assert!(fx.encode(f64::NAN).is_err());
//! assert!(fx.encode(1e300).unwrap_err().to_string().contains("1e300"));
//! ```

use serde::{Deserialize, Serialize};

/// Fractional bits of the default configuration (CryptGPU's choice).
pub const DEFAULT_FRAC_BITS: u32 = 20;

/// Largest supported number of fractional bits (see the crate docs).
pub const MAX_FRAC_BITS: u32 = 40;

/// Encodings must stay below `2^RANGE_BITS` in magnitude.
pub const RANGE_BITS: u32 = 62;

/// `2^62`: the bound on the magnitude of an encoding (`|x| · 2^f < RANGE_LIMIT`).
pub const RANGE_LIMIT: u64 = 1 << RANGE_BITS;

/// Errors of fixed-point encoding.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FixedError {
    /// NaN or an infinity.
    #[error("cannot encode {value:?} as fixed point: not a finite number")]
    NotFinite {
        /// The value.
        value: f64,
    },
    /// A real whose scaled magnitude reaches 2^62.
    #[error(
        "cannot encode {value:?} as fixed point with {frac_bits} fractional bits: \
         |x| * 2^{frac_bits} must stay below 2^62, i.e. |x| < {limit:?}"
    )]
    OutOfRange {
        /// The value.
        value: f64,
        /// The configuration's fractional bits.
        frac_bits: u32,
        /// The exclusive bound on `|x|`: `2^(62 - frac_bits)`.
        limit: f64,
    },
    /// An integer whose scaled magnitude reaches 2^62.
    #[error(
        "cannot encode integer {value} as fixed point with {frac_bits} fractional bits: \
         |n| * 2^{frac_bits} must stay below 2^62, i.e. |n| < {limit}"
    )]
    IntOutOfRange {
        /// The value.
        value: i64,
        /// The configuration's fractional bits.
        frac_bits: u32,
        /// The exclusive bound on `|n|`: `2^(62 - frac_bits)`.
        limit: u64,
    },
    /// A double-width product that does not fit the ring before truncation.
    #[error(
        "fixed-point product {x:?} * {y:?} overflows with {frac_bits} fractional bits: \
         |x * y| must stay below 2^(63 - 2*{frac_bits})"
    )]
    ProductOverflow {
        /// The first factor (decoded).
        x: f64,
        /// The second factor (decoded).
        y: f64,
        /// The configuration's fractional bits.
        frac_bits: u32,
    },
    /// A configuration with too many fractional bits.
    #[error("{frac_bits} fractional bits is more than the supported maximum of {max}")]
    FracBits {
        /// The requested fractional bits.
        frac_bits: u32,
        /// [`MAX_FRAC_BITS`].
        max: u32,
    },
}

/// A fixed-point configuration: the number of fractional bits `f`.
///
/// The field is public for struct-literal convenience; [`FixedConfig::new`] validates it,
/// and every fallible method re-checks it (a `frac_bits` above [`MAX_FRAC_BITS`] gives
/// [`FixedError::FracBits`]). The infallible methods ([`decode`](Self::decode),
/// [`truncate`](Self::truncate), [`mul`](Self::mul)) take the shift as
/// `min(frac_bits, 63)` so an invalid configuration cannot panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FixedConfig {
    /// Fractional bits `f`, in `0..=MAX_FRAC_BITS`.
    pub frac_bits: u32,
}

impl Default for FixedConfig {
    fn default() -> Self {
        FixedConfig { frac_bits: DEFAULT_FRAC_BITS }
    }
}

/// `2^e` as an `f64`, exact for `-1022 <= e <= 1023`.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

fn signed(v: u64) -> i64 {
    v as i64
}

impl FixedConfig {
    /// A configuration with `frac_bits` fractional bits (at most [`MAX_FRAC_BITS`]).
    pub fn new(frac_bits: u32) -> Result<Self, FixedError> {
        let c = FixedConfig { frac_bits };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), FixedError> {
        if self.frac_bits > MAX_FRAC_BITS {
            return Err(FixedError::FracBits { frac_bits: self.frac_bits, max: MAX_FRAC_BITS });
        }
        Ok(())
    }

    /// The shift used by the infallible methods.
    fn shift(&self) -> u32 {
        self.frac_bits.min(63)
    }

    /// `2^f`.
    pub fn scale(&self) -> f64 {
        pow2(self.shift() as i32)
    }

    /// `2^-f`: the value of one unit in the last place.
    pub fn ulp(&self) -> f64 {
        pow2(-(self.shift() as i32))
    }

    /// The exclusive bound on encodable magnitudes: `2^(62 - f)`.
    pub fn max_abs(&self) -> f64 {
        pow2(RANGE_BITS as i32 - self.shift() as i32)
    }

    /// The encoding of 1 (`2^f`).
    pub fn one(&self) -> u64 {
        1u64 << self.shift()
    }

    /// Encodes a real: `round(x · 2^f) mod 2^64`, ties away from zero.
    ///
    /// Errors: NaN or ±infinity, or `|x| · 2^f >= 2^62` (the error names `x` and the limit).
    pub fn encode(&self, x: f64) -> Result<u64, FixedError> {
        self.check()?;
        if !x.is_finite() {
            return Err(FixedError::NotFinite { value: x });
        }
        // Exact: multiplying by a power of two only moves the exponent (no overflow below
        // the range check, since |x| < 2^(62-f) is tested on the scaled value itself).
        let scaled = x * self.scale();
        if scaled.abs() >= RANGE_LIMIT as f64 {
            return Err(FixedError::OutOfRange { value: x, frac_bits: self.frac_bits, limit: self.max_abs() });
        }
        // |scaled| < 2^62, and rounding cannot reach 2^62 (f64s above 2^52 are integers).
        Ok(scaled.round() as i64 as u64)
    }

    /// Decodes a ring element: the `f64` nearest to `ṽ / 2^f`.
    pub fn decode(&self, v: u64) -> f64 {
        // i64 -> f64 rounds to nearest (even); the power-of-two scaling is exact.
        signed(v) as f64 * self.ulp()
    }

    /// Encodes every element of `xs`; the first failure is returned.
    pub fn encode_slice(&self, xs: &[f64]) -> Result<Vec<u64>, FixedError> {
        xs.iter().map(|&x| self.encode(x)).collect()
    }

    /// Decodes every element of `vs`.
    pub fn decode_slice(&self, vs: &[u64]) -> Vec<f64> {
        vs.iter().map(|&v| self.decode(v)).collect()
    }

    /// Encodes an integer exactly: `n · 2^f mod 2^64`. Errors when `|n| · 2^f >= 2^62`.
    pub fn encode_int(&self, n: i64) -> Result<u64, FixedError> {
        self.check()?;
        let limit = 1u64 << (RANGE_BITS - self.frac_bits);
        if n.unsigned_abs() >= limit {
            return Err(FixedError::IntOutOfRange { value: n, frac_bits: self.frac_bits, limit });
        }
        Ok((n << self.frac_bits) as u64)
    }

    /// Plaintext truncation: arithmetic shift right by `f` (floor division of `ṽ` by `2^f`).
    ///
    /// The plaintext twin of the protocols' truncation after a product.
    pub fn truncate(&self, x: u64) -> u64 {
        (signed(x) >> self.shift()) as u64
    }

    /// Fixed × fixed: the wrapping ring product, truncated ([`truncate`](Self::truncate)).
    ///
    /// Correct (within [`truncation_bound`](Self::truncation_bound), one-sided) when
    /// `|x̃ · ỹ| < 2^63`; otherwise it wraps exactly as the ring protocol would. Use
    /// [`mul_checked`](Self::mul_checked) to be told instead.
    pub fn mul(&self, x: u64, y: u64) -> u64 {
        self.truncate(x.wrapping_mul(y))
    }

    /// [`mul`](Self::mul), or [`FixedError::ProductOverflow`] when `|x̃ · ỹ| >= 2^63`.
    pub fn mul_checked(&self, x: u64, y: u64) -> Result<u64, FixedError> {
        self.check()?;
        let p = i128::from(signed(x)) * i128::from(signed(y));
        if p.unsigned_abs() >= 1u128 << 63 {
            return Err(FixedError::ProductOverflow {
                x: self.decode(x),
                y: self.decode(y),
                frac_bits: self.frac_bits,
            });
        }
        Ok(self.mul(x, y))
    }

    /// Multiplication by a public real `c`: `truncate(x · encode(c))`.
    ///
    /// Errors only if `c` cannot be encoded. Correct within
    /// [`mul_public_bound`](Self::mul_public_bound) when the product fits (`|x̃ · c̃| < 2^63`).
    pub fn mul_public(&self, x: u64, c: f64) -> Result<u64, FixedError> {
        let c = self.encode(c)?;
        Ok(self.mul(x, c))
    }

    /// `2^-(f+1)`: the round-trip bound `|decode(encode(x)) - x|`.
    pub fn roundtrip_bound(&self) -> f64 {
        self.ulp() / 2.0
    }

    /// `2^-f`: truncation (and [`mul`](Self::mul)) errs by less than this, toward -∞.
    pub fn truncation_bound(&self) -> f64 {
        self.ulp()
    }

    /// `2^-f + |x| · 2^-(f+1)`: the bound on `|decode(mul_public(x, c)) - x c|` for a
    /// multiplicand of magnitude `x_abs` (strict, when the product fits).
    pub fn mul_public_bound(&self, x_abs: f64) -> f64 {
        self.ulp() + x_abs * self.roundtrip_bound()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn basics() {
        let fx = FixedConfig::default();
        assert_eq!(fx.scale(), 1048576.0);
        assert_eq!(fx.encode(1.0).unwrap(), 1 << 20);
        assert_eq!(fx.encode(-1.0).unwrap(), (1u64 << 20).wrapping_neg());
        assert_eq!(fx.encode(0.5 / 1048576.0).unwrap(), 1); // tie away from zero
        assert_eq!(fx.encode(-0.5 / 1048576.0).unwrap(), u64::MAX);
        assert_eq!(fx.encode_int(-3).unwrap(), fx.encode(-3.0).unwrap());
        assert_eq!(fx.decode(fx.truncate(fx.encode(2.0).unwrap())), 2.0 / 1048576.0);
        assert!(FixedConfig::new(41).is_err());
        assert!(FixedConfig { frac_bits: 41 }.encode(1.0).is_err());
        assert_eq!(FixedConfig { frac_bits: 200 }.truncate(u64::MAX), u64::MAX);
    }

    #[test]
    fn range_edges() {
        let fx = FixedConfig::default();
        let lim = fx.max_abs();
        assert_eq!(lim, 4398046511104.0);
        assert!(fx.encode(lim).is_err());
        assert!(fx.encode(-lim).is_err());
        let below = f64::from_bits(lim.to_bits() - 1);
        assert_eq!(fx.encode(below).unwrap(), (1u64 << 62) - (1 << 9));
        let e = fx.encode(lim).unwrap_err().to_string();
        assert!(e.contains("4398046511104"), "{e}");
        assert!(fx.encode_int(1 << 42).is_err());
        assert!(fx.encode_int((1 << 42) - 1).is_ok());
        assert!(fx.encode_int(i64::MIN).is_err());
        let f0 = FixedConfig::new(0).unwrap();
        assert_eq!(f0.encode_int(i64::MAX >> 1).unwrap(), (i64::MAX >> 1) as u64);
        assert!(f0.encode_int(1 << 62).is_err());
    }

    #[test]
    fn products() {
        let fx = FixedConfig::default();
        let big = fx.encode(4096.0).unwrap();
        assert!(fx.mul_checked(big, big).is_err());
        let ok = fx.encode(2000.0).unwrap();
        assert_eq!(fx.decode(fx.mul_checked(ok, ok).unwrap()), 4_000_000.0);
        assert_eq!(fx.decode(fx.mul_public(ok, -0.5).unwrap()), -1000.0);
        assert!(fx.mul_public(ok, f64::INFINITY).is_err());
    }
}
