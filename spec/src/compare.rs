//! Comparisons (the `triad-compare` crate): ideal functionalities and a simulator of the
//! message flow.
//!
//! **Ideal functionalities** are stated on ring elements read as two's complement
//! integers ([`signed`]): MSB, DReLU, ReLU, comparisons, max / argmax along an axis (ties:
//! the first position) and max pooling. MSB, DReLU and ReLU hold for every ring value, the
//! sign from the low bits ([`msb_within`], [`relu_within`]) on [`in_sign_domain`];
//! comparisons of `x` and `y` hold when `|x - y| < 2^63` ([`in_domain`]), which the
//! fixed-point range `|x| < 2^62` guarantees; max, argmax and max pooling assume values in
//! that range.
//!
//! **The simulator** replays the protocols on all three parties' components with a
//! [`Sim`] (same keys, same stream order), so the real parties' components can be checked
//! bit for bit: the masked AND ([`sim_and_packed`]), the two summands ([`sim_summands`]),
//! MSB ([`sim_msb`], [`sim_msb_within`] with its masks [`sign_masks`]), bit injection with
//! rotated roles ([`sim_inject`]) and ReLU ([`sim_relu`], [`sim_relu_within`]).

use crate::ring::{BinOp, Pool2d, UnOp};
use crate::sharing::{Shared, Sim};
use crate::{lift, pow2, reduce, signed, BigInt};

// ---- ideal functionalities -------------------------------------------------------------------

/// `MSB(v)`: 1 if `v` read as two's complement is negative (`v ≥ 2^63`), else 0.
pub fn msb(v: u64) -> u64 {
    u64::from(signed(v) < BigInt::from(0))
}

/// The sign from the low `bits` bits (`bits` in `2..=64`): `MSB(v · 2^(64 - bits))`, i.e. bit
/// `bits - 1` of `v`. Equals [`msb`] exactly on [`in_sign_domain`].
pub fn msb_within(v: u64, bits: u32) -> u64 {
    assert!((2..=64).contains(&bits), "bits {bits}");
    msb(reduce(&(lift(v) * pow2(64 - bits))))
}

/// Whether `signed(v)` lies in `[-2^(bits-1), 2^(bits-1))`, where [`msb_within`] is exact.
pub fn in_sign_domain(v: u64, bits: u32) -> bool {
    let s = signed(v);
    s >= -pow2(bits - 1) && s < pow2(bits - 1)
}

/// ReLU with the sign from the low `bits` bits: `v` where [`msb_within`] is 0, else 0.
/// Equals [`relu`] exactly on [`in_sign_domain`].
pub fn relu_within(v: u64, bits: u32) -> u64 {
    if msb_within(v, bits) == 0 {
        v
    } else {
        0
    }
}

/// `DReLU(v) = [signed(v) ≥ 0] = 1 - MSB(v)`.
pub fn drelu(v: u64) -> u64 {
    1 - msb(v)
}

/// `ReLU(v) = max(signed(v), 0) mod 2^64`.
pub fn relu(v: u64) -> u64 {
    reduce(&signed(v).max(BigInt::from(0)))
}

/// ReLU backward: `grad` where `signed(x) ≥ 0`, else 0.
pub fn relu_backward(grad: u64, x: u64) -> u64 {
    reduce(&(lift(grad) * lift(drelu(x))))
}

/// The overflow guard's check: whether every `signed(x_i)` lies in `[-2^bits, 2^bits)`
/// (one bit, opened to every party; `bits` in `1..=62`).
pub fn all_in_range(x: &[u64], bits: u32) -> bool {
    x.iter().all(|&v| {
        let s = signed(v);
        s >= -pow2(bits) && s < pow2(bits)
    })
}

/// Whether comparing `x` and `y` through the sign of `x - y` is exact:
/// `|signed(x) - signed(y)| < 2^63`.
pub fn in_domain(x: u64, y: u64) -> bool {
    let d = signed(x) - signed(y);
    d < pow2(63) && d > -pow2(63)
}

/// `[signed(x) < signed(y)]`.
pub fn lt(x: u64, y: u64) -> u64 {
    u64::from(signed(x) < signed(y))
}

/// `[signed(x) > signed(y)]`.
pub fn gt(x: u64, y: u64) -> u64 {
    u64::from(signed(x) > signed(y))
}

/// `[signed(x) ≥ signed(y)]`.
pub fn ge(x: u64, y: u64) -> u64 {
    u64::from(signed(x) >= signed(y))
}

/// `[signed(x) > 0]` (exact in the protocol except at `x = -2^63`).
pub fn gtz(x: u64) -> u64 {
    u64::from(signed(x) > BigInt::from(0))
}

/// Splits `dims` at `axis` into `(outer, len, inner)`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    assert!(axis < dims.len(), "axis {axis} outside {dims:?}");
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// The first position of the signed maximum of `v`.
fn first_argmax(v: &[u64]) -> usize {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if signed(x) > signed(v[best]) {
            best = k;
        }
    }
    best
}

/// The signed maximum along `axis` (removed from the shape).
pub fn max_axis(x: &[u64], dims: &[usize], axis: usize) -> Vec<u64> {
    let (outer, len, inner) = split(dims, axis);
    assert!(len > 0 && x.len() == outer * len * inner);
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let v: Vec<u64> = (0..len).map(|k| x[(o * len + k) * inner + i]).collect();
            out.push(v[first_argmax(&v)]);
        }
    }
    out
}

/// The argmax along `axis` as a one-hot tensor of the input's shape: 1 at the first
/// position of each maximum.
pub fn argmax_axis(x: &[u64], dims: &[usize], axis: usize) -> Vec<u64> {
    let (outer, len, inner) = split(dims, axis);
    assert!(len > 0 && x.len() == outer * len * inner);
    let mut out = vec![0u64; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let v: Vec<u64> = (0..len).map(|k| x[(o * len + k) * inner + i]).collect();
            out[(o * len + first_argmax(&v)) * inner + i] = 1;
        }
    }
    out
}

/// Backward of a max along `axis`: `onehot · grad` broadcast along the axis.
pub fn max_axis_backward(grad: &[u64], onehot: &[u64], dims: &[usize], axis: usize) -> Vec<u64> {
    let (outer, len, inner) = split(dims, axis);
    let mut out = vec![0u64; onehot.len()];
    for o in 0..outer {
        for k in 0..len {
            for i in 0..inner {
                let at = (o * len + k) * inner + i;
                out[at] = reduce(&(lift(onehot[at]) * lift(grad[o * inner + i])));
            }
        }
    }
    out
}

/// Max pooling: for each window, the signed maximum over its *real* (unpadded) taps, and
/// the one-hot tap of the first maximum, `[N, C, OH, OW, KH·KW]` (padding never wins).
pub fn maxpool(x: &[u64], p: &Pool2d) -> (Vec<u64>, Vec<u64>) {
    assert!(p.is_valid());
    let [n, c, oh, ow] = p.output_dims();
    let k = p.kh * p.kw;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    let mut onehot = vec![0u64; n * c * oh * ow * k];
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best: Option<(usize, u64)> = None;
                    for ky in 0..p.kh {
                        for kx in 0..p.kw {
                            if let Some((y, xx)) = p.tap(oy, ox, ky, kx) {
                                let v = x[((b * c + ch) * p.in_h + y) * p.in_w + xx];
                                if best.is_none_or(|(_, bv)| signed(v) > signed(bv)) {
                                    best = Some((ky * p.kw + kx, v));
                                }
                            }
                        }
                    }
                    let (t, v) = best.expect("every window has a real tap (padding < window)");
                    out.push(v);
                    onehot[(((b * c + ch) * oh + oy) * ow + ox) * k + t] = 1;
                }
            }
        }
    }
    (out, onehot)
}

/// Max pooling backward: each output gradient added to its window's maximum tap.
pub fn maxpool_backward(grad: &[u64], onehot: &[u64], p: &Pool2d) -> Vec<u64> {
    let k = p.kh * p.kw;
    let windows: Vec<u64> = onehot.iter().enumerate().map(|(t, &h)| reduce(&(lift(h) * lift(grad[t / k])))).collect();
    crate::ring::pool_windows_backward(&windows, p)
}

// ---- simulator --------------------------------------------------------------------------------

fn map2(a: &Shared, b: &Shared, op: BinOp) -> Shared {
    let c = |j: usize| -> Vec<u64> { a.comps[j].iter().zip(&b.comps[j]).map(|(&x, &y)| op.apply(x, y)).collect() };
    Shared { comps: [c(0), c(1), c(2)] }
}
fn map1(a: &Shared, f: impl Fn(u64) -> u64) -> Shared {
    let c = |j: usize| -> Vec<u64> { a.comps[j].iter().map(|&x| f(x)).collect() };
    Shared { comps: [c(0), c(1), c(2)] }
}
fn xor(a: &Shared, b: &Shared) -> Shared {
    map2(a, b, BinOp::Xor)
}
fn shl(a: &Shared, s: u32) -> Shared {
    map1(a, |v| UnOp::Shl(s).apply(v))
}
fn and_mask(a: &Shared, m: u64) -> Shared {
    map1(a, |v| BinOp::And.apply(v, m))
}
/// Bits `lo..=hi` (empty when `lo > hi`).
fn bit_range(lo: u32, hi: u32) -> u64 {
    (lo..=hi.min(63)).fold(0u64, |m, b| BinOp::Or.apply(m, reduce(&pow2(b))))
}
fn bit(b: u32) -> u64 {
    reduce(&pow2(b))
}

/// The masked AND: the AND's 3-out-of-3 parts keep only the `mask` lanes (the rest is
/// never sent), packed ([`crate::ring::pack_bits`]), with the zero sharing
/// `β_i = F(k_i) ^ F(k_{i+1})` drawn over the packed words. Ideal: `x & y & mask`.
pub fn sim_and_packed(sim: &mut Sim, x: &Shared, y: &Shared, mask: u64) -> Shared {
    let n = x.comps[0].len();
    let words = (n * mask.count_ones() as usize).div_ceil(64);
    let beta = sim.zero_share_xor(words);
    let part = |i: usize| -> Vec<u64> {
        let ((xi, xn), (yi, yn)) = (x.party(i), y.party(i));
        let z: Vec<u64> = (0..n).map(|e| (xi[e] & yi[e]) ^ (xi[e] & yn[e]) ^ (xn[e] & yi[e])).collect();
        let packed: Vec<u64> = crate::ring::pack_bits(&z, mask).iter().zip(&beta[i]).map(|(p, b)| p ^ b).collect();
        crate::ring::unpack_bits(&packed, n, mask)
    };
    Shared { comps: [part(0), part(1), part(2)] }
}

/// The lane permutation of the MSB circuit: lane `j` moves to lane `rev6(j)`, the 6-bit
/// index read backwards (lane 63 and lane 0 stay).
pub fn rev6(j: u32) -> u32 {
    (0..6).fold(0, |r, b| r | (((j >> b) & 1) << (5 - b)))
}

fn reverse_lanes(a: &Shared) -> Shared {
    map1(a, |v| {
        let b = crate::ring::bits(v);
        let mut out = [false; 64];
        for j in 0..64u32 {
            out[rev6(j) as usize] = b[j as usize];
        }
        crate::ring::from_bits(&out)
    })
}

/// MSB: two summands `a + b = x` (one party's binary sharing of `x_{R0} + x_{R1}`, roles
/// rotated over thirds: [`sim_summands`]), their lanes permuted by [`rev6`], generate
/// `g = a & b`, then the carry tree over bits 0..62 with the public leaf `(G, P) = (0, 1)`
/// at bit 63. In the permuted order the tops of tree level `L` are the lanes
/// `64 - 2^(6-L) ..= 63` and a merge is a shift by `2^(6-L)`. Result in lane 0. Ideal:
/// [`msb`] of the reconstructed value.
pub fn sim_msb(sim: &mut Sim, x: &Shared) -> Shared {
    sim_msb_within(sim, x, 64)
}

/// The two summands of the sign circuit, on the `lanes` of `x`: in third `r` of the
/// elements (roles `Rj = (j + r) % 3`), `a` has components `R0: ρ = F(k_{R0}) & lanes`,
/// `R1: (x_{R0} + x_{R1}) ^ ρ` (sent by `R0` to `R1`, packed), `R2: 0`, and `b` has
/// `x_{R2}` in component `R2` and zeros elsewhere. One stream per third, drawn in order.
/// Ideal: `a + b = x` on the lanes.
pub fn sim_summands(sim: &mut Sim, x: &Shared, lanes: u64) -> (Shared, Shared) {
    let n = x.comps[0].len();
    let mut a: [Vec<u64>; 3] = [vec![0; n], vec![0; n], vec![0; n]];
    let mut b: [Vec<u64>; 3] = [vec![0; n], vec![0; n], vec![0; n]];
    for r in 0..3 {
        let (lo, hi) = (r * n / 3, (r + 1) * n / 3);
        let (r0, r1, r2) = (r, (r + 1) % 3, (r + 2) % 3);
        let rho = sim.random(hi - lo);
        for (t, e) in (lo..hi).enumerate() {
            let rho_e = BinOp::And.apply(rho.comps[r0][t], lanes);
            let sum = BinOp::Add.apply(x.comps[r0][e], x.comps[r1][e]);
            a[r0][e] = rho_e;
            a[r1][e] = BinOp::And.apply(sum ^ rho_e, lanes);
            b[r2][e] = x.comps[r2][e];
        }
    }
    (Shared { comps: a }, Shared { comps: b })
}

/// The lanes of the sign circuit on the low `64 - z` bits: `(summand, generate, [(G, P) of
/// tree levels 1..=6])`, the ANDs' in the permuted order. A `(G, P)` of a group is
/// publicly zero when all its leaves are below bit `z` (where both summands are zero), and
/// an AND is computed only when its result is needed (from the root down) and not publicly
/// zero. For `z = 0`: lanes `0..=63`, then `0..=62`, then `32..=62` and `33..=62`, then the
/// tops of each level (without the lowest group's P).
pub fn sign_masks(z: u32) -> (u64, u64, [(u64, u64); 6]) {
    // zero[L][m] = (G publicly 0, P publicly 0) of group m of level L (2^L leaves).
    let mut zero = vec![vec![(false, false); 64]; 7];
    for j in 0..64u32 {
        zero[0][j as usize] = (j < z || j == 63, j < z);
    }
    // Leaf 63 is the public (0, 1): the pair (63, 62) is merged locally.
    let local = |level: usize, m: usize| level == 1 && m == 31;
    for level in 1..=6usize {
        for m in 0..(64 >> level) {
            let (h, l) = (zero[level - 1][2 * m + 1], zero[level - 1][2 * m]);
            zero[level][m] = if local(level, m) { l } else { (h.0 && (h.1 || l.0), h.1 || l.1) };
        }
    }
    let mut need = vec![vec![(false, false); 64]; 7];
    need[6][0] = (true, false);
    let mut levels = [(0u64, 0u64); 6];
    for level in (1..=6usize).rev() {
        for m in 0..(64 >> level) {
            let (hi, lo) = (2 * m + 1, 2 * m);
            let n = need[level][m];
            if local(level, m) {
                need[0][lo] = n;
                continue;
            }
            let (h, l) = (zero[level - 1][hi], zero[level - 1][lo]);
            let g_and = n.0 && !h.1 && !l.0;
            let p_and = n.1 && !h.1 && !l.1;
            need[level - 1][hi].0 |= n.0;
            need[level - 1][hi].1 |= g_and || p_and;
            need[level - 1][lo].0 |= g_and;
            need[level - 1][lo].1 |= p_and;
            let lane = bit(rev6(((m << level) + (1 << level) - 1) as u32));
            if g_and {
                levels[level - 1].0 |= lane;
            }
            if p_and {
                levels[level - 1].1 |= lane;
            }
        }
    }
    let generate =
        (0..64u32).filter(|&j| need[0][j as usize].0 && !zero[0][j as usize].0).fold(0, |m, j| m | bit(rev6(j)));
    (bit_range(z, 63), generate, levels)
}

/// [`sim_and_packed`], or nothing (no stream drawn) for an empty mask.
fn sim_and_some(sim: &mut Sim, x: &Shared, y: &Shared, mask: u64) -> Option<Shared> {
    (mask != 0).then(|| sim_and_packed(sim, x, y, mask))
}

/// The sign from the low `bits` bits: [`sim_msb`]'s circuit on `x · 2^(64 - bits)` with the
/// masks of [`sign_masks`]; tree level 2 on words holding the top 32 lanes of two elements
/// each, levels 3 to 6 on words holding the top 16 lanes of four. Ideal: [`msb_within`] of the reconstructed value.
pub fn sim_msb_within(sim: &mut Sim, x: &Shared, bits: u32) -> Shared {
    let z = 64 - bits;
    let (summand, generate, levels) = sign_masks(z);
    let x = shl(x, z);
    let (a, b) = sim_summands(sim, &x, summand);
    let s = reverse_lanes(&a);
    let c = reverse_lanes(&b);
    let prop = xor(&s, &c);
    let g = sim_and_packed(sim, &s, &c, generate);
    let n = x.comps[0].len();
    let zeros = Shared { comps: [vec![0; n], vec![0; n], vec![0; n]] };
    // level 1: through the protocol on its masks, the pair (63, 62) locally into lane 63
    let gs = shl(&g, 32);
    let ps = shl(&prop, 32);
    let t1 = sim_and_some(sim, &prop, &gs, levels[0].0).unwrap_or_else(|| zeros.clone());
    let t2 = sim_and_some(sim, &prop, &ps, levels[0].1).unwrap_or_else(|| zeros.clone());
    let mut gg = xor(&xor(&g, &t1), &and_mask(&gs, bit(63)));
    let mut pp = xor(&t2, &and_mask(&ps, bit(63)));
    // Level 2 on words holding two elements' top 32 lanes, levels 3 to 6 on words holding
    // four elements' top 16 lanes; the masks repeated in each group.
    let top16 = bit_range(48, 63);
    let compact = |a: &Shared, lanes: u64| Shared { comps: a.comps.clone().map(|c| crate::ring::pack_bits(&c, lanes)) };
    let repeat = |m: u64, width: u32| (0..64 / width).fold(0u64, |r, g| r | (m >> (64 - width)) << (width * g));
    for level in 2..=6u32 {
        let d = 1u32 << (6 - level);
        let (gmask, pmask) = levels[level as usize - 1];
        let width = if level == 2 { 32 } else { 16 };
        let (gmask, pmask) = (repeat(gmask, width), repeat(pmask, width));
        if level == 2 {
            gg = compact(&gg, bit_range(32, 63));
            pp = compact(&pp, bit_range(32, 63));
        }
        if level == 3 {
            gg = compact(&gg, repeat(top16, 32));
            pp = compact(&pp, repeat(top16, 32));
        }
        let gs = shl(&gg, d);
        let ps = shl(&pp, d);
        let t1 = sim_and_some(sim, &pp, &gs, gmask);
        let t2 = sim_and_some(sim, &pp, &ps, pmask);
        if let Some(t1) = t1 {
            gg = xor(&gg, &t1);
        }
        if let Some(t2) = t2 {
            pp = t2;
        }
    }
    let gg = Shared { comps: gg.comps.map(|c| crate::ring::unpack_bits(&c, n, top16)) };
    map1(&xor(&prop, &gg), |v| UnOp::ShrLogical(63).apply(v))
}

fn add_v(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| reduce(&(lift(x) + lift(y)))).collect()
}
fn sub_v(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| reduce(&(lift(x) - lift(y)))).collect()
}

/// Bit injection of lane `bit` of a binary sharing, with the roles of third `r` of the
/// elements played by parties `(r, r+1, r+2)`: `R0` offers `e - s0` to `R1` and `e - s1` to
/// `R2`; `R2` sends `R1` the correction `(1 - 2f)·s0 - r0` and `R1` sends `R2`
/// `(1 - 2f)·s1 - r1`; each receiver adds `(1 - 2f)·u + f` to its correction, so that
/// `R1` holds `d - r0` and `R2` holds `d - r1` (`d = e ^ f = (1 - 2f)·e + f`). Streams: per
/// third, one for `r0, r1` (`F(k_{R0}), F(k_{R1})`) and one for `s0, s1`. Ideal: the
/// arithmetic sharing of the bit.
pub fn sim_inject(sim: &mut Sim, b: &Shared, lane: u32) -> Shared {
    let n = b.comps[0].len();
    let d: Vec<Vec<u64>> = (0..3).map(|j| b.comps[j].iter().map(|&v| (v >> lane) % 2).collect()).collect();
    let mut comps: [Vec<u64>; 3] = [vec![], vec![], vec![]];
    for r in 0..3 {
        let (lo, hi) = (r * n / 3, (r + 1) * n / 3);
        let k = hi - lo;
        let (r0_, r1_, r2_) = (r, (r + 1) % 3, (r + 2) % 3);
        let masks = sim.random(k);
        let offer_masks = sim.random(k);
        let r0 = &masks.comps[r0_];
        let r1 = &masks.comps[r1_];
        let (s0, s1) = (&offer_masks.comps[r0_], &offer_masks.comps[r1_]);
        let e: Vec<u64> = (lo..hi).map(|t| d[r0_][t] ^ d[r1_][t]).collect();
        let f: Vec<u64> = (lo..hi).map(|t| d[r2_][t]).collect();
        // (1 - 2f)·v, elementwise.
        let times_sign = |v: &[u64]| -> Vec<u64> {
            (0..k).map(|t| reduce(&((BigInt::from(1) - 2 * lift(f[t])) * lift(v[t])))).collect()
        };
        // R0's offers, and the helpers' corrections (1 - 2f)·s - r.
        let (to_r1, to_r2) = (sub_v(&e, s0), sub_v(&e, s1));
        let (fix_for_r1, fix_for_r2) = (sub_v(&times_sign(s0), r0), sub_v(&times_sign(s1), r1));
        // Each receiver: (1 - 2f)·u + f + correction, less its other output component.
        let c2_at_r1 = sub_v(&add_v(&add_v(&times_sign(&to_r1), &f), &fix_for_r1), r1);
        let c2_at_r2 = sub_v(&add_v(&add_v(&times_sign(&to_r2), &f), &fix_for_r2), r0);
        assert_eq!(c2_at_r1, c2_at_r2, "R1 and R2 disagree on C_2");
        comps[r0_].extend_from_slice(r0);
        comps[r1_].extend_from_slice(r1);
        comps[r2_].extend_from_slice(&c2_at_r1);
    }
    Shared { comps }
}

/// ReLU: MSB, `1 ^ MSB` (the public 1 in component 0), injection, then the ring product
/// `x · [d]^A`. Returns `(ReLU(x), [d]^A)`. Ideal: [`relu`] and [`drelu`].
pub fn sim_relu(sim: &mut Sim, x: &Shared) -> (Shared, Shared) {
    sim_relu_within(sim, x, 64)
}

/// [`sim_relu`] with the sign from the low `bits` bits ([`sim_msb_within`]). Ideal:
/// [`relu_within`] and `1 - `[`msb_within`].
pub fn sim_relu_within(sim: &mut Sim, x: &Shared, bits: u32) -> (Shared, Shared) {
    let mut d = sim_msb_within(sim, x, bits);
    d.comps[0] = d.comps[0].iter().map(|&v| v ^ 1).collect();
    let mask = sim_inject(sim, &d, 0);
    let mul =
        |a: &[u64], b: &[u64]| -> Vec<u64> { a.iter().zip(b).map(|(&x, &y)| reduce(&(lift(x) * lift(y)))).collect() };
    let out = sim.product(&mul, x, &mask);
    (out, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideals_at_the_edges() {
        assert_eq!(msb(0), 0);
        assert_eq!(msb(u64::MAX), 1);
        assert_eq!(msb(1 << 63), 1);
        assert_eq!(msb((1 << 63) - 1), 0);
        assert_eq!(relu(u64::MAX), 0);
        assert_eq!(relu(5), 5);
        assert_eq!(drelu(0), 1);
        assert!(!in_domain(1 << 62, (1u64 << 62).wrapping_neg()));
        assert!(in_domain((1 << 62) - 1, (1u64 << 62).wrapping_neg() + 1));
        assert_eq!(max_axis(&[1, u64::MAX, 3, 3], &[4], 0), vec![3]);
        assert_eq!(argmax_axis(&[1, u64::MAX, 3, 3], &[4], 0), vec![0, 0, 1, 0]);
        assert_eq!(argmax_axis(&[1, 2, 3, 0], &[2, 2], 0), vec![0, 1, 1, 0]);
        assert_eq!((rev6(1), rev6(62), rev6(63), rev6(0)), (32, 31, 63, 0));
        assert_eq!(msb_within(1 << 47, 48), 1);
        assert_eq!(msb_within((1 << 47) - 1, 48), 0);
        assert_eq!(msb_within(1 << 48, 48), 0, "outside the domain: bit 47");
        assert!(in_sign_domain((1u64 << 47).wrapping_neg(), 48) && !in_sign_domain(1 << 47, 48));
        assert_eq!(relu_within(u64::MAX, 48), 0);
    }

    /// Inside its domain the narrow sign is the MSB, at every width.
    #[test]
    fn msb_within_is_msb_on_its_domain() {
        for bits in 2..=64u32 {
            let top = pow2(bits - 1);
            for v in [
                BigInt::from(0),
                top.clone() - 1,
                -top.clone(),
                -BigInt::from(1),
                top.clone() / BigInt::from(3),
                -(top / BigInt::from(5)),
            ] {
                let r = reduce(&v);
                assert!(in_sign_domain(r, bits));
                assert_eq!(msb_within(r, bits), msb(r), "bits {bits}, v {v}");
                assert_eq!(relu_within(r, bits), relu(r), "bits {bits}, v {v}");
            }
        }
    }

    /// The full-width masks, and 134 bits of ANDs at 48 (the activations' width at f = 20).
    #[test]
    fn sign_masks_send_fewer_bits_when_narrower() {
        let count = |z| {
            let (_, g, l) = sign_masks(z);
            g.count_ones() + l.iter().map(|(a, b)| a.count_ones() + b.count_ones()).sum::<u32>()
        };
        let (c, g, l) = sign_masks(0);
        assert_eq!((c, g), (bit_range(0, 63), bit_range(0, 62)));
        assert_eq!(l[0], (bit_range(32, 62), bit_range(33, 62)));
        assert_eq!(l[5], (bit(63), 0));
        assert_eq!((count(0), count(16)), (181, 134));
    }
}
