//! What a server of `triad serve` reads from an enrolled client: frames, then the server's
//! own handling of each request, to a result or a one-line reason, never a panic.
//! The body is `triad_tests::fuzz::service_request`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::service_request(data));
