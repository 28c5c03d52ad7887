//! Wrap-free truncation's local steps on the CPU ([`Device::truncate_deal`],
//! [`Device::truncate_open`]): one pass each, the draws made a piece at a time into
//! buffers that stay in L1.
//!
//! [`Device::truncate_deal`]: crate::Device::truncate_deal
//! [`Device::truncate_open`]: crate::Device::truncate_open

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{add_draw, par_build, CHUNK, PIECE};
use crate::device::fused::e_bits;
use crate::device::{Addend, PrgTerm};
use crate::prg;

/// See [`Device::truncate_deal`](crate::Device::truncate_deal); `bits` is checked.
pub(super) fn deal(
    part: &[u64],
    bits: u32,
    r: [PrgTerm<'_>; 2],
    t: PrgTerm<'_>,
    e: PrgTerm<'_>,
) -> (Vec<u64>, Vec<u64>) {
    let n = part.len();
    let (mut tv, mut ev): (Vec<u64>, Vec<u64>) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (to, eo) = (&mut tv.spare_capacity_mut()[..n], &mut ev.spare_capacity_mut()[..n]);
    let (e_top, high) = (1u64 << (63 - bits), e_bits(bits));
    to.par_chunks_mut(CHUNK).zip(eo.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (to, eo))| {
        let (mut v, mut tw, mut ew, mut buf) = ([0u64; PIECE], [0u64; PIECE], [0u64; PIECE], [0u64; PIECE]);
        for (j, (to, eo)) in to.chunks_mut(PIECE).zip(eo.chunks_mut(PIECE)).enumerate() {
            let start = i * CHUNK + j * PIECE;
            let m = to.len();
            let v = &mut v[..m];
            for (v, &p) in v.iter_mut().zip(&part[start..start + m]) {
                *v = p.wrapping_neg().wrapping_sub(1 << 62);
            }
            for term in &r {
                add_draw(v, term, start, &mut buf);
            }
            for ((&v, tw), ew) in v.iter().zip(&mut tw[..m]).zip(&mut ew[..m]) {
                let (top, low) = (v >> 63, (v << 1) >> (bits + 1));
                *tw = (top << (63 - bits)).wrapping_sub(low);
                *ew = e_top.wrapping_sub(top << (64 - bits));
            }
            add_draw(&mut tw[..m], &t, start, &mut buf);
            prg::fill_words(e.key, e.stream, start as u64, &mut buf[..m]);
            for (w, &d) in ew[..m].iter_mut().zip(&buf[..m]) {
                *w = if e.negate { w.wrapping_sub(d & high) } else { w.wrapping_add(d & high) };
            }
            for (o, &w) in to.iter_mut().zip(&tw[..m]) {
                o.write(w);
            }
            for (o, &w) in eo.iter_mut().zip(&ew[..m]) {
                o.write(w);
            }
        }
    });
    // SAFETY: the first `n` elements of each are initialised: the loop above splits them into
    // chunks and pieces and writes every word of each.
    unsafe {
        tv.set_len(n);
        ev.set_len(n);
    }
    (tv, ev)
}

/// See [`Device::truncate_open`](crate::Device::truncate_open); `bits` and the buffers'
/// lengths are checked.
pub(super) fn open(
    c: [&[u64]; 2],
    bits: u32,
    low: bool,
    e: Addend<'_, Vec<u64>>,
    plus: &[Addend<'_, Vec<u64>>],
) -> Vec<u64> {
    let n = c[0].len();
    let (offset, high) = (1u64 << (62 - bits), e_bits(bits));
    par_build(n, CHUNK, |i, o: &mut [MaybeUninit<u64>]| {
        let (mut acc, mut eb, mut buf) = ([0u64; PIECE], [0u64; PIECE], [0u64; PIECE]);
        for (j, piece) in o.chunks_mut(PIECE).enumerate() {
            let start = i * CHUNK + j * PIECE;
            let m = piece.len();
            let (acc, eb) = (&mut acc[..m], &mut eb[..m]);
            // ê: the E addend with its low 63 - bits bits cleared, then its sign.
            let (src, negate): (&[u64], bool) = match e {
                Addend::Prg(term) => {
                    prg::fill_words(term.key, term.stream, start as u64, &mut buf[..m]);
                    (&buf[..m], term.negate)
                }
                Addend::Buf(b) => (&b[start..start + m], false),
                Addend::Less(b) => (&b[start..start + m], true),
            };
            for (e, &v) in eb.iter_mut().zip(src) {
                *e = if negate { (v & high).wrapping_neg() } else { v & high };
            }
            let ev: &[u64] = eb;
            let cs = c[0][start..start + m].iter().zip(&c[1][start..start + m]);
            for ((a, (&c0, &c1)), &ev) in acc.iter_mut().zip(cs).zip(ev) {
                let v = c0.wrapping_add(c1);
                let lowv = if low { ((v << 1) >> (bits + 1)).wrapping_sub(offset) } else { 0 };
                *a = (v >> 63).wrapping_mul(ev).wrapping_add(lowv);
            }
            for a in plus {
                match a {
                    Addend::Prg(term) => add_draw(acc, term, start, &mut buf),
                    Addend::Buf(b) => {
                        acc.iter_mut().zip(&b[start..start + m]).for_each(|(a, &b)| *a = a.wrapping_add(b));
                    }
                    Addend::Less(b) => {
                        acc.iter_mut().zip(&b[start..start + m]).for_each(|(a, &b)| *a = a.wrapping_sub(b));
                    }
                }
            }
            for (o, &a) in piece.iter_mut().zip(&*acc) {
                o.write(a);
            }
        }
    })
}
