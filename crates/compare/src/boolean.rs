//! The boolean circuits on one element to a word: masked AND and A2B (carry-save +
//! Kogge-Stone). The sign circuit ([`crate::sign`]) works on rows instead.

use triad_ring::{BinaryOp, Device, RingError, Tensor};
use triad_sharing::{AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

/// Bit 63.
pub(crate) const TOP: u64 = 1 << 63;

/// One AND of a batch: `x & y`, of which only the `mask` bits are computed and sent.
#[derive(Debug)]
pub struct AndJob<'a, D: Device> {
    /// Left operand.
    pub x: &'a BShare<D>,
    /// Right operand.
    pub y: &'a BShare<D>,
    /// The bit lanes wanted; the result's other lanes are zero.
    pub mask: u64,
}

/// `x & y & mask` lane by lane, sending only the `mask` lanes, bit-packed.
///
/// Each party computes its 3-out-of-3 part `z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i`,
/// keeps the `mask` bits, packs them (`ceil(n·popcount(mask)/64)` words), XORs in its part
/// `β_i = F(k_i) ^ F(k_{i+1})` of a fresh XOR sharing of zero over the packed words, and
/// sends them to its previous party. One round.
pub fn and_packed<D: Device>(p: &Party<D>, x: &BShare<D>, y: &BShare<D>, mask: u64) -> Result<BShare<D>> {
    let mut out = and_packed_many(p, &[AndJob { x, y, mask }])?;
    out.pop().ok_or_else(|| Error::Usage("and_packed: no result".into()))
}

/// Several masked ANDs in one round: the packed streams are concatenated into one message
/// to the previous party (each stream padded to whole words).
pub fn and_packed_many<D: Device>(p: &Party<D>, jobs: &[AndJob<'_, D>]) -> Result<Vec<BShare<D>>> {
    let parts: Vec<Part<'_, D>> = jobs
        .iter()
        .map(|j| Part { x: [&j.x.own, &j.x.next], y: [&j.y.own, &j.y.next], y_shl: 0, mask: j.mask })
        .collect();
    and_parts(p, &parts)
}

/// One masked AND on components: `x & (y << y_shl)`, `mask` lanes only. The operands are
/// the components `(x_i, x_{i+1})` a party holds; naming them rather than a [`BShare`] lets a
/// caller pass a sharing it holds in other tensors, and the shift is fused into the AND.
pub(crate) struct Part<'a, D: Device> {
    pub(crate) x: [&'a Tensor<D>; 2],
    pub(crate) y: [&'a Tensor<D>; 2],
    pub(crate) y_shl: u32,
    pub(crate) mask: u64,
}

/// [`and_packed_many`] on [`Part`]s. Each party's 3-out-of-3 part is packed and XOR-ed with
/// its part of a fresh XOR sharing of zero over the packed words (one stream per AND, drawn
/// in order) by one fused device pass ([`Party::and_part_packed`]); it is sent as it is, and
/// the party's own component is it unpacked.
pub(crate) fn and_parts<D: Device>(p: &Party<D>, jobs: &[Part<'_, D>]) -> Result<Vec<BShare<D>>> {
    let _g = p.net.scope("and");
    let mut owns = Vec::with_capacity(jobs.len());
    let mut parts = Vec::with_capacity(jobs.len());
    for j in jobs {
        let packed = p.and_part_packed(j.x, j.y, j.y_shl, j.mask)?;
        owns.push(packed.unpack_bits(j.x[0].shape().clone(), j.mask)?);
        parts.push(p.dev.into_host(packed.into_buffer()).map_err(RingError::from)?);
    }
    let got = exchange_parts(p, parts)?;
    let mut out = Vec::with_capacity(jobs.len());
    for ((j, own), words) in jobs.iter().zip(owns).zip(got) {
        let packed = Tensor::from_vec(&p.dev, [words.len()], words)?;
        let next = packed.unpack_bits(j.x[0].shape().clone(), j.mask)?;
        out.push(BShare { own, next });
    }
    Ok(out)
}

/// The one round of a batch of ANDs: this party's parts, concatenated into one message to
/// the previous party, and the next party's message (the next components), of the same
/// lengths, cut back into its parts: each moved out of the message, the first not copied.
/// No message at all when the parts hold no words (their lengths are public). Used by the
/// one-element-to-a-word ANDs here and by the sign circuit's rows ([`crate::sign`]).
pub(crate) fn exchange_parts<D: Device>(p: &Party<D>, parts: Vec<Vec<u64>>) -> Result<Vec<Vec<u64>>> {
    let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
    let total: usize = lens.iter().sum();
    if total == 0 {
        return Ok(parts);
    }
    let mut parts = parts.into_iter();
    let mut message = parts.next().unwrap_or_default();
    message.reserve(total - message.len());
    parts.for_each(|part| message.extend_from_slice(&part));
    p.net.send_u64s(Peer::Prev, message)?;
    let mut got = p.net.recv_u64s(Peer::Next, total)?;
    // From the back, so that what is left at the end is the first part.
    let mut out: Vec<Vec<u64>> = lens[1..].iter().rev().map(|&len| got.split_off(got.len() - len)).collect();
    out.push(got);
    out.reverse();
    Ok(out)
}

/// `x ^ c` for a public word `c` (XORed into component 0).
pub fn xor_const<D: Device>(p: &Party<D>, x: &BShare<D>, c: u64) -> Result<BShare<D>> {
    let mut out = x.try_clone()?;
    match p.index() {
        0 => out.own = out.own.scalar(BinaryOp::Xor, c)?,
        2 => out.next = out.next.scalar(BinaryOp::Xor, c)?,
        _ => {}
    }
    Ok(out)
}

/// Carry-save step: `x = s + c` with `s = x_0 ^ x_1 ^ x_2` (local: the arithmetic
/// components read as XOR components are a binary sharing of `s`, so `s` is `x` itself) and
/// `c = maj(x_0, x_1, x_2) << 1`, `maj = ((x_0^x_1) & (x_0^x_2)) ^ x_0` (one AND round,
/// 63 bits per element: bit 63 of `maj` is shifted out). Returns `c`.
///
/// The AND's operands are the trivial binary sharings `a = x_0 ^ x_1` and `b = x_0 ^ x_2`
/// (component `j` of `x_j` is `x_j`, the others zero), which party `i` holds as
/// components of `x` or zeros, without computing them; likewise `^ x_0`. Parties 1 and 2
/// need no zeros: their parts `x_1 & x_2` and `x_2 & x_0` are the same AND with equal
/// components (`u & (v ^ v) ^ u & v = u & v`).
fn carry_save<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    let i = p.index();
    let (own, next) = (&x.own, &x.next);
    let zero = if i == 0 { Some(Tensor::zeros(&p.dev, x.shape().clone())?) } else { None };
    // Party i holds components (i, i+1): a has components 0 and 1, b components 0 and 2.
    let (a, b) = match (i, &zero) {
        // a = (x_0, x_1), b = (x_0, 0).
        (0, Some(zero)) => ([own, next], [own, zero]),
        // a = (x_1, 0), b = (0, x_2): x_1 & x_2.
        (1, _) => ([own, own], [next, next]),
        // a = (0, x_0), b = (x_2, x_0): x_0 & x_2.
        _ => ([next, next], [own, own]),
    };
    let mut out = and_parts(p, &[Part { x: a, y: b, y_shl: 0, mask: !TOP }])?;
    let mut maj = out.pop().ok_or_else(|| Error::Usage("carry_save: no result".into()))?;
    // ^ x_0: component 0 is party 0's own and party 2's next.
    match i {
        0 => maj.own.xor_assign(own)?,
        2 => maj.next.xor_assign(next)?,
        _ => {}
    }
    maj.shl(1)
}

/// Mask of the bits `lo..=hi`.
pub(crate) fn bit_range(lo: u32, hi: u32) -> u64 {
    if lo > hi {
        return 0;
    }
    let width = hi - lo + 1;
    let ones = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
    ones << lo
}

/// Arithmetic to binary: a binary sharing of the same ring value (all 64 bits).
///
/// Carry-save (1 AND round), generate `G = s & c` (1 round), then a Kogge-Stone prefix
/// over whole words with distances 1, 2, ..., 32 (6 rounds): 8 rounds; each round sends
/// only the lanes still needed (63 + 62 + 557 = 682 bits, 85.25 bytes per element per party).
pub fn a2b<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    let _g = p.net.scope("a2b");
    let c = carry_save(p, x)?;
    // s is x's components read as XOR components.
    let s = [&x.own, &x.next];
    let prop = BShare { own: x.own.xor(&c.own)?, next: x.next.xor(&c.next)? };
    // c_0 = 0, so g_0 = 0; g_63 is never used.
    let mut g = one(and_parts(p, &[Part { x: s, y: parts(&c), y_shl: 0, mask: bit_range(1, 62) }])?)?;
    let mut pp_next: Option<BShare<D>> = None;
    for l in 0..6u32 {
        let d = 1u32 << l;
        let gmask = bit_range(d + 1, 62);
        let pmask = if l < 5 { bit_range(2 * d + 1, 62) } else { 0 };
        let pp = pp_next.as_ref().unwrap_or(&prop);
        let mut jobs = vec![Part { x: parts(pp), y: parts(&g), y_shl: d, mask: gmask }];
        if pmask != 0 {
            jobs.push(Part { x: parts(pp), y: parts(pp), y_shl: d, mask: pmask });
        }
        let mut r = and_parts(p, &jobs)?.into_iter();
        let t1 = r.next().ok_or_else(|| Error::Usage("a2b: missing AND".into()))?;
        xor_into(&mut g, &t1)?;
        if let Some(t2) = r.next() {
            pp_next = Some(t2);
        }
    }
    // sum bit j = p_j ^ carry_j, carry_j = G[0..j-1].
    prop.xor(&g.shl(1)?)
}

/// A sharing's two components, as [`Part`] operands.
pub(crate) fn parts<D: Device>(x: &BShare<D>) -> [&Tensor<D>; 2] {
    [&x.own, &x.next]
}

/// The one result of a one-job [`and_parts`].
fn one<D: Device>(mut out: Vec<BShare<D>>) -> Result<BShare<D>> {
    out.pop().ok_or_else(|| Error::Usage("and: no result".into()))
}

/// `a ^= b` in place, component by component (no fresh buffer).
pub(crate) fn xor_into<D: Device>(a: &mut BShare<D>, b: &BShare<D>) -> Result<()> {
    a.own.xor_assign(&b.own)?;
    a.next.xor_assign(&b.next)?;
    Ok(())
}

/// Lane-0 bit sharing of `1 ^ b` for a lane-0 bit sharing `b`.
pub fn not_bit<D: Device>(p: &Party<D>, b: &BShare<D>) -> Result<BShare<D>> {
    xor_const(p, b, 1)
}

/// [`not_bit`] of a sharing no longer needed: its components are reused, not copied (one
/// pass, on the one component that absorbs the constant, instead of three).
pub(crate) fn not_bit_owned<D: Device>(p: &Party<D>, b: BShare<D>) -> Result<BShare<D>> {
    not_bit_owned_at(p, b, 0)
}

/// [`not_bit_owned`] of the bit in lane `lane` (the other lanes are left as they are).
pub(crate) fn not_bit_owned_at<D: Device>(p: &Party<D>, mut b: BShare<D>, lane: u32) -> Result<BShare<D>> {
    let one = 1u64 << (lane % 64);
    match p.index() {
        0 => b.own = b.own.scalar(BinaryOp::Xor, one)?,
        2 => b.next = b.next.scalar(BinaryOp::Xor, one)?,
        _ => {}
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::bit_range;

    #[test]
    fn ranges() {
        assert_eq!(bit_range(0, 63), u64::MAX);
        assert_eq!(bit_range(1, 62), 0x7FFF_FFFF_FFFF_FFFE);
        assert_eq!(bit_range(65, 62), 0);
    }
}
