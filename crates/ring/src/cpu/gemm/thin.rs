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
/// Four rows at a time, the words paired `t` with `t + 8`: 3.25–3.29 → 2.20–2.33 ms at
/// 4x4, 1.04–1.08 → 0.88–1.01 ms at 2x2 (two rows with eight columns: 2.38–2.52 ms).
pub(super) const FEW_COLS: usize = 16;

/// ...and at most this many words of `op(b)` (1 MiB), which every row of `a` reads again
/// and must stay in the L2 cache: a weight gradient's few columns are long.
pub(super) const FEW_COLS_WORDS: usize = 128 * 1024;

/// `c (m x n) = a · bt^T` for a row-major `a` (`m x k`) and few columns, `bt` (`n x k`)
/// their transpose: in parallel over blocks of rows of `a`, each row read from memory once
/// and dotted with every column while it is in L1. With AVX-512, Winograd's inner product
/// ([`FewCols`]) on four rows at a time: half the multiplies of plain dot products, and
/// each column word loaded from L2 serves the four rows.
pub(super) fn gemm_few_cols(m: usize, k: usize, n: usize, a: &[u64], bt: &[u64], c: &mut [u64]) {
    const ROWS: usize = 16;
    let cols = Kernel::Avx512.is_available().then(|| FewCols::new(k, n, bt));
    c[..m * n].par_chunks_mut(ROWS * n).enumerate().for_each(|(blk, out)| {
        let i0 = blk * ROWS;
        match &cols {
            #[cfg(target_arch = "x86_64")]
            Some(cols) => {
                for (p, rows) in out.chunks_mut(4 * n).enumerate() {
                    let i = i0 + 4 * p;
                    let ai = &a[i * k..(i + rows.len() / n) * k];
                    // SAFETY: `cols` is made only when `Kernel::Avx512` is available:
                    // AVX-512F and DQ.
                    unsafe {
                        match rows.len() / n {
                            4 => x86::few_cols_rows_avx512::<4>(ai, cols, rows),
                            3 => x86::few_cols_rows_avx512::<3>(ai, cols, rows),
                            2 => x86::few_cols_rows_avx512::<2>(ai, cols, rows),
                            _ => x86::few_cols_rows_avx512::<1>(ai, cols, rows),
                        }
                    }
                }
            }
            _ => {
                for (r, row) in out.chunks_mut(n).enumerate() {
                    let ai = &a[(i0 + r) * k..(i0 + r + 1) * k];
                    row.iter_mut().enumerate().for_each(|(j, o)| *o = dot(ai, &bt[j * k..(j + 1) * k], false));
                }
            }
        }
    });
}

/// The columns of [`gemm_few_cols`] with their corrections for Winograd's inner product.
/// Any pairing of the words serves the identity; pairing word `t` of each chunk of 16 with
/// word `t + 8` lets a row and a column be read as two plain loads of eight words, with
/// nothing to permute or copy: over the chunks, `Σ a_t b_t + a_{t+8} b_{t+8} = Σ (a_t +
/// b_{t+8}) (a_{t+8} + b_t) - Σ a_t a_{t+8} - Σ b_t b_{t+8}` (exact mod 2^64). The last `k
/// mod 16` words are dotted plainly.
pub(super) struct FewCols<'a> {
    /// Chunks of 16 words of `k`.
    pub(super) chunks: usize,
    /// Column `j`'s `Σ b_t b_{t+8}` over its chunks.
    pub(super) corr: Vec<u64>,
    /// The columns as given (`n x k`).
    pub(super) bt: &'a [u64],
    pub(super) k: usize,
}

impl<'a> FewCols<'a> {
    pub(super) fn new(k: usize, n: usize, bt: &'a [u64]) -> Self {
        let chunks = k / 16;
        let corr = (0..n)
            .map(|j| {
                let col = &bt[j * k..j * k + 16 * chunks];
                col.chunks_exact(16)
                    .fold(0u64, |s, ch| (0..8).fold(s, |s, t| s.wrapping_add(ch[t].wrapping_mul(ch[t + 8]))))
            })
            .collect();
        FewCols { chunks, corr, bt, k }
    }

    /// The last `k mod 16` words of row `a` dotted with column `j`'s.
    pub(super) fn tail(&self, a: &[u64], j: usize) -> u64 {
        let from = 16 * self.chunks;
        let col = &self.bt[j * self.k + from..(j + 1) * self.k];
        a[from..].iter().zip(col).fold(0u64, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)))
    }
}
