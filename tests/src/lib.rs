//! # triad-tests: the differential suites
//!
//! Everything here checks real code against the executable specification (`triad-spec`).
//!
//! - [`device_suite`](mod@device_suite): every [`Device`](triad_ring::Device) method, directly and through
//!   [`Tensor`](triad_ring::Tensor), against `triad_spec::ring`. It is a template: each
//!   check is a generic function `fn check<D: Device>(dev: &D)`, and the
//!   [`device_suite!`](crate::device_suite!) macro stamps one `#[test]` per check for a
//!   given device. The CPU device is instantiated in `tests/ring_ops.rs`; the CUDA crate
//!   instantiates the same suite unchanged:
//!
//!   ```ignore
//!   triad_tests::device_suite!(cpu, triad_ring::CpuDevice::new());
//!   // a GPU that may be absent (its tests are #[ignore]d; run them with --include-ignored);
//!   // `gpu::cuda()` prints the one skip line, or fails under TRIAD_REQUIRE_GPU=1:
//!   triad_tests::device_suite!(cuda, optional triad_tests::gpu::cuda());
//!   ```
//! - [`strategies`]: proptest strategies for ring values biased to edge cases, shapes
//!   with degenerate (0 and 1) dimensions, bit masks, and convolution / pooling
//!   parameters.
//! - [`convert`]: the spec's plain records to and from `triad-ring`'s.
//! - [`enclosure`]: the layers' specification as a backend of intervals, built from
//!   `triad_spec::layers`; `tests/layers_spec.rs` checks private runs lie inside.
//! - [`reference`]: reading the PyTorch fixtures of `tests/fixtures/layers/`
//!   (`tests/layers_reference.rs`, `tests/training_reference.rs`).
//!
//! Case counts default to 256 per property (the whole bottom-layer suite still runs in about
//! a second); set `PROPTEST_CASES` to run more.

pub mod convert;
pub mod device_suite;
pub mod enclosure;
pub mod fused_checks;
pub mod fuzz;
pub mod strategies;
pub mod views;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::fmt::{Debug, Display};

/// Cases per property: `PROPTEST_CASES` if set, else 256.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
}

/// The runner configuration of the suites (no failure persistence files: the generic
/// suites have no source file of their own to sit next to).
pub fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Runs property `test` over `strategy` for [`cases`] cases; panics with the minimal
/// failing input.
pub fn check<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: proptest::strategy::Strategy,
    S::Value: Debug,
{
    check_n(name, cases(), strategy, test)
}

/// [`check`] with an explicit case count.
pub fn check_n<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: proptest::strategy::Strategy,
    S::Value: Debug,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

/// Turns any error into a test-case failure (for `?` inside properties).
pub fn ok<T, E: Display>(r: Result<T, E>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(e.to_string()))
}

/// A small deterministic generator (splitmix64) for data in non-property tests: the one
/// the layers use for initial weights.
pub use triad_layers::SplitMix;

/// `n` pseudo-random words from `seed` (shorthand for [`SplitMix::words`]).
pub fn words(n: usize, seed: u64) -> Vec<u64> {
    SplitMix(seed).words(n)
}

pub mod gpu;
pub mod parties;
pub mod reference;
