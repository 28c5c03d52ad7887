//! The boolean circuits: masked AND, A2B (carry-save + Kogge-Stone) and MSB (carry-save +
//! a carry tree over bits 0..62).

use triad_ring::{BinaryOp, Device, RingError, Tensor};
use triad_sharing::{AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

/// Bit 63.
const TOP: u64 = 1 << 63;

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
/// Each party computes its 3-out-of-3 part `z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ β_i`
/// (`β` a fresh XOR sharing of zero), keeps the `mask` bits, packs them
/// (`ceil(n·popcount(mask)/64)` words) and sends them to its previous party. One round.
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
struct Part<'a, D: Device> {
    x: [&'a Tensor<D>; 2],
    y: [&'a Tensor<D>; 2],
    y_shl: u32,
    mask: u64,
}

/// [`and_packed_many`] on [`Part`]s. Each party's 3-out-of-3 part (with its fresh XOR
/// sharing of zero `β_i = F(k_i) ^ F(k_{i+1})`, one stream per AND, drawn in order) is one
/// fused device pass ([`Party::and_part`]).
fn and_parts<D: Device>(p: &Party<D>, jobs: &[Part<'_, D>]) -> Result<Vec<BShare<D>>> {
    let _g = p.net.scope("and");
    let mut owns = Vec::with_capacity(jobs.len());
    let mut message = Vec::new();
    let mut lens = Vec::with_capacity(jobs.len());
    for j in jobs {
        let z = p.and_part(j.x, j.y, j.y_shl, j.mask)?;
        let packed = p.dev.into_host(z.pack_bits(j.mask)?.into_buffer()).map_err(RingError::from)?;
        lens.push(packed.len());
        if message.is_empty() {
            message = packed;
        } else {
            message.extend_from_slice(&packed);
        }
        owns.push(z);
    }
    let total = message.len();
    p.net.send_u64s(Peer::Prev, message)?;
    let mut got = p.net.recv_u64s(Peer::Next, total)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(jobs.len());
    let single = jobs.len() == 1;
    for ((j, own), len) in jobs.iter().zip(owns).zip(lens) {
        // One stream is the whole message: take it rather than copy it.
        let words = if single { std::mem::take(&mut got) } else { got[at..at + len].to_vec() };
        let packed = Tensor::from_vec(&p.dev, [len], words)?;
        at += len;
        let next = packed.unpack_bits(j.x[0].shape().clone(), j.mask)?;
        out.push(BShare { own, next });
    }
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
/// `c = maj(x_0, x_1, x_2) << 1`, `maj = ((x_0^x_1) & (x_0^x_2)) ^ x_0` (one AND round
/// on the `mask` lanes of `maj`, at most 63 bits per element: bit 63 of `maj` is shifted
/// out). Returns `c`.
///
/// The AND's operands are the trivial binary sharings `a = x_0 ^ x_1` and `b = x_0 ^ x_2`
/// (component `j` of `x_j` is `x_j`, the others zero), which party `i` holds as
/// components of `x` or zeros, without computing them; likewise `^ x_0`. Parties 1 and 2
/// need no zeros: their parts `x_1 & x_2` and `x_2 & x_0` are the same AND with equal
/// components (`u & (v ^ v) ^ u & v = u & v`).
fn carry_save<D: Device>(p: &Party<D>, x: &AShare<D>, mask: u64) -> Result<BShare<D>> {
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
    let mut out = and_parts(p, &[Part { x: a, y: b, y_shl: 0, mask }])?;
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
fn bit_range(lo: u32, hi: u32) -> u64 {
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
    let c = carry_save(p, x, !TOP)?;
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
fn parts<D: Device>(x: &BShare<D>) -> [&Tensor<D>; 2] {
    [&x.own, &x.next]
}

/// The one result of a one-job [`and_parts`].
fn one<D: Device>(mut out: Vec<BShare<D>>) -> Result<BShare<D>> {
    out.pop().ok_or_else(|| Error::Usage("and: no result".into()))
}

/// [`and_parts`] leaving out the jobs whose mask is empty (their result is `None`); no
/// round at all when every mask is empty.
fn and_parts_masked<D: Device>(p: &Party<D>, jobs: &[Part<'_, D>]) -> Result<Vec<Option<BShare<D>>>> {
    let live: Vec<Part<'_, D>> =
        jobs.iter().filter(|j| j.mask != 0).map(|j| Part { x: j.x, y: j.y, y_shl: j.y_shl, mask: j.mask }).collect();
    let mut done = if live.is_empty() { Vec::new() } else { and_parts(p, &live)? }.into_iter();
    Ok(jobs.iter().map(|j| if j.mask != 0 { done.next() } else { None }).collect())
}

/// A sharing of zero shaped like `x`.
fn zeros_like<D: Device>(p: &Party<D>, x: &BShare<D>) -> Result<BShare<D>> {
    Ok(BShare { own: Tensor::zeros(&p.dev, x.shape().clone())?, next: Tensor::zeros(&p.dev, x.shape().clone())? })
}

/// The most significant bit of `x` (its two's complement sign) as a binary sharing of a
/// bit in lane 0 (other lanes zero). Exact for every ring value.
///
/// Carry-save (1 round, 63 bits), generate `g = s & c` (1 round, 62 bits), then a carry
/// tree over bits 0..62 (6 rounds, 60 + 31 + 15 + 7 + 3 + 1 bits): 8 rounds and 242 bits
/// (30.25 bytes) per element per party. `MSB = s_63 ^ c_63 ^ carry_63`.
pub fn msb<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    msb_within(p, x, 64)
}

/// The sign of `x` from its low `bits` bits alone: bit `bits - 1` of `x`, which is
/// [`msb`]`(x)` whenever `x` read as two's complement lies in `[-2^(bits-1), 2^(bits-1))`
/// (and an unrelated bit otherwise). `bits` is in `2..=64`; 64 is [`msb`].
///
/// The same circuit as [`msb`] on `x << (64 - bits)` (local): the low `64 - bits` lanes of
/// every component are then zero, so every AND whose result is publicly zero there, or
/// whose result no later AND needs, is left out of its round's mask ([`SignMasks`]). Still
/// 8 rounds; at 48 bits 179 bits (22.4 bytes) per element per party instead of 242.
pub fn msb_within<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
    let _g = p.net.scope("msb");
    if !(2..=64).contains(&bits) {
        return Err(Error::Usage(format!("msb_within: bits must be in 2..=64, not {bits}")));
    }
    let masks = SignMasks::new(64 - bits);
    let shifted;
    let x = if bits < 64 {
        shifted = x.shl(64 - bits)?;
        &shifted
    } else {
        x
    };
    let c = carry_save(p, x, masks.carry)?;
    // Work in the lane order with the 6-bit lane index reversed (local, linear): there the
    // tops of every tree level form one contiguous lane range and each merge is a fixed
    // shift, so every round of the full-width circuit packs a contiguous mask. (s is x's
    // components read as XOR components.)
    let s = BShare { own: reverse_lanes(&x.own)?, next: reverse_lanes(&x.next)? };
    let c = bit_reverse_lanes(&c)?;
    // Lanes 0 and 63 are their own images: g_0 = 0 (c_0 = 0) and g_63 is not needed.
    let g = one(and_parts(p, &[Part { x: parts(&s), y: parts(&c), y_shl: 0, mask: masks.generate }])?)?;
    let mut prop = s;
    xor_into(&mut prop, &c)?;
    // Tree: a group's (G, P) sits at its top bit. The 64th leaf (bit 63) is the public
    // (G, P) = (0, 1), so the root's G is the carry into bit 63. Level L merges groups of
    // 2^(L-1) bits; its tops are the reversed lanes 64 - 2^(6-L) ..= 63, and hi and lo
    // tops are 2^(6-L) lanes apart (the shift is fused into the AND). Level 1 pairs bits
    // (2m+1, 2m), i.e. reversed lanes (32 + m', m') for m' = rev5(m): a shift by 32. The
    // pair (63, 62) is local, (0 ^ 1&g_62, 1&p_62) = (g_62, p_62), and lands in lane 63:
    // G ^= (g << 32) & TOP, P ^= (prop << 32) & TOP.
    let (gmask, pmask) = masks.levels[0];
    let mut r = and_parts_masked(
        p,
        &[
            Part { x: parts(&prop), y: parts(&g), y_shl: 32, mask: gmask },
            Part { x: parts(&prop), y: parts(&prop), y_shl: 32, mask: pmask },
        ],
    )?
    .into_iter();
    let (t1, t2) = (r.next().flatten(), r.next().flatten());
    let mut gg = match t1 {
        Some(t1) => t1,
        None => zeros_like(p, &g)?,
    };
    xor_into(&mut gg, &g)?;
    xor_shl_into(&mut gg, &g, 32, TOP)?;
    let mut pp = match t2 {
        Some(t2) => t2,
        None => zeros_like(p, &g)?,
    };
    xor_shl_into(&mut pp, &prop, 32, TOP)?;
    for (level, &(gmask, pmask)) in (2..=6u32).zip(&masks.levels[1..]) {
        let d = 1u32 << (6 - level);
        let mut r = and_parts_masked(
            p,
            &[
                Part { x: parts(&pp), y: parts(&gg), y_shl: d, mask: gmask },
                Part { x: parts(&pp), y: parts(&pp), y_shl: d, mask: pmask },
            ],
        )?
        .into_iter();
        let (t1, t2) = (r.next().flatten(), r.next().flatten());
        if let Some(t1) = t1 {
            xor_into(&mut gg, &t1)?;
        }
        // A P left out is never read again (publicly zero, or not needed).
        if let Some(t2) = t2 {
            pp = t2;
        }
    }
    // MSB = p_63 ^ carry_63 (lane 63 is fixed by the reversal), moved to lane 0.
    xor_into(&mut gg, &prop)?;
    gg.shr(63)
}

/// The lanes each AND of the sign circuit on the low `64 - z` bits computes (the operands
/// shifted left by `z`), found by following which `(G, P)` are publicly zero and which are
/// needed from the root down. For `z = 0` these are [`msb`]'s masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SignMasks {
    /// The carry-save AND, in natural lane order: `maj` bits `z..=62`.
    pub(crate) carry: u64,
    /// The generate AND `g = s & c`, in reversed lane order.
    pub(crate) generate: u64,
    /// Tree levels 1 to 6: the `(G, P)` ANDs, in reversed lane order.
    pub(crate) levels: [(u64, u64); 6],
}

impl SignMasks {
    pub(crate) fn new(z: u32) -> SignMasks {
        // Leaves: g_j = s_j & c_j is zero for j <= z (s_j = 0 below z, c_j = 0 up to z),
        // p_j = s_j ^ c_j for j < z; leaf 63 is the public (0, 1), merged locally.
        let mut g_zero = [[false; 64]; 7];
        let mut p_zero = [[false; 64]; 7];
        for j in 0..64u32 {
            g_zero[0][j as usize] = j <= z || j == 63;
            p_zero[0][j as usize] = j < z;
        }
        for level in 1..=6usize {
            for m in 0..(64 >> level) {
                let (hi, lo) = (2 * m + 1, 2 * m);
                let local = level == 1 && m == 31;
                g_zero[level][m] = if local {
                    g_zero[0][lo]
                } else {
                    g_zero[level - 1][hi] && (p_zero[level - 1][hi] || g_zero[level - 1][lo])
                };
                p_zero[level][m] = if local { p_zero[0][lo] } else { p_zero[level - 1][hi] || p_zero[level - 1][lo] };
            }
        }
        let mut need_g = [[false; 64]; 7];
        let mut need_p = [[false; 64]; 7];
        need_g[6][0] = true;
        let mut levels = [(0u64, 0u64); 6];
        for level in (1..=6usize).rev() {
            let (mut gmask, mut pmask) = (0u64, 0u64);
            for m in 0..(64 >> level) {
                let (hi, lo) = (2 * m + 1, 2 * m);
                if level == 1 && m == 31 {
                    need_g[0][lo] |= need_g[1][m];
                    need_p[0][lo] |= need_p[1][m];
                    continue;
                }
                let g_and = need_g[level][m] && !p_zero[level - 1][hi] && !g_zero[level - 1][lo];
                let p_and = need_p[level][m] && !p_zero[level - 1][hi] && !p_zero[level - 1][lo];
                need_g[level - 1][hi] |= need_g[level][m];
                need_g[level - 1][lo] |= g_and;
                need_p[level - 1][hi] |= g_and || p_and;
                need_p[level - 1][lo] |= p_and;
                let top = (m << level) + (1 << level) - 1;
                let lane = 1u64 << rev6(top as u32);
                if g_and {
                    gmask |= lane;
                }
                if p_and {
                    pmask |= lane;
                }
            }
            levels[level - 1] = (gmask, pmask);
        }
        let generate =
            (0..64u32).filter(|&j| need_g[0][j as usize] && !g_zero[0][j as usize]).fold(0u64, |m, j| m | 1 << rev6(j));
        SignMasks { carry: bit_range(z, 62), generate, levels }
    }

    /// Bits sent per element by each party.
    #[cfg(test)]
    fn bits(&self) -> u32 {
        self.carry.count_ones()
            + self.generate.count_ones()
            + self.levels.iter().map(|(g, p)| g.count_ones() + p.count_ones()).sum::<u32>()
    }
}

/// The 6-bit lane index `j` read backwards.
fn rev6(j: u32) -> u32 {
    j.reverse_bits() >> 26
}

/// `a ^= (b << s) & m` in place, component by component, in one device pass each
/// ([`Device::xor_assign_shl`]).
fn xor_shl_into<D: Device>(a: &mut BShare<D>, b: &BShare<D>, s: u32, m: u64) -> Result<()> {
    if a.shape() != b.shape() || s >= 64 {
        return Err(Error::Usage(format!("xor_shl: shapes {} and {}, shift {s}", a.shape(), b.shape())));
    }
    for (a, b) in [(&mut a.own, &b.own), (&mut a.next, &b.next)] {
        let dev = a.device().clone();
        dev.xor_assign_shl(a.buffer_mut(), b.buffer(), s, m).map_err(RingError::from)?;
    }
    Ok(())
}

/// `a ^= b` in place, component by component (no fresh buffer).
fn xor_into<D: Device>(a: &mut BShare<D>, b: &BShare<D>) -> Result<()> {
    a.own.xor_assign(&b.own)?;
    a.next.xor_assign(&b.next)?;
    Ok(())
}

/// The three delta swaps `(d, m)` that reverse a 6-bit lane index: they exchange index
/// bits (0, 5), (1, 4) and (2, 3); `m` holds the lower lanes of the swapped pairs.
fn reversal_swaps() -> [(u32, u64); 3] {
    [(0u32, 5u32), (1, 4), (2, 3)].map(|(a, b)| {
        let d = (1u32 << b) - (1u32 << a);
        // Lower lanes of the swapped pairs: index bit a set, bit b clear.
        let m = (0..64u32).filter(|j| j & (1 << a) != 0 && j & (1 << b) == 0).fold(0u64, |m, j| m | 1 << j);
        (d, m)
    })
}

/// One component with its lanes reversed: one device pass ([`Device::delta_swaps`]).
fn reverse_lanes<D: Device>(t: &Tensor<D>) -> Result<Tensor<D>> {
    let dev = t.device();
    Ok(Tensor::from_buffer(
        dev,
        t.shape().clone(),
        dev.delta_swaps(t.buffer(), &reversal_swaps()).map_err(RingError::from)?,
    )?)
}

/// Lane `j` moves to lane `rev6(j)` (the 6-bit index reversed) in every component: three
/// delta swaps exchanging index bits (0, 5), (1, 4) and (2, 3).
pub fn bit_reverse_lanes<D: Device>(x: &BShare<D>) -> Result<BShare<D>> {
    Ok(BShare { own: reverse_lanes(&x.own)?, next: reverse_lanes(&x.next)? })
}

/// Lane-0 bit sharing of `1 ^ b` for a lane-0 bit sharing `b`.
pub fn not_bit<D: Device>(p: &Party<D>, b: &BShare<D>) -> Result<BShare<D>> {
    xor_const(p, b, 1)
}

/// [`not_bit`] of a sharing no longer needed: its components are reused, not copied (one
/// pass, on the one component that absorbs the constant, instead of three).
pub(crate) fn not_bit_owned<D: Device>(p: &Party<D>, mut b: BShare<D>) -> Result<BShare<D>> {
    match p.index() {
        0 => b.own = b.own.scalar(BinaryOp::Xor, 1)?,
        2 => b.next = b.next.scalar(BinaryOp::Xor, 1)?,
        _ => {}
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::{bit_range, SignMasks, TOP};

    /// The masks of the full-width circuit are the ones `msb` has always sent (242 bits), and
    /// each narrower circuit sends fewer.
    #[test]
    fn sign_masks() {
        let full = SignMasks::new(0);
        assert_eq!(full.carry, !TOP);
        assert_eq!(full.generate, bit_range(1, 62));
        assert_eq!(full.levels[0], (bit_range(33, 62), bit_range(33, 62)));
        for level in 2..=6u32 {
            let d = 1u32 << (6 - level);
            let p = if level < 6 { bit_range(65 - d, 63) } else { 0 };
            assert_eq!(full.levels[level as usize - 1], (bit_range(64 - d, 63), p), "level {level}");
        }
        assert_eq!(full.bits(), 242);
        assert_eq!(SignMasks::new(16).bits(), 179);
        let mut last = 243;
        for z in 0..=62 {
            let b = SignMasks::new(z).bits();
            assert!(b < last, "z = {z}: {b} bits");
            last = b;
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(bit_range(0, 63), u64::MAX);
        assert_eq!(bit_range(1, 62), 0x7FFF_FFFF_FFFF_FFFE);
        assert_eq!(bit_range(65, 62), 0);
    }
}
