//! Bit injection's local work on the CPU ([`Device::inject_offer`], [`Device::inject_pick`],
//! [`Device::inject_receive`]): each a single pass over its third of the elements, the PRG
//! draws made a piece at a time into buffers that stay in L1.
//!
//! [`Device::inject_offer`]: crate::Device::inject_offer
//! [`Device::inject_pick`]: crate::Device::inject_pick
//! [`Device::inject_receive`]: crate::Device::inject_receive

use std::mem::MaybeUninit;

use super::{par_build, CHUNK, PIECE};
use crate::device::BitRange;
use crate::prg::{self, PrgKey};

/// Bit `b.bit` of word `t` of the range.
#[inline(always)]
fn bit_at(b: &BitRange<'_, Vec<u64>>, t: usize) -> u64 {
    let w = b.src[b.from + t] ^ b.also.map_or(0, |a| a[b.from + t]);
    (w >> b.bit) & 1
}

/// `(1 - 2f)·x` for a bit `f`: `-x` where `f` is 1.
#[inline(always)]
fn signed(f: u64, x: u64) -> u64 {
    let m = f.wrapping_neg();
    (x ^ m).wrapping_sub(m)
}

/// `n` words made a piece at a time: `word(t, draw)` for word `t` with `draw` the word `t`
/// of `F(key, stream)`.
fn with_draws(n: usize, key: &PrgKey, stream: u64, word: impl Fn(usize, u64) -> u64 + Sync) -> Vec<u64> {
    par_build(n, CHUNK, |i, o| {
        let mut w = [0u64; PIECE];
        for (j, piece) in o.chunks_mut(PIECE).enumerate() {
            let start = i * CHUNK + j * PIECE;
            prg::fill_words(key, stream, start as u64, &mut w[..piece.len()]);
            for (t, (slot, &draw)) in piece.iter_mut().zip(&w).enumerate() {
                slot.write(word(start + t, draw));
            }
        }
    })
}

/// See [`Device::inject_offer`](crate::Device::inject_offer); the range is checked.
pub(super) fn offer(bits: &BitRange<'_, Vec<u64>>, key: &PrgKey, stream: u64) -> Vec<u64> {
    with_draws(bits.count, key, stream, |t, s| bit_at(bits, t).wrapping_sub(s))
}

/// See [`Device::inject_pick`](crate::Device::inject_pick); the ranges are checked.
pub(super) fn pick(bits: &BitRange<'_, Vec<u64>>, key: &PrgKey, stream: u64, r: &[u64]) -> Vec<u64> {
    with_draws(bits.count, key, stream, |t, s| signed(bit_at(bits, t), s).wrapping_sub(r[t]))
}

/// See [`Device::inject_receive`](crate::Device::inject_receive); the ranges are checked.
pub(super) fn receive(bits: &BitRange<'_, Vec<u64>>, u: &[u64], c: &[u64], r: &[u64]) -> Vec<u64> {
    par_build(bits.count, CHUNK, |i, o: &mut [MaybeUninit<u64>]| {
        let start = i * CHUNK;
        for (t, slot) in o.iter_mut().enumerate() {
            let k = start + t;
            let f = bit_at(bits, k);
            slot.write(signed(f, u[k]).wrapping_add(f).wrapping_add(c[k]).wrapping_sub(r[k]));
        }
    })
}
