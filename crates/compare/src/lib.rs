//! # triad-compare: comparisons over replicated shares
//!
//! MSB, DReLU, comparisons, bit injection, ReLU, max / argmax along an axis and max
//! pooling, for 2-out-of-3 replicated sharings over Z_{2^64} (`triad-sharing`). Every
//! function takes the calling [`Party`](triad_sharing::Party) and is called by all three
//! parties in the same order; each opens a cost scope named after it.
//!
//! Bit results are [`BShare`](triad_sharing::BShare)s of one bit in lane 0 (the other
//! lanes zero); arithmetic 0 / 1 results are [`AShare`](triad_sharing::AShare)s.
//!
//! | protocol | rounds | bytes sent per element per party |
//! |---|---|---|
//! | [`and_packed`] (mask with `k` lanes) | 1 | `k / 8` |
//! | [`msb`], [`drelu`], [`lt`], [`gt`], [`ge`], [`gtz`] | 8 | 25.29 |
//! | [`msb_within`] 48 bits (the sign from the low 48 bits) | 8 | 18.63 |
//! | [`a2b`] (all 64 bits) | 8 | 85.25 |
//! | [`inject_bit`] | 1 | 10.67 (roles rotated over thirds: every party) |
//! | [`b2a`] (all 64 bits) | 1 | 1024 |
//! | [`relu`] | 10 | 43.96 |
//! | [`relu_within`] 48 bits (a network's activations at `f = 20`: [`activation_sign_bits`]) | 10 | 37.29 |
//! | [`relu_backward`] | 1 | 8 |
//! | [`max_axis`] over `len` | `10 ceil(log2 len)` | `(len - 1) · 43.96 / len` per input element |
//! | [`argmax_axis`] | as max | max + 8 per input element and level |
//! | [`maxpool`] | as argmax over `KH·KW` | |
//! | [`maxpool_backward`] | 1 | `8 KH KW` per output element |
//! | [`all_in_range`] (the overflow guard; opens one bit) | `15 + ceil(log2 n)` at most | `85.25 + (63 - bits)/8` |
//!
//! Byte counts are exact up to the padding of each packed stream to whole words. The
//! circuits and the security argument of the bit injection are in the book's comparisons
//! chapter. MSB and DReLU are exact for every ring value, [`msb_within`] and
//! [`relu_within`] for values below `2^(bits-1)` in magnitude; `lt`, `gt`, `ge` are exact
//! whenever the difference does not overflow (`|x - y| < 2^63`, always true for
//! fixed-point values in range, `|x| < 2^62`).

mod boolean;
mod inject;
mod max;
mod range;
mod relu;
mod sign;

pub use boolean::{a2b, and_packed, and_packed_many, not_bit, xor_const, AndJob};
pub use inject::{b2a, inject_bit};
pub use max::{
    argmax_axis, max_axis, max_axis_backward, maxpool, maxpool_backward, pool_windows, ArgMax, MaxPool, POOL_PAD,
};
pub use range::all_in_range;
pub use relu::{activation_sign_bits, drelu, drelu_arith, ge, gt, gtz, lt, relu, relu_backward, relu_within, Relu};
pub use sign::{msb, msb_within};
