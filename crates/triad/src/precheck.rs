//! The owner's plaintext range check, before any party starts.
//!
//! Fixed-point values wrap around silently: a product whose value reaches `2^(62 - 2f)`
//! (`2^22 ≈ 4.2e6` at `f = 20`) before its truncation wraps the ring, and the run goes on
//! with garbage. The model owner holds the weights and the inputs in plaintext, so before
//! sharing anything it runs the float64 twin over its first samples (at most
//! [`SAMPLES_CHECKED`] = 8; a training job: the first of its first batch, in training
//! mode) and stops with
//! one line naming the first node whose values leave that range. This costs one plaintext
//! forward pass of a few samples and reveals nothing (the owner checks its own data).
//! A zoo job on random inputs with seeded weights (the benchmark setting) skips it.
//! What it cannot see: samples beyond those checked, and values that grow during
//! training; `--guard` checks those, at a price.

use triad_layers::{Backend, Graph, Guard, Model, Plain};

use crate::error::{Error, Result};
use crate::job::OWNER;

/// The most samples the check runs.
pub const SAMPLES_CHECKED: usize = 8;

/// Runs the twin of `net` with `weights` on `x` (`n` samples) and refuses the job if any
/// node's values reach `2^(62 - 2 frac_bits)` in magnitude.
pub fn owner_range_check(
    net: &Graph,
    weights: &[Vec<f64>],
    x: &[f64],
    n: usize,
    frac_bits: u32,
    train: bool,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let log2_bound = 62u32.saturating_sub(2 * frac_bits).max(1);
    let b = Plain;
    let mut m = Model::new(&b, net, OWNER, Some(weights))?;
    m.train = train;
    m.guard = Some(Guard { log2_bound });
    let mut dims = vec![n];
    dims.extend(net.input());
    match m.forward(&b, b.input(OWNER, Some(x), &dims)?) {
        Ok(_) => Ok(()),
        Err(triad_sharing::Error::OutOfRange { at, .. }) => Err(Error::Usage(format!(
            "the owner's plaintext check of its first {n} samples: at {at} values reach 2^{log2_bound} = {:.3e}, where products of {frac_bits} fractional bits wrap around: the private run would be wrong; scale the inputs or weights down, or use fewer fractional bits (--frac-bits)",
            2f64.powi(log2_bound as i32)
        ))),
        Err(e) => Err(e.into()),
    }
}
