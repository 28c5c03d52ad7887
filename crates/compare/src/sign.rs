//! The sign circuit: MSB of a ring value, or of its low `w` bits (two summands, then a carry
//! tree in bit-reversed lane order).

use triad_ring::{BinaryOp, Device, Placed, RingError, Shape, StridedLayout, Tensor};
use triad_sharing::{placed, third, AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

use crate::boolean::{and_packed, and_parts, bit_range, parts, reversal_swaps, xor_into, xor_shl_into, Part, TOP};

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

/// Two binary sharings `a`, `b` with `a + b = x` (ring addition), in one round, on the
/// `lanes` of `x` (its other lanes must be zero in every component); returned with their
/// lanes reversed (lane `j` in lane `rev6(j)`), the order of the carry tree.
///
/// Third `r` of the elements runs with roles `Rj = party (j + r) % 3`. `R0` knows
/// `a = x_{R0} + x_{R1}` (its two components) and shares it: component `R0` is
/// `ρ = F(k_{R0}) & lanes` (a stream of the key it shares with `R2`), component `R1` is
/// `a ^ ρ`, which it packs and sends to `R1`, and component `R2` is 0. `b = x_{R2}`, which
/// `R1` and `R2` both hold, is shared trivially (component `R2`, the others 0). `R1` sees
/// `a` under `ρ`, from a key it lacks; `R2` receives nothing. Each party sends one third of
/// the elements, `popcount(lanes)` bits each, to its next party. The four components a
/// party holds are each written once, reversed, by [`Device::place_swapped`].
fn summands<D: Device>(p: &Party<D>, x: &AShare<D>, lanes: u64) -> Result<(BShare<D>, BShare<D>)> {
    let shape = x.shape().clone();
    let n = shape.numel();
    let i = p.index();
    let dev = &p.dev;
    let streams: Vec<u64> = (0..3).map(|_| p.next_stream()).collect();
    let sh = |k: usize| Shape::new([k]);
    let slice = |t: &Tensor<D>, r: usize| -> Result<Tensor<D>> {
        let view = StridedLayout { dims: vec![third(n, r).len()], strides: vec![1], offset: third(n, r).start };
        Ok(Tensor::from_buffer(
            dev,
            sh(third(n, r).len()),
            dev.gather_strided(t.buffer(), &view).map_err(RingError::from)?,
        )?)
    };
    // Role 0 in third i: send a ^ ρ to R1 (the next party).
    let k0 = third(n, i).len();
    let rho0 = p.prg_prev(&sh(k0), streams[i])?.scalar(BinaryOp::And, lanes)?;
    let mut sent = slice(&x.own, i)?;
    sent.add_assign(&slice(&x.next, i)?)?;
    sent.xor_assign(&rho0)?;
    p.send_owned(Peer::Next, sent.pack_bits(lanes)?)?;
    // Role 2 in third i + 1: ρ of R0 (the next party), from the key shared with it.
    let r2 = (i + 1) % 3;
    let rho2 = p.prg_next(&sh(third(n, r2).len()), streams[r2])?.scalar(BinaryOp::And, lanes)?;
    // Role 1 in third i + 2: a ^ ρ from R0 (the previous party).
    let r1 = (i + 2) % 3;
    let k1 = third(n, r1).len();
    let words = (k1 * lanes.count_ones() as usize).div_ceil(64);
    let got = p.recv(Peer::Prev, &sh(words))?.unpack_bits(sh(k1), lanes)?;
    // Components in element order: third r holds role (i - r) mod 3's.
    // A third's own tensor (`whole`), or a third of a full one (`part`), at third r.
    let whole = |t, r| placed(t, third(n, r).start, 0, third(n, r).len());
    let part = |t, r| placed(t, third(n, r).start, third(n, r).start, third(n, r).len());
    let swaps = reversal_swaps();
    let place = |pieces: &[Placed<'_, D::Buffer>]| -> Result<Tensor<D>> {
        Ok(Tensor::from_buffer(dev, shape.clone(), dev.place_swapped(n, pieces, &swaps).map_err(RingError::from)?)?)
    };
    let a =
        BShare { own: place(&[whole(&rho0, i), whole(&got, r1)])?, next: place(&[whole(&sent, i), whole(&rho2, r2)])? };
    let b = BShare { own: place(&[part(&x.own, r2)])?, next: place(&[part(&x.next, r1)])? };
    Ok((a, b))
}

/// The most significant bit of `x` (its two's complement sign) as a binary sharing of a
/// bit in lane 0 (other lanes zero). Exact for every ring value.
///
/// Two summands (1 round: one party's binary sharing of `x_{R0} + x_{R1}`, 64 bits for a
/// third of the elements each), generate `g = a & b` (1 round, 63 bits), then a carry tree
/// over bits 0..62 (6 rounds, 61 + 31 + 15 + 7 + 3 + 1 bits): 8 rounds and about 202.3
/// bits (25.29 bytes) per element per party. `MSB = a_63 ^ b_63 ^ carry_63`.
pub fn msb<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    msb_within(p, x, 64)
}

/// The sign of `x` from its low `bits` bits alone: bit `bits - 1` of `x`, which is
/// [`msb`]`(x)` whenever `x` read as two's complement lies in `[-2^(bits-1), 2^(bits-1))`
/// (and an unrelated bit otherwise). `bits` is in `2..=64`; 64 is [`msb`].
///
/// The same circuit as [`msb`] on `x << (64 - bits)` (local): the low `64 - bits` lanes of
/// every component are then zero, so the summand travels in `bits` bits and every AND
/// whose result is publicly zero there, or whose result no later AND needs, is left out of
/// its round's mask ([`SignMasks`]). Still 8 rounds; at 48 bits 150 bits (18.75 bytes)
/// per element per party.
pub fn msb_within<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
    msb_within_top(p, x, bits)?.shr(63)
}

/// [`msb_within`] with the bit left in lane 63 and the other lanes unspecified (one pass
/// fewer for a caller that reads only that lane, as ReLU's bit injection does).
pub(crate) fn msb_within_top<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
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
    // Work in the lane order with the 6-bit lane index reversed (local, linear): there the
    // tops of every tree level form one contiguous lane range and each merge is a fixed
    // shift, so every round of the full-width circuit packs a contiguous mask.
    let (s, c) = summands(p, x, masks.summand)?;
    // Lanes 0 and 63 are their own images: g_63 is not needed.
    let g = and_packed(p, &s, &c, masks.generate)?;
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
        // Compaction: from level 2 on only the top 32 lanes of a word matter (its tops are
        // lanes 48..=63 and its merge reads 16 lanes lower), from level 3 on the top 16 (a
        // merge reads at most 8 lower). So two elements' top halves share a word at level 2,
        // four elements' top quarters from level 3 on, in element order, and the masks repeat
        // in each group: the same lanes travel, from a half and then a quarter of the words.
        let (gmask, pmask) = match level {
            2 => (repeat(gmask, 32), repeat(pmask, 32)),
            _ => (repeat(gmask, 16), repeat(pmask, 16)),
        };
        if level <= 3 {
            let lanes = if level == 2 { TOP32 } else { repeat(TOP16, 32) };
            gg = compact(&gg, lanes)?;
            pp = compact(&pp, lanes)?;
        }
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
    // MSB = p_63 ^ carry_63 (lane 63 is fixed by the reversal).
    let mut gg = BShare {
        own: gg.own.unpack_bits(x.shape().clone(), TOP16)?,
        next: gg.next.unpack_bits(x.shape().clone(), TOP16)?,
    };
    xor_into(&mut gg, &prop)?;
    Ok(gg)
}

/// Lanes 32..=63, the tops of tree level 1, which level 2 reads.
const TOP32: u64 = 0xFFFF_FFFF << 32;

/// Lanes 48..=63, the tops of level 2, which levels 3 to 6 read.
const TOP16: u64 = 0xFFFF << 48;

/// A mask of a word's top `width` lanes, repeated in each `width`-lane group of a word that
/// holds `64 / width` elements.
fn repeat(mask: u64, width: u32) -> u64 {
    let m = mask >> (64 - width);
    (0..64 / width).fold(0, |r, g| r | m << (g * width))
}

/// The `lanes` of consecutive words packed back to back ([`Tensor::pack_bits`], local):
/// with the top half or quarter of each element (or of each group), two or four elements'
/// share a word, in element order.
fn compact<D: Device>(x: &BShare<D>, lanes: u64) -> Result<BShare<D>> {
    Ok(BShare { own: x.own.pack_bits(lanes)?, next: x.next.pack_bits(lanes)? })
}

/// The lanes each AND of the sign circuit on the low `64 - z` bits computes (the operands
/// shifted left by `z`), found by following which `(G, P)` are publicly zero and which are
/// needed from the root down. For `z = 0` these are [`msb`]'s masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SignMasks {
    /// The lanes of the summand that travels, in natural lane order: `z..=63`.
    pub(crate) summand: u64,
    /// The generate AND `g = s & c`, in reversed lane order.
    pub(crate) generate: u64,
    /// Tree levels 1 to 6: the `(G, P)` ANDs, in reversed lane order.
    pub(crate) levels: [(u64, u64); 6],
}

impl SignMasks {
    pub(crate) fn new(z: u32) -> SignMasks {
        // Leaves: g_j = a_j & b_j and p_j = a_j ^ b_j are zero for j < z (both summands
        // are); leaf 63 is the public (0, 1), merged locally.
        let mut g_zero = [[false; 64]; 7];
        let mut p_zero = [[false; 64]; 7];
        for j in 0..64u32 {
            g_zero[0][j as usize] = j < z || j == 63;
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
        SignMasks { summand: bit_range(z, 63), generate, levels }
    }

    /// Bits of the ANDs sent per element by each party (besides a third of the summand's).
    #[cfg(test)]
    fn bits(&self) -> u32 {
        self.generate.count_ones() + self.levels.iter().map(|(g, p)| g.count_ones() + p.count_ones()).sum::<u32>()
    }
}

/// The 6-bit lane index `j` read backwards.
fn rev6(j: u32) -> u32 {
    j.reverse_bits() >> 26
}

#[cfg(test)]
mod tests {
    use super::{bit_range, SignMasks, TOP};

    /// The masks of the full-width circuit (181 bits of ANDs: the carry-save circuit's 242
    /// less its 63-bit AND, plus lane 0 of `g` and of level 1, as `b_0` is no longer 0), and
    /// each narrower circuit sends fewer.
    #[test]
    fn sign_masks() {
        let full = SignMasks::new(0);
        assert_eq!(full.summand, u64::MAX);
        assert_eq!(full.generate, !TOP);
        assert_eq!(full.levels[0], (bit_range(32, 62), bit_range(33, 62)));
        for level in 2..=6u32 {
            let d = 1u32 << (6 - level);
            let p = if level < 6 { bit_range(65 - d, 63) } else { 0 };
            assert_eq!(full.levels[level as usize - 1], (bit_range(64 - d, 63), p), "level {level}");
        }
        assert_eq!(full.bits(), 181);
        assert_eq!(SignMasks::new(16).bits(), 134);
        let mut last = 182;
        for z in 0..=62 {
            let b = SignMasks::new(z).bits();
            assert!(b < last, "z = {z}: {b} bits");
            last = b;
        }
    }
}
