//! The counter-based PRG every device reproduces bit for bit.
//!
//! **ChaCha20** (Bernstein's original layout: 64-bit block counter, 64-bit nonce). We chose
//! ChaCha over AES-128-CTR because it is add-rotate-xor only: constant time and fast on
//! GPUs without table lookups (AES on a GPU needs T-tables in shared memory, with bank
//! conflicts and cache-timing concerns), it vectorises with AVX2/AVX-512 on the CPU, and it
//! has published test vectors (RFC 8439) we check against. Twenty rounds keep the full
//! security margin; the PRG is a small part of a protocol's time next to communication.
//!
//! The stream is a pure function of `(key, stream, offset)`:
//! - state words 0..4 are the constants `"expand 32-byte k"`, 4..12 the 256-bit key
//!   (little-endian words), 12..14 the 64-bit block counter (low word first), 14..16 the
//!   64-bit stream id (low word first);
//! - block `b` yields 16 little-endian u32 words `w0..w15`; ring word `8*b + j` is
//!   `w[2j] | w[2j+1] << 32`;
//! - `prg_fill(key, stream, offset, len)` returns ring words `offset .. offset + len`.
//!
//! Distinct uses (zero sharings, truncation masks, random shares) take distinct stream
//! ids or disjoint offsets; the sharing crate keeps the counters.

use std::fmt;

/// A 256-bit PRG key. Its `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrgKey([u8; 32]);

impl PrgKey {
    /// A key from 32 bytes (drawn from the OS, or received from a neighbour at setup).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PrgKey(bytes)
    }
    /// The key bytes (to send to the neighbour that shares it at setup).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The key as eight little-endian u32 words (ChaCha state words 4..12).
    pub fn words(&self) -> [u32; 8] {
        let mut w = [0u32; 8];
        for (i, c) in self.0.chunks_exact(4).enumerate() {
            w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        w
    }
}

impl fmt::Debug for PrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrgKey(<redacted>)")
    }
}

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// One ChaCha20 block: the 16 output words for block counter `counter` of `stream`.
pub fn chacha20_block(key: &[u32; 8], stream: u64, counter: u64) -> [u32; 16] {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&SIGMA);
    init[4..12].copy_from_slice(key);
    init[12] = counter as u32;
    init[13] = (counter >> 32) as u32;
    init[14] = stream as u32;
    init[15] = (stream >> 32) as u32;
    let mut s = init;
    for _ in 0..10 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    for i in 0..16 {
        s[i] = s[i].wrapping_add(init[i]);
    }
    s
}

/// Ring words per ChaCha block.
pub const WORDS_PER_BLOCK: u64 = 8;

/// Fills `out` with ring words `offset .. offset + out.len()` of stream `(key, stream)`.
/// Single-threaded; devices parallelise over chunks. Whole blocks are computed several at
/// a time (16 lanes with AVX-512, 8 with AVX2, 4 otherwise, chosen at run time); the
/// result is identical to [`chacha20_block`] applied block by block.
pub fn fill_words(key: &PrgKey, stream: u64, offset: u64, out: &mut [u64]) {
    let kw = key.words();
    let mut pos = offset;
    let mut i = 0;
    // Head: up to the next block boundary.
    while i < out.len() && !pos.is_multiple_of(WORDS_PER_BLOCK) {
        let take = scalar_partial(&kw, stream, pos, &mut out[i..]);
        i += take;
        pos = pos.wrapping_add(take as u64);
    }
    // Body: whole blocks, many at a time. Word indices wrap mod 2^64, so block indices
    // wrap mod 2^61: split the body where the word index wraps.
    let mut whole = (out.len() - i) / WORDS_PER_BLOCK as usize * WORDS_PER_BLOCK as usize;
    while whole > 0 {
        let before_wrap = ((!pos >> 3) + 1).saturating_mul(WORDS_PER_BLOCK);
        let seg = whole.min(usize::try_from(before_wrap).unwrap_or(usize::MAX));
        fill_blocks(&kw, stream, pos / WORDS_PER_BLOCK, &mut out[i..i + seg]);
        i += seg;
        whole -= seg;
        pos = pos.wrapping_add(seg as u64);
    }
    // Tail: a partial block.
    if i < out.len() {
        scalar_partial(&kw, stream, pos, &mut out[i..]);
    }
}

/// Writes the words of the block containing `pos`, from `pos` on; returns how many.
fn scalar_partial(kw: &[u32; 8], stream: u64, pos: u64, out: &mut [u64]) -> usize {
    let within = (pos % WORDS_PER_BLOCK) as usize;
    let w = chacha20_block(kw, stream, pos / WORDS_PER_BLOCK);
    let take = (8 - within).min(out.len());
    for j in 0..take {
        let jj = within + j;
        out[j] = u64::from(w[2 * jj]) | (u64::from(w[2 * jj + 1]) << 32);
    }
    take
}

/// Whole blocks `first_block ..` into `out` (a multiple of 8 words), with the widest
/// vector unit available.
fn fill_blocks(kw: &[u32; 8], stream: u64, first_block: u64, out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { fill_blocks_avx512(kw, stream, first_block, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { fill_blocks_avx2(kw, stream, first_block, out) };
            return;
        }
    }
    fill_blocks_lanes::<4>(kw, stream, first_block, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_blocks_avx512(kw: &[u32; 8], stream: u64, first_block: u64, out: &mut [u64]) {
    fill_blocks_lanes::<16>(kw, stream, first_block, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_blocks_avx2(kw: &[u32; 8], stream: u64, first_block: u64, out: &mut [u64]) {
    fill_blocks_lanes::<8>(kw, stream, first_block, out);
}

/// `L` blocks at a time, each state word an array of `L` lanes so the compiler keeps it
/// in one vector register; leftover blocks go through the scalar block function.
#[inline(always)]
fn fill_blocks_lanes<const L: usize>(kw: &[u32; 8], stream: u64, first_block: u64, out: &mut [u64]) {
    let groups = out.len() / (8 * L);
    for g in 0..groups {
        let base = first_block.wrapping_add((g * L) as u64);
        let mut x = [[0u32; L]; 16];
        for (i, c) in SIGMA.iter().enumerate() {
            x[i] = [*c; L];
        }
        for (i, k) in kw.iter().enumerate() {
            x[4 + i] = [*k; L];
        }
        for l in 0..L {
            let c = base.wrapping_add(l as u64);
            x[12][l] = c as u32;
            x[13][l] = (c >> 32) as u32;
        }
        x[14] = [stream as u32; L];
        x[15] = [(stream >> 32) as u32; L];
        let init = x;
        for _ in 0..10 {
            quarter_lanes(&mut x, 0, 4, 8, 12);
            quarter_lanes(&mut x, 1, 5, 9, 13);
            quarter_lanes(&mut x, 2, 6, 10, 14);
            quarter_lanes(&mut x, 3, 7, 11, 15);
            quarter_lanes(&mut x, 0, 5, 10, 15);
            quarter_lanes(&mut x, 1, 6, 11, 12);
            quarter_lanes(&mut x, 2, 7, 8, 13);
            quarter_lanes(&mut x, 3, 4, 9, 14);
        }
        let dst = &mut out[g * 8 * L..(g + 1) * 8 * L];
        for l in 0..L {
            for j in 0..8 {
                let lo = x[2 * j][l].wrapping_add(init[2 * j][l]);
                let hi = x[2 * j + 1][l].wrapping_add(init[2 * j + 1][l]);
                dst[l * 8 + j] = u64::from(lo) | (u64::from(hi) << 32);
            }
        }
    }
    for b in groups * L..out.len() / 8 {
        let w = chacha20_block(kw, stream, first_block.wrapping_add(b as u64));
        for j in 0..8 {
            out[b * 8 + j] = u64::from(w[2 * j]) | (u64::from(w[2 * j + 1]) << 32);
        }
    }
}

#[inline(always)]
fn quarter_lanes<const L: usize>(x: &mut [[u32; L]; 16], a: usize, b: usize, c: usize, d: usize) {
    let (mut va, mut vb, mut vc, mut vd) = (x[a], x[b], x[c], x[d]);
    for l in 0..L {
        va[l] = va[l].wrapping_add(vb[l]);
        vd[l] = (vd[l] ^ va[l]).rotate_left(16);
        vc[l] = vc[l].wrapping_add(vd[l]);
        vb[l] = (vb[l] ^ vc[l]).rotate_left(12);
        va[l] = va[l].wrapping_add(vb[l]);
        vd[l] = (vd[l] ^ va[l]).rotate_left(8);
        vc[l] = vc[l].wrapping_add(vd[l]);
        vb[l] = (vb[l] ^ vc[l]).rotate_left(7);
    }
    x[a] = va;
    x[b] = vb;
    x[c] = vc;
    x[d] = vd;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00,
    /// block counter 1. In the 64/64 layout that is counter = 1 | 0x09000000 << 32 and
    /// stream = 0x4a000000.
    #[test]
    fn rfc8439_block_vector() {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        let key = PrgKey::from_bytes(k);
        let out = chacha20_block(&key.words(), 0x4a00_0000, 1 | (0x0900_0000u64 << 32));
        let expect: [u32; 16] = [
            0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3, 0xc7f4d1c7, 0x0368c033, 0x9aaa2204, 0x4e6cd4c3, 0x466482d2,
            0x09aa9f07, 0x05d7c214, 0xa2028bd9, 0xd19c12b5, 0xb94e16de, 0xe883d0cb, 0x4e3c50a2,
        ];
        assert_eq!(out, expect);
    }

    /// Every lane width agrees with the scalar block function, across counter carries.
    #[test]
    fn vector_lanes_match_scalar_blocks() {
        let key = PrgKey::from_bytes([9u8; 32]);
        let kw = key.words();
        for first in [0u64, 5, u32::MAX as u64 - 3, u64::MAX - 20] {
            let n = 8 * 37;
            let mut want = vec![0u64; n];
            for b in 0..37u64 {
                let w = chacha20_block(&kw, 77, first.wrapping_add(b));
                for j in 0..8 {
                    want[b as usize * 8 + j] = u64::from(w[2 * j]) | (u64::from(w[2 * j + 1]) << 32);
                }
            }
            let mut got = vec![0u64; n];
            fill_blocks_lanes::<4>(&kw, 77, first, &mut got);
            assert_eq!(got, want);
            let mut got = vec![0u64; n];
            fill_blocks_lanes::<16>(&kw, 77, first, &mut got);
            assert_eq!(got, want);
            let mut got = vec![0u64; n];
            fill_blocks(&kw, 77, first, &mut got);
            assert_eq!(got, want);
        }
    }

    /// Word indices wrap mod 2^64 (so blocks wrap mod 2^61), in every code path.
    #[test]
    fn word_index_wraps_mod_2_64() {
        let key = PrgKey::from_bytes([4u8; 32]);
        for start in [u64::MAX - 100, u64::MAX - 99, u64::MAX - 7] {
            let mut got = vec![0u64; 300];
            fill_words(&key, 5, start, &mut got);
            for (i, g) in got.iter().enumerate() {
                let w = start.wrapping_add(i as u64);
                let b = chacha20_block(&key.words(), 5, w / 8);
                let j = (w % 8) as usize;
                assert_eq!(*g, u64::from(b[2 * j]) | (u64::from(b[2 * j + 1]) << 32), "word {i}");
            }
        }
    }

    #[test]
    fn offsets_are_consistent() {
        let key = PrgKey::from_bytes([7u8; 32]);
        let mut all = vec![0u64; 100];
        fill_words(&key, 3, 5, &mut all);
        for start in [0usize, 1, 3, 8, 17, 64] {
            let mut part = vec![0u64; 100 - start];
            fill_words(&key, 3, 5 + start as u64, &mut part);
            assert_eq!(&all[start..], &part[..]);
        }
        let mut other = vec![0u64; 100];
        fill_words(&key, 4, 5, &mut other);
        assert_ne!(all, other);
    }
}
