//! The parties file parser: never panics; accepted files survive a round trip.
//! The body is `triad_tests::fuzz::parties_config`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::parties_config(data));
