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

use rayon::prelude::*;

use super::operand::{for_span, Operand, Out, Piece, View};

/// Inner-dimension pairs per cache block (`KC = 2 * KC_PAIRS` steps). The kernel does
/// so much ALU work per loaded byte (48 cycles per 384 bytes of panels) that panels
/// streaming from L2 keep it busy; a long block saves read-modify-write passes over `C`.
const KC_PAIRS: usize = 512;
/// Packing buffers at most this long (elements) are kept per thread for reuse, which
/// saves the page faults of fresh allocations.
const KEEP_BUF: usize = 1 << 22;
/// Operands that pack into fewer elements than this are packed on one thread: waking
/// the others costs more.
const PAR_PACK: usize = 1 << 15;
/// Largest row block of one parallel task.
const MC_MAX: usize = 256;
/// Largest column block of one parallel task.
const NC_MAX: usize = 512;
/// Below this many multiply-adds a direct loop beats packing.
const SMALL_MACS: usize = 8 * 1024;

/// A ring GEMM micro-kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AVX-512F/DQ: `vpmullq` on `zmm` registers, `8 x 16` tiles.
    Avx512,
    /// AVX2: 64-bit products from `vpmuludq` pieces, `4 x 8` tiles.
    Avx2,
    /// Portable scalar code, `4 x 4` tiles.
    Scalar,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        if Kernel::Avx512.is_available() {
            Kernel::Avx512
        } else if Kernel::Avx2.is_available() {
            Kernel::Avx2
        } else {
            Kernel::Scalar
        }
    }

    /// Every kernel this CPU supports, fastest first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar].into_iter().filter(|k| k.is_available()).collect()
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2 => false,
            Kernel::Scalar => true,
        }
    }

    /// A short name, e.g. `avx512 (vpmullq, 8x16, winograd)`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512 (vpmullq zmm, 8x16 tile, Winograd pairs)",
            Kernel::Avx2 => "avx2 (3x vpmuludq ymm, 4x8 tile, Winograd pairs)",
            Kernel::Scalar => "scalar (4x4 tile, Winograd pairs)",
        }
    }

    fn mr(self) -> usize {
        match self {
            Kernel::Avx512 => 8,
            Kernel::Avx2 => 4,
            Kernel::Scalar => 4,
        }
    }

    fn nr(self) -> usize {
        match self {
            Kernel::Avx512 => 16,
            Kernel::Avx2 => 8,
            Kernel::Scalar => 4,
        }
    }

    /// Runs the micro-kernel: `out (mr x nr) = Σ_{l < kp} (a_{2l} + b_{2l+1}) ∘ (a_{2l+1} + b_{2l})`
    /// over packed panels `a` (`2kp x mr`) and `b` (`2kp x nr`).
    fn run(self, kp: usize, a: &[u64], b: &[u64], out: &mut [u64]) {
        let (mr, nr) = (self.mr(), self.nr());
        assert!(a.len() >= 2 * kp * mr && b.len() >= 2 * kp * nr && out.len() >= mr * nr);
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                debug_assert!(self.is_available());
                // SAFETY: `gemm_with` only dispatches here after `is_available` confirmed
                // AVX-512F/DQ, and the lengths were checked just above.
                unsafe { x86::kernel_avx512(kp, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                debug_assert!(self.is_available());
                // SAFETY: as above, for AVX2.
                unsafe { x86::kernel_avx2(kp, a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) }
            }
            _ => kernel_scalar(kp, a, b, out),
        }
    }
}

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

/// At most this many rows of `op(a)` (a batch of a few samples through a linear layer):
/// packing `b` would cost more than the product, so [`gemm_few_rows`] reads it in place.
const FEW_ROWS: usize = 4;

/// Unpacked product for a few rows of `op(a)`, in parallel over blocks of output columns:
/// with `b_trans` every output is a dot product of two contiguous rows (a linear layer's
/// weights `[out, in]`), else each row of `b` is streamed once per row of `a`.
/// Measured on the LeNet linear layer 800 → 500 at batch 1: 1.2 to 3.4 ms through the
/// packed path, most of it packing the 400,000 weights; this reads them once.
fn gemm_few_rows(m: usize, k: usize, n: usize, a: &[u64], a_trans: bool, b: &[u64], b_trans: bool, c: &mut [u64]) {
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
fn dot(a: &[u64], b: &[u64], wide: bool) -> u64 {
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
const FEW_COLS: usize = 16;

/// ...and at most this many words of `op(b)` (1 MiB), which every row of `a` reads again
/// and must stay in the L2 cache: a weight gradient's few columns are long.
const FEW_COLS_WORDS: usize = 128 * 1024;

/// `c (m x n) = a · bt^T` for a row-major `a` (`m x k`) and few columns, `bt` (`n x k`)
/// their transpose: in parallel over blocks of rows of `a`, each row read from memory once
/// and dotted with every column while it is in L1. With AVX-512, Winograd's inner product
/// ([`FewCols`]): half the multiplies of plain dot products.
fn gemm_few_cols(m: usize, k: usize, n: usize, a: &[u64], bt: &[u64], c: &mut [u64]) {
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
struct FewCols<'a> {
    /// Chunks of 16 words of `k`.
    chunks: usize,
    /// Column `j`'s chunks, even then odd words: `16 * chunks` words from `j * 16 * chunks`.
    split: Vec<u64>,
    /// Column `j`'s `Σ b_{2l} b_{2l+1}` over its chunks.
    corr: Vec<u64>,
    /// The columns as given (`n x k`), for the last words.
    bt: &'a [u64],
    k: usize,
}

impl<'a> FewCols<'a> {
    fn new(k: usize, n: usize, bt: &'a [u64]) -> Self {
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
    fn tail(&self, a: &[u64], j: usize) -> u64 {
        let from = 16 * self.chunks;
        let col = &self.bt[j * self.k + from..(j + 1) * self.k];
        a[from..].iter().zip(col).fold(0u64, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)))
    }
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

/// The packed path: packs both operands into panels and runs the micro-kernel over blocks
/// of the output in parallel.
fn gemm_packed(kernel: Kernel, m: usize, k: usize, n: usize, a: &dyn Operand, b: &dyn Operand, out: Out) {
    if m == 0 || n == 0 {
        return;
    }
    assert_eq!(out.m, m, "gemm: the output has {} rows, needs {m}", out.m);
    if k == 0 {
        out.pieces.into_iter().for_each(|(_, _, s)| s.fill(0));
        return;
    }
    let (mr, nr) = (kernel.mr(), kernel.nr());
    let kpad = k + (k & 1);
    let (mut pa, mut pb) = (take_buf(0), take_buf(1));
    let ra = pack(a, m, k, kpad, mr, &mut pa);
    let cb = pack(b, n, k, kpad, nr, &mut pb);

    // Split the output into blocks: at most MC_MAX x NC_MAX, and enough of them to keep
    // every thread busy.
    let threads = rayon::current_num_threads().max(1);
    let (mut mc, mut nc) = (round_up(m.min(MC_MAX), mr), round_up(n.min(NC_MAX), nr));
    while m.div_ceil(mc) * n.div_ceil(nc) < 4 * threads {
        if nc >= mc && nc > 2 * nr {
            nc = round_up(nc / 2, nr);
        } else if mc > 2 * mr {
            mc = round_up(mc / 2, mr);
        } else if nc > nr {
            nc = round_up(nc / 2, nr);
        } else {
            break;
        }
    }
    let (mb, nb) = (m.div_ceil(mc), n.div_ceil(nc));

    // Hand each block its pieces of C, cut at the block boundaries (still sorted by row
    // and column).
    let mut blocks: Vec<Vec<Piece>> = (0..mb * nb).map(|_| Vec::new()).collect();
    for (i, mut j, mut s) in out.pieces {
        while !s.is_empty() {
            let jb = j / nc;
            let len = ((jb + 1) * nc - j).min(s.len());
            let (head, tail) = s.split_at_mut(len);
            blocks[(i / mc) * nb + jb].push((i, j, head));
            (j, s) = (j + len, tail);
        }
    }

    let kp = kpad / 2;
    let nkb = kp.div_ceil(KC_PAIRS);
    let kcp = kp.div_ceil(nkb);
    let ctx = Ctx { kernel, kpad, pa: &pa, pb: &pb, ra: &ra, cb: &cb, kcp, kp };
    blocks.into_par_iter().enumerate().for_each(|(bi, mut pieces)| {
        let (i0, j0) = ((bi / nb) * mc, (bi % nb) * nc);
        ctx.block(i0, j0, mc.min(m - i0), nc.min(n - j0), &mut pieces);
    });
    put_buf(0, pa);
    put_buf(1, pb);
}

thread_local! {
    static BUFS: std::cell::RefCell<[Vec<u64>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// This thread's kept packing buffer `i` (possibly empty).
fn take_buf(i: usize) -> Vec<u64> {
    BUFS.with(|b| std::mem::take(&mut b.borrow_mut()[i]))
}

/// Returns a packing buffer for reuse by the next product on this thread.
fn put_buf(i: usize, buf: Vec<u64>) {
    if buf.capacity() <= KEEP_BUF {
        BUFS.with(|b| b.borrow_mut()[i] = buf);
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to).max(1) * to
}

struct Ctx<'a> {
    kernel: Kernel,
    kpad: usize,
    pa: &'a [u64],
    pb: &'a [u64],
    ra: &'a [u64],
    cb: &'a [u64],
    kcp: usize,
    kp: usize,
}

impl Ctx<'_> {
    /// Computes the `bm x bn` block of C whose top-left corner is `(i0, j0)` into
    /// `pieces`, the parts of C in the block sorted by row and column.
    fn block(&self, i0: usize, j0: usize, bm: usize, bn: usize, pieces: &mut [Piece]) {
        let (mr, nr) = (self.kernel.mr(), self.kernel.nr());
        // Row i0 + r's pieces are pieces[starts[r]..starts[r + 1]].
        let mut starts = vec![0; bm + 1];
        for &(i, _, _) in pieces.iter() {
            starts[i - i0 + 1] += 1;
        }
        for r in 0..bm {
            starts[r + 1] += starts[r];
        }
        let mut tile = [0u64; 8 * 16];
        let mut l0 = 0;
        while l0 < self.kp {
            let lk = self.kcp.min(self.kp - l0);
            let first = l0 == 0;
            for jr in (0..bn).step_by(nr) {
                let jp = (j0 + jr) / nr;
                let bpanel = &self.pb[jp * self.kpad * nr + 2 * l0 * nr..][..2 * lk * nr];
                let nv = nr.min(bn - jr);
                for ir in (0..bm).step_by(mr) {
                    let ip = (i0 + ir) / mr;
                    let apanel = &self.pa[ip * self.kpad * mr + 2 * l0 * mr..][..2 * lk * mr];
                    self.kernel.run(lk, apanel, bpanel, &mut tile);
                    let mv = mr.min(bm - ir);
                    for ii in 0..mv {
                        let t = &tile[ii * nr..ii * nr + nv];
                        let r = self.ra[i0 + ir + ii];
                        let cc = &self.cb[j0 + jr..j0 + jr + nv];
                        let row = &mut pieces[starts[ir + ii]..starts[ir + ii + 1]];
                        for_span(row, j0 + jr, nv, |o, dst| {
                            if first {
                                for ((d, &t), &cj) in dst.iter_mut().zip(&t[o..]).zip(&cc[o..]) {
                                    *d = t.wrapping_sub(r).wrapping_sub(cj);
                                }
                            } else {
                                for (d, &t) in dst.iter_mut().zip(&t[o..]) {
                                    *d = d.wrapping_add(t);
                                }
                            }
                        });
                    }
                }
            }
            l0 += lk;
        }
    }
}

/// Packs an operand of `lines x k` into panels of `w` lines: panel `p` holds `kpad x w`
/// values, entry `(x, kk)` at `kk * w + (x - p*w)`, zero-padded. Also returns the
/// Winograd line terms `Σ_l op(x, 2l) op(x, 2l+1)` (length `lines` rounded up to `w`).
fn pack(op: &dyn Operand, lines: usize, k: usize, kpad: usize, w: usize, buf: &mut Vec<u64>) -> Vec<u64> {
    let panels = lines.div_ceil(w);
    buf.resize(panels * kpad * w, 0);
    let mut corr = vec![0u64; panels * w];
    let pack_panel = |(p, (dst, corr)): (usize, (&mut [u64], &mut [u64]))| {
        let cnt = w.min(lines - p * w);
        // The buffer may be reused: the padding lines and inner step must be zero.
        if cnt < w {
            dst.chunks_mut(w).for_each(|row| row[cnt..].fill(0));
        }
        dst[k * w..].fill(0);
        op.pack(p * w, cnt, k, w, dst);
        winograd_terms(dst, w, corr);
    };
    if buf.len() < PAR_PACK {
        buf.chunks_mut(kpad * w).zip(corr.chunks_mut(w)).enumerate().for_each(pack_panel);
    } else {
        buf.par_chunks_mut(kpad * w).zip(corr.par_chunks_mut(w)).enumerate().for_each(pack_panel);
    }
    corr
}

/// `corr[x] = Σ_l panel[2l][x] * panel[2l+1][x]` for a packed panel of width `w`.
fn winograd_terms(panel: &[u64], w: usize, corr: &mut [u64]) {
    for pair in panel.chunks_exact(2 * w) {
        let (even, odd) = pair.split_at(w);
        for ((c, &e), &o) in corr.iter_mut().zip(even).zip(odd) {
            *c = c.wrapping_add(e.wrapping_mul(o));
        }
    }
}

/// Portable micro-kernel, `4 x 4`.
fn kernel_scalar(kp: usize, a: &[u64], b: &[u64], out: &mut [u64]) {
    const MR: usize = 4;
    const NR: usize = 4;
    let mut acc = [[0u64; NR]; MR];
    for (ap, bp) in a.chunks_exact(2 * MR).zip(b.chunks_exact(2 * NR)).take(kp) {
        let (a0, a1) = ap.split_at(MR);
        let (b0, b1) = bp.split_at(NR);
        for i in 0..MR {
            for j in 0..NR {
                let p = a0[i].wrapping_add(b1[j]).wrapping_mul(a1[i].wrapping_add(b0[j]));
                acc[i][j] = acc[i][j].wrapping_add(p);
            }
        }
    }
    for (o, row) in out.chunks_exact_mut(NR).zip(&acc) {
        o.copy_from_slice(row);
    }
}

// The AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable since Rust
// 1.89 (safe intrinsic calls inside `#[target_feature]` functions since 1.86), above the
// workspace's declared 1.85: this module needs a 1.89+ toolchain.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod x86 {
    use std::arch::x86_64::*;

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

    /// One row of [`super::gemm_few_cols`] with Winograd's inner product
    /// ([`super::FewCols`]): `out[j]` is row `a` dotted with column `j`, for every column,
    /// eight columns at a time.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn few_cols_row_avx512(a: &[u64], cols: &super::FewCols<'_>, out: &mut [u64]) {
        // The row's correction Σ a_{2l} a_{2l+1} over the chunks.
        let mut row = _mm512_setzero_si512();
        for c in 0..cols.chunks {
            let (even, odd) = split_chunk(a, c);
            row = _mm512_add_epi64(row, _mm512_mullo_epi64(even, odd));
        }
        let row = sum_lanes(row);
        let mut j0 = 0;
        while j0 < out.len() {
            let end = (j0 + 8).min(out.len());
            let block = &mut out[j0..end];
            match block.len() {
                8 => columns::<8>(a, cols, j0, row, block),
                7 => columns::<7>(a, cols, j0, row, block),
                6 => columns::<6>(a, cols, j0, row, block),
                5 => columns::<5>(a, cols, j0, row, block),
                4 => columns::<4>(a, cols, j0, row, block),
                3 => columns::<3>(a, cols, j0, row, block),
                2 => columns::<2>(a, cols, j0, row, block),
                _ => columns::<1>(a, cols, j0, row, block),
            }
            j0 += 8;
        }
    }

    /// `N` columns from `j0` of [`few_cols_row_avx512`], one accumulator each.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn columns<const N: usize>(a: &[u64], cols: &super::FewCols<'_>, j0: usize, row: u64, out: &mut [u64]) {
        let mut acc = [_mm512_setzero_si512(); N];
        let len = 16 * cols.chunks;
        for c in 0..cols.chunks {
            let (even, odd) = split_chunk(a, c);
            for (t, acc) in acc.iter_mut().enumerate() {
                let col = &cols.split[(j0 + t) * len + 16 * c..][..16];
                // SAFETY: `col` holds 16 words: eight at 0 and eight at 8.
                let (ce, co) = unsafe {
                    (_mm512_loadu_si512(col.as_ptr().cast()), _mm512_loadu_si512(col.as_ptr().add(8).cast()))
                };
                let p = _mm512_mullo_epi64(_mm512_add_epi64(even, co), _mm512_add_epi64(odd, ce));
                *acc = _mm512_add_epi64(*acc, p);
            }
        }
        for (t, (o, acc)) in out.iter_mut().zip(acc).enumerate() {
            let j = j0 + t;
            *o = sum_lanes(acc).wrapping_sub(row).wrapping_sub(cols.corr[j]).wrapping_add(cols.tail(a, j));
        }
    }

    /// Chunk `c` of a row (words `16c .. 16c + 16`, inside `a`): its even words and its
    /// odd words.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn split_chunk(a: &[u64], c: usize) -> (__m512i, __m512i) {
        let w = &a[16 * c..16 * c + 16];
        // SAFETY: `w` holds 16 words: eight at 0 and eight at 8.
        let (lo, hi) = unsafe { (_mm512_loadu_si512(w.as_ptr().cast()), _mm512_loadu_si512(w.as_ptr().add(8).cast())) };
        let even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
        (_mm512_permutex2var_epi64(lo, even, hi), _mm512_permutex2var_epi64(lo, odd, hi))
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        // splitmix64
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn naive(m: usize, k: usize, n: usize, a: &[u64], at: bool, b: &[u64], bt: bool) -> Vec<u64> {
        let mut c = vec![0u64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0u64;
                for kk in 0..k {
                    let av = if at { a[kk * m + i] } else { a[i * k + kk] };
                    let bv = if bt { b[j * k + kk] } else { b[kk * n + j] };
                    s = s.wrapping_add(av.wrapping_mul(bv));
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    fn check(kernel: Option<Kernel>, m: usize, k: usize, n: usize, seed: &mut u64) {
        let a: Vec<u64> = (0..m * k).map(|_| rng(seed)).collect();
        let b: Vec<u64> = (0..k * n).map(|_| rng(seed)).collect();
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            let want = naive(m, k, n, &a, at, &b, bt);
            let mut c = vec![0xDEAD_BEEFu64; m * n];
            match kernel {
                Some(kn) => gemm_with(kn, m, k, n, &a, at, &b, bt, &mut c),
                None => gemm(m, k, n, &a, at, &b, bt, &mut c),
            }
            assert_eq!(c, want, "kernel {kernel:?} m={m} k={k} n={n} at={at} bt={bt}");
        }
    }

    const SHAPES: &[(usize, usize, usize)] = &[
        (0, 0, 0),
        (0, 5, 3),
        (3, 0, 5),
        (4, 7, 0),
        (1, 1, 1),
        (1, 2, 1),
        (2, 3, 5),
        (7, 13, 17),
        (8, 16, 16),
        (9, 1, 33),
        (17, 31, 19),
        (31, 2, 29),
        (37, 41, 43),
        (64, 64, 64),
        (65, 257, 67),
        (3, 301, 2),
    ];

    #[test]
    fn every_kernel_matches_naive() {
        let mut seed = 1;
        let kernels = Kernel::available();
        assert!(kernels.contains(&Kernel::Scalar));
        assert_eq!(kernels[0], Kernel::detect());
        for kn in kernels {
            for &(m, k, n) in SHAPES {
                check(Some(kn), m, k, n, &mut seed);
            }
        }
    }

    #[test]
    fn dispatching_entry_matches_naive() {
        let mut seed = 2;
        for &(m, k, n) in SHAPES {
            check(None, m, k, n, &mut seed);
        }
        // Blocks split across several parallel tasks and cache blocks.
        check(None, 300, 20, 600, &mut seed);
        // A few rows past the tiny size (gemm_few_rows), partial column blocks included.
        check(None, 1, 800, 500, &mut seed);
        check(None, 4, 333, 65, &mut seed);
        check(None, 3, 3000, 7, &mut seed);
        check(None, 130, 300, 70, &mut seed);
        // Dot products around the AVX-512 loop's 32-word steps, and its tail.
        for k in [31, 32, 33, 64, 95] {
            check(None, 2, k, 300, &mut seed);
        }
    }

    /// The few-columns path of the operands' entry against the naive product: a row-major
    /// `a` and few columns (1, 4, 16), including row blocks with a partial last one, and
    /// columns too long for it (the packed path).
    #[test]
    fn few_columns_match_naive() {
        let mut seed = 5;
        let shapes = [(5, 2000, 1), (37, 300, 4), (100, 1000, 16), (24, 9000, 16), (6, 100, 17), (9, 4608, 16)];
        // k below, at and past chunks of 16 (the Winograd chunks and their plain tail), odd
        // k, and every column count up to 16 (blocks of eight columns and their remainders).
        let more = (1..=16).map(|n| (9, 1024 + [15, 16, 17, 33, 47, 160][n % 6], n));
        for (m, k, n) in shapes.into_iter().chain(more) {
            let a: Vec<u64> = (0..m * k).map(|_| rng(&mut seed)).collect();
            let b: Vec<u64> = (0..k * n).map(|_| rng(&mut seed)).collect();
            let mut c = vec![0xDEAD_BEEFu64; m * n];
            gemm_ops(m, k, n, &View::rows(&a, k), &View::cols(&b, n), Out::dense(&mut c, n));
            assert_eq!(c, naive(m, k, n, &a, false, &b, false), "m={m} k={k} n={n}");
        }
    }

    #[test]
    fn huge_k() {
        let mut seed = 3;
        for kn in Kernel::available() {
            check(Some(kn), 5, 4099, 11, &mut seed);
            check(Some(kn), 1, 20_000, 1, &mut seed);
        }
        check(None, 19, 3001, 23, &mut seed);
    }

    #[test]
    fn random_sizes() {
        let mut seed = 4;
        for _ in 0..40 {
            let m = (rng(&mut seed) % 50) as usize;
            let k = (rng(&mut seed) % 90) as usize;
            let n = (rng(&mut seed) % 50) as usize;
            check(None, m, k, n, &mut seed);
            let kn = Kernel::available()[(rng(&mut seed) % Kernel::available().len() as u64) as usize];
            check(Some(kn), m, k, n, &mut seed);
        }
    }

    #[test]
    fn extreme_values_wrap() {
        let (m, k, n) = (9, 33, 17);
        for kn in Kernel::available() {
            let a = vec![u64::MAX; m * k];
            let b = vec![u64::MAX - 1; k * n];
            let mut c = vec![0u64; m * n];
            gemm_with(kn, m, k, n, &a, false, &b, false, &mut c);
            assert_eq!(c, naive(m, k, n, &a, false, &b, false), "{kn:?}");
        }
    }
}
