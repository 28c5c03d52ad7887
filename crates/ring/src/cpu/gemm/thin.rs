//! The unpacked paths: products with a few rows of `op(a)` or a few columns of `op(b)`,
//! where packing would cost more than the product, read their operands in place.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::x86;
use super::Kernel;

/// At most this many rows of `op(a)` (a batch of a few samples through a linear layer):
/// packing `b` would cost more than the product, so [`gemm_few_rows`] reads it in place.
pub(super) const FEW_ROWS: usize = 4;

/// Unpacked product for a few rows of `op(a)`, in parallel over blocks of output columns:
/// with `b_trans` every output is a dot product of two contiguous rows (a linear layer's
/// weights `[out, in]`), else each row of `b` is streamed once per row of `a`.
/// Measured on the LeNet linear layer 800 → 500 at batch 1: 1.2 to 3.4 ms through the
/// packed path, most of it packing the 400,000 weights; this reads them once.
pub(super) fn gemm_few_rows(
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    a_trans: bool,
    b: &[u64],
    b_trans: bool,
    c: &mut [u64],
) {
    const COLS: usize = 64;
    let wide = Kernel::Avx512.is_available();
    for i in 0..m {
        // Row i of op(a): in place, or gathered from the column of a transposed `a`.
        let gathered: Vec<u64>;
        let row: &[u64] = if a_trans {
            gathered = (0..k).map(|kk| a[kk * m + i]).collect();
            &gathered
        } else {
            &a[i * k..(i + 1) * k]
        };
        c[i * n..(i + 1) * n].par_chunks_mut(COLS).enumerate().for_each(|(blk, out)| {
            let j0 = blk * COLS;
            if b_trans {
                for (jj, o) in out.iter_mut().enumerate() {
                    *o = dot(row, &b[(j0 + jj) * k..(j0 + jj + 1) * k], wide);
                }
            } else {
                out.fill(0);
                for (kk, &x) in row.iter().enumerate() {
                    let brow = &b[kk * n + j0..kk * n + j0 + out.len()];
                    for (o, &y) in out.iter_mut().zip(brow) {
                        *o = o.wrapping_add(x.wrapping_mul(y));
                    }
                }
            }
        });
    }
}

/// `Σ_k a_k b_k mod 2^64`, with AVX-512 when `wide` (the CPU has it).
pub(super) fn dot(a: &[u64], b: &[u64], wide: bool) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` only when `Kernel::Avx512` is available: AVX-512F and DQ.
        return unsafe { x86::dot_avx512(a, b) };
    }
    let _ = wide;
    a.iter().zip(b).fold(0u64, |acc, (&x, &y)| acc.wrapping_add(x.wrapping_mul(y)))
}

/// At most this many columns of `op(b)` with a row-major `a` (a convolution's last layers
/// at batch 1: 4x4, 2x2 or 1x1 positions against up to 2.4 million weights): packing `a`
/// would cost more than the product, so [`gemm_few_cols`] reads it in place. Measured
/// (`triad bench --inference`, three parties on 2 cores): VGG-16/CIFAR-10 346–370 ms
/// through the packed path, 299–302 ms with this path up to 8 columns, 272–277 up to 16;
/// 64 was no better than 16. With Winograd's inner product (`cargo bench -p triad-ring
/// --bench gemm -- vgg16`): VGG-16's 512-channel convolution at 4x4, 4.05–4.28 → 2.85–3.06
/// ms; at 2x2 (4 columns) it reads the weights at the memory's pace either way (1.08 ms).
pub(super) const FEW_COLS: usize = 16;

/// ...and at most this many words of `op(b)` (1 MiB), which every row of `a` reads again
/// and must stay in the L2 cache: a weight gradient's few columns are long.
pub(super) const FEW_COLS_WORDS: usize = 128 * 1024;

/// `c (m x n) = a · bt^T` for a row-major `a` (`m x k`) and few columns, `bt` (`n x k`)
/// their transpose: in parallel over blocks of rows of `a`, each row read from memory once
/// and dotted with every column while it is in L1. With AVX-512, Winograd's inner product
/// ([`FewCols`]): half the multiplies of plain dot products.
pub(super) fn gemm_few_cols(m: usize, k: usize, n: usize, a: &[u64], bt: &[u64], c: &mut [u64]) {
    const ROWS: usize = 16;
    let cols = Kernel::Avx512.is_available().then(|| FewCols::new(k, n, bt));
    c[..m * n].par_chunks_mut(ROWS * n).enumerate().for_each(|(blk, out)| {
        for (r, row) in out.chunks_mut(n).enumerate() {
            let i = blk * ROWS + r;
            let ai = &a[i * k..(i + 1) * k];
            match &cols {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `cols` is made only when `Kernel::Avx512` is available: AVX-512F and DQ.
                Some(cols) => unsafe { x86::few_cols_row_avx512(ai, cols, row) },
                _ => row.iter_mut().enumerate().for_each(|(j, o)| *o = dot(ai, &bt[j * k..(j + 1) * k], false)),
            }
        }
    });
}

/// The columns of [`gemm_few_cols`] prepared for Winograd's inner product over the first
/// `16 * chunks` words: `Σ_l a_{2l} b_{2l} + a_{2l+1} b_{2l+1} = Σ_l (a_{2l} + b_{2l+1})
/// (a_{2l+1} + b_{2l}) - Σ_l a_{2l} a_{2l+1} - Σ_l b_{2l} b_{2l+1}` (exact mod 2^64). Each
/// column's chunk of 16 words is stored as its 8 even words, then its 8 odd ones, with the
/// column's correction `Σ b_{2l} b_{2l+1}`; the last `k mod 16` words are dotted plainly.
pub(super) struct FewCols<'a> {
    /// Chunks of 16 words of `k`.
    pub(super) chunks: usize,
    /// Column `j`'s chunks, even then odd words: `16 * chunks` words from `j * 16 * chunks`.
    pub(super) split: Vec<u64>,
    /// Column `j`'s `Σ b_{2l} b_{2l+1}` over its chunks.
    pub(super) corr: Vec<u64>,
    /// The columns as given (`n x k`), for the last words.
    bt: &'a [u64],
    k: usize,
}

impl<'a> FewCols<'a> {
    pub(super) fn new(k: usize, n: usize, bt: &'a [u64]) -> Self {
        let chunks = k / 16;
        let mut split = vec![0u64; n * 16 * chunks];
        let mut corr = vec![0u64; n];
        for j in 0..n {
            let col = &bt[j * k..(j + 1) * k];
            let out = &mut split[j * 16 * chunks..(j + 1) * 16 * chunks];
            for (c, o) in out.chunks_exact_mut(16).enumerate() {
                for t in 0..8 {
                    let (e, d) = (col[16 * c + 2 * t], col[16 * c + 2 * t + 1]);
                    o[t] = e;
                    o[8 + t] = d;
                    corr[j] = corr[j].wrapping_add(e.wrapping_mul(d));
                }
            }
        }
        FewCols { chunks, split, corr, bt, k }
    }

    /// The last `k mod 16` words of row `a` dotted with column `j`'s.
    pub(super) fn tail(&self, a: &[u64], j: usize) -> u64 {
        let from = 16 * self.chunks;
        let col = &self.bt[j * self.k + from..(j + 1) * self.k];
        a[from..].iter().zip(col).fold(0u64, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)))
    }
}
