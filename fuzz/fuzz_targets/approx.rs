//! Approximations inside the spec's enclosures and error bounds on their domains.
//! The body is `triad_tests::fuzz::approx`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::approx(data));
