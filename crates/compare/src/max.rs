//! max and argmax along an axis (tree reduction), and max pooling.

use triad_ring::{Device, Pool2dParams, Shape, Tensor};
use triad_sharing::{AShare, Error, Party, Product, Result};

use crate::boolean::not_bit_owned;
use crate::inject::inject_bit;
use crate::sign::msb;

/// The padding value of max pooling: `-2^62`, below every fixed-point value in range
/// (`|x| < 2^62`), so padded positions never win (ties go to the earlier position, and a
/// window always holds at least one real position). Only component 0 carries it.
pub const POOL_PAD: u64 = (1u64 << 62).wrapping_neg();

/// The result of [`argmax_axis`]: the maxima and the one-hot position of each.
#[derive(Debug)]
pub struct ArgMax<D: Device> {
    /// The maxima: the input shape without the reduced axis.
    pub max: AShare<D>,
    /// Sharings of 0 / 1 in the input shape: 1 exactly at the first position of each
    /// maximum along the axis.
    pub onehot: AShare<D>,
}

fn concat_shares<D: Device>(parts: &[&AShare<D>], axis: usize) -> Result<AShare<D>> {
    let own: Vec<&Tensor<D>> = parts.iter().map(|s| &s.own).collect();
    let next: Vec<&Tensor<D>> = parts.iter().map(|s| &s.next).collect();
    AShare::new(Tensor::concat(&own, axis)?, Tensor::concat(&next, axis)?)
}

fn ones<D: Device>(p: &Party<D>, shape: impl Into<Shape>) -> Result<AShare<D>> {
    p.public(&Tensor::full(&p.dev, shape, 1)?)
}

/// One DReLU of a difference, injected: `[a ≥ b]` as 0 / 1 (9 rounds).
fn ge_arith<D: Device>(p: &Party<D>, diff: &AShare<D>) -> Result<AShare<D>> {
    let b = not_bit_owned(p, msb(p, diff)?)?;
    inject_bit(p, &b, 0)
}

/// Tree reduction of `[outer, len, inner]` along the middle axis.
fn reduce<D: Device>(p: &Party<D>, x: &AShare<D>, axis: usize, want_onehot: bool) -> Result<ArgMax<D>> {
    let (outer, len, inner) = x.shape().split_at_axis(axis).map_err(Error::from)?;
    if len == 0 {
        return Err(Error::Usage(format!("max over an empty axis {axis} of {}", x.shape())));
    }
    let mut out_dims = x.shape().dims().to_vec();
    out_dims.remove(axis);
    let mut cur = x.try_clone()?.reshape([outer, len, inner])?;
    // onehot[pos] = 1 iff pos is the current candidate of its block; blocks are the
    // 2^level consecutive positions a candidate covers (the last may be short).
    let mut onehot = if want_onehot { Some(ones(p, [outer, len, inner])?) } else { None };
    let mut block = 1usize;
    let mut m = len;
    while m > 1 {
        let np = m / 2;
        let body = if m % 2 == 1 { cur.map_layout(|t| t.slice(1, 0..m - 1))? } else { cur.try_clone()? };
        let body = body.reshape([outer, np, 2, inner])?;
        let a = body.map_layout(|t| t.slice(2, 0..1))?.reshape([outer, np, inner])?;
        let b = body.map_layout(|t| t.slice(2, 1..2))?.reshape([outer, np, inner])?;
        let diff = a.sub(&b)?;
        // bit = [a ≥ b]: ties keep the earlier candidate.
        let bit = ge_arith(p, &diff)?;
        let nv = outer * np * inner;
        // One ring product for the values and the one-hot update.
        let (left, right) = match &onehot {
            None => (diff.reshape([nv])?, bit.try_clone()?.reshape([nv])?),
            Some(oh) => {
                // sel: the pair's a-block gets bit, its b-block 1 - bit, a lone block 1.
                let not_bit = p.add_scalar(&bit.neg()?, 1)?;
                let pair = concat_shares(
                    &[&bit.try_clone()?.reshape([outer, np, 1, inner])?, &not_bit.reshape([outer, np, 1, inner])?],
                    2,
                )?;
                let spread = pair
                    .reshape([outer, np, 2, 1, inner])?
                    .map_layout(|t| t.broadcast_to([outer, np, 2, block, inner]))?
                    .reshape([outer, np * 2 * block, inner])?;
                let covered = (np * 2 * block).min(len);
                let mut sel = spread.map_layout(|t| t.slice(1, 0..covered))?;
                if covered < len {
                    sel = concat_shares(&[&sel, &ones(p, [outer, len - covered, inner])?], 1)?;
                }
                let n1 = outer * len * inner;
                let l = concat_shares(&[&diff.reshape([nv])?, &oh.try_clone()?.reshape([n1])?], 0)?;
                let r = concat_shares(&[&bit.try_clone()?.reshape([nv])?, &sel.reshape([n1])?], 0)?;
                (l, r)
            }
        };
        let prod = p.product(Product::Elementwise, &left, &right)?;
        let chosen = prod.map_layout(|t| t.slice(0, 0..nv))?.reshape([outer, np, inner])?;
        let mut next = b.add(&chosen)?;
        if onehot.is_some() {
            let n1 = outer * len * inner;
            onehot = Some(prod.map_layout(|t| t.slice(0, nv..nv + n1))?.reshape([outer, len, inner])?);
        }
        if m % 2 == 1 {
            let lone = cur.map_layout(|t| t.slice(1, m - 1..m))?;
            next = concat_shares(&[&next, &lone], 1)?;
        }
        cur = next;
        m = m.div_ceil(2);
        block *= 2;
    }
    let max = cur.reshape(out_dims)?;
    let onehot = match onehot {
        Some(oh) => oh.reshape(x.shape().clone())?,
        None => ones(p, [0])?,
    };
    Ok(ArgMax { max, onehot })
}

/// The maximum along `axis` (removed from the shape), by a tree of pairwise comparisons:
/// `ceil(log2 len)` levels of 10 rounds (DReLU of the difference, bit injection, one ring
/// product `b + bit·(a - b)`); an odd candidate is carried to the next level. Exact while
/// the differences do not overflow (`|x| < 2^62`).
pub fn max_axis<D: Device>(p: &Party<D>, x: &AShare<D>, axis: usize) -> Result<AShare<D>> {
    let _g = p.net.scope("max");
    Ok(reduce(p, x, axis, false)?.max)
}

/// The maximum along `axis` and its position as a one-hot sharing (ties: the first
/// position). Same rounds as [`max_axis`]; the one-hot update rides in the same ring
/// product (`len` more elements per level).
pub fn argmax_axis<D: Device>(p: &Party<D>, x: &AShare<D>, axis: usize) -> Result<ArgMax<D>> {
    let _g = p.net.scope("argmax");
    reduce(p, x, axis, true)
}

/// Backward of a max along `axis`: the gradient goes to the position of each maximum,
/// `onehot · broadcast(grad)`. One round, `|x|` elements.
pub fn max_axis_backward<D: Device>(
    p: &Party<D>,
    grad: &AShare<D>,
    argmax: &ArgMax<D>,
    axis: usize,
) -> Result<AShare<D>> {
    let _g = p.net.scope("max_backward");
    let shape = argmax.onehot.shape().clone();
    let (outer, len, inner) = shape.split_at_axis(axis).map_err(Error::from)?;
    let g = grad
        .try_clone()?
        .reshape([outer, 1, inner])?
        .map_layout(|t| t.broadcast_to([outer, len, inner]))?
        .reshape(shape)?;
    p.product(Product::Elementwise, &argmax.onehot, &g)
}

/// The result of [`maxpool`]: the output and what the backward pass needs.
#[derive(Debug)]
pub struct MaxPool<D: Device> {
    /// `[N, C, OH, OW]`.
    pub out: AShare<D>,
    /// One-hot position of each window's maximum, `[N, C, OH, OW, KH·KW]`.
    pub onehot: AShare<D>,
    /// The pooling parameters.
    pub params: Pool2dParams,
}

/// The windows of a pooling layer as a sharing `[N, C, OH, OW, KH·KW]`, padded positions
/// holding the sharing `(POOL_PAD, 0, 0)`.
pub fn pool_windows<D: Device>(p: &Party<D>, x: &AShare<D>, params: &Pool2dParams) -> Result<AShare<D>> {
    // Component 0 is party 0's own and party 2's next.
    let (pad_own, pad_next) = match p.index() {
        0 => (POOL_PAD, 0),
        2 => (0, POOL_PAD),
        _ => (0, 0),
    };
    AShare::new(x.own.pool_windows(params, pad_own)?, x.next.pool_windows(params, pad_next)?)
}

/// Max pooling (NCHW) with kernel, stride and padding: the windows, then [`argmax_axis`]
/// over the window axis. `ceil(log2(KH·KW))` levels of 10 rounds (2x2: 2 levels, 20
/// rounds). Inputs must be fixed-point values in range (`|x| < 2^62`). An image with no
/// rows or no columns is refused (every window would be padding, with no maximum).
pub fn maxpool<D: Device>(p: &Party<D>, x: &AShare<D>, params: &Pool2dParams) -> Result<MaxPool<D>> {
    let _g = p.net.scope("maxpool");
    if params.in_h == 0 || params.in_w == 0 {
        return Err(Error::Usage(format!(
            "max pooling of a {}x{} image: every window is padding, there is no maximum",
            params.in_h, params.in_w
        )));
    }
    let w = pool_windows(p, x, params)?;
    let r = reduce(p, &w, 4, true)?;
    Ok(MaxPool { out: r.max, onehot: r.onehot, params: *params })
}

/// Max pooling backward: each output gradient goes to its window's maximum
/// (`onehot · grad`, one round, `|windows|` elements), then the windows are summed back onto
/// the input (local).
pub fn maxpool_backward<D: Device>(p: &Party<D>, grad: &AShare<D>, pool: &MaxPool<D>) -> Result<AShare<D>> {
    let _g = p.net.scope("maxpool_backward");
    let ws = pool.params.windows_shape();
    let mut d = pool.params.output_shape().dims().to_vec();
    d.push(1);
    let g = grad.try_clone()?.reshape(d)?.map_layout(|t| t.broadcast_to(ws.clone()))?;
    let gw = p.product(Product::Elementwise, &pool.onehot, &g)?;
    gw.map_layout(|t| t.pool_windows_backward(&pool.params))
}
