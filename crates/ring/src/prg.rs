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
/// Single-threaded reference; devices parallelise over blocks.
pub fn fill_words(key: &PrgKey, stream: u64, offset: u64, out: &mut [u64]) {
    let kw = key.words();
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let block = pos / WORDS_PER_BLOCK;
        let within = (pos % WORDS_PER_BLOCK) as usize;
        let w = chacha20_block(&kw, stream, block);
        let take = (8 - within).min(out.len() - i);
        for j in 0..take {
            let jj = within + j;
            out[i + j] = u64::from(w[2 * jj]) | (u64::from(w[2 * jj + 1]) << 32);
        }
        i += take;
        pos = pos.wrapping_add(take as u64);
    }
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
