//! The x86 intrinsics: the AVX-512 and AVX2 micro-kernels, AVX-512 dot products and the
//! few-columns rows with Winograd's inner product. Every function needs its CPU feature,
//! which its caller has checked (`Kernel::is_available`).

use std::arch::x86_64::*;

use super::thin::FewCols;

/// AVX-512 micro-kernel: `out (8 x 16)` from `kp` Winograd pairs.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ; `a` must be valid for `16 * kp`
/// reads, `b` for `32 * kp` reads and `out` for 128 writes (all `u64`, any alignment).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn kernel_avx512(kp: usize, a: *const u64, b: *const u64, out: *mut u64) {
    const MR: usize = 8;
    const NR: usize = 16;
    let z = _mm512_setzero_si512();
    let mut acc = [[z; 2]; MR];
    for l in 0..kp {
        // SAFETY: pair `l < kp` of the A panel is `2 * MR` values at `a + 2*MR*l`, and of
        // the B panel `2 * NR` values at `b + 2*NR*l`, in range by the contract.
        let (ap, bp) = unsafe { (a.add(2 * MR * l), b.add(2 * NR * l)) };
        // SAFETY: in range as above; unaligned loads.
        let (b00, b01, b10, b11) = unsafe {
            (
                _mm512_loadu_si512(bp.cast()),
                _mm512_loadu_si512(bp.add(8).cast()),
                _mm512_loadu_si512(bp.add(NR).cast()),
                _mm512_loadu_si512(bp.add(NR + 8).cast()),
            )
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `i < MR`, so both reads are inside pair `l` of the A panel.
            let (x, y) = unsafe { (*ap.add(i) as i64, *ap.add(MR + i) as i64) };
            let (x, y) = (_mm512_set1_epi64(x), _mm512_set1_epi64(y));
            let p0 = _mm512_mullo_epi64(_mm512_add_epi64(b10, x), _mm512_add_epi64(b00, y));
            let p1 = _mm512_mullo_epi64(_mm512_add_epi64(b11, x), _mm512_add_epi64(b01, y));
            acc[0] = _mm512_add_epi64(acc[0], p0);
            acc[1] = _mm512_add_epi64(acc[1], p1);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: rows `i < MR` of the 8 x 16 output tile, in range by the contract.
        unsafe {
            _mm512_storeu_si512(out.add(i * NR).cast(), acc[0]);
            _mm512_storeu_si512(out.add(i * NR + 8).cast(), acc[1]);
        }
    }
}

/// `Σ_k a_k b_k mod 2^64` over the common length, 32 products per step in four
/// accumulators (a batch-1 linear layer's dot products; `vpmullq`'s latency hidden).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) fn dot_avx512(a: &[u64], b: &[u64]) -> u64 {
    let n = a.len().min(b.len());
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 8j + 8 <= i + 32 <= n`: eight words inside both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_si512(a.as_ptr().add(i + 8 * j).cast()),
                    _mm512_loadu_si512(b.as_ptr().add(i + 8 * j).cast()),
                )
            };
            *acc = _mm512_add_epi64(*acc, _mm512_mullo_epi64(x, y));
        }
        i += 32;
    }
    let sum = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
    let mut lanes = [0u64; 8];
    // SAFETY: `lanes` holds eight words; unaligned store.
    unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), sum) };
    let tail = a[i..n].iter().zip(&b[i..n]).fold(0u64, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)));
    lanes.iter().fold(tail, |s, &v| s.wrapping_add(v))
}

/// `R` rows of [`super::thin::gemm_few_cols`] with Winograd's inner product
/// ([`super::thin::FewCols`]): `a` holds the rows (`R x k`), and `out[r * n + j]` is row
/// `r` dotted with column `j`, for every column, four columns at a time.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) fn few_cols_rows_avx512<const R: usize>(a: &[u64], cols: &FewCols<'_>, out: &mut [u64]) {
    let n = out.len() / R;
    // Each row's correction Σ a_t a_{t+8} over the chunks.
    let mut row = [0u64; R];
    for (r, corr) in row.iter_mut().enumerate() {
        let mut acc = _mm512_setzero_si512();
        for c in 0..cols.chunks {
            let (lo, hi) = chunk(&a[r * cols.k..], c);
            acc = _mm512_add_epi64(acc, _mm512_mullo_epi64(lo, hi));
        }
        *corr = sum_lanes(acc);
    }
    let mut j0 = 0;
    while j0 < n {
        match (n - j0).min(4) {
            4 => columns::<R, 4>(a, cols, j0, &row, out),
            3 => columns::<R, 3>(a, cols, j0, &row, out),
            2 => columns::<R, 2>(a, cols, j0, &row, out),
            _ => columns::<R, 1>(a, cols, j0, &row, out),
        }
        j0 += 4;
    }
}

/// `N` columns from `j0` of [`few_cols_rows_avx512`] against its `R` rows, one
/// accumulator each: every column chunk loaded serves the `R` rows.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn columns<const R: usize, const N: usize>(a: &[u64], cols: &FewCols<'_>, j0: usize, row: &[u64; R], out: &mut [u64]) {
    let (k, n) = (cols.k, out.len() / R);
    let mut acc = [[_mm512_setzero_si512(); N]; R];
    for c in 0..cols.chunks {
        let mut rows = [(_mm512_setzero_si512(), _mm512_setzero_si512()); R];
        for (r, rows) in rows.iter_mut().enumerate() {
            *rows = chunk(&a[r * k..], c);
        }
        for t in 0..N {
            let (lo, hi) = chunk(&cols.bt[(j0 + t) * k..], c);
            for r in 0..R {
                let p = _mm512_mullo_epi64(_mm512_add_epi64(rows[r].0, hi), _mm512_add_epi64(rows[r].1, lo));
                acc[r][t] = _mm512_add_epi64(acc[r][t], p);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let ar = &a[r * k..(r + 1) * k];
        for (t, &acc) in acc.iter().enumerate() {
            let j = j0 + t;
            out[r * n + j] =
                sum_lanes(acc).wrapping_sub(row[r]).wrapping_sub(cols.corr[j]).wrapping_add(cols.tail(ar, j));
        }
    }
}

/// Chunk `c` of a row or column (words `16c .. 16c + 16`, inside `a`): its words `0..8`
/// and `8..16`, the two halves of its Winograd pairs.
#[inline]
#[target_feature(enable = "avx512f")]
fn chunk(a: &[u64], c: usize) -> (__m512i, __m512i) {
    let w = &a[16 * c..16 * c + 16];
    // SAFETY: `w` holds 16 words: eight at 0 and eight at 8.
    unsafe { (_mm512_loadu_si512(w.as_ptr().cast()), _mm512_loadu_si512(w.as_ptr().add(8).cast())) }
}

/// The sum of the eight lanes mod 2^64.
#[inline]
#[target_feature(enable = "avx512f")]
fn sum_lanes(v: __m512i) -> u64 {
    let mut lanes = [0u64; 8];
    // SAFETY: `lanes` holds eight words; unaligned store.
    unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), v) };
    lanes.iter().fold(0u64, |s, &x| s.wrapping_add(x))
}

/// `x * y mod 2^64` per 64-bit lane from three 32x32->64 multiplies.
#[inline]
#[target_feature(enable = "avx2")]
fn mul64_avx2(x: __m256i, y: __m256i) -> __m256i {
    let lo = _mm256_mul_epu32(x, y);
    let cross = _mm256_add_epi64(
        _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), y),
        _mm256_mul_epu32(x, _mm256_srli_epi64::<32>(y)),
    );
    _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(cross))
}

/// AVX2 micro-kernel: `out (4 x 8)` from `kp` Winograd pairs.
///
/// # Safety
/// The CPU must support AVX2; `a` must be valid for `8 * kp` reads, `b` for `16 * kp`
/// reads and `out` for 32 writes (all `u64`, any alignment).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn kernel_avx2(kp: usize, a: *const u64, b: *const u64, out: *mut u64) {
    const MR: usize = 4;
    const NR: usize = 8;
    let z = _mm256_setzero_si256();
    let mut acc = [[z; 2]; MR];
    for l in 0..kp {
        // SAFETY: pair `l < kp` lies inside both panels by the contract.
        let (ap, bp) = unsafe { (a.add(2 * MR * l), b.add(2 * NR * l)) };
        // SAFETY: in range as above; unaligned loads.
        let (b00, b01, b10, b11) = unsafe {
            (
                _mm256_loadu_si256(bp.cast()),
                _mm256_loadu_si256(bp.add(4).cast()),
                _mm256_loadu_si256(bp.add(NR).cast()),
                _mm256_loadu_si256(bp.add(NR + 4).cast()),
            )
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `i < MR`, inside pair `l` of the A panel.
            let (x, y) = unsafe { (*ap.add(i) as i64, *ap.add(MR + i) as i64) };
            let (x, y) = (_mm256_set1_epi64x(x), _mm256_set1_epi64x(y));
            let p0 = mul64_avx2(_mm256_add_epi64(b10, x), _mm256_add_epi64(b00, y));
            let p1 = mul64_avx2(_mm256_add_epi64(b11, x), _mm256_add_epi64(b01, y));
            acc[0] = _mm256_add_epi64(acc[0], p0);
            acc[1] = _mm256_add_epi64(acc[1], p1);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: rows `i < MR` of the 4 x 8 output tile, in range by the contract.
        unsafe {
            _mm256_storeu_si256(out.add(i * NR).cast(), acc[0]);
            _mm256_storeu_si256(out.add(i * NR + 4).cast(), acc[1]);
        }
    }
}
