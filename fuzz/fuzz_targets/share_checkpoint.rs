//! Share checkpoints: metadata and load_shares on three parties, or a one-line error.
//! The body is `triad_tests::fuzz::share_checkpoint`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::share_checkpoint(data));
