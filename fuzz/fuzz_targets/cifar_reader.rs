//! CIFAR-10 binary files: whole records with labels 0 to 9, or a one-line error.
//! The body is `triad_tests::fuzz::cifar_reader`, which `tests/tests/fuzz_corpora.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| triad_tests::fuzz::cifar_reader(data));
