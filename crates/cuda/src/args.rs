//! The arguments the kernels take beyond pointers and scalars: the structs passed by value
//! (each `repr(C)`, laid out field for field as its `struct` in `kernels/`), the launch
//! pieces of a strided view, a bit mask's run, and a PRG key's words.

use cudarc::driver::DeviceRepr;
use triad_ring::device::PrgTerm;
use triad_ring::prg::PrgKey;
use triad_ring::shape::{Conv2dParams, Pool2dParams, StridedLayout};

/// The row selections of an `and_rows` launch (`struct row_sel` in fused.cu): selection
/// `i` names operand `i` in the order `x0, x1, y0, y1, plus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowSel {
    pub(crate) first: [u64; 5],
    pub(crate) step: [u64; 5],
}

// SAFETY: `RowSel` is `repr(C)` plain data of u64 fields, laid out exactly as
// `struct row_sel` in kernels/fused.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for RowSel {}

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

/// Most addends one fused launch takes (`TRIAD_ADDENDS` in fused.cu).
pub(crate) const ADDENDS: usize = 4;

/// Words added to a fused kernel's result (`struct addends` in fused.cu): the first
/// `count`, each a PRG stream from word 0 (kind 0) or the kernel's buffer argument `b0`
/// (kind 1) or `b1` (kind 2), subtracted when `negate` is 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Addends {
    count: u64,
    kind: [u64; ADDENDS],
    negate: [u64; ADDENDS],
    stream: [u64; ADDENDS],
    key: [[u64; 4]; ADDENDS],
}

// SAFETY: `Addends` is `repr(C)` plain data of u64 fields, laid out exactly as
// `struct addends` in kernels/fused.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for Addends {}

impl Addends {
    /// The PRG terms, in order (at most [`ADDENDS`]).
    pub(crate) fn prg(terms: &[PrgTerm<'_>]) -> Addends {
        let mut a = Addends::default();
        for t in terms {
            a.push_prg(t);
        }
        a
    }
    /// How many addends.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
    /// Whether no further addend fits.
    pub(crate) fn full(&self) -> bool {
        self.count as usize == ADDENDS
    }
    /// Appends a PRG term.
    pub(crate) fn push_prg(&mut self, t: &PrgTerm<'_>) {
        let i = self.push(0, t.negate);
        self.stream[i] = t.stream;
        self.key[i] = key_words(t.key);
    }
    /// Appends the kernel's buffer argument `slot` (0 for `b0`, 1 for `b1`).
    pub(crate) fn push_buf(&mut self, slot: u64, negate: bool) {
        self.push(1 + slot, negate);
    }
    fn push(&mut self, kind: u64, negate: bool) -> usize {
        let i = self.count as usize;
        assert!(i < ADDENDS, "at most {ADDENDS} addends a launch");
        (self.kind[i], self.negate[i]) = (kind, u64::from(negate));
        self.count += 1;
        i
    }
}

/// A PRG key as the kernels take it: four u64, `k0 = key words 0 | 1 << 32`, ….
pub(crate) fn key_words(key: &PrgKey) -> [u64; 4] {
    let w = key.words();
    std::array::from_fn(|i| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32))
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
