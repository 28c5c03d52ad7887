//! Comparisons (A2B, MSB, ReLU, bit injection, max/argmax, max pooling) against the spec.
//! The body is `triad_tests::fuzz::compare`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::compare(data));
