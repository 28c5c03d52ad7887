//! Bit packing on the CPU: the selected lanes of each element packed back to back
//! ([`Device::pack_bits`](crate::Device::pack_bits)'s stream layout), one group of 64
//! elements (exactly `k` words) at a time, with the hardware `pext`/`pdep` (BMI2) for
//! scattered masks where the CPU has them.

use std::mem::MaybeUninit;

/// Contiguous run of set bits `[lo, lo + k)` if `mask` is one.
pub(super) fn contiguous(mask: u64) -> Option<(u32, u32)> {
    if mask == 0 {
        return None;
    }
    let lo = mask.trailing_zeros();
    let k = mask.count_ones();
    let run = if k == 64 { u64::MAX } else { ((1u64 << k) - 1) << lo };
    (run == mask).then_some((lo, k))
}

/// The selected bits of `v`, compacted to the low end (software `pext`).
#[inline]
fn extract(v: u64, mask: u64, run: Option<(u32, u32)>) -> u64 {
    match run {
        Some((lo, 64)) => v >> lo,
        Some((lo, k)) => (v >> lo) & ((1u64 << k) - 1),
        None => {
            let (mut m, mut out, mut bit) = (mask, 0u64, 0u32);
            while m != 0 {
                let p = m.trailing_zeros();
                out |= ((v >> p) & 1) << bit;
                bit += 1;
                m &= m - 1;
            }
            out
        }
    }
}

/// Inverse of [`extract`] (software `pdep`).
#[inline]
fn deposit(v: u64, mask: u64, run: Option<(u32, u32)>) -> u64 {
    match run {
        Some((lo, 64)) => v << lo,
        Some((lo, k)) => (v & ((1u64 << k) - 1)) << lo,
        None => {
            let (mut m, mut out, mut bit) = (mask, 0u64, 0u32);
            while m != 0 {
                let p = m.trailing_zeros();
                out |= ((v >> bit) & 1) << p;
                bit += 1;
                m &= m - 1;
            }
            out
        }
    }
}

/// Whether the CPU has BMI2's `pext`/`pdep` (asked once per pack or unpack, not per group).
pub(super) fn has_bmi2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Packs elements `a` (one group of at most 64) into `out` (k words for a full group);
/// `bmi2` from [`has_bmi2`].
pub(super) fn pack_group(a: &[u64], mask: u64, k: u32, run: Option<(u32, u32)>, bmi2: bool, out: &mut [u64]) {
    match run {
        // The contiguous mask of bits `lo .. lo + k` (the full-width comparison circuits'
        // masks): the field extraction without a per-element mask walk.
        Some((lo, k)) => {
            let kmask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
            pack_fields(a, k, out, |v| (v >> lo) & kmask)
        }
        None => {
            #[cfg(target_arch = "x86_64")]
            if bmi2 {
                // SAFETY: the CPU supports BMI2 (`has_bmi2`).
                return unsafe { pack_group_bmi2(a, mask, k, out) };
            }
            pack_fields(a, k, out, |v| extract(v, mask, run))
        }
    }
}

/// [`pack_group`] for a scattered mask with the hardware `pext` (one instruction per
/// element instead of a walk over the mask's bits: the narrow sign circuit's masks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
unsafe fn pack_group_bmi2(a: &[u64], mask: u64, k: u32, out: &mut [u64]) {
    pack_fields(a, k, out, |v| std::arch::x86_64::_pext_u64(v, mask))
}

/// Packs the `k`-bit field `field(v)` of each element of `a` into `out`, back to back.
#[inline(always)]
fn pack_fields(a: &[u64], k: u32, out: &mut [u64], field: impl Fn(u64) -> u64) {
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    let mut w = 0usize;
    for &v in a {
        acc |= u128::from(field(v)) << filled;
        filled += k;
        if filled >= 64 {
            out[w] = acc as u64;
            w += 1;
            acc >>= 64;
            filled -= 64;
        }
    }
    if filled > 0 && w < out.len() {
        out[w] = acc as u64;
    }
}

/// [`unpack_group`] for the contiguous mask of bits `lo .. lo + k`: each element's field
/// read independently from the (at most two) words it spans.
fn unpack_group_run(words: &[u64], lo: u32, k: u32, out: &mut [MaybeUninit<u64>]) {
    let kmask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    let mut buf = [0u64; 65];
    buf[..words.len()].copy_from_slice(words);
    for (e, o) in out.iter_mut().enumerate() {
        let t = e * k as usize;
        let (w, off) = (t / 64, (t % 64) as u32);
        let f = (buf[w] >> off) | ((buf[w + 1] << 1) << (63 - off));
        o.write((f & kmask) << lo);
    }
}

pub(super) fn unpack_group(
    words: &[u64],
    mask: u64,
    k: u32,
    run: Option<(u32, u32)>,
    bmi2: bool,
    out: &mut [MaybeUninit<u64>],
) {
    if let Some((lo, k)) = run {
        return unpack_group_run(words, lo, k, out);
    }
    #[cfg(target_arch = "x86_64")]
    if bmi2 {
        // SAFETY: the CPU supports BMI2 (`has_bmi2`).
        return unsafe { unpack_group_bmi2(words, mask, k, out) };
    }
    unpack_fields(words, k, out, |v| deposit(v, mask, run))
}

/// [`unpack_group`] for a scattered mask with the hardware `pdep`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
unsafe fn unpack_group_bmi2(words: &[u64], mask: u64, k: u32, out: &mut [MaybeUninit<u64>]) {
    unpack_fields(words, k, out, |v| std::arch::x86_64::_pdep_u64(v, mask))
}

/// Unpacks `k`-bit fields, back to back in `words`, into `out`, each placed by `place`.
#[inline(always)]
fn unpack_fields(words: &[u64], k: u32, out: &mut [MaybeUninit<u64>], place: impl Fn(u64) -> u64) {
    let kmask: u128 = if k == 64 { u128::from(u64::MAX) } else { (1u128 << k) - 1 };
    let mut acc: u128 = 0;
    let mut avail = 0u32;
    let mut w = 0usize;
    for o in out.iter_mut() {
        if avail < k {
            let next = words.get(w).copied().unwrap_or(0);
            acc |= u128::from(next) << avail;
            avail += 64;
            w += 1;
        }
        o.write(place((acc & kmask) as u64));
        acc >>= k;
        avail -= k;
    }
}

/// The 64x64 bit matrix `a` (row `r` = word `r`, column `c` = bit `c`) transposed in
/// place: afterwards bit `c` of word `r` is what bit `r` of word `c` was. Six rounds of
/// block swaps, halving the block each round: in round `j` (32, 16, .., 1) the high `j`
/// columns of each row `r` with `r & j == 0` trade places with the low `j` columns of row
/// `r + j`, within every `2j`-column block.
pub(super) fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        for base in (0..64).step_by(2 * j) {
            for r in base..base + j {
                let t = ((a[r] >> j) ^ a[r + j]) & m;
                a[r] ^= t << j;
                a[r + j] ^= t;
            }
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// [`Device::bit_planes`](crate::Device::bit_planes) for the groups `first ..` of the
/// words `a` (one group, 64 words, per word of each row): row `j`'s words go to `rows[j]`,
/// which hold as many words as this share of the groups.
pub(super) fn bit_planes_into(a: &[u64], first: usize, rows: &mut [&mut [u64]]) {
    let count = rows.first().map_or(0, |r| r.len());
    let mut block = [0u64; 64];
    for g in 0..count {
        let start = (first + g) * 64;
        let words = &a[start..(start + 64).min(a.len())];
        block[..words.len()].copy_from_slice(words);
        block[words.len()..].fill(0);
        transpose64(&mut block);
        for (row, &w) in rows.iter_mut().zip(&block) {
            row[g] = w;
        }
    }
}
