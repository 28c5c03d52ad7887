//! Convolutions on the CPU as ring GEMMs ([`super::gemm`]) over the patch matrix.
//!
//! For group `g` the patch matrix `cols_g` has `(C/g)*KH*KW` rows and `N*OH*OW` columns
//! ([`super::im2col`]), so one product covers the whole batch:
//! - forward: `out_g = W_g · cols_g`
//! - gradient of the input: `cols_g = W_gᵀ · grad_g`, then col2im (scatter-add)
//! - gradient of the weight: `dW_g = grad_g · cols_gᵀ`
//!
//! No operand is copied into a matrix first: the GEMM packs `cols_g` and `cols_gᵀ`
//! straight from the NCHW input, and reads `grad_g` (`[OCg, N*OH*OW]`) and writes
//! `out_g` in place in their `[N, OC, OH, OW]` tensors, whose `(image, pixel)` columns are
//! one run of `OH*OW` per image ([`super::operand`]). Only the input gradient's `cols_g`
//! is stored, for col2im, in a buffer the thread keeps for its next call. The batch is
//! processed in chunks of whole images whose patch matrix stays around `CHUNK_ELEMS`
//! elements, which bounds the packing buffers and `cols_g`. Groups run in parallel.

use rayon::prelude::*;

use super::gemm::gemm_ops;
use super::im2col::{valid_range, Cols, Patches, PatchesT};
use super::operand::{Axis, Out, Piece, View};
use crate::shape::Conv2dParams;

/// Target size (elements) of one chunk's patch matrix, all groups together.
const CHUNK_ELEMS: usize = 1 << 20;

/// The input gradient's columns buffer is kept per thread for reuse when at most this
/// long (elements), which saves clearing it and the page faults of a fresh one.
const KEEP_COLS: usize = CHUNK_ELEMS;

thread_local! {
    static COLS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The images `[n0, n0 + nb)` of a batch chunk.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    n0: usize,
    nb: usize,
}

/// Splits the batch into chunks of whole images.
fn chunks(p: &Conv2dParams, chunk_elems: usize) -> Vec<Chunk> {
    let per_image = (p.in_c * p.kh * p.kw * p.out_h() * p.out_w()).max(1);
    let nb = (chunk_elems / per_image).clamp(1, p.batch.max(1));
    (0..p.batch).step_by(nb).map(|n0| Chunk { n0, nb: nb.min(p.batch - n0) }).collect()
}

/// col2im: adds every group's columns (of the images of a chunk; group `g`'s at
/// `cols[g * stride..]`) onto `out`, the chunk's `[nb, C, H, W]` slab.
fn col2im_add(cols: &[u64], stride: usize, p: &Conv2dParams, nb: usize, out: &mut [u64]) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let cg = p.in_c / p.groups;
    let cols_n = nb * oh * ow;
    let plane = p.in_h * p.in_w;
    if plane == 0 {
        return;
    }
    // Parallel over (n, channel) planes: each plane is written by one task.
    out.par_chunks_mut(plane).enumerate().for_each(|(idx, dst)| {
        let (n, chan) = (idx / p.in_c, idx % p.in_c);
        let (cols, c) = (&cols[(chan / cg) * stride..], chan % cg);
        for ky in 0..p.kh {
            let (oy0, oy1) = valid_range(oh, p.stride_h, ky, p.pad_h, p.in_h);
            for kx in 0..p.kw {
                let (ox0, ox1) = valid_range(ow, p.stride_w, kx, p.pad_w, p.in_w);
                let r = (c * p.kh + ky) * p.kw + kx;
                let row = &cols[r * cols_n + n * oh * ow..][..oh * ow];
                for oy in oy0..oy1 {
                    let y = oy * p.stride_h + ky - p.pad_h;
                    if ox0 == ox1 {
                        continue; // no valid output column: x0 may lie past the row
                    }
                    let x0 = ox0 * p.stride_w + kx - p.pad_w;
                    let drow = &mut dst[y * p.in_w..][..p.in_w];
                    let srow = &row[oy * ow + ox0..oy * ow + ox1];
                    for (d, &v) in drow[x0..].iter_mut().step_by(p.stride_w).zip(srow) {
                        *d = d.wrapping_add(v);
                    }
                }
            }
        }
    });
}

/// Group `g` of a chunk's output gradient, `[OCg, nb*OH*OW]`, read in place from
/// `[N, OC, OH, OW]`; with `rows`, as `op(A)` (lines are channels), else as `op(B)`
/// (lines are pixels).
fn grad_view<'a>(grad_out: &'a [u64], p: &Conv2dParams, g: usize, ch: Chunk, rows: bool) -> View<'a> {
    let (ohw, ocg) = (p.out_h() * p.out_w(), p.out_c / p.groups);
    let data = &grad_out[(ch.n0 * p.out_c + g * ocg) * ohw..];
    let (chan, pixel) = (Axis::strided(ohw), Axis::segments(ohw, p.out_c * ohw));
    if rows {
        View { data, line: chan, inner: pixel }
    } else {
        View { data, line: pixel, inner: chan }
    }
}

/// Forward convolution.
pub fn forward(input: &[u64], weight: &[u64], p: &Conv2dParams) -> Vec<u64> {
    forward_chunked(input, weight, p, CHUNK_ELEMS)
}

fn forward_chunked(input: &[u64], weight: &[u64], p: &Conv2dParams, chunk_elems: usize) -> Vec<u64> {
    let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
    let kdim = cg * p.kh * p.kw;
    let mut out = vec![0u64; p.batch * p.out_c * ohw];
    if out.is_empty() {
        return out;
    }
    for ch in chunks(p, chunk_elems) {
        let slab = &mut out[ch.n0 * p.out_c * ohw..][..ch.nb * p.out_c * ohw];
        // Output row (n, oc) is columns [n*OH*OW, (n+1)*OH*OW) of row oc % OCg of group
        // oc / OCg's product.
        let mut pieces: Vec<Vec<Piece>> = (0..p.groups).map(|_| Vec::with_capacity(ocg * ch.nb)).collect();
        for (idx, row) in slab.chunks_mut(ohw).enumerate() {
            let (n, oc) = (idx / p.out_c, idx % p.out_c);
            pieces[oc / ocg].push((oc % ocg, n * ohw, row));
        }
        pieces.into_par_iter().enumerate().for_each(|(g, pieces)| {
            let w = View::rows(&weight[g * ocg * kdim..][..ocg * kdim], kdim);
            let cols = Patches(Cols::new(input, p, g, ch.n0));
            gemm_ops(ocg, kdim, ch.nb * ohw, &w, &cols, Out::pieces(ocg, pieces));
        });
    }
    out
}

/// Gradient with respect to the input.
pub fn grad_input(grad_out: &[u64], weight: &[u64], p: &Conv2dParams) -> Vec<u64> {
    grad_input_chunked(grad_out, weight, p, CHUNK_ELEMS)
}

fn grad_input_chunked(grad_out: &[u64], weight: &[u64], p: &Conv2dParams, chunk_elems: usize) -> Vec<u64> {
    let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
    let kdim = cg * p.kh * p.kw;
    let image = p.in_c * p.in_h * p.in_w;
    let mut out = vec![0u64; p.batch * image];
    if out.is_empty() {
        return out;
    }
    let chunks = chunks(p, chunk_elems);
    let max_nb = chunks.iter().map(|ch| ch.nb).max().unwrap_or(0);
    // Every group's columns, reused by every chunk and kept by the thread for the next
    // call (the products overwrite them, so they are never cleared).
    let stride = kdim * max_nb * ohw;
    let mut cols = COLS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    cols.resize(p.groups * stride, 0);
    for ch in chunks {
        let cols_n = ch.nb * ohw;
        cols.par_chunks_mut(stride.max(1)).enumerate().for_each(|(g, cols)| {
            let wt = View::cols(&weight[g * ocg * kdim..][..ocg * kdim], kdim);
            let grad = grad_view(grad_out, p, g, ch, false);
            gemm_ops(kdim, ocg, cols_n, &wt, &grad, Out::dense(&mut cols[..kdim * cols_n], cols_n));
        });
        col2im_add(&cols, stride, p, ch.nb, &mut out[ch.n0 * image..][..ch.nb * image]);
    }
    if cols.capacity() <= KEEP_COLS {
        COLS.with(|c| *c.borrow_mut() = cols);
    }
    out
}

/// Gradient with respect to the weight.
pub fn grad_weight(input: &[u64], grad_out: &[u64], p: &Conv2dParams) -> Vec<u64> {
    grad_weight_chunked(input, grad_out, p, CHUNK_ELEMS)
}

fn grad_weight_chunked(input: &[u64], grad_out: &[u64], p: &Conv2dParams, chunk_elems: usize) -> Vec<u64> {
    let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
    let kdim = cg * p.kh * p.kw;
    let mut out = vec![0u64; p.out_c * kdim];
    if out.is_empty() {
        return out;
    }
    let chunks = chunks(p, chunk_elems);
    out.par_chunks_mut(ocg * kdim).enumerate().for_each(|(g, dst)| {
        let mut part = vec![0u64; if chunks.len() > 1 { dst.len() } else { 0 }];
        for (i, &ch) in chunks.iter().enumerate() {
            let grad = grad_view(grad_out, p, g, ch, true);
            let cols_t = PatchesT(Cols::new(input, p, g, ch.n0));
            let k = ch.nb * ohw;
            if i == 0 {
                gemm_ops(ocg, k, kdim, &grad, &cols_t, Out::dense(dst, kdim));
            } else {
                // Sum over chunks: dW_g = Σ_chunks grad_chunk · cols_chunkᵀ.
                gemm_ops(ocg, k, kdim, &grad, &cols_t, Out::dense(&mut part, kdim));
                for (d, &v) in dst.iter_mut().zip(&part) {
                    *d = d.wrapping_add(v);
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rand_vec(len: usize, seed: &mut u64) -> Vec<u64> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *seed ^ (*seed >> 29)
            })
            .collect()
    }

    /// The direct 7-loop convolution: calls `f(output_index, input_index, weight_index)`
    /// for every term whose input position is inside the image.
    fn each_term(p: &Conv2dParams, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = (p.out_h(), p.out_w());
        let (ocg, cg) = (p.out_c / p.groups, p.in_c / p.groups);
        for n in 0..p.batch {
            for oc in 0..p.out_c {
                let g = oc / ocg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o_idx = ((n * p.out_c + oc) * oh + oy) * ow + ox;
                        for c in 0..cg {
                            for ky in 0..p.kh {
                                for kx in 0..p.kw {
                                    let y = (oy * p.stride_h + ky) as isize - p.pad_h as isize;
                                    let x = (ox * p.stride_w + kx) as isize - p.pad_w as isize;
                                    if y < 0 || x < 0 || y as usize >= p.in_h || x as usize >= p.in_w {
                                        continue;
                                    }
                                    let ch = g * cg + c;
                                    let i_idx = ((n * p.in_c + ch) * p.in_h + y as usize) * p.in_w + x as usize;
                                    let w_idx = ((oc * cg + c) * p.kh + ky) * p.kw + kx;
                                    f(o_idx, i_idx, w_idx);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn naive_forward(x: &[u64], w: &[u64], p: &Conv2dParams) -> Vec<u64> {
        let mut out = vec![0u64; p.output_shape().numel()];
        each_term(p, |o, i, wi| out[o] = out[o].wrapping_add(x[i].wrapping_mul(w[wi])));
        out
    }

    fn naive_grad_input(g: &[u64], w: &[u64], p: &Conv2dParams) -> Vec<u64> {
        let mut out = vec![0u64; p.input_shape().numel()];
        each_term(p, |o, i, wi| out[i] = out[i].wrapping_add(g[o].wrapping_mul(w[wi])));
        out
    }

    fn naive_grad_weight(x: &[u64], g: &[u64], p: &Conv2dParams) -> Vec<u64> {
        let mut out = vec![0u64; p.weight_shape().numel()];
        each_term(p, |o, i, wi| out[wi] = out[wi].wrapping_add(g[o].wrapping_mul(x[i])));
        out
    }

    fn dot(a: &[u64], b: &[u64]) -> u64 {
        a.iter().zip(b).fold(0u64, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)))
    }

    #[allow(clippy::too_many_arguments)]
    fn params(
        batch: usize,
        in_c: usize,
        hw: (usize, usize),
        out_c: usize,
        k: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        groups: usize,
    ) -> Conv2dParams {
        let p = Conv2dParams {
            batch,
            in_c,
            in_h: hw.0,
            in_w: hw.1,
            out_c,
            kh: k.0,
            kw: k.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_h: pad.0,
            pad_w: pad.1,
            groups,
        };
        p.validate().unwrap();
        p
    }

    #[test]
    fn conv_matches_direct_convolution() {
        let shapes = [
            params(1, 1, (28, 28), 20, (5, 5), (1, 1), (0, 0), 1), // LeNet conv1
            params(3, 4, (9, 9), 6, (3, 3), (1, 1), (1, 1), 1),
            params(2, 3, (11, 7), 5, (3, 2), (2, 3), (1, 2), 1),
            params(2, 6, (8, 8), 4, (3, 3), (2, 2), (1, 1), 2),
            params(5, 8, (7, 7), 8, (3, 3), (1, 1), (1, 1), 8), // depthwise
            params(2, 4, (6, 5), 8, (1, 1), (1, 1), (0, 0), 4),
            params(1, 6, (5, 5), 9, (5, 5), (1, 1), (2, 2), 3),
            params(2, 16, (6, 6), 40, (3, 3), (1, 1), (1, 1), 1), // packed GEMM path
            params(1, 2, (3, 3), 2, (3, 3), (3, 3), (2, 2), 1),   // kernel beyond the image
            // Packed GEMM paths through the implicit packing: strides, padding, groups.
            params(3, 8, (11, 9), 12, (3, 3), (2, 1), (1, 2), 2),
            params(2, 10, (13, 12), 10, (5, 3), (1, 2), (2, 1), 2),
            params(0, 2, (4, 4), 2, (3, 3), (1, 1), (1, 1), 1), // empty batch
            // Few output positions against many weights (gemm_few_cols): 4x4, 2x2 with
            // groups, 1x1; and a weight gradient with few columns (one input channel, 3x3).
            params(1, 16, (4, 4), 24, (3, 3), (1, 1), (1, 1), 1),
            params(1, 32, (2, 2), 40, (3, 3), (1, 1), (1, 1), 2),
            params(1, 64, (3, 3), 20, (3, 3), (1, 1), (0, 0), 1),
            params(2, 1, (10, 10), 8, (3, 3), (1, 1), (1, 1), 1),
        ];
        let mut seed = 7;
        for p in shapes {
            let x = rand_vec(p.input_shape().numel(), &mut seed);
            let w = rand_vec(p.weight_shape().numel(), &mut seed);
            let g = rand_vec(p.output_shape().numel(), &mut seed);
            let y = forward(&x, &w, &p);
            assert_eq!(y, naive_forward(&x, &w, &p), "forward {p:?}");
            let gx = grad_input(&g, &w, &p);
            assert_eq!(gx, naive_grad_input(&g, &w, &p), "grad_input {p:?}");
            let gw = grad_weight(&x, &g, &p);
            assert_eq!(gw, naive_grad_weight(&x, &g, &p), "grad_weight {p:?}");
            // Batch chunks of one image, and of two or more images.
            let per_image = p.in_c * p.kh * p.kw * p.out_h() * p.out_w();
            for elems in [1, 2 * per_image + 1] {
                assert_eq!(forward_chunked(&x, &w, &p, elems), y, "forward chunks {elems} {p:?}");
                assert_eq!(grad_input_chunked(&g, &w, &p, elems), gx, "grad_input chunks {elems} {p:?}");
                assert_eq!(grad_weight_chunked(&x, &g, &p, elems), gw, "grad_weight chunks {elems} {p:?}");
            }
            // Adjoint identities mod 2^64.
            let lhs = dot(&y, &g);
            assert_eq!(lhs, dot(&x, &gx), "<conv(x,w),g> = <x,grad_input> {p:?}");
            assert_eq!(lhs, dot(&w, &gw), "<conv(x,w),g> = <w,grad_weight> {p:?}");
        }
    }
}
