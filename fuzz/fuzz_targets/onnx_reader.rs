//! The ONNX reader: a model or a one-line error, never a panic.
//! The body is `triad_tests::fuzz::onnx_reader`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::onnx_reader(data));
