//! Ring ops on the CPU device against the spec's num-bigint twins, bit for bit.
//! The body is `triad_tests::fuzz::ring_ops`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::ring_ops(data));
