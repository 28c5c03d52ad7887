//! IDX files (MNIST), raw or gzip: an array that fills its dimensions, or a one-line error.
//! The body is `triad_tests::fuzz::idx_reader`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::idx_reader(data));
