//! Ring matrix products on the CPU: `C = op(A) · op(B) mod 2^64`.
//!
//! # Design
//!
//! BLIS-style: `A` is packed into panels of `MR` rows and `B` into panels of `NR` columns,
//! and a register-blocked micro-kernel computes one `MR x NR` tile of `C` over a block of
//! the inner dimension. Output tiles are grouped into `MC x NC` blocks that rayon runs in
//! parallel; within a block the inner dimension is cut into `KC` slices so a `B`
//! micro-panel stays in L1 and the `A` block in L2.
//!
//! The packing reads the operands through [`Operand`] and writes `C` through [`Out`]
//! ([`super::operand`]): [`gemm`] passes row-major or transposed matrices (transposes cost
//! nothing extra), the convolutions ([`gemm_ops`]) per-image NCHW views and patch
//! matrices computed from the image.
//!
//! ## Winograd's inner-product trick
//!
//! A 64-bit lane multiply (`vpmullq`) costs three µops on current x86 cores, against one
//! for an `f64` FMA, so a plain multiply-add kernel peaks at a quarter of the `f64`
//! rate. The kernels instead use Winograd's (1968) identity, valid in every commutative
//! ring, hence exactly in `Z_{2^64}`:
//!
//! ```text
//! Σ_k a_k b_k = Σ_l (a_{2l} + b_{2l+1}) (a_{2l+1} + b_{2l})  −  Σ_l a_{2l} a_{2l+1}  −  Σ_l b_{2l} b_{2l+1}
//! ```
//!
//! The last two sums depend only on a row of `A` or a column of `B`; they are computed
//! once while packing (`O(mk + kn)` work). The kernel then does one multiply per *two*
//! inner-dimension steps: two adds, one `vpmullq`, one accumulating add per 8 lanes and 2
//! steps, i.e. 6 µops instead of 8. An odd inner dimension is padded with a zero step,
//! which the identity absorbs.
//!
//! ## Kernels and dispatch
//!
//! [`Kernel::detect`] picks at run time (so one binary runs everywhere):
//! - [`Kernel::Avx512`]: `8 x 16` tile in 16 `zmm` accumulators, `vpmullq`;
//! - [`Kernel::Avx2`]: `4 x 8` tile in 8 `ymm` accumulators, the 64-bit product built from
//!   three `vpmuludq` (`lo·lo + ((lo·hi + hi·lo) << 32)`);
//! - [`Kernel::Scalar`]: portable `4 x 4` tile.
//!
//! All use the same packed layout and produce bit-identical results.
//!
//! ## Where each piece lives
//!
//! - this file: the entries ([`gemm`], [`gemm_with`], [`gemm_ops`]) and the choice of path;
//! - `kernel`: the micro-kernels and their dispatch ([`Kernel`]);
//! - `packed`: the packed path (panels, cache blocks, the parallel blocks of `C`);
//! - `thin`: the unpacked paths for a few rows or a few columns, read in place;
//! - `x86`: the AVX-512 and AVX2 intrinsics of the kernels and the dot products.

mod kernel;
mod packed;
#[cfg(test)]
mod tests;
mod thin;
// The AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable since Rust
// 1.89 (safe intrinsic calls inside `#[target_feature]` functions since 1.86), above the
// workspace's declared 1.85: this module needs a 1.89+ toolchain.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod x86;

pub use kernel::Kernel;

use super::operand::{Operand, Out, View};
use packed::gemm_packed;
use thin::{gemm_few_cols, gemm_few_rows, FEW_COLS, FEW_COLS_WORDS, FEW_ROWS};

/// Below this many multiply-adds a direct loop beats packing.
const SMALL_MACS: usize = 8 * 1024;

/// The kernel [`gemm`] uses on this CPU.
pub fn kernel_name() -> &'static str {
    Kernel::detect().name()
}

/// Transposes a `rows x cols` row-major matrix.
pub fn transpose(a: &[u64], rows: usize, cols: usize) -> Vec<u64> {
    let mut t = vec![0u64; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// `c (m x n) = op(a) · op(b)`, overwriting `c`. `a` is `m x k` row-major (`k x m` when
/// `a_trans`), `b` is `k x n` (`n x k` when `b_trans`).
pub fn gemm(m: usize, k: usize, n: usize, a: &[u64], a_trans: bool, b: &[u64], b_trans: bool, c: &mut [u64]) {
    if m.saturating_mul(n).saturating_mul(k) <= SMALL_MACS {
        check_lens(m, k, n, a, b, c);
        gemm_direct(m, k, n, a, a_trans, b, b_trans, c);
    } else if m <= FEW_ROWS {
        check_lens(m, k, n, a, b, c);
        gemm_few_rows(m, k, n, a, a_trans, b, b_trans, c);
    } else {
        gemm_with(Kernel::detect(), m, k, n, a, a_trans, b, b_trans, c);
    }
}

fn check_lens(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &[u64]) {
    assert!(a.len() >= m * k, "gemm: a has {} elements, needs {m}x{k}", a.len());
    assert!(b.len() >= k * n, "gemm: b has {} elements, needs {k}x{n}", b.len());
    assert!(c.len() >= m * n, "gemm: c has {} elements, needs {m}x{n}", c.len());
}

/// Unpacked loop for tiny products.
fn gemm_direct(m: usize, k: usize, n: usize, a: &[u64], a_trans: bool, b: &[u64], b_trans: bool, c: &mut [u64]) {
    let c = &mut c[..m * n];
    c.fill(0);
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for kk in 0..k {
            let av = if a_trans { a[kk * m + i] } else { a[i * k + kk] };
            if b_trans {
                for (j, cv) in row.iter_mut().enumerate() {
                    *cv = cv.wrapping_add(av.wrapping_mul(b[j * k + kk]));
                }
            } else {
                for (cv, &bv) in row.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                    *cv = cv.wrapping_add(av.wrapping_mul(bv));
                }
            }
        }
    }
}

/// [`gemm`] with a chosen micro-kernel (always through the packed path).
///
/// # Panics
/// If the CPU does not support `kernel`, or a buffer is too short.
pub fn gemm_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    a_trans: bool,
    b: &[u64],
    b_trans: bool,
    c: &mut [u64],
) {
    assert!(kernel.is_available(), "gemm: kernel {kernel:?} is not supported by this CPU");
    check_lens(m, k, n, a, b, c);
    let a = if a_trans { View::cols(a, m) } else { View::rows(a, k) };
    let b = if b_trans { View::rows(b, k) } else { View::cols(b, n) };
    gemm_packed(kernel, m, k, n, &a, &b, Out::dense(&mut c[..m * n], n));
}

/// `out (m x n) = op(A) · op(B)` for operands that the packing reads through [`Operand`]
/// (`a` has `m` lines, `b` has `n`, both over `k`): the convolutions' entry. Small
/// products and a few rows go through `gemm_direct` and `gemm_few_rows` on copies of
/// the operands; the rest through the packed kernel.
pub fn gemm_ops(m: usize, k: usize, n: usize, a: &dyn Operand, b: &dyn Operand, out: Out) {
    let small = m.saturating_mul(n).saturating_mul(k) <= SMALL_MACS;
    let few_cols = n <= FEW_COLS && m > FEW_ROWS && n * k <= FEW_COLS_WORDS;
    if let (false, true, Some(rows)) = (small, few_cols, a.rows(m, k)) {
        let mut bm = vec![0u64; k * n];
        b.pack(0, n, k, n, &mut bm);
        let mut c = vec![0u64; m * n];
        gemm_few_cols(m, k, n, rows, &transpose(&bm, k, n), &mut c);
        out.copy_from(&c, n);
        return;
    }
    if !small && m > FEW_ROWS {
        gemm_packed(Kernel::detect(), m, k, n, a, b, out);
        return;
    }
    // op(A) stored transposed (`k x m`), op(B) untransposed (`k x n`).
    let (mut am, mut bm, mut c) = (vec![0u64; m * k], vec![0u64; k * n], vec![0u64; m * n]);
    a.pack(0, m, k, m, &mut am);
    b.pack(0, n, k, n, &mut bm);
    if small {
        gemm_direct(m, k, n, &am, true, &bm, false, &mut c);
    } else {
        gemm_few_rows(m, k, n, &am, true, &bm, false, &mut c);
    }
    out.copy_from(&c, n);
}
