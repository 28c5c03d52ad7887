//! Where the ring GEMM's packing reads an operand from ([`Operand`]), and where it writes
//! the product ([`Out`]).
//!
//! The GEMM ([`super::gemm`]) never reads `A` or `B` directly: it asks an [`Operand`] to
//! write panels of a few *lines* (rows of `op(A)`, columns of `op(B)`) over the inner
//! dimension. A [`View`] reads a matrix stored with strides, which covers row-major,
//! transposed and per-image (NCHW) layouts; the convolution's patch matrices
//! ([`super::im2col`]) compute their entries from the image, so they are never stored.

/// A GEMM operand seen as `lines x k`: line `x` is row `x` of `op(A)` or column `x` of
/// `op(B)`, `kk` indexes the inner dimension.
pub trait Operand: Sync {
    /// Writes entry `(x, kk)` for every line `x0 <= x < x0 + w` and `kk < k` at
    /// `dst[kk * width + (x - x0)]`, leaving the other entries of `dst` as they are.
    fn pack(&self, x0: usize, w: usize, k: usize, width: usize, dst: &mut [u64]);

    /// The whole operand as a row-major `lines x k` slice, when it is stored so (a plain
    /// matrix or a convolution's weights): products with few columns read it in place.
    fn rows(&self, _lines: usize, _k: usize) -> Option<&[u64]> {
        None
    }
}

/// The most lines a [`View`] gathers at once (an `MR` or `NR` panel).
const MAX_WIDTH: usize = 16;

/// One index of a [`View`]: `t` is at offset `(t / seg) * seg_stride + (t % seg) * stride`,
/// i.e. runs of `seg` evenly strided elements, one run every `seg_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    stride: usize,
    seg: usize,
    seg_stride: usize,
}

impl Axis {
    /// Offset `t * stride`.
    pub fn strided(stride: usize) -> Axis {
        Axis { stride, seg: usize::MAX, seg_stride: 0 }
    }

    /// Runs of `seg` consecutive elements, one every `seg_stride` (`(n, pixel)` columns of
    /// an NCHW tensor: `seg = H*W`, `seg_stride = C*H*W`).
    pub fn segments(seg: usize, seg_stride: usize) -> Axis {
        Axis { stride: 1, seg: seg.max(1), seg_stride }
    }

    fn offset(self, t: usize) -> usize {
        (t / self.seg) * self.seg_stride + (t % self.seg) * self.stride
    }

    /// How many indices from `t` on (at most `max`) lie in `t`'s run.
    fn run(self, t: usize, max: usize) -> usize {
        (self.seg - t % self.seg).min(max)
    }
}

/// A stored matrix: entry `(x, kk)` at `data[line.offset(x) + inner.offset(kk)]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The elements.
    pub data: &'a [u64],
    /// Offsets of the lines.
    pub line: Axis,
    /// Offsets along the inner dimension.
    pub inner: Axis,
}

impl<'a> View<'a> {
    /// Row-major `lines x k` (`op(A)` of an untransposed `A`, `op(B)` of a transposed `B`).
    pub fn rows(data: &'a [u64], k: usize) -> View<'a> {
        View { data, line: Axis::strided(k), inner: Axis::strided(1) }
    }

    /// Row-major `k x lines` (`op(A)` of a transposed `A`, `op(B)` of an untransposed `B`).
    pub fn cols(data: &'a [u64], lines: usize) -> View<'a> {
        View { data, line: Axis::strided(1), inner: Axis::strided(lines) }
    }
}

impl Operand for View<'_> {
    fn rows(&self, lines: usize, k: usize) -> Option<&[u64]> {
        let plain = |a: Axis, stride: usize| a.stride == stride && a.seg == usize::MAX;
        (plain(self.line, k) && plain(self.inner, 1)).then(|| self.data.get(..lines * k)).flatten()
    }

    fn pack(&self, x0: usize, w: usize, k: usize, width: usize, dst: &mut [u64]) {
        if self.line.stride == 1 {
            // Lines are contiguous in runs: copy each inner step's runs.
            for kk in 0..k {
                let (base, row) = (self.inner.offset(kk), &mut dst[kk * width..][..w]);
                let mut x = 0;
                while x < w {
                    let len = self.line.run(x0 + x, w - x);
                    row[x..x + len].copy_from_slice(&self.data[base + self.line.offset(x0 + x)..][..len]);
                    x += len;
                }
            }
        } else if w <= MAX_WIDTH {
            // Each inner step gathers one entry of every line: `w` sequential read
            // streams, contiguous writes.
            let mut bases = [0; MAX_WIDTH];
            for (xx, b) in bases[..w].iter_mut().enumerate() {
                *b = self.line.offset(x0 + xx);
            }
            let mut kk = 0;
            while kk < k {
                let (len, off0) = (self.inner.run(kk, k - kk), self.inner.offset(kk));
                for (t, row) in dst[kk * width..].chunks_mut(width).take(len).enumerate() {
                    let off = off0 + t * self.inner.stride;
                    for (d, &b) in row[..w].iter_mut().zip(&bases[..w]) {
                        *d = self.data[b + off];
                    }
                }
                kk += len;
            }
        } else {
            // Blocks of the inner dimension, so the block of `dst` stays in L1 while
            // every line writes into it.
            const BLOCK: usize = 64;
            for k0 in (0..k).step_by(BLOCK) {
                let k1 = (k0 + BLOCK).min(k);
                for xx in 0..w {
                    let base = self.line.offset(x0 + xx);
                    let mut kk = k0;
                    while kk < k1 {
                        let len = self.inner.run(kk, k1 - kk);
                        let src = &self.data[base + self.inner.offset(kk)..];
                        let rows = dst[kk * width..].chunks_mut(width).take(len);
                        if self.inner.stride == 1 {
                            for (row, &v) in rows.zip(&src[..len]) {
                                row[xx] = v;
                            }
                        } else {
                            for (row, &v) in rows.zip(src.iter().step_by(self.inner.stride)) {
                                row[xx] = v;
                            }
                        }
                        kk += len;
                    }
                }
            }
        }
    }
}

/// A piece of the product's storage: `(row, first column, elements)`.
pub type Piece<'a> = (usize, usize, &'a mut [u64]);

/// The destination of an `m x n` product: pieces of rows that together cover every entry
/// once, sorted by row and then column. A row-major matrix has one piece per row; an
/// NCHW output, whose columns are `(image, pixel)`, one per row and image.
#[derive(Debug)]
pub struct Out<'a> {
    pub(crate) m: usize,
    pub(crate) pieces: Vec<Piece<'a>>,
}

impl<'a> Out<'a> {
    /// A row-major matrix of rows of `n` (`m = c.len() / n`).
    pub fn dense(c: &'a mut [u64], n: usize) -> Out<'a> {
        let pieces: Vec<Piece> = c.chunks_mut(n.max(1)).enumerate().map(|(i, r)| (i, 0, r)).collect();
        Out { m: pieces.len(), pieces }
    }

    /// `m` rows from pieces `(row, first column, elements)`, in any order.
    pub fn pieces(m: usize, mut pieces: Vec<Piece<'a>>) -> Out<'a> {
        pieces.sort_unstable_by_key(|&(i, j, _)| (i, j));
        Out { m, pieces }
    }

    /// Copies a row-major `m x n` matrix into the destination.
    pub(crate) fn copy_from(self, c: &[u64], n: usize) {
        for (i, j, s) in self.pieces {
            s.copy_from_slice(&c[i * n + j..][..s.len()]);
        }
    }
}

/// Calls `f(offset, part)` for the parts of one row's pieces (sorted by column) that lie
/// in columns `[j, j + len)`; `offset` counts from `j`.
#[inline]
pub(crate) fn for_span(row: &mut [Piece], j: usize, len: usize, mut f: impl FnMut(usize, &mut [u64])) {
    let first = if row.len() == 1 { 0 } else { row.partition_point(|(_, pj, s)| pj + s.len() <= j) };
    for (_, pj, s) in &mut row[first..] {
        if *pj >= j + len {
            break;
        }
        let (a, b) = (j.max(*pj), (j + len).min(*pj + s.len()));
        f(a - j, &mut s[a - *pj..b - *pj]);
    }
}
