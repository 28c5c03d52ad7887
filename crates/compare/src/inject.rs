//! Bit injection (B2A of a shared bit) in one round by a three-party OT, with the party
//! roles rotated over thirds of the elements so every party sends the same amount.
//!
//! For a shared bit `d = d_0 ^ d_1 ^ d_2` and a *role assignment* `(R0, R1, R2)`:
//! `R0` knows `e = d_{R0} ^ d_{R1}` (its two components), `R1` and `R2` both know
//! `f = d_{R2}`, and `d = e ^ f = f + e(1 - 2f)`. The output components (in role order) are
//!
//! - `C_0 = r0 = F(k_{R0})`, known to `R2` and `R0`,
//! - `C_1 = r1 = F(k_{R1})`, known to `R0` and `R1`,
//! - `C_2 = d - r0 - r1`, which `R1` and `R2` must learn.
//!
//! `R1` gets `d - r0`: `R0` sends it `(e - r0 + w_0, (1 - e) - r0 + w_1)` with masks
//! `w = F'(k_{R0})` (known to `R0`, `R2`), `R2` sends it `w_f`, and `R1` (who knows `f`)
//! unmasks entry `f`. Symmetrically `R2` gets `d - r1` from `R0`'s pair masked with
//! `w' = F'(k_{R1})` and `R1`'s `w'_f`. Every message is masked by a key its receiver lacks.
//!
//! Third `r` of the elements runs with roles `Rj = party (j + r) % 3`; there role `j` holds
//! global components `(c_{r+j}, c_{r+j+1}) = (C_j, C_{j+1})`.

use triad_ring::{BinaryOp, Device, Shape, Tensor};
use triad_sharing::{AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

/// Start of third `r` of `n` elements (`r` in `0..=3`): the thirds whose party roles
/// rotate, here and in the sign circuit's summands.
pub(crate) fn bound(n: usize, r: usize) -> usize {
    r * n / 3
}

fn flat<D: Device>(t: &Tensor<D>) -> Result<Tensor<D>> {
    Ok(t.try_clone()?.reshape([t.numel()])?)
}

fn part<D: Device>(t: &Tensor<D>, range: std::ops::Range<usize>) -> Result<Tensor<D>> {
    Ok(t.slice(0, range)?)
}

fn cat<D: Device>(dev: &D, parts: &[&Tensor<D>]) -> Result<Tensor<D>> {
    if parts.is_empty() {
        return Ok(Tensor::zeros(dev, [0])?);
    }
    Ok(Tensor::concat(parts, 0)?)
}

/// `a + f·(b - a)`: entry `f ∈ {0, 1}` of the pair `(a, b)`.
fn select<D: Device>(f: &Tensor<D>, a: &Tensor<D>, b: &Tensor<D>) -> Result<Tensor<D>> {
    Ok(a.add(&b.sub(a)?.mul(f)?)?)
}

/// The arithmetic sharing of the bit in lane `bit` of a binary sharing (the other lanes
/// are ignored). One round; each party sends 2 ring elements per element on average
/// (16 bytes): role `R0` sends 4, `R1` and `R2` one each, rotated over thirds.
pub fn inject_bit<D: Device>(p: &Party<D>, b: &BShare<D>, bit: u32) -> Result<AShare<D>> {
    let _g = p.net.scope("inject");
    if bit >= 64 {
        return Err(Error::Usage(format!("inject_bit: lane {bit} is not below 64")));
    }
    let shape = b.shape().clone();
    let n = shape.numel();
    let i = p.index();
    let one_bit = |t: &Tensor<D>| -> Result<Tensor<D>> {
        // (Lane 0 needs no shift: one pass fewer.)
        let t = if bit == 0 { t.scalar(BinaryOp::And, 1)? } else { t.shr(bit)?.scalar(BinaryOp::And, 1)? };
        Ok(t.reshape([n])?)
    };
    let own_bit = one_bit(&b.own)?;
    let next_bit = one_bit(&b.next)?;
    // Two streams per third: stream 2r for the output masks r0, r1; 2r+1 for the OT masks.
    let base: Vec<u64> = (0..6).map(|_| p.next_stream()).collect();
    let third = |r: usize| bound(n, r)..bound(n, r + 1);
    let len = |r: usize| bound(n, r + 1) - bound(n, r);
    let sh = |k: usize| Shape::new([k]);

    // Third r where this party plays role j: r = (i - j) mod 3.
    let r_as = |j: usize| (i + 3 - j) % 3;

    // ---- role 0 (third i): offer both entries to R1 (next) and R2 (prev) --------------
    let r = r_as(0);
    let (k, rg) = (len(r), third(r));
    let e = part(&own_bit, rg.clone())?.xor(&part(&next_bit, rg.clone())?)?;
    let one_minus_e = e.neg()?.scalar(BinaryOp::Add, 1)?;
    let r0 = p.prg_prev(&sh(k), base[2 * r])?;
    let r1 = p.prg_next(&sh(k), base[2 * r])?;
    let w = p.prg_prev(&sh(2 * k), base[2 * r + 1])?; // k_{R0}: shared with R2
    let wp = p.prg_next(&sh(2 * k), base[2 * r + 1])?; // k_{R1}: shared with R1
    let offer = |v: &Tensor<D>, mask: &Tensor<D>, m: &Tensor<D>| -> Result<Tensor<D>> {
        Ok(v.sub(m)?.add(&part(mask, 0..k)?)?)
    };
    let to_r1 = [offer(&e, &w, &r0)?, one_minus_e.sub(&r0)?.add(&part(&w, k..2 * k)?)?];
    let to_r2 = [offer(&e, &wp, &r1)?, one_minus_e.sub(&r1)?.add(&part(&wp, k..2 * k)?)?];
    let role0_out = (r0, r1);

    // ---- role 1 (third i - 1): f = d_{R2} is my next component; send w'_f to R2 (next) -
    let r = r_as(1);
    let (k1, rg1) = (len(r), third(r));
    let f1 = part(&next_bit, rg1)?;
    let r1_of_1 = p.prg_prev(&sh(k1), base[2 * r])?; // k_{R1} is my prev key
    let wp1 = p.prg_prev(&sh(2 * k1), base[2 * r + 1])?;
    let wp1_f = select(&f1, &part(&wp1, 0..k1)?, &part(&wp1, k1..2 * k1)?)?;

    // ---- role 2 (third i + 1): f = d_{R2} is my own component; send w_f to R1 (prev) ----
    let r = r_as(2);
    let (k2, rg2) = (len(r), third(r));
    let f2 = part(&own_bit, rg2)?;
    let r0_of_2 = p.prg_next(&sh(k2), base[2 * r])?; // k_{R0} is my next key
    let w2 = p.prg_next(&sh(2 * k2), base[2 * r + 1])?;
    let w2_f = select(&f2, &part(&w2, 0..k2)?, &part(&w2, k2..2 * k2)?)?;

    // ---- one round: to next = [role-0 offer to R1 | role-1 w'_f], to prev = [role-0 offer
    // to R2 | role-2 w_f] ------------------------------------------------------------------
    let dev = &p.dev;
    p.send(Peer::Next, &cat(dev, &[&to_r1[0], &to_r1[1], &wp1_f])?)?;
    p.send(Peer::Prev, &cat(dev, &[&to_r2[0], &to_r2[1], &w2_f])?)?;
    // From prev (party i-1): its role-0 offer for third i-1 (where I am R1), then its
    // role-1 w'_f for third i+1 (where I am R2).
    let from_prev = p.recv(Peer::Prev, &sh(2 * k1 + k2))?;
    // From next (party i+1): its role-0 offer for third i+1 (where I am R2), then its
    // role-2 w_f for third i-1 (where I am R1).
    let from_next = p.recv(Peer::Next, &sh(2 * k2 + k1))?;

    // Role 1: d - r0 = m_f + w_f - w_f; C_2 = (d - r0) - r1.
    let m1 = select(&f1, &part(&from_prev, 0..k1)?, &part(&from_prev, k1..2 * k1)?)?;
    let d_minus_r0 = m1.sub(&part(&from_next, 2 * k2..2 * k2 + k1)?)?;
    let role1_out = (r1_of_1.try_clone()?, d_minus_r0.sub(&r1_of_1)?);

    // Role 2: d - r1 = m'_f + w'_f - w'_f; C_2 = (d - r1) - r0.
    let m2 = select(&f2, &part(&from_next, 0..k2)?, &part(&from_next, k2..2 * k2)?)?;
    let d_minus_r1 = m2.sub(&part(&from_prev, 2 * k1..2 * k1 + k2)?)?;
    let role2_out = (d_minus_r1.sub(&r0_of_2)?, r0_of_2);

    // Reassemble in element order: third r holds the output of role (i - r) mod 3.
    let mut owns: Vec<Tensor<D>> = Vec::with_capacity(3);
    let mut nexts: Vec<Tensor<D>> = Vec::with_capacity(3);
    let mut outs = [Some(role0_out), Some(role1_out), Some(role2_out)];
    for r in 0..3 {
        let j = (i + 3 - r) % 3;
        let (o, x) = outs[j].take().ok_or_else(|| Error::Usage("inject: role used twice".into()))?;
        owns.push(o);
        nexts.push(x);
    }
    let own = cat(dev, &owns.iter().collect::<Vec<_>>())?.reshape(shape.clone())?;
    let next = cat(dev, &nexts.iter().collect::<Vec<_>>())?.reshape(shape)?;
    AShare::new(own, next)
}

/// Binary to arithmetic for whole words: `Σ_k 2^k · inject(bit k)`, all 64 bits injected
/// in the same single round (64 times the cost of one bit: 128 elements per element per
/// party). For single bits use [`inject_bit`].
pub fn b2a<D: Device>(p: &Party<D>, x: &BShare<D>) -> Result<AShare<D>> {
    let _g = p.net.scope("b2a");
    let shape = x.shape().clone();
    let n = shape.numel();
    // Row k holds lane k of every element, moved to lane 0.
    let rows = |t: &Tensor<D>| -> Result<Tensor<D>> {
        let f = flat(t)?;
        let parts: Vec<Tensor<D>> = (0..64).map(|k| Ok(f.shr(k)?.scalar(BinaryOp::And, 1)?)).collect::<Result<_>>()?;
        Ok(Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0)?)
    };
    let bits = BShare { own: rows(&x.own)?, next: rows(&x.next)? };
    let a = inject_bit(p, &bits, 0)?;
    let weights: Vec<u64> = (0..64).flat_map(|k| std::iter::repeat_n(1u64 << k, n)).collect();
    let weights = Tensor::from_vec(&p.dev, [64 * n], weights)?;
    let scaled = a.mul_public(&weights)?.reshape([64, n])?.sum_axis(0)?;
    scaled.reshape(shape)
}
