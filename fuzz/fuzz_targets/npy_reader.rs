//! The `.npy` reader: an array whose elements fill its shape, or an error.
//! The body is `triad_tests::fuzz::npy_reader`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::npy_reader(data));
