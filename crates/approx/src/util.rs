//! Small building blocks shared by the approximations: public constants, products by
//! public reals, batched products.

use triad_ring::{Device, Shape, Tensor};
use triad_sharing::{AShare, Error, Party, Product, Result, Rounding};

/// The fixed-point encoding of the real `v` under the party's configuration.
pub fn enc<D: Device>(p: &Party<D>, v: f64) -> Result<u64> {
    Ok(p.fixed.encode(v)?)
}

/// `2^f`, the encoding of 1.
pub fn one<D: Device>(p: &Party<D>) -> u64 {
    1u64 << p.fixed.frac_bits
}

/// `x + v` for a public real `v` (local).
pub fn add_const<D: Device>(p: &Party<D>, x: &AShare<D>, v: f64) -> Result<AShare<D>> {
    p.add_scalar(x, enc(p, v)?)
}

/// `v - x` for a public real `v` (local).
pub fn const_sub<D: Device>(p: &Party<D>, v: f64, x: &AShare<D>) -> Result<AShare<D>> {
    p.add_scalar(&x.neg()?, enc(p, v)?)
}

/// `x / 2^bits` with rounding `r` ([`Party::truncate_with`]).
pub fn trunc<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32, r: Rounding) -> Result<AShare<D>> {
    p.truncate_with(x, bits, r)
}

/// The fixed-point product `a ⊙ b / 2^f` with rounding `r`.
pub fn mul<D: Device>(p: &Party<D>, a: &AShare<D>, b: &AShare<D>, r: Rounding) -> Result<AShare<D>> {
    p.product_trunc_with(Product::Elementwise, a, b, r)
}

/// The fixed-point square `a ⊙ a / 2^f` with rounding `r`.
pub fn square<D: Device>(p: &Party<D>, a: &AShare<D>, r: Rounding) -> Result<AShare<D>> {
    p.product_trunc_with(Product::Elementwise, a, a, r)
}

/// `x · c / 2^f` for a public ring element `c` (the encoding of a real): a local product
/// by the public constant, then one truncation (with `Floor`: 1 round, parties 0 and 1
/// send 8 bytes per element, party 2 nothing; with `WrapFree`: 2 rounds, 16 bytes each).
/// The result is `floor(x̃ c / 2^f)` or one less (`Floor`), or one more (`WrapFree`).
pub fn mul_public_raw<D: Device>(p: &Party<D>, x: &AShare<D>, c: u64, r: Rounding) -> Result<AShare<D>> {
    p.truncate_with(&x.mul_scalar(c)?, p.fixed.frac_bits, r)
}

/// A sharing of the public tensor filled with the ring element `v`.
pub fn public_full<D: Device>(p: &Party<D>, shape: &Shape, v: u64) -> Result<AShare<D>> {
    p.public(&Tensor::full(&p.dev, shape.clone(), v)?)
}

fn flat<D: Device>(x: &AShare<D>) -> Result<AShare<D>> {
    x.try_clone()?.reshape([x.numel()])
}

/// Concatenates sharings (flattened) into one vector sharing.
pub fn concat<D: Device>(parts: &[&AShare<D>]) -> Result<AShare<D>> {
    let flats: Vec<AShare<D>> = parts.iter().map(|s| flat(s)).collect::<Result<_>>()?;
    let own: Vec<&Tensor<D>> = flats.iter().map(|s| &s.own).collect();
    let next: Vec<&Tensor<D>> = flats.iter().map(|s| &s.next).collect();
    AShare::new(Tensor::concat(&own, 0)?, Tensor::concat(&next, 0)?)
}

/// Splits a vector sharing made by [`concat`] back into pieces of the given shapes.
pub fn split<D: Device>(x: &AShare<D>, shapes: &[Shape]) -> Result<Vec<AShare<D>>> {
    let mut at = 0;
    let mut out = Vec::with_capacity(shapes.len());
    for sh in shapes {
        let n = sh.numel();
        out.push(x.map_layout(|t| t.slice(0, at..at + n))?.reshape(sh.clone())?);
        at += n;
    }
    if at != x.numel() {
        return Err(Error::Usage(format!("split: {at} elements taken of {}", x.numel())));
    }
    Ok(out)
}

/// Several fixed-point products `a ⊙ b / 2^f` in one protocol call (one round trip of
/// [`mul`] on the concatenation): the latency of one product, the bytes of all.
pub fn mul_many<D: Device>(p: &Party<D>, pairs: &[(&AShare<D>, &AShare<D>)], r: Rounding) -> Result<Vec<AShare<D>>> {
    if pairs.len() == 1 {
        return Ok(vec![mul(p, pairs[0].0, pairs[0].1, r)?]);
    }
    let left: Vec<&AShare<D>> = pairs.iter().map(|(a, _)| *a).collect();
    let right: Vec<&AShare<D>> = pairs.iter().map(|(_, b)| *b).collect();
    let shapes: Vec<Shape> = left.iter().map(|a| a.shape().clone()).collect();
    let z = mul(p, &concat(&left)?, &concat(&right)?, r)?;
    split(&z, &shapes)
}

/// Broadcasts a sharing of shape `x.shape()` minus `axis` back along `axis` (local).
pub fn broadcast_axis<D: Device>(r: &AShare<D>, full: &Shape, axis: usize) -> Result<AShare<D>> {
    let (outer, len, inner) = full.split_at_axis(axis)?;
    r.try_clone()?
        .reshape([outer, 1, inner])?
        .map_layout(|t| t.broadcast_to([outer, len, inner]))?
        .reshape(full.clone())
}
