//! Frame headers: decoding never panics, and whatever decodes re-encodes to the same bytes.
//! The body is `triad_tests::fuzz::frame_header`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::frame_header(data));
