//! The sign circuit: MSB of a ring value, or of its low `w` bits (carry-save, then a carry
//! tree in bit-reversed lane order, with only the lanes that are needed and not publicly
//! zero).

use triad_ring::{Device, Tensor};
use triad_sharing::{AShare, BShare, Error, Party, Result};

use crate::boolean::{
    and_parts, bit_range, bit_reverse_lanes, carry_save, one, parts, reverse_lanes, xor_into, xor_shl_into, Part, TOP,
};

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
}
