//! Bit injection's local work on the CPU ([`Device::inject_offer`], [`Device::inject_pick`],
//! [`Device::inject_receive`]): each a single pass over its third of the elements, the PRG
//! draws made a piece at a time into buffers that stay in L1.
//!
//! [`Device::inject_offer`]: crate::Device::inject_offer
//! [`Device::inject_pick`]: crate::Device::inject_pick
//! [`Device::inject_receive`]: crate::Device::inject_receive

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{par_build, CHUNK, PIECE};
use crate::device::BitRange;
use crate::prg::{self, PrgKey};

/// Bit `b.bit` of word `t` of the range.
#[inline(always)]
fn bit_at(b: &BitRange<'_, Vec<u64>>, t: usize) -> u64 {
    let w = b.src[b.from + t] ^ b.also.map_or(0, |a| a[b.from + t]);
    (w >> b.bit) & 1
}

/// See [`Device::inject_offer`](crate::Device::inject_offer); the range is checked.
pub(super) fn offer(bits: &BitRange<'_, Vec<u64>>, r: &[u64], key: &PrgKey, w_stream: u64) -> Vec<u64> {
    let n = bits.count;
    let mut out: Vec<u64> = Vec::with_capacity(2 * n);
    let (lo, hi) = out.spare_capacity_mut()[..2 * n].split_at_mut(n);
    lo.par_chunks_mut(CHUNK).zip(hi.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (lo, hi))| {
        let mut w = [[0u64; PIECE]; 2];
        for (j, (lo, hi)) in lo.chunks_mut(PIECE).zip(hi.chunks_mut(PIECE)).enumerate() {
            let start = i * CHUNK + j * PIECE;
            let m = lo.len();
            let [w_lo, w_hi] = &mut w;
            let r = &r[start..start + m];
            prg::fill_words(key, w_stream, start as u64, &mut w_lo[..m]);
            prg::fill_words(key, w_stream, (n + start) as u64, &mut w_hi[..m]);
            for (t, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                let e = bit_at(bits, start + t);
                let masked = w_lo[t].wrapping_sub(r[t]);
                l.write(e.wrapping_add(masked));
                h.write((1 - e).wrapping_add(w_hi[t]).wrapping_sub(r[t]));
            }
        }
    });
    // SAFETY: the first `2n` elements are initialised: `lo` and `hi` are its two halves,
    // split into chunks and pieces that the loop above writes word by word.
    unsafe { out.set_len(2 * n) };
    out
}

/// See [`Device::inject_pick`](crate::Device::inject_pick); the range is checked.
pub(super) fn pick(bits: &BitRange<'_, Vec<u64>>, key: &PrgKey, stream: u64) -> Vec<u64> {
    let n = bits.count;
    par_build(n, CHUNK, |i, o| {
        let mut r = [[0u64; PIECE]; 2];
        for (j, piece) in o.chunks_mut(PIECE).enumerate() {
            let start = i * CHUNK + j * PIECE;
            let m = piece.len();
            let [a, b] = &mut r;
            prg::fill_words(key, stream, start as u64, &mut a[..m]);
            prg::fill_words(key, stream, (n + start) as u64, &mut b[..m]);
            for (t, slot) in piece.iter_mut().enumerate() {
                slot.write(if bit_at(bits, start + t) == 1 { b[t] } else { a[t] });
            }
        }
    })
}

/// See [`Device::inject_receive`](crate::Device::inject_receive); the ranges are checked.
pub(super) fn receive(bits: &BitRange<'_, Vec<u64>>, m: (&[u64], usize), less: [(&[u64], usize); 2]) -> Vec<u64> {
    let n = bits.count;
    let (offers, at) = m;
    let [(l0, at0), (l1, at1)] = less;
    par_build(n, CHUNK, |i, o: &mut [MaybeUninit<u64>]| {
        let start = i * CHUNK;
        for (t, slot) in o.iter_mut().enumerate() {
            let k = start + t;
            let v = offers[at + bit_at(bits, k) as usize * n + k];
            slot.write(v.wrapping_sub(l0[at0 + k]).wrapping_sub(l1[at1 + k]));
        }
    })
}
