//! # triad-spec: the executable specification
//!
//! Every operation and protocol of triad, restated for clarity rather than speed. The
//! spec is the oracle of the differential suites (`triad-tests`): a device or protocol is
//! correct when it reproduces the spec's results (bit for bit for ring operations; within
//! the stated error bounds for real-valued ideals).
//!
//! Rules the spec follows:
//!
//! - **Arithmetic is on big integers.** Ring elements are lifted to [`BigInt`], combined
//!   exactly, and reduced mod 2^64 explicitly by [`reduce`] at the end. No wrapping
//!   machine arithmetic stands in for the mathematics.
//! - **Nothing of ours but constants.** The spec depends on no triad crate except
//!   `triad-fixed`'s constants (the default fractional bits and the range). In particular
//!   it does not use `triad-ring`: shapes are plain `&[usize]`, data plain `Vec<u64>`,
//!   parameter records are re-declared here, and the PRG is re-implemented from RFC 8439's
//!   prose.
//! - **Direct definitions.** Convolutions are the seven nested loops of their definition,
//!   not im2col; gradients are stated as adjoints (scatter-add over the same loops);
//!   strided views are index maps; bit packing is a list of bits.
//! - **Panics mark the domain.** Spec functions assume the inputs the real operation
//!   would accept (the real code returns errors for the rest; the spec's `is_valid`
//!   predicates say which those are) and may panic outside it.
//!
//! Modules follow the crates: [`ring`], [`fixed`], then [`sharing`], [`compare`],
//! [`approx`] and [`layers`].

pub mod approx;
pub mod compare;
pub mod fixed;
pub mod layers;
pub mod ring;
pub mod sharing;

pub use num_bigint::BigInt;

use num_integer::Integer;

/// The ring modulus 2^64.
pub fn modulus() -> BigInt {
    BigInt::from(1u8) << 64
}

/// `2^e` as a big integer.
pub fn pow2(e: u32) -> BigInt {
    BigInt::from(1u8) << e
}

/// The canonical representative of `x mod 2^64`, in `0 .. 2^64`.
pub fn reduce(x: &BigInt) -> u64 {
    let r = x.mod_floor(&modulus());
    // 0 <= r < 2^64: at most one base-2^64 digit.
    r.to_u64_digits().1.first().copied().unwrap_or(0)
}

/// A ring element as the integer in `0 .. 2^64` it represents.
pub fn lift(v: u64) -> BigInt {
    BigInt::from(v)
}

/// A ring element as a two's complement integer in `-2^63 .. 2^63`.
pub fn signed(v: u64) -> BigInt {
    let u = lift(v);
    if u >= pow2(63) {
        u - modulus()
    } else {
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_and_lift() {
        assert_eq!(reduce(&BigInt::from(-1)), u64::MAX);
        assert_eq!(reduce(&modulus()), 0);
        assert_eq!(reduce(&(modulus() * 3 + 5)), 5);
        assert_eq!(signed(u64::MAX), BigInt::from(-1));
        assert_eq!(signed(1 << 63), -pow2(63));
        assert_eq!(reduce(&signed(12345)), 12345);
    }
}
