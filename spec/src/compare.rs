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
//! bit for bit: the masked AND ([`sim_and_packed`]), the two summands in rows
//! ([`sim_summands`]), MSB ([`sim_msb`], [`sim_msb_within`], bit-sliced, with
//! [`sign_and_bits`] ANDs per element), bit injection with
//! rotated roles ([`sim_inject`]) and ReLU ([`sim_relu`], [`sim_relu_within`]).

use crate::ring::{BinOp, Pool2d};
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
fn xor(a: &Shared, b: &Shared) -> Shared {
    map2(a, b, BinOp::Xor)
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

/// MSB: [`sim_msb_within`] on all 64 bits. Ideal: [`msb`] of the reconstructed value.
pub fn sim_msb(sim: &mut Sim, x: &Shared) -> Shared {
    sim_msb_within(sim, x, 64)
}

/// The rows of `count` values: row `j` (`ceil(count / 64)` words) holds bit `j` of every
/// value, value `64 g + e` in lane `e` of word `g`.
fn rows_of(v: &[u64], planes: usize) -> Vec<u64> {
    let groups = v.len().div_ceil(64);
    let mut out = vec![0u64; planes * groups];
    for (e, &x) in v.iter().enumerate() {
        for (j, b) in crate::ring::bits(x).iter().take(planes).enumerate() {
            if *b {
                out[j * groups + e / 64] |= bit((e % 64) as u32);
            }
        }
    }
    out
}

/// The two summands of the sign circuit on the low `w` bits of `x`, in rows (`w` rows of
/// `G = ceil(n / 64)` words): in third `r` of the groups (roles `Rj = (j + r) % 3`), `a`
/// has components `R0: ρ = F(k_{R0})`, `R1: rows(x_{R0} + x_{R1}) ^ ρ` (sent by `R0` to
/// `R1`), `R2: 0`, and `b` has `rows(x_{R2})` in component `R2` and zeros elsewhere. One
/// stream per third, drawn in order. Ideal: `a + b = x` on the low `w` bits.
pub fn sim_summands(sim: &mut Sim, x: &Shared, w: usize) -> (Shared, Shared) {
    let n = x.comps[0].len();
    let groups = n.div_ceil(64);
    let mut a: [Vec<u64>; 3] = [vec![0; w * groups], vec![0; w * groups], vec![0; w * groups]];
    let mut b = a.clone();
    for r in 0..3 {
        let (lo, hi) = (r * groups / 3, (r + 1) * groups / 3);
        let k = hi - lo;
        let (r0, r1, r2) = (r, (r + 1) % 3, (r + 2) % 3);
        let rho = sim.random(w * k);
        let elems = (lo * 64).min(n)..(hi * 64).min(n);
        let sum: Vec<u64> = elems.clone().map(|e| BinOp::Add.apply(x.comps[r0][e], x.comps[r1][e])).collect();
        let (sum, xr2) = (rows_of(&sum, w), rows_of(&x.comps[r2][elems], w));
        for j in 0..w {
            for t in 0..k {
                let (at, from) = (j * groups + lo + t, j * k + t);
                a[r0][at] = rho.comps[r0][from];
                a[r1][at] = sum[from] ^ rho.comps[r0][from];
                b[r2][at] = xr2[from];
            }
        }
    }
    (Shared { comps: a }, Shared { comps: b })
}

/// Rows of a row sharing (`groups` words each): for each source, `count` rows from row
/// `first`, every `step` rows, one after another.
fn pick(groups: usize, sel: &[(&Shared, usize, usize, usize)]) -> Shared {
    let side = |c: usize| -> Vec<u64> {
        let mut out = Vec::new();
        for &(src, first, step, count) in sel {
            for r in 0..count {
                let row = first + r * step;
                out.extend_from_slice(&src.comps[c][row * groups..(row + 1) * groups]);
            }
        }
        out
    };
    Shared { comps: [side(0), side(1), side(2)] }
}

/// The AND of two row sharings, every lane kept ([`sim_and_packed`] with the full mask),
/// or nothing (no stream drawn) for empty rows.
fn sim_and_rows(sim: &mut Sim, x: &Shared, y: &Shared) -> Shared {
    if x.comps[0].is_empty() {
        return x.clone();
    }
    sim_and_packed(sim, x, y, u64::MAX)
}

/// The number of ANDs, in bits per element, of the sign circuit on `w` bits: generate for
/// the `w - 1` leaves, then per round `G` for every merge and `P` for every merge but the
/// lowest.
pub fn sign_and_bits(w: u32) -> u32 {
    let mut nodes = w - 1;
    let mut total = nodes;
    while nodes > 1 {
        let m = nodes / 2;
        total += 2 * m - 1;
        nodes = m + nodes % 2;
    }
    total
}

/// The sign from the low `w = bits` bits, bit-sliced: the summands in rows
/// ([`sim_summands`]), generate `g_j = a_j & b_j` for the `w - 1` leaves, then the carry
/// tree: each round merges nodes `2m + 1` and `2m` into node `m` (`G = G_hi ^ P_hi & G_lo`,
/// `P = P_hi & P_lo`, no `P` for the lowest node, an odd last node passed on), the `G`
/// ANDs of every merge and the `P` ANDs of every merge but the lowest in one round (the
/// protocol XORs each party's component of `G_hi` into its part of the `G` AND before
/// sending it: the same components as the XOR after the round, computed here). The
/// sign is `a_{w-1} ^ b_{w-1} ^ G_root`, unpacked to lane 0. Ideal: [`msb_within`] of the
/// reconstructed value.
pub fn sim_msb_within(sim: &mut Sim, x: &Shared, bits: u32) -> Shared {
    let n = x.comps[0].len();
    let groups = n.div_ceil(64);
    let w = bits as usize;
    let (a, b) = sim_summands(sim, x, w);
    let prop = xor(&a, &b);
    let mut gs = sim_and_rows(sim, &pick(groups, &[(&a, 0, 1, w - 1)]), &pick(groups, &[(&b, 0, 1, w - 1)]));
    // P of node j (j >= 1) in row j - 1.
    let mut ps = pick(groups, &[(&prop, 1, 1, w - 2)]);
    let mut nodes = w - 1;
    while nodes > 1 {
        let (m, pass) = (nodes / 2, nodes % 2 == 1);
        let hi_p = pick(groups, &[(&ps, 0, 2, m)]);
        let t1 = sim_and_rows(sim, &hi_p, &pick(groups, &[(&gs, 0, 2, m)]));
        let t2 = sim_and_rows(sim, &pick(groups, &[(&hi_p, 1, 1, m - 1)]), &pick(groups, &[(&ps, 1, 2, m - 1)]));
        let g_new = xor(&t1, &pick(groups, &[(&gs, 1, 2, m)]));
        if pass {
            gs = pick(groups, &[(&g_new, 0, 1, m), (&gs, nodes - 1, 1, 1)]);
            ps = pick(groups, &[(&t2, 0, 1, m - 1), (&ps, nodes - 2, 1, 1)]);
        } else {
            gs = g_new;
            ps = t2;
        }
        nodes = m + usize::from(pass);
    }
    let root = xor(&pick(groups, &[(&prop, w - 1, 1, 1)]), &gs);
    Shared { comps: root.comps.map(|c| (0..n).map(|e| (c[e / 64] >> (e % 64)) & 1).collect()) }
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

    /// 181 bits of ANDs at full width, 133 at 48 (the activations' width at f = 20), and
    /// fewer at every narrower width.
    #[test]
    fn narrower_signs_and_fewer_bits() {
        assert_eq!((sign_and_bits(64), sign_and_bits(48), sign_and_bits(2)), (181, 133, 1));
        for w in 3..=64 {
            assert!(sign_and_bits(w) > sign_and_bits(w - 1), "w = {w}");
        }
    }
}
