//! Handshake messages: decoding never panics, and whatever decodes re-encodes exactly.
//! The body is `triad_tests::fuzz::handshake`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::handshake(data));
