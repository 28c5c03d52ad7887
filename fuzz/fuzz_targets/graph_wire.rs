//! The graph decoder of `triad party ... --onnx-from-owner`: a graph with shapes whose
//! encoding is the bytes it came from, or a typed error.
//! The body is `triad_tests::fuzz::graph_wire`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::graph_wire(data));
