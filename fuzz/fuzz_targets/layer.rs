//! One layer forward and backward on shares inside the spec's layer enclosures.
//! The body is `triad_tests::fuzz::layer`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::layer(data));
