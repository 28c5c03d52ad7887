//! The one seam between layers and arithmetic: [`Backend`].
//!
//! A layer's forward and backward passes are written once, against this trait, and run
//! on two backends:
//!
//! - [`Party<D>`](triad_sharing::Party): tensors are [`AShare`]s (replicated shares of
//!   fixed-point values); every operation is the MPC protocol, called by all three
//!   parties in the same order. Nothing is ever opened except by [`Backend::open`], which
//!   the training loop uses only to hand a final result to its owner.
//! - [`Plain`]: tensors are [`PTensor`]s of `f64`; every operation is the exact real
//!   function (the "plaintext twin").
//!
//! Products are *fixed-point* products on shares (the ring product followed by one
//! truncation by `f` bits); on the twin they are ordinary `f64` products. The gap between
//! the two is the accumulated truncation and approximation error documented per layer.

use triad_approx::ApproxParams;
use triad_fixed::MAX_FRAC_BITS;
use triad_ring::{Device, Pool2dParams, Shape, Tensor};
use triad_sharing::{AShare, Error, Party, Product, Result, Rounding};
use triad_transport::{PartyId, ScopeGuard};

use crate::plain::{self, PTensor};

/// The operations layers need, on shares or on `f64` tensors.
pub trait Backend {
    /// A tensor of this backend: a party's share, or an `f64` tensor.
    type T: std::fmt::Debug;

    /// The dimensions of `x`.
    fn dims(&self, x: &Self::T) -> Vec<usize>;
    /// Brings a plaintext real tensor held by `owner` in: secret-shared on
    /// [`Party`] (the owner passes `Some`, the others `None`), as is on [`Plain`]
    /// (which needs `Some`).
    fn input(&self, owner: PartyId, data: Option<&[f64]>, shape: &[usize]) -> Result<Self::T>;
    /// A public constant tensor filled with the real `v`.
    fn constant(&self, shape: &[usize], v: f64) -> Result<Self::T>;
    /// Opens `x` to party `to` only (`Some` there, `None` elsewhere; always `Some` on
    /// [`Plain`]). Only for final results to their owner and for tests.
    fn open(&self, to: PartyId, x: &Self::T) -> Result<Option<Vec<f64>>>;
    /// Opens a cost scope (a no-op on [`Plain`]).
    fn scope(&self, name: &str) -> Option<ScopeGuard>;
    /// A deep copy.
    fn copy(&self, x: &Self::T) -> Result<Self::T>;

    /// `a + b`.
    fn add(&self, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// `a - b`.
    fn sub(&self, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// Fixed-point bilinear product `op(a, b)` (truncated once on shares).
    fn product(&self, op: Product, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// `c · x` for a public real `c` (encoded, multiplied locally, truncated once).
    fn scale(&self, x: &Self::T, c: f64) -> Result<Self::T>;
    /// `x ⊙ m` for a 0/1 mask `m` (an integer product: no truncation).
    fn mask(&self, x: &Self::T, m: &Self::T) -> Result<Self::T>;
    /// Sum along `axis`, removing it (local).
    fn sum_axis(&self, x: &Self::T, axis: usize) -> Result<Self::T>;
    /// Same elements, new shape (local).
    fn reshape(&self, x: Self::T, shape: &[usize]) -> Result<Self::T>;
    /// Broadcast to `shape`, numpy rules (local).
    fn broadcast(&self, x: &Self::T, shape: &[usize]) -> Result<Self::T>;
    /// Window sums of a pooling layer (local).
    fn pool_sum(&self, x: &Self::T, p: &Pool2dParams) -> Result<Self::T>;
    /// Adjoint of [`pool_sum`](Self::pool_sum) (local).
    fn pool_sum_backward(&self, g: &Self::T, p: &Pool2dParams) -> Result<Self::T>;

    /// `ReLU(x)` and the 0/1 mask `[x ≥ 0]` kept for the backward pass.
    fn relu(&self, x: &Self::T) -> Result<(Self::T, Self::T)>;
    /// Max pooling: the output and the one-hot position of each maximum
    /// `[N, C, OH, OW, KH·KW]`.
    fn maxpool(&self, x: &Self::T, p: &Pool2dParams) -> Result<(Self::T, Self::T)>;
    /// Max pooling backward from the one-hot positions.
    fn maxpool_backward(&self, g: &Self::T, onehot: &Self::T, p: &Pool2dParams) -> Result<Self::T>;
    /// `tanh(x)`.
    fn tanh(&self, x: &Self::T) -> Result<Self::T>;
    /// `1 / (1 + e^-x)`.
    fn sigmoid(&self, x: &Self::T) -> Result<Self::T>;
    /// The tensors joined along `axis` (local).
    fn concat(&self, parts: &[&Self::T], axis: usize) -> Result<Self::T>;
    /// Elements `start..start + len` along `axis` (local).
    fn slice(&self, x: &Self::T, axis: usize, start: usize, len: usize) -> Result<Self::T>;
    /// `x + c` for a public real tensor `c` of shape `c_dims`, broadcast to `x` (NumPy
    /// rules; local).
    fn add_public(&self, x: &Self::T, c: &[f64], c_dims: &[usize]) -> Result<Self::T>;
    /// `x ⊙ c` for a public real tensor `c` of shape `c_dims`, broadcast to `x` (encoded
    /// with as many fractional bits as its largest entry allows, multiplied locally,
    /// truncated once).
    fn mul_public(&self, x: &Self::T, c: &[f64], c_dims: &[usize]) -> Result<Self::T>;
    /// Softmax along the last axis of a rank-2 tensor.
    fn softmax(&self, x: &Self::T) -> Result<Self::T>;
    /// Natural logarithm (for reporting the loss only).
    fn ln(&self, x: &Self::T) -> Result<Self::T>;
    /// `1 / sqrt(x)` (batch norm).
    fn inv_sqrt(&self, x: &Self::T) -> Result<Self::T>;
    /// Whether every value of `x` lies in `[-2^log2_bound, 2^log2_bound)`, known to every
    /// party (the overflow guard; on shares one opened bit, `triad_compare::all_in_range`).
    fn all_in_range(&self, x: &Self::T, log2_bound: u32) -> Result<bool>;
}

/// The plaintext twin: exact `f64` arithmetic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Backend for Plain {
    type T = PTensor;

    fn dims(&self, x: &PTensor) -> Vec<usize> {
        x.shape.clone()
    }
    fn input(&self, _owner: PartyId, data: Option<&[f64]>, shape: &[usize]) -> Result<PTensor> {
        let data = data.ok_or_else(|| Error::Usage("the plaintext twin needs the data".into()))?;
        PTensor::new(shape.to_vec(), data.to_vec())
    }
    fn constant(&self, shape: &[usize], v: f64) -> Result<PTensor> {
        Ok(PTensor::full(shape.to_vec(), v))
    }
    fn open(&self, _to: PartyId, x: &PTensor) -> Result<Option<Vec<f64>>> {
        Ok(Some(x.data.clone()))
    }
    fn scope(&self, _name: &str) -> Option<ScopeGuard> {
        None
    }
    fn copy(&self, x: &PTensor) -> Result<PTensor> {
        Ok(x.clone())
    }
    fn add(&self, a: &PTensor, b: &PTensor) -> Result<PTensor> {
        a.zip(b, "add", |x, y| x + y)
    }
    fn sub(&self, a: &PTensor, b: &PTensor) -> Result<PTensor> {
        a.zip(b, "sub", |x, y| x - y)
    }
    fn product(&self, op: Product, a: &PTensor, b: &PTensor) -> Result<PTensor> {
        a.product(op, b)
    }
    fn scale(&self, x: &PTensor, c: f64) -> Result<PTensor> {
        Ok(x.map(|v| v * c))
    }
    fn mask(&self, x: &PTensor, m: &PTensor) -> Result<PTensor> {
        x.zip(m, "mask", |a, b| a * b)
    }
    fn sum_axis(&self, x: &PTensor, axis: usize) -> Result<PTensor> {
        x.sum_axis(axis)
    }
    fn reshape(&self, x: PTensor, shape: &[usize]) -> Result<PTensor> {
        x.reshape(shape)
    }
    fn broadcast(&self, x: &PTensor, shape: &[usize]) -> Result<PTensor> {
        x.broadcast_to(shape)
    }
    fn pool_sum(&self, x: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
        plain::pool_sum(x, p)
    }
    fn pool_sum_backward(&self, g: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
        plain::pool_sum_backward(g, p)
    }
    fn relu(&self, x: &PTensor) -> Result<(PTensor, PTensor)> {
        Ok((x.map(|v| if v >= 0.0 { v } else { 0.0 }), x.map(|v| if v >= 0.0 { 1.0 } else { 0.0 })))
    }
    fn maxpool(&self, x: &PTensor, p: &Pool2dParams) -> Result<(PTensor, PTensor)> {
        plain::maxpool(x, p)
    }
    fn maxpool_backward(&self, g: &PTensor, onehot: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
        plain::maxpool_backward(g, onehot, p)
    }
    fn tanh(&self, x: &PTensor) -> Result<PTensor> {
        Ok(x.map(f64::tanh))
    }
    fn sigmoid(&self, x: &PTensor) -> Result<PTensor> {
        Ok(x.map(|v| 1.0 / (1.0 + (-v).exp())))
    }
    fn concat(&self, parts: &[&PTensor], axis: usize) -> Result<PTensor> {
        plain::concat(parts, axis)
    }
    fn slice(&self, x: &PTensor, axis: usize, start: usize, len: usize) -> Result<PTensor> {
        plain::slice(x, axis, start, len)
    }
    fn add_public(&self, x: &PTensor, c: &[f64], c_dims: &[usize]) -> Result<PTensor> {
        x.zip(&public_like(x.shape.as_slice(), c, c_dims)?, "add_public", |a, b| a + b)
    }
    fn mul_public(&self, x: &PTensor, c: &[f64], c_dims: &[usize]) -> Result<PTensor> {
        x.zip(&public_like(x.shape.as_slice(), c, c_dims)?, "mul_public", |a, b| a * b)
    }
    fn softmax(&self, x: &PTensor) -> Result<PTensor> {
        plain::softmax_rows(x)
    }
    fn ln(&self, x: &PTensor) -> Result<PTensor> {
        Ok(x.map(f64::ln))
    }
    fn inv_sqrt(&self, x: &PTensor) -> Result<PTensor> {
        Ok(x.map(|v| 1.0 / v.sqrt()))
    }
    fn all_in_range(&self, x: &PTensor, log2_bound: u32) -> Result<bool> {
        let b = 2f64.powi(log2_bound as i32);
        Ok(x.data.iter().all(|&v| v >= -b && v < b))
    }
}

/// The private backend: one party of three, tensors are its replicated shares.
impl<D: Device> Backend for Party<D> {
    type T = AShare<D>;

    fn dims(&self, x: &AShare<D>) -> Vec<usize> {
        x.shape().dims().to_vec()
    }
    fn input(&self, owner: PartyId, data: Option<&[f64]>, shape: &[usize]) -> Result<AShare<D>> {
        let shape = Shape::new(shape.to_vec());
        let t = match data {
            Some(d) => Some(Tensor::from_vec(&self.dev, shape.clone(), self.fixed.encode_slice(d)?)?),
            None => None,
        };
        self.share_input(owner, t.as_ref(), &shape)
    }
    fn constant(&self, shape: &[usize], v: f64) -> Result<AShare<D>> {
        let t = Tensor::full(&self.dev, shape.to_vec(), self.fixed.encode(v)?)?;
        self.public(&t)
    }
    fn open(&self, to: PartyId, x: &AShare<D>) -> Result<Option<Vec<f64>>> {
        Ok(self.reveal_to(to, x)?.map(|t| t.to_vec().map(|v| self.fixed.decode_slice(&v))).transpose()?)
    }
    fn scope(&self, name: &str) -> Option<ScopeGuard> {
        Some(self.net.scope(name))
    }
    fn copy(&self, x: &AShare<D>) -> Result<AShare<D>> {
        x.try_clone()
    }
    fn add(&self, a: &AShare<D>, b: &AShare<D>) -> Result<AShare<D>> {
        a.add(b)
    }
    fn sub(&self, a: &AShare<D>, b: &AShare<D>) -> Result<AShare<D>> {
        a.sub(b)
    }
    fn product(&self, op: Product, a: &AShare<D>, b: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc_with(op, a, b, Rounding::WrapFree)
    }
    fn scale(&self, x: &AShare<D>, c: f64) -> Result<AShare<D>> {
        let _g = self.net.scope("scale");
        let bits = scale_bits(self.fixed.frac_bits, c);
        check_public_multiplier(c, bits)?;
        let c = triad_fixed::FixedConfig { frac_bits: bits }.encode(c)?;
        self.truncate_with(&x.mul_scalar(c)?, bits, Rounding::WrapFree)
    }
    fn mask(&self, x: &AShare<D>, m: &AShare<D>) -> Result<AShare<D>> {
        let _g = self.net.scope("mask");
        self.product(Product::Elementwise, x, m)
    }
    fn sum_axis(&self, x: &AShare<D>, axis: usize) -> Result<AShare<D>> {
        x.sum_axis(axis)
    }
    fn reshape(&self, x: AShare<D>, shape: &[usize]) -> Result<AShare<D>> {
        x.reshape(shape.to_vec())
    }
    fn broadcast(&self, x: &AShare<D>, shape: &[usize]) -> Result<AShare<D>> {
        x.map_layout(|t| t.broadcast_to(shape.to_vec()))
    }
    fn pool_sum(&self, x: &AShare<D>, p: &Pool2dParams) -> Result<AShare<D>> {
        x.map_layout(|t| t.pool_sum(p))
    }
    fn pool_sum_backward(&self, g: &AShare<D>, p: &Pool2dParams) -> Result<AShare<D>> {
        g.map_layout(|t| t.pool_sum_backward(p))
    }
    fn relu(&self, x: &AShare<D>) -> Result<(AShare<D>, AShare<D>)> {
        let bits = triad_compare::activation_sign_bits(self.fixed.frac_bits);
        let r = triad_compare::relu_within(self, x, bits)?;
        Ok((r.out, r.mask))
    }
    fn maxpool(&self, x: &AShare<D>, p: &Pool2dParams) -> Result<(AShare<D>, AShare<D>)> {
        let r = triad_compare::maxpool(self, x, p)?;
        Ok((r.out, r.onehot))
    }
    fn maxpool_backward(&self, g: &AShare<D>, onehot: &AShare<D>, p: &Pool2dParams) -> Result<AShare<D>> {
        // As triad_compare::maxpool_backward, from the one-hot sharing alone.
        let _g = self.net.scope("maxpool_backward");
        let mut d = p.output_shape().dims().to_vec();
        d.push(1);
        let ws = p.windows_shape();
        let g = g.try_clone()?.reshape(d)?.map_layout(|t| t.broadcast_to(ws.clone()))?;
        let gw = self.product(Product::Elementwise, onehot, &g)?;
        gw.map_layout(|t| t.pool_windows_backward(p))
    }
    fn tanh(&self, x: &AShare<D>) -> Result<AShare<D>> {
        triad_approx::tanh(self, x, &approx_params())
    }
    fn sigmoid(&self, x: &AShare<D>) -> Result<AShare<D>> {
        triad_approx::sigmoid(self, x, &approx_params())
    }
    fn concat(&self, parts: &[&AShare<D>], axis: usize) -> Result<AShare<D>> {
        let own: Vec<&Tensor<D>> = parts.iter().map(|p| &p.own).collect();
        let next: Vec<&Tensor<D>> = parts.iter().map(|p| &p.next).collect();
        AShare::new(Tensor::concat(&own, axis)?, Tensor::concat(&next, axis)?)
    }
    fn slice(&self, x: &AShare<D>, axis: usize, start: usize, len: usize) -> Result<AShare<D>> {
        x.map_layout(|t| t.slice(axis, start..start + len))
    }
    fn add_public(&self, x: &AShare<D>, c: &[f64], c_dims: &[usize]) -> Result<AShare<D>> {
        let full = public_like(x.shape().dims(), c, c_dims)?;
        let t = Tensor::from_vec(&self.dev, full.shape.clone(), self.fixed.encode_slice(&full.data)?)?;
        Party::add_public(self, x, &t)
    }
    fn mul_public(&self, x: &AShare<D>, c: &[f64], c_dims: &[usize]) -> Result<AShare<D>> {
        let _g = self.net.scope("mul_public");
        let full = public_like(x.shape().dims(), c, c_dims)?;
        let bits = public_bits(self.fixed.frac_bits, &full.data);
        for &v in c {
            check_public_multiplier(v, bits)?;
        }
        let enc = triad_fixed::FixedConfig { frac_bits: bits };
        let t = Tensor::from_vec(&self.dev, full.shape.clone(), enc.encode_slice(&full.data)?)?;
        self.truncate_with(&x.mul_public(&t)?, bits, Rounding::WrapFree)
    }
    fn softmax(&self, x: &AShare<D>) -> Result<AShare<D>> {
        let axis = x.shape().rank().saturating_sub(1);
        // The reciprocal's guess and step count fitted to the row length (8 steps for 10
        // classes instead of CryptGPU's 13, which are sized for rows up to 399).
        let d = x.shape().dims().get(axis).copied().unwrap_or(1);
        triad_approx::softmax(self, x, axis, &ApproxParams::for_softmax_rows(d).with_rounding(Rounding::WrapFree))
    }
    fn ln(&self, x: &AShare<D>) -> Result<AShare<D>> {
        triad_approx::log(self, x, &approx_params())
    }
    fn inv_sqrt(&self, x: &AShare<D>) -> Result<AShare<D>> {
        triad_approx::inv_sqrt(self, x, &approx_params())
    }
    fn all_in_range(&self, x: &AShare<D>, log2_bound: u32) -> Result<bool> {
        let bits = log2_bound + self.fixed.frac_bits;
        if bits > 62 {
            return Err(Error::Usage(format!(
                "range check: 2^{log2_bound} is beyond the ring with {} fractional bits",
                self.fixed.frac_bits
            )));
        }
        triad_compare::all_in_range(self, x, bits)
    }
}

/// The approximations' parameters in the layers: the defaults with wrap-free truncation,
/// so no layer ever meets share truncation's rare large error.
fn approx_params() -> ApproxParams {
    ApproxParams::default().with_rounding(Rounding::WrapFree)
}

/// The public tensor `c` (shape `c_dims`) broadcast to `dims` (NumPy rules).
fn public_like(dims: &[usize], c: &[f64], c_dims: &[usize]) -> Result<PTensor> {
    let c = PTensor::new(c_dims.to_vec(), c.to_vec())?;
    if c_dims.len() > dims.len() {
        return Err(Error::Usage(format!("constant {c_dims:?} does not broadcast to {dims:?}")));
    }
    let mut lifted = vec![1; dims.len() - c_dims.len()];
    lifted.extend_from_slice(c_dims);
    c.reshape(&lifted)?.broadcast_to(dims)
}

/// The largest relative error a public multiplier's encoding may have (`2^-8`): beyond
/// it [`check_public_multiplier`] refuses the constant rather than compute with it.
pub const PUBLIC_MULTIPLIER_MAX_REL_ERROR: f64 = 1.0 / 256.0;

/// `Err` naming `c` if encoding it with `bits` fractional bits (as a product by a public
/// constant does on shares) loses more than [`PUBLIC_MULTIPLIER_MAX_REL_ERROR`] of it,
/// or makes it zero. With [`scale_bits`] this refuses only constants below about
/// `2^(8 - 2f)` (`2^-32` at `f = 20`): learning rates, momentum, weight decay, `1/m` of
/// batch norm and pooling divisors all pass; a job checks its own up front.
pub fn check_public_multiplier(c: f64, bits: u32) -> Result<()> {
    if c == 0.0 {
        return Ok(());
    }
    let scale = 2f64.powi(bits as i32);
    let rel = ((c * scale).round() / scale - c).abs() / c.abs();
    if !c.is_finite() || rel > PUBLIC_MULTIPLIER_MAX_REL_ERROR {
        return Err(Error::Usage(format!(
            "the public constant {c:e} encodes with a relative error of {rel:.1e} in {bits} fractional bits (at most 2^-8 allowed): too small for the fixed-point range"
        )));
    }
    Ok(())
}

/// Significant bits a public scalar multiplier keeps in [`Backend::scale`] on shares.
pub const SCALE_SIGNIFICANT_BITS: u32 = 12;

/// Fractional bits for encoding the public scalar `c` of [`Backend::scale`] on shares:
/// `f` when `|c|·2^f ≥ 2^12` (every learning rate, momentum, pooling divisor and `1/n`
/// of the loss at the batch sizes we train: those products are unchanged), and
/// otherwise as many more (at most `f` more, and at most [`MAX_FRAC_BITS`] in all) as give the encoding
/// [`SCALE_SIGNIFICANT_BITS`] significant bits, so that `1/m` of batch norm over
/// `m = N·H·W` keeps a relative error below `2^-13` instead of reaching several percent
/// (`m` not a power of two) or encoding to zero (`m > 2^21`).
///
/// The price is range: the encoding stays below `2^13`, so the value `x` being scaled
/// must stay below `2^(62 - f - 13)` in magnitude (`2^29 ≈ 5.4e8` at `f = 20`) for
/// wrap-free truncation, against `2^(62-f)/round(c·2^f)` with `f` bits. A batch-norm channel sum over `m` elements is
/// `m` times a mean, so the mean of `x²` over a channel must stay below `2^29/m`
/// (about 1,300 for the ImageNet stem at batch 32).
pub fn scale_bits(f: u32, c: f64) -> u32 {
    let a = c.abs();
    if !(a > 0.0 && a.is_finite()) {
        return f;
    }
    let short = f64::from(SCALE_SIGNIFICANT_BITS) - f64::from(f) - a.log2();
    if short <= 0.0 {
        return f;
    }
    (f + (short.ceil() as u32).min(f)).min(MAX_FRAC_BITS.max(f))
}

/// Fractional bits for encoding a public multiplier: `f` plus as many more (up to `f`
/// more, and at most [`MAX_FRAC_BITS`] in all) as keep the largest entry's encoding at most `2^(f+1)`, so a product by a small
/// constant (`1/255`, `1/std`) keeps `f + 1` significant bits, and the product of a value
/// below `2^(62-2f-1)` stays in wrap-free truncation's range as with a plain `scale`.
fn public_bits(f: u32, c: &[f64]) -> u32 {
    let max = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(max > 0.0 && max.is_finite()) {
        return f;
    }
    let extra = (1.0 / max).log2().floor();
    (f + (extra.max(0.0) as u32).min(f)).min(MAX_FRAC_BITS.max(f))
}
