//! Pooling on the CPU: window sums, window extraction and their adjoints.

use rayon::prelude::*;

use super::im2col::valid_range;
use crate::shape::Pool2dParams;

/// Calls `f(window_index, input_index_or_none)` for each window position of output (oy, ox).
#[inline]
fn for_window(p: &Pool2dParams, oy: usize, ox: usize, mut f: impl FnMut(usize, Option<usize>)) {
    for ky in 0..p.kh {
        for kx in 0..p.kw {
            let y = (oy * p.stride_h + ky) as isize - p.pad_h as isize;
            let x = (ox * p.stride_w + kx) as isize - p.pad_w as isize;
            let inside = y >= 0 && x >= 0 && (y as usize) < p.in_h && (x as usize) < p.in_w;
            f(ky * p.kw + kx, inside.then(|| y as usize * p.in_w + x as usize));
        }
    }
}

/// Planes (one image's channel) per parallel task: about [`super::CHUNK`] elements of the
/// larger side, so small planes (LeNet's 12x12) do not make a task each.
fn planes_per_task(plane: usize) -> usize {
    (super::CHUNK / plane.max(1)).max(1)
}

/// Calls `f(o, i)` for every output `o` and input `i` of the plane that kernel offset
/// `(ky, kx)` joins, row by row over the outputs whose input lies inside the image (no
/// test per element).
#[inline]
fn for_offset(p: &Pool2dParams, ky: usize, kx: usize, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (oy0, oy1) = valid_range(oh, p.stride_h, ky, p.pad_h, p.in_h);
    let (ox0, ox1) = valid_range(ow, p.stride_w, kx, p.pad_w, p.in_w);
    for oy in oy0..oy1 {
        let y = oy * p.stride_h + ky - p.pad_h;
        for ox in ox0..ox1 {
            f(oy * ow + ox, y * p.in_w + ox * p.stride_w + kx - p.pad_w);
        }
    }
}

pub(crate) fn sum(input: &[u64], p: &Pool2dParams) -> Vec<u64> {
    let (ohw, plane) = (p.out_h() * p.out_w(), p.in_h * p.in_w);
    let mut out = vec![0u64; p.batch * p.channels * ohw];
    if ohw == 0 {
        return out;
    }
    let per = planes_per_task(plane);
    out.par_chunks_mut(ohw * per).enumerate().for_each(|(t, block)| {
        for (k, o) in block.chunks_mut(ohw).enumerate() {
            let src = &input[(t * per + k) * plane..][..plane];
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    for_offset(p, ky, kx, |oi, ii| o[oi] = o[oi].wrapping_add(src[ii]));
                }
            }
        }
    });
    out
}

pub(crate) fn sum_backward(grad: &[u64], p: &Pool2dParams) -> Vec<u64> {
    let (ohw, plane) = (p.out_h() * p.out_w(), p.in_h * p.in_w);
    let mut out = vec![0u64; p.batch * p.channels * plane];
    if plane == 0 {
        return out;
    }
    let per = planes_per_task(plane);
    out.par_chunks_mut(plane * per).enumerate().for_each(|(t, block)| {
        for (k, o) in block.chunks_mut(plane).enumerate() {
            let g = &grad[(t * per + k) * ohw..][..ohw];
            for ky in 0..p.kh {
                for kx in 0..p.kw {
                    for_offset(p, ky, kx, |oi, ii| o[ii] = o[ii].wrapping_add(g[oi]));
                }
            }
        }
    });
    out
}

pub(crate) fn windows(input: &[u64], p: &Pool2dParams, pad: u64) -> Vec<u64> {
    let (oh, ow, plane, kk) = (p.out_h(), p.out_w(), p.in_h * p.in_w, p.kh * p.kw);
    let mut out = vec![0u64; p.batch * p.channels * oh * ow * kk];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(oh * ow * kk).enumerate().for_each(|(pc, o)| {
        let src = &input[pc * plane..(pc + 1) * plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let w = &mut o[(oy * ow + ox) * kk..(oy * ow + ox + 1) * kk];
                for_window(p, oy, ox, |k, i| w[k] = i.map_or(pad, |i| src[i]));
            }
        }
    });
    out
}

pub(crate) fn windows_backward(win: &[u64], p: &Pool2dParams) -> Vec<u64> {
    let (oh, ow, plane, kk) = (p.out_h(), p.out_w(), p.in_h * p.in_w, p.kh * p.kw);
    let mut out = vec![0u64; p.batch * p.channels * plane];
    if plane == 0 {
        return out;
    }
    out.par_chunks_mut(plane).enumerate().for_each(|(pc, o)| {
        let g = &win[pc * oh * ow * kk..(pc + 1) * oh * ow * kk];
        for oy in 0..oh {
            for ox in 0..ow {
                let w = &g[(oy * ow + ox) * kk..(oy * ow + ox + 1) * kk];
                for_window(p, oy, ox, |k, i| {
                    if let Some(i) = i {
                        o[i] = o[i].wrapping_add(w[k]);
                    }
                });
            }
        }
    });
    out
}
