//! Pooling on the CPU: window sums, window extraction and their adjoints.

use rayon::prelude::*;

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

pub(crate) fn sum(input: &[u64], p: &Pool2dParams) -> Vec<u64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.in_h * p.in_w);
    let mut out = vec![0u64; p.batch * p.channels * oh * ow];
    if oh * ow == 0 {
        return out;
    }
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(pc, o)| {
        let src = &input[pc * plane..(pc + 1) * plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0u64;
                for_window(p, oy, ox, |_, i| {
                    if let Some(i) = i {
                        acc = acc.wrapping_add(src[i]);
                    }
                });
                o[oy * ow + ox] = acc;
            }
        }
    });
    out
}

pub(crate) fn sum_backward(grad: &[u64], p: &Pool2dParams) -> Vec<u64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.in_h * p.in_w);
    let mut out = vec![0u64; p.batch * p.channels * plane];
    if plane == 0 {
        return out;
    }
    out.par_chunks_mut(plane).enumerate().for_each(|(pc, o)| {
        let g = &grad[pc * oh * ow..(pc + 1) * oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let v = g[oy * ow + ox];
                for_window(p, oy, ox, |_, i| {
                    if let Some(i) = i {
                        o[i] = o[i].wrapping_add(v);
                    }
                });
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
