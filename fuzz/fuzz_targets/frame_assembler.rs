//! The transport's frame assembler: the frames a straightforward decoder finds, however the stream is cut.
//! The body is `triad_tests::fuzz::frame_assembler`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::frame_assembler(data));
