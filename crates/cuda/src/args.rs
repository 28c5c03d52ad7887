//! The arguments the kernels take beyond pointers and scalars: the structs passed by value
//! (each `repr(C)`, laid out field for field as its `struct` in `kernels/`), the launch
//! pieces of a strided view, and a bit mask's run.

use cudarc::driver::DeviceRepr;
use triad_ring::shape::{Conv2dParams, Pool2dParams, StridedLayout};

/// Largest rank a strided-view kernel takes at once (`TRIAD_MAX_RANK` in layout.cu).
pub(crate) const MAX_RANK: usize = 8;

/// A strided view as the kernels take it (`struct view` in layout.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ViewArg {
    pub(crate) rank: u64,
    pub(crate) offset: u64,
    pub(crate) dims: [u64; MAX_RANK],
    pub(crate) strides: [u64; MAX_RANK],
}

// SAFETY: `ViewArg` is `repr(C)` plain data of u64 fields, laid out exactly as
// `struct view` in kernels/layout.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for ViewArg {}

/// Convolution and pooling geometry as the kernels take it (`struct geom` in conv.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Geom {
    pub(crate) batch: u64,
    pub(crate) chans: u64,
    pub(crate) in_h: u64,
    pub(crate) in_w: u64,
    pub(crate) kh: u64,
    pub(crate) kw: u64,
    pub(crate) stride_h: u64,
    pub(crate) stride_w: u64,
    pub(crate) pad_h: u64,
    pub(crate) pad_w: u64,
    pub(crate) out_h: u64,
    pub(crate) out_w: u64,
    pub(crate) n0: u64,
    pub(crate) col_sn: u64,
    pub(crate) col_sr: u64,
    pub(crate) unused: u64,
}

// SAFETY: `Geom` is `repr(C)` plain data of u64 fields, laid out exactly as `struct geom`
// in kernels/conv.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for Geom {}

impl Geom {
    pub(crate) fn conv(p: &Conv2dParams) -> Geom {
        let (out_h, out_w) = (p.out_h(), p.out_w());
        Geom::window([
            p.batch, p.in_c, p.in_h, p.in_w, p.kh, p.kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w, out_h, out_w,
        ])
    }
    pub(crate) fn pool(p: &Pool2dParams) -> Geom {
        let (out_h, out_w) = (p.out_h(), p.out_w());
        let c = p.channels;
        Geom::window([p.batch, c, p.in_h, p.in_w, p.kh, p.kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w, out_h, out_w])
    }
    /// The first twelve fields, in order (batch, channels, input, window, stride, padding,
    /// output; each height then width); the columns' layout zero.
    fn window(f: [usize; 12]) -> Geom {
        let [batch, chans, in_h, in_w, kh, kw, stride_h, stride_w, pad_h, pad_w, out_h, out_w] = f.map(|x| x as u64);
        Geom { batch, chans, in_h, in_w, kh, kw, stride_h, stride_w, pad_h, pad_w, out_h, out_w, ..Geom::default() }
    }
}

/// A contiguous run of set bits `[lo, lo + k)`, as the CPU device's `contiguous`.
pub(crate) fn contiguous(mask: u64) -> Option<u32> {
    if mask == 0 {
        return None;
    }
    let lo = mask.trailing_zeros();
    let k = mask.count_ones();
    let run = if k == 64 { u64::MAX } else { ((1u64 << k) - 1) << lo };
    (run == mask).then_some(lo)
}

/// A mask's `(lo, contiguous)` arguments of the packing kernels: its run's first bit and
/// 1 when its set bits are one run, else `(0, 0)`.
pub(crate) fn mask_run(mask: u64) -> (u32, i32) {
    let lo = contiguous(mask);
    (lo.unwrap_or(0), i32::from(lo.is_some()))
}

/// Drops unit dimensions and merges dimensions that are contiguous in the underlying
/// buffer; the row-major order of the view's elements is unchanged.
fn simplify(view: &StridedLayout) -> (Vec<u64>, Vec<u64>) {
    let (mut dims, mut strides): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for (&d, &s) in view.dims.iter().zip(&view.strides) {
        if d == 1 {
            continue;
        }
        if let (Some(ld), Some(ls)) = (dims.last_mut(), strides.last_mut()) {
            // The previous dimension steps over exactly one run of this one: merge.
            if *ls == (s as u64) * (d as u64) {
                *ld *= d as u64;
                *ls = s as u64;
                continue;
            }
        }
        dims.push(d as u64);
        strides.push(s as u64);
    }
    (dims, strides)
}

/// The launches of a strided view: rank ≤ 8 pieces as (view, first dense index, count).
pub(crate) fn view_pieces(view: &StridedLayout) -> Vec<(ViewArg, u64, u64)> {
    let (dims, strides) = simplify(view);
    let split = dims.len().saturating_sub(MAX_RANK);
    let (outer_d, inner_d) = dims.split_at(split);
    let (outer_s, inner_s) = strides.split_at(split);
    let inner_n: u64 = inner_d.iter().product();
    let outer_n: u64 = outer_d.iter().product();
    let mut pieces = Vec::with_capacity(outer_n as usize);
    for o in 0..outer_n {
        let (mut rest, mut offset) = (o, view.offset as u64);
        for d in (0..split).rev() {
            offset += (rest % outer_d[d]) * outer_s[d];
            rest /= outer_d[d];
        }
        let mut v = ViewArg { rank: inner_d.len() as u64, offset, ..ViewArg::default() };
        v.dims[..inner_d.len()].copy_from_slice(inner_d);
        v.strides[..inner_s.len()].copy_from_slice(inner_s);
        pieces.push((v, o * inner_n, inner_n));
    }
    pieces
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use triad_ring::{CpuDevice, Device};

    /// What the gather kernel computes for one piece, on the host.
    fn gather_piece(a: &[u64], v: &ViewArg, count: u64) -> Vec<u64> {
        (0..count)
            .map(|t| {
                let (mut t, mut idx) = (t, v.offset);
                for d in (0..v.rank as usize).rev() {
                    idx += (t % v.dims[d]) * v.strides[d];
                    t /= v.dims[d];
                }
                a[idx as usize]
            })
            .collect()
    }

    /// The launch pieces of a view (merged dimensions, rank > 8 split) reproduce the CPU
    /// device's gather, in order.
    #[test]
    fn view_pieces_match_cpu_gather() {
        let views = [
            (vec![], vec![], 3),
            (vec![4, 5], vec![5, 1], 0),
            (vec![3, 1, 4], vec![0, 7, 1], 2),
            (vec![2, 3, 4], vec![12, 4, 1], 1),
            (vec![2, 3, 2, 2, 3, 2, 2, 2, 3, 2], vec![3000, 900, 400, 190, 60, 25, 12, 5, 2, 1], 4),
            (vec![2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], (0..11).rev().map(|d| 2usize << d).collect(), 1),
        ];
        for (dims, strides, offset) in views {
            let view = StridedLayout { dims, strides, offset };
            let a: Vec<u64> = (0..view.extent().unwrap() as u64).map(|x| x * 7 + 1).collect();
            let want = CpuDevice.gather_strided(&a, &view).unwrap();
            let mut got = vec![0u64; want.len()];
            for (v, first, count) in view_pieces(&view) {
                assert!(v.rank as usize <= MAX_RANK);
                let piece = gather_piece(&a, &v, count);
                got[first as usize..(first + count) as usize].copy_from_slice(&piece);
            }
            assert_eq!(got, want, "{view:?}");
        }
    }

    #[test]
    fn contiguous_masks() {
        assert_eq!(contiguous(0), None);
        assert_eq!(contiguous(u64::MAX), Some(0));
        assert_eq!(contiguous(0b1110000), Some(4));
        assert_eq!(contiguous(0b1010), None);
        assert_eq!(contiguous(1 << 63), Some(63));
    }
}
