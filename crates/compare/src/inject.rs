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
//! `R1` gets `d - r0`: `R0` sends it the offer `u = e - s0` with `s0 = F'(k_{R0})` (known
//! to `R0`, `R2`), `R2` (who knows `f`) sends it the correction `(1 - 2f)·s0 - r0`, and `R1`
//! (who knows `f` too) adds `(1 - 2f)·u + f` to it: `(1 - 2f)·e + f - r0 = d - r0`.
//! Symmetrically `R2` gets `d - r1` from `R0`'s `e - s1` (`s1 = F'(k_{R1})`) and `R1`'s
//! `(1 - 2f)·s1 - r1`. Every message is masked by a key its receiver lacks.
//!
//! Third `r` of the elements runs with roles `Rj = party (j + r) % 3`; there role `j` holds
//! global components `(c_{r+j}, c_{r+j+1}) = (C_j, C_{j+1})`.

use triad_ring::{BinaryOp, BitRange, Device, Placed, RingError, Shape, Tensor};
use triad_sharing::{placed, third, AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

fn flat<D: Device>(t: &Tensor<D>) -> Result<Tensor<D>> {
    Ok(t.try_clone()?.reshape([t.numel()])?)
}

/// The arithmetic sharing of the bit in lane `bit` of a binary sharing (the other lanes
/// are ignored). One round; each party sends 4/3 ring elements per element on average
/// (10.67 bytes): role `R0` sends 2, `R1` and `R2` one each, rotated over thirds.
pub fn inject_bit<D: Device>(p: &Party<D>, b: &BShare<D>, bit: u32) -> Result<AShare<D>> {
    let _g = p.net.scope("inject");
    if bit >= 64 {
        return Err(Error::Usage(format!("inject_bit: lane {bit} is not below 64")));
    }
    let shape = b.shape().clone();
    let n = shape.numel();
    let i = p.index();
    let dev = &p.dev;
    let ring = |r: std::result::Result<D::Buffer, triad_ring::DeviceError>, len: usize| -> Result<Tensor<D>> {
        Ok(Tensor::from_buffer(dev, sh(len), r.map_err(RingError::from)?)?)
    };
    // Two streams per third: stream 2r for the output masks r0, r1; 2r+1 for the offers'
    // masks s0, s1.
    let base: Vec<u64> = (0..6).map(|_| p.next_stream()).collect();
    // The shared bit over third r: of one component, or of both XOR-ed (`e`).
    let bits = |src, also, r| bit_range(src, also, bit, third(n, r));

    // Third r where this party plays role j: r = (i - j) mod 3.
    let r_as = |j: usize| (i + 3 - j) % 3;

    // ---- role 0 (third i): offer e - s0 to R1 (next) and e - s1 to R2 (prev), s0 from
    // k_{R0} (my prev key, which R1 lacks) and s1 from k_{R1} (my next key, which R2 lacks).
    let r = r_as(0);
    let (k, e) = (third(n, r).len(), bits(&b.own, Some(&b.next), r));
    let (r0, r1) = (p.prg_prev(&sh(k), base[2 * r])?, p.prg_next(&sh(k), base[2 * r])?);
    let to_r1 = ring(dev.inject_offer(e, p.shared_key(Peer::Prev), base[2 * r + 1]), k)?;
    let to_r2 = ring(dev.inject_offer(e, p.shared_key(Peer::Next), base[2 * r + 1]), k)?;

    // ---- role 1 (third i - 1): f = d_{R2} is my next component; r1 and s1 come from
    // k_{R1}, my prev key. Send (1 - 2f)·s1 - r1 to R2 (next). --------------------------------
    let r = r_as(1);
    let (k1, f1) = (third(n, r).len(), bits(&b.next, None, r));
    let r1_of_1 = p.prg_prev(&sh(k1), base[2 * r])?;
    let fix_for_r2 = ring(dev.inject_pick(f1, p.shared_key(Peer::Prev), base[2 * r + 1], r1_of_1.buffer()), k1)?;

    // ---- role 2 (third i + 1): f = d_{R2} is my own component; r0 and s0 come from
    // k_{R0}, my next key. Send (1 - 2f)·s0 - r0 to R1 (prev). --------------------------------
    let r = r_as(2);
    let (k2, f2) = (third(n, r).len(), bits(&b.own, None, r));
    let r0_of_2 = p.prg_next(&sh(k2), base[2 * r])?;
    let fix_for_r1 = ring(dev.inject_pick(f2, p.shared_key(Peer::Next), base[2 * r + 1], r0_of_2.buffer()), k2)?;

    // ---- one round: to next = [role-0 offer to R1 | role-1 correction], to prev = [role-0
    // offer to R2 | role-2 correction] --------------------------------------------------------
    let whole = |t, at| placed(t, at, 0, t.numel());
    let place = |len: usize, pieces: &[Placed<'_, D::Buffer>]| ring(dev.place(len, pieces), len);
    p.send_owned(Peer::Next, place(k + k1, &[whole(&to_r1, 0), whole(&fix_for_r2, k)])?)?;
    p.send_owned(Peer::Prev, place(k + k2, &[whole(&to_r2, 0), whole(&fix_for_r1, k)])?)?;
    // From prev (party i-1): its role-0 offer for third i-1 (where I am R1), then its
    // role-1 correction for third i+1 (where I am R2).
    let from_prev = p.recv(Peer::Prev, &sh(k1 + k2))?;
    // From next (party i+1): its role-0 offer for third i+1 (where I am R2), then its
    // role-2 correction for third i-1 (where I am R1).
    let from_next = p.recv(Peer::Next, &sh(k2 + k1))?;

    // Role 1: C_2 = (d - r0) - r1, the offer from prev and the correction from next.
    let (fp, fnx) = (from_prev.buffer(), from_next.buffer());
    let c2_of_1 = ring(dev.inject_receive(f1, (fp, 0), (fnx, k2), r1_of_1.buffer()), k1)?;
    // Role 2: C_2 = (d - r1) - r0, the offer from next and the correction from prev.
    let c2_of_2 = ring(dev.inject_receive(f2, (fnx, 0), (fp, k1), r0_of_2.buffer()), k2)?;

    // Reassemble in element order: third r holds the output of role (i - r) mod 3, whose
    // components are (r0, r1) for role 0, (r1, C_2) for role 1 and (C_2, r0) for role 2.
    let (t0, t1, t2) = (third(n, r_as(0)).start, third(n, r_as(1)).start, third(n, r_as(2)).start);
    let own = place(n, &[whole(&r0, t0), whole(&r1_of_1, t1), whole(&c2_of_2, t2)])?.reshape(shape.clone())?;
    let next = place(n, &[whole(&r1, t0), whole(&c2_of_1, t1), whole(&r0_of_2, t2)])?.reshape(shape)?;
    AShare::new(own, next)
}

fn sh(k: usize) -> Shape {
    Shape::new([k])
}

/// Bit `bit` of the words `range` of `src` (XOR-ed with `also`'s).
fn bit_range<'a, D: Device>(
    src: &'a Tensor<D>,
    also: Option<&'a Tensor<D>>,
    bit: u32,
    range: std::ops::Range<usize>,
) -> BitRange<'a, D::Buffer> {
    BitRange { src: src.buffer(), also: also.map(Tensor::buffer), bit, from: range.start, count: range.len() }
}

/// Binary to arithmetic for whole words: `Σ_k 2^k · inject(bit k)`, all 64 bits injected
/// in the same single round (64 times the cost of one bit: 85.33 elements per element
/// per party). For single bits use [`inject_bit`].
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
