//! # triad-sharing: 2-out-of-3 replicated secret sharing over Z_{2^64}
//!
//! A value `x` is split as `x = x_0 + x_1 + x_2 mod 2^64` and party `i` holds the pair
//! `(x_i, x_{i+1})` ([`AShare`]); any two parties can reconstruct, any one sees only
//! uniformly random elements. Binary values use XOR instead of `+` ([`BShare`]).
//!
//! A [`Party`] holds its id, its device, its links to the next and previous party, the
//! two PRG keys it shares with them, and the fixed-point configuration. Every party runs
//! the same program; each protocol call below is made by all three in the same order.
//!
//! | protocol | rounds | elements sent per party |
//! |---|---|---|
//! | [`Party::setup`] (key agreement) | 1 | 4 (32 bytes) |
//! | [`Party::share_input`] | 1 | owner `2n`, others 0 |
//! | [`Party::reveal_to`] | 1 | one party `n`, others 0 |
//! | [`Party::reveal_all`] | 1 | `n` |
//! | add, sub, public ops, [`Party::random`], zero sharings | 0 | 0 |
//! | [`Party::product`] (ring product: mul, matmul, conv, conv gradients) | 1 | `|out|` |
//! | [`Party::product_trunc`] (fixed-point product) | 2 | `|out|` |
//! | [`Party::truncate`] | 1 | parties 0, 1: `n`; party 2: 0 |
//! | [`Party::product_trunc_with`] with [`Rounding::WrapFree`] | 2 | `(5 + (f + 1)/64) n / 3`: `1.78n` at `f = 20` |
//! | [`Party::truncate_with`] with [`Rounding::WrapFree`] | 2 | the same at `bits` |
//! | [`Party::and`] (binary) | 1 | `n` words |
//!
//! Randomness comes from ChaCha20 streams keyed by the pairwise keys; each draw takes a
//! fresh stream id, the same on all parties ([`Party::next_stream`]). Keys are agreed at
//! setup from the OS random source; fixed keys exist only behind the
//! `insecure-test-keys` feature.

mod arith;
mod binary;
mod error;
mod party;
mod run;

pub use arith::{placed, third, AShare, Product, Rounding};
pub use binary::BShare;
pub use error::{Error, Result};
pub use party::{PairKeys, Party};
pub use run::run_in_process;

#[cfg(feature = "insecure-test-keys")]
pub use party::test_keys;
#[cfg(feature = "insecure-test-keys")]
pub use run::run_in_process_with_test_keys;
