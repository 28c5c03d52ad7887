//! Sharing protocols on three parties against the spec's simulator, bit for bit, and the ideal functionalities.
//! The body is `triad_tests::fuzz::sharing`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::sharing(data));
