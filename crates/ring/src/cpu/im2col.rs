//! The convolution's patch matrix as a GEMM [`Operand`], computed from the NCHW input
//! while packing, so it is never stored.
//!
//! For group `g` and the images `[n0, n0 + nb)`, the patch matrix `cols` has a row per
//! kernel tap `r = (c, ky, kx)` (`c` a channel of the group) and a column per output
//! pixel `j = (n, oy, ox)`; entry `(r, j)` is the input at `(n0 + n, g*C/g + c,
//! oy*stride_h + ky - pad_h, ox*stride_w + kx - pad_w)`, or zero in the padding.
//! [`Patches`] is `cols` as `op(B)` of the forward product (lines are pixels),
//! [`PatchesT`] is `colsᵀ` as `op(B)` of the weight gradient (lines are taps).

use super::operand::Operand;
use crate::shape::Conv2dParams;

/// Valid output range `[lo, hi)` along one axis for kernel offset `kofs`: the outputs
/// whose input coordinate `o * stride + kofs - pad` lies inside `[0, len)`.
pub(crate) fn valid_range(out: usize, stride: usize, kofs: usize, pad: usize, len: usize) -> (usize, usize) {
    // o * stride + kofs >= pad  and  o * stride + kofs < pad + len
    let lo = pad.saturating_sub(kofs).div_ceil(stride);
    let hi = if pad + len > kofs { (pad + len - kofs).div_ceil(stride) } else { 0 };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// The patch matrix of group `g` over the images `[n0, n0 + nb)` of `input`.
#[derive(Debug)]
pub struct Cols<'a> {
    input: &'a [u64],
    p: &'a Conv2dParams,
    n0: usize,
    taps: Vec<Tap>,
}

/// One kernel tap: where its channel's plane starts in an image and which outputs see
/// the image.
#[derive(Clone, Copy, Debug)]
struct Tap {
    plane: usize,
    ky: usize,
    kx: usize,
    oy: (usize, usize),
    ox: (usize, usize),
}

impl<'a> Cols<'a> {
    /// The patch matrix of group `g` for the images from `n0` on.
    pub fn new(input: &'a [u64], p: &'a Conv2dParams, g: usize, n0: usize) -> Cols<'a> {
        let taps = (0..p.in_c / p.groups * p.kh * p.kw)
            .map(|r| {
                let (c, ky, kx) = (r / (p.kh * p.kw), (r / p.kw) % p.kh, r % p.kw);
                Tap {
                    plane: (g * (p.in_c / p.groups) + c) * p.in_h * p.in_w,
                    ky,
                    kx,
                    oy: valid_range(p.out_h(), p.stride_h, ky, p.pad_h, p.in_h),
                    ox: valid_range(p.out_w(), p.stride_w, kx, p.pad_w, p.in_w),
                }
            })
            .collect();
        Cols { input, p, n0, taps }
    }

    /// Where image `n` (of the chunk) starts in the input.
    fn image(&self, n: usize) -> usize {
        (self.n0 + n) * self.p.in_c * self.p.in_h * self.p.in_w
    }

    /// For tap `t` and output row `oy`, the outputs `ox0 + a .. ox0 + b` among
    /// `ox0 .. ox0 + len` whose input lies inside the image, and the offset in the image
    /// of the first one's input (`a == b` when none does).
    fn inside(&self, t: &Tap, oy: usize, ox0: usize, len: usize) -> (usize, usize, usize) {
        let p = self.p;
        if oy < t.oy.0 || oy >= t.oy.1 {
            return (0, 0, 0);
        }
        let lo = t.ox.0.clamp(ox0, ox0 + len);
        let hi = t.ox.1.clamp(lo, ox0 + len);
        if lo == hi {
            return (0, 0, 0);
        }
        let (y, x) = (oy * p.stride_h + t.ky - p.pad_h, lo * p.stride_w + t.kx - p.pad_w);
        (lo - ox0, hi - ox0, t.plane + y * p.in_w + x)
    }
}

/// `cols` as `op(B)` (`k` = taps, lines = pixels).
#[derive(Debug)]
pub struct Patches<'a>(pub Cols<'a>);

impl Operand for Patches<'_> {
    fn pack(&self, x0: usize, w: usize, k: usize, width: usize, dst: &mut [u64]) {
        let c = &self.0;
        let (oh, ow, sw) = (c.p.out_h(), c.p.out_w(), c.p.stride_w);
        // The lines cut into runs inside one output row:
        // (image offset, oy, first ox, first line, length).
        let mut runs = Vec::with_capacity(w.div_ceil(ow.max(1)) + 1);
        let mut x = x0;
        while x < x0 + w {
            let (row, ox) = (x / ow, x % ow);
            let len = (ow - ox).min(x0 + w - x);
            runs.push((c.image(row / oh), row % oh, ox, x - x0, len));
            x += len;
        }
        for (t, drow) in c.taps[..k].iter().zip(dst.chunks_mut(width)) {
            for &(img, oy, ox, d, len) in &runs {
                let part = &mut drow[d..d + len];
                let (a, b, off) = c.inside(t, oy, ox, len);
                part[..a].fill(0);
                part[b..].fill(0);
                let src = &c.input[img + off..];
                if sw == 1 {
                    part[a..b].copy_from_slice(&src[..b - a]);
                } else {
                    for (v, &s) in part[a..b].iter_mut().zip(src.iter().step_by(sw)) {
                        *v = s;
                    }
                }
            }
        }
    }
}

/// `colsᵀ` as `op(B)` (`k` = pixels, lines = taps).
#[derive(Debug)]
pub struct PatchesT<'a>(pub Cols<'a>);

impl Operand for PatchesT<'_> {
    fn pack(&self, x0: usize, w: usize, k: usize, width: usize, dst: &mut [u64]) {
        let c = &self.0;
        let (oh, ow, sw) = (c.p.out_h(), c.p.out_w(), c.p.stride_w);
        if ow == 0 {
            return;
        }
        // Output row by output row, so the rows' `ow x width` tile stays in L1.
        for row in 0..k / ow {
            let (img, oy) = (c.image(row / oh), row % oh);
            for (xx, t) in c.taps[x0..x0 + w].iter().enumerate() {
                let (a, b, off) = c.inside(t, oy, 0, ow);
                let src = &c.input[img + off..];
                let mut col = dst[row * ow * width + xx..].iter_mut().step_by(width).take(ow);
                col.by_ref().take(a).for_each(|v| *v = 0);
                for (v, &s) in col.by_ref().take(b - a).zip(src.iter().step_by(sw)) {
                    *v = s;
                }
                col.for_each(|v| *v = 0);
            }
        }
    }
}
