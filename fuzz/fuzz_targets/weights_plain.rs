//! Plaintext weights (safetensors): every tensor the model needs, or a one-line error.
//! The body is `triad_tests::fuzz::weights_plain`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::weights_plain(data));
