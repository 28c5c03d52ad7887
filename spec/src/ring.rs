//! The ideal results of every ring operation of a `Device` (the `triad-ring` crate).
//!
//! Data are flat row-major `Vec<u64>` with plain `&[usize]` shapes; images are NCHW;
//! convolution weights are `[out_c, in_c / groups, kh, kw]`. Each function is the
//! definition of the operation; the CPU and CUDA devices must reproduce it bit for bit.

use num_integer::Integer;

use crate::{lift, pow2, reduce, signed, BigInt};

// ---- elementwise ----------------------------------------------------------------------

/// The 64 bits of a ring element, least significant first: bit `i` of `v` is
/// `floor(v / 2^i) mod 2`.
pub fn bits(v: u64) -> [bool; 64] {
    let mut out = [false; 64];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v >> i) % 2 == 1;
    }
    out
}

/// The ring element `sum_i b[i] · 2^i`.
pub fn from_bits(b: &[bool; 64]) -> u64 {
    b.iter().enumerate().map(|(i, &bit)| u64::from(bit) << i).fold(0, |acc, term| acc | term)
}

fn bitwise(a: u64, b: u64, f: impl Fn(bool, bool) -> bool) -> u64 {
    let (x, y) = (bits(a), bits(b));
    let mut out = [false; 64];
    for i in 0..64 {
        out[i] = f(x[i], y[i]);
    }
    from_bits(&out)
}

/// Binary elementwise operations (mirrors the device's `BinaryOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b mod 2^64`
    Add,
    /// `a - b mod 2^64`
    Sub,
    /// `a * b mod 2^64`
    Mul,
    /// bitwise exclusive or
    Xor,
    /// bitwise and
    And,
    /// bitwise or
    Or,
}

impl BinOp {
    /// Every binary operation.
    pub const ALL: [BinOp; 6] = [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Xor, BinOp::And, BinOp::Or];

    /// The ideal result on one pair.
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            BinOp::Add => reduce(&(lift(a) + lift(b))),
            BinOp::Sub => reduce(&(lift(a) - lift(b))),
            BinOp::Mul => reduce(&(lift(a) * lift(b))),
            BinOp::Xor => bitwise(a, b, |x, y| x != y),
            BinOp::And => bitwise(a, b, |x, y| x && y),
            BinOp::Or => bitwise(a, b, |x, y| x || y),
        }
    }
}

/// Unary elementwise operations (mirrors the device's `UnaryOp`). Shifts are defined for
/// amounts `0..64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-a mod 2^64`
    Neg,
    /// bitwise complement
    Not,
    /// `a * 2^s mod 2^64`
    Shl(u32),
    /// `floor(a / 2^s)`, `a` read unsigned
    ShrLogical(u32),
    /// `floor(ã / 2^s) mod 2^64`, `ã` the two's complement reading of `a`
    ShrArith(u32),
}

impl UnOp {
    /// The ideal result on one element. Panics for a shift of 64 or more.
    pub fn apply(self, a: u64) -> u64 {
        match self {
            UnOp::Neg => reduce(&-lift(a)),
            UnOp::Not => bitwise(a, 0, |x, _| !x),
            UnOp::Shl(s) => {
                assert!(s < 64, "shift {s} outside 0..64");
                reduce(&(lift(a) * pow2(s)))
            }
            UnOp::ShrLogical(s) => {
                assert!(s < 64, "shift {s} outside 0..64");
                reduce(&lift(a).div_floor(&pow2(s)))
            }
            UnOp::ShrArith(s) => {
                assert!(s < 64, "shift {s} outside 0..64");
                reduce(&signed(a).div_floor(&pow2(s)))
            }
        }
    }
}

/// `op(a[i], b[i])` for every `i`; `a` and `b` have equal lengths.
pub fn binary(op: BinOp, a: &[u64], b: &[u64]) -> Vec<u64> {
    assert_eq!(a.len(), b.len(), "elementwise operands differ in length");
    a.iter().zip(b).map(|(&x, &y)| op.apply(x, y)).collect()
}

/// `op(a[i], s)` for every `i`.
pub fn binary_scalar(op: BinOp, a: &[u64], s: u64) -> Vec<u64> {
    a.iter().map(|&x| op.apply(x, s)).collect()
}

/// `op(a[i])` for every `i`.
pub fn unary(op: UnOp, a: &[u64]) -> Vec<u64> {
    a.iter().map(|&x| op.apply(x)).collect()
}

// ---- bit packing --------------------------------------------------------------------------

/// Bit positions selected by `mask`, lowest first.
pub fn mask_positions(mask: u64) -> Vec<usize> {
    let b = bits(mask);
    (0..64).filter(|&i| b[i]).collect()
}

/// Packs the `mask` bits of every element into a bit stream.
///
/// With `k` selected bits, element `e`'s selected bits (lowest first) are stream bits
/// `e*k .. e*k + k`; stream bit `t` is bit `t mod 64` of word `floor(t / 64)`; the stream
/// has `ceil(len * k / 64)` words and its unused high bits are zero.
pub fn pack_bits(a: &[u64], mask: u64) -> Vec<u64> {
    let sel = mask_positions(mask);
    let mut stream: Vec<bool> = Vec::new();
    for &v in a {
        let b = bits(v);
        for &p in &sel {
            stream.push(b[p]);
        }
    }
    let words = stream.len().div_ceil(64);
    let mut out = Vec::with_capacity(words);
    for w in 0..words {
        let mut word = [false; 64];
        for (i, bit) in word.iter_mut().enumerate() {
            *bit = stream.get(64 * w + i).copied().unwrap_or(false);
        }
        out.push(from_bits(&word));
    }
    out
}

/// Inverse of [`pack_bits`]: `len` elements whose `mask` bits are read from the stream
/// (at the same positions [`pack_bits`] writes them) and whose other bits are zero.
/// `packed` must hold `ceil(len * k / 64)` words; bits past the stream are ignored.
pub fn unpack_bits(packed: &[u64], len: usize, mask: u64) -> Vec<u64> {
    let sel = mask_positions(mask);
    let k = sel.len();
    assert_eq!(packed.len(), (len * k).div_ceil(64), "stream length");
    let stream: Vec<[bool; 64]> = packed.iter().map(|&w| bits(w)).collect();
    (0..len)
        .map(|e| {
            let mut out = [false; 64];
            for (j, &p) in sel.iter().enumerate() {
                let t = e * k + j;
                out[p] = stream[t / 64][t % 64];
            }
            from_bits(&out)
        })
        .collect()
}

// ---- shapes and layout ---------------------------------------------------------------------

/// Number of elements of a shape (1 for rank 0).
pub fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// The multi-index of row-major position `flat` in `dims`.
pub fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = flat % dims[d];
        flat /= dims[d];
    }
    idx
}

/// The row-major position of multi-index `idx` in `dims`.
pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    assert_eq!(idx.len(), dims.len());
    let mut flat = 0;
    for (i, d) in idx.iter().zip(dims) {
        assert!(i < d, "index {idx:?} outside {dims:?}");
        flat = flat * d + i;
    }
    flat
}

/// Every multi-index of `dims` in row-major order.
pub fn indices(dims: &[usize]) -> Vec<Vec<usize>> {
    (0..numel(dims)).map(|f| unravel(f, dims)).collect()
}

/// Sums `a` (shape `dims`) over `axis`, removing it. Returns the data and the new shape.
pub fn sum_axis(a: &[u64], dims: &[usize], axis: usize) -> (Vec<u64>, Vec<usize>) {
    assert!(axis < dims.len());
    let mut out_dims = dims.to_vec();
    out_dims.remove(axis);
    let out = indices(&out_dims)
        .into_iter()
        .map(|oi| {
            let mut acc = BigInt::from(0u8);
            for j in 0..dims[axis] {
                let mut ii = oi.clone();
                ii.insert(axis, j);
                acc += lift(a[ravel(&ii, dims)]);
            }
            reduce(&acc)
        })
        .collect();
    (out, out_dims)
}

/// The strided view `(dims, strides, offset)` of `a`: element `idx` of the view is
/// `a[offset + sum_d idx[d] * strides[d]]`, listed in row-major order of `idx`.
pub fn gather_strided(a: &[u64], dims: &[usize], strides: &[usize], offset: usize) -> Vec<u64> {
    assert_eq!(dims.len(), strides.len());
    indices(dims)
        .into_iter()
        .map(|idx| a[offset + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()])
        .collect()
}

/// `dst` with the strided view `(dims, strides, offset)` overwritten by `src` (row-major).
pub fn scatter_strided(dst: &[u64], src: &[u64], dims: &[usize], strides: &[usize], offset: usize) -> Vec<u64> {
    assert_eq!(dims.len(), strides.len());
    assert_eq!(src.len(), numel(dims));
    let mut out = dst.to_vec();
    for (f, idx) in indices(dims).into_iter().enumerate() {
        out[offset + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()] = src[f];
    }
    out
}

/// Axis permutation: result axis `d` is input axis `perm[d]`, i.e.
/// `out[j] = a[i]` with `i[perm[d]] = j[d]`. Returns the data and the new shape.
pub fn permute(a: &[u64], dims: &[usize], perm: &[usize]) -> (Vec<u64>, Vec<usize>) {
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let out = indices(&out_dims)
        .into_iter()
        .map(|j| {
            let mut i = vec![0; dims.len()];
            for d in 0..perm.len() {
                i[perm[d]] = j[d];
            }
            a[ravel(&i, dims)]
        })
        .collect();
    (out, out_dims)
}

/// Elements `start .. end` along `axis`. Returns the data and the new shape.
pub fn slice(a: &[u64], dims: &[usize], axis: usize, start: usize, end: usize) -> (Vec<u64>, Vec<usize>) {
    assert!(start <= end && end <= dims[axis]);
    let mut out_dims = dims.to_vec();
    out_dims[axis] = end - start;
    let out = indices(&out_dims)
        .into_iter()
        .map(|mut j| {
            j[axis] += start;
            a[ravel(&j, dims)]
        })
        .collect();
    (out, out_dims)
}

/// Concatenation along `axis` of parts `(data, dims)` that agree on every other axis.
pub fn concat(parts: &[(&[u64], &[usize])], axis: usize) -> (Vec<u64>, Vec<usize>) {
    let mut out_dims = parts[0].1.to_vec();
    out_dims[axis] = parts.iter().map(|p| p.1[axis]).sum();
    let out = indices(&out_dims)
        .into_iter()
        .map(|mut j| {
            // Find the part that holds position j[axis].
            for (data, dims) in parts {
                if j[axis] < dims[axis] {
                    return data[ravel(&j, dims)];
                }
                j[axis] -= dims[axis];
            }
            unreachable!("index past the concatenated axis")
        })
        .collect();
    (out, out_dims)
}

/// Numpy broadcasting of `a` (shape `src`) to `dst`: trailing axes align and an axis of
/// length 1 repeats. Returns `None` when the shapes are incompatible.
pub fn broadcast(a: &[u64], src: &[usize], dst: &[usize]) -> Option<Vec<u64>> {
    if src.len() > dst.len() {
        return None;
    }
    let lead = dst.len() - src.len();
    for (d, &s) in src.iter().enumerate() {
        if s != dst[lead + d] && s != 1 {
            return None;
        }
    }
    Some(
        indices(dst)
            .into_iter()
            .map(|j| {
                let i: Vec<usize> =
                    src.iter().enumerate().map(|(d, &s)| if s == 1 { 0 } else { j[lead + d] }).collect();
                a[ravel(&i, src)]
            })
            .collect(),
    )
}

// ---- matrix products -------------------------------------------------------------------------

/// A batched matrix product `c[b] = op(a[b]) · op(b[b])` (see the device's `MatmulSpec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul {
    /// Independent products.
    pub batch: usize,
    /// Rows of the result.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
    /// `a` stored `k x m`.
    pub a_trans: bool,
    /// `b` stored `n x k`.
    pub b_trans: bool,
}

/// `c[b][i][j] = sum_l A[b][i][l] · B[b][l][j] mod 2^64`, where `A[b][i][l]` is
/// `a[b][i][l]` (`a[b][l][i]` when `a_trans`) and likewise for `B`.
pub fn matmul(a: &[u64], b: &[u64], s: &Matmul) -> Vec<u64> {
    assert_eq!(a.len(), s.batch * s.m * s.k);
    assert_eq!(b.len(), s.batch * s.k * s.n);
    let mut c = Vec::with_capacity(s.batch * s.m * s.n);
    for bt in 0..s.batch {
        let aa = |i: usize, l: usize| {
            let at = if s.a_trans { l * s.m + i } else { i * s.k + l };
            a[bt * s.m * s.k + at]
        };
        let bb = |l: usize, j: usize| {
            let at = if s.b_trans { j * s.k + l } else { l * s.n + j };
            b[bt * s.k * s.n + at]
        };
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = BigInt::from(0u8);
                for l in 0..s.k {
                    acc += lift(aa(i, l)) * lift(bb(l, j));
                }
                c.push(reduce(&acc));
            }
        }
    }
    c
}

// ---- convolution ---------------------------------------------------------------------------------

/// A 2-D convolution (the device's `Conv2dParams`, restated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2d {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows above and below.
    pub pad_h: usize,
    /// Zero columns left and right.
    pub pad_w: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Conv2d {
    /// Whether a device accepts these parameters: positive groups and strides, channels
    /// divisible by the groups, a non-empty kernel no larger than the padded input.
    pub fn is_valid(&self) -> bool {
        self.groups > 0
            && self.stride_h > 0
            && self.stride_w > 0
            && self.in_c.is_multiple_of(self.groups)
            && self.out_c.is_multiple_of(self.groups)
            && self.kh > 0
            && self.kw > 0
            && self.in_h + 2 * self.pad_h >= self.kh
            && self.in_w + 2 * self.pad_w >= self.kw
    }
    /// `floor((in_h + 2 pad_h - kh) / stride_h) + 1`.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.kh) / self.stride_h + 1
    }
    /// `floor((in_w + 2 pad_w - kw) / stride_w) + 1`.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.kw) / self.stride_w + 1
    }
    /// `[batch, in_c, in_h, in_w]`.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.in_c, self.in_h, self.in_w]
    }
    /// `[out_c, in_c / groups, kh, kw]`.
    pub fn weight_dims(&self) -> [usize; 4] {
        [self.out_c, self.in_c / self.groups, self.kh, self.kw]
    }
    /// `[batch, out_c, out_h, out_w]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.out_c, self.out_h(), self.out_w()]
    }

    /// The input position `(channel, y, x)` that output `(oc, oy, ox)` reads through kernel
    /// tap `(c, ky, kx)`, or `None` in the zero padding.
    fn tap(&self, oc: usize, oy: usize, ox: usize, c: usize, ky: usize, kx: usize) -> Option<(usize, usize, usize)> {
        let group = oc / (self.out_c / self.groups);
        let ch = group * (self.in_c / self.groups) + c;
        let y = (oy * self.stride_h + ky) as isize - self.pad_h as isize;
        let x = (ox * self.stride_w + kx) as isize - self.pad_w as isize;
        if y < 0 || x < 0 || y as usize >= self.in_h || x as usize >= self.in_w {
            return None;
        }
        Some((ch, y as usize, x as usize))
    }

    /// Runs `f(n, oc, oy, ox, c, ky, kx, input position)` over the seven loops of the
    /// definition, for taps that land inside the input.
    fn for_each_tap(&self, mut f: impl FnMut([usize; 7], (usize, usize, usize))) {
        let cg = self.in_c / self.groups;
        for n in 0..self.batch {
            for oc in 0..self.out_c {
                for oy in 0..self.out_h() {
                    for ox in 0..self.out_w() {
                        for c in 0..cg {
                            for ky in 0..self.kh {
                                for kx in 0..self.kw {
                                    if let Some(pos) = self.tap(oc, oy, ox, c, ky, kx) {
                                        f([n, oc, oy, ox, c, ky, kx], pos);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn big_zeros(n: usize) -> Vec<BigInt> {
    vec![BigInt::from(0u8); n]
}

fn reduce_all(v: &[BigInt]) -> Vec<u64> {
    v.iter().map(reduce).collect()
}

/// Convolution forward:
/// `out[n][oc][oy][ox] = sum_{c, ky, kx} in[n][g·C/g + c][oy·sh + ky - ph][ox·sw + kx - pw]
/// · w[oc][c][ky][kx]`, with `g = oc / (OC/g)` the group of `oc` and zero outside the input.
pub fn conv2d(input: &[u64], weight: &[u64], p: &Conv2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, wd, od) = (p.input_dims(), p.weight_dims(), p.output_dims());
    assert_eq!(input.len(), numel(&id));
    assert_eq!(weight.len(), numel(&wd));
    let mut acc = big_zeros(numel(&od));
    p.for_each_tap(|[n, oc, oy, ox, c, ky, kx], (ch, y, x)| {
        acc[ravel(&[n, oc, oy, ox], &od)] +=
            lift(input[ravel(&[n, ch, y, x], &id)]) * lift(weight[ravel(&[oc, c, ky, kx], &wd)]);
    });
    reduce_all(&acc)
}

/// Gradient with respect to the input: the adjoint of [`conv2d`] in its input, i.e.
/// every term `in[..] · w[..]` of the forward pass contributes `grad[n][oc][oy][ox] · w[..]`
/// to `d_in` at the same input position.
pub fn conv2d_grad_input(grad_out: &[u64], weight: &[u64], p: &Conv2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, wd, od) = (p.input_dims(), p.weight_dims(), p.output_dims());
    assert_eq!(grad_out.len(), numel(&od));
    assert_eq!(weight.len(), numel(&wd));
    let mut acc = big_zeros(numel(&id));
    p.for_each_tap(|[n, oc, oy, ox, c, ky, kx], (ch, y, x)| {
        acc[ravel(&[n, ch, y, x], &id)] +=
            lift(grad_out[ravel(&[n, oc, oy, ox], &od)]) * lift(weight[ravel(&[oc, c, ky, kx], &wd)]);
    });
    reduce_all(&acc)
}

/// Gradient with respect to the weight: the adjoint of [`conv2d`] in its weight,
/// `d_w[oc][c][ky][kx] = sum_{n, oy, ox} in[n][ch][y][x] · grad[n][oc][oy][ox]`.
pub fn conv2d_grad_weight(input: &[u64], grad_out: &[u64], p: &Conv2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, wd, od) = (p.input_dims(), p.weight_dims(), p.output_dims());
    assert_eq!(input.len(), numel(&id));
    assert_eq!(grad_out.len(), numel(&od));
    let mut acc = big_zeros(numel(&wd));
    p.for_each_tap(|[n, oc, oy, ox, c, ky, kx], (ch, y, x)| {
        acc[ravel(&[oc, c, ky, kx], &wd)] +=
            lift(input[ravel(&[n, ch, y, x], &id)]) * lift(grad_out[ravel(&[n, oc, oy, ox], &od)]);
    });
    reduce_all(&acc)
}

// ---- pooling --------------------------------------------------------------------------------------

/// 2-D pooling windows (the device's `Pool2dParams`, restated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding above and below.
    pub pad_h: usize,
    /// Padding left and right.
    pub pad_w: usize,
}

impl Pool2d {
    /// Whether a device accepts these parameters: positive window and strides, a window no
    /// larger than the padded input, padding smaller than the window.
    pub fn is_valid(&self) -> bool {
        self.kh > 0
            && self.kw > 0
            && self.stride_h > 0
            && self.stride_w > 0
            && self.in_h + 2 * self.pad_h >= self.kh
            && self.in_w + 2 * self.pad_w >= self.kw
            && self.pad_h < self.kh
            && self.pad_w < self.kw
    }
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.kh) / self.stride_h + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.kw) / self.stride_w + 1
    }
    /// `[batch, channels, in_h, in_w]`.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_h, self.in_w]
    }
    /// `[batch, channels, out_h, out_w]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h(), self.out_w()]
    }
    /// `[batch, channels, out_h, out_w, kh * kw]`.
    pub fn windows_dims(&self) -> [usize; 5] {
        [self.batch, self.channels, self.out_h(), self.out_w(), self.kh * self.kw]
    }
    /// Input position `(y, x)` of window tap `(ky, kx)` of output `(oy, ox)`, or `None`
    /// in the padding.
    pub fn tap(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride_h + ky) as isize - self.pad_h as isize;
        let x = (ox * self.stride_w + kx) as isize - self.pad_w as isize;
        if y < 0 || x < 0 || y as usize >= self.in_h || x as usize >= self.in_w {
            return None;
        }
        Some((y as usize, x as usize))
    }
    /// Runs `f([n, c, oy, ox, ky, kx], input position)` over every window tap.
    fn for_each_tap(&self, mut f: impl FnMut([usize; 6], Option<(usize, usize)>)) {
        for n in 0..self.batch {
            for c in 0..self.channels {
                for oy in 0..self.out_h() {
                    for ox in 0..self.out_w() {
                        for ky in 0..self.kh {
                            for kx in 0..self.kw {
                                f([n, c, oy, ox, ky, kx], self.tap(oy, ox, ky, kx));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Window sums: `out[n][c][oy][ox] = sum_{ky, kx} in[n][c][oy·sh + ky - ph][ox·sw + kx - pw]`
/// (padding counts as zero).
pub fn pool_sum(input: &[u64], p: &Pool2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, od) = (p.input_dims(), p.output_dims());
    assert_eq!(input.len(), numel(&id));
    let mut acc = big_zeros(numel(&od));
    p.for_each_tap(|[n, c, oy, ox, _, _], pos| {
        if let Some((y, x)) = pos {
            acc[ravel(&[n, c, oy, ox], &od)] += lift(input[ravel(&[n, c, y, x], &id)]);
        }
    });
    reduce_all(&acc)
}

/// Adjoint of [`pool_sum`]: every output gradient is added to each input position of its
/// window.
pub fn pool_sum_backward(grad_out: &[u64], p: &Pool2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, od) = (p.input_dims(), p.output_dims());
    assert_eq!(grad_out.len(), numel(&od));
    let mut acc = big_zeros(numel(&id));
    p.for_each_tap(|[n, c, oy, ox, _, _], pos| {
        if let Some((y, x)) = pos {
            acc[ravel(&[n, c, y, x], &id)] += lift(grad_out[ravel(&[n, c, oy, ox], &od)]);
        }
    });
    reduce_all(&acc)
}

/// The windows: `out[n][c][oy][ox][ky·kw + kx]` is the input at the tap, or `pad` in the
/// padding.
pub fn pool_windows(input: &[u64], p: &Pool2d, pad: u64) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, wd) = (p.input_dims(), p.windows_dims());
    assert_eq!(input.len(), numel(&id));
    let mut out = vec![0u64; numel(&wd)];
    p.for_each_tap(|[n, c, oy, ox, ky, kx], pos| {
        out[ravel(&[n, c, oy, ox, ky * p.kw + kx], &wd)] = match pos {
            Some((y, x)) => input[ravel(&[n, c, y, x], &id)],
            None => pad,
        };
    });
    out
}

/// Adjoint of [`pool_windows`]: every window entry is added back onto its input position
/// (padding entries are dropped).
pub fn pool_windows_backward(windows: &[u64], p: &Pool2d) -> Vec<u64> {
    assert!(p.is_valid());
    let (id, wd) = (p.input_dims(), p.windows_dims());
    assert_eq!(windows.len(), numel(&wd));
    let mut acc = big_zeros(numel(&id));
    p.for_each_tap(|[n, c, oy, ox, ky, kx], pos| {
        if let Some((y, x)) = pos {
            acc[ravel(&[n, c, y, x], &id)] += lift(windows[ravel(&[n, c, oy, ox, ky * p.kw + kx], &wd)]);
        }
    });
    reduce_all(&acc)
}

// ---- the PRG --------------------------------------------------------------------------------------

/// The ChaCha20 block function of RFC 8439, re-implemented from the RFC's prose, in the
/// original 64-bit counter / 64-bit nonce layout.
pub mod chacha {
    /// The four constant words, "expand 32-byte k" read as little-endian words.
    pub fn constants() -> [u32; 4] {
        let c = b"expand 32-byte k";
        let mut w = [0u32; 4];
        for i in 0..4 {
            w[i] = u32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]);
        }
        w
    }

    /// RFC 8439 section 2.1: `a += b; d ^= a; d <<<= 16; c += d; b ^= c; b <<<= 12;
    /// a += b; d ^= a; d <<<= 8; c += d; b ^= c; b <<<= 7` (all mod 2^32).
    #[allow(clippy::manual_rotate)] // written out as the RFC defines `<<<`
    pub fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        let rotl = |v: u32, n: u32| (v << n) | (v >> (32 - n));
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = rotl(s[d] ^ s[a], 16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = rotl(s[b] ^ s[c], 12);
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = rotl(s[d] ^ s[a], 8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = rotl(s[b] ^ s[c], 7);
    }

    /// The 64 output bytes of one block (RFC 8439 section 2.3, serialized little-endian).
    ///
    /// State: words 0..4 the constants; 4..12 the key as little-endian words; 12 and 13
    /// the block counter (low word first); 14 and 15 the nonce (stream id, low word first).
    /// Ten double rounds (a column round then a diagonal round), then the initial state is
    /// added word by word.
    pub fn block(key: &[u8; 32], counter: u64, nonce: u64) -> [u8; 64] {
        let mut init = [0u32; 16];
        init[..4].copy_from_slice(&constants());
        for i in 0..8 {
            init[4 + i] = u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
        }
        let lo = |v: u64| (v % (1 << 32)) as u32;
        let hi = |v: u64| (v / (1 << 32)) as u32;
        init[12] = lo(counter);
        init[13] = hi(counter);
        init[14] = lo(nonce);
        init[15] = hi(nonce);
        let mut s = init;
        for _ in 0..10 {
            // column round
            quarter_round(&mut s, 0, 4, 8, 12);
            quarter_round(&mut s, 1, 5, 9, 13);
            quarter_round(&mut s, 2, 6, 10, 14);
            quarter_round(&mut s, 3, 7, 11, 15);
            // diagonal round
            quarter_round(&mut s, 0, 5, 10, 15);
            quarter_round(&mut s, 1, 6, 11, 12);
            quarter_round(&mut s, 2, 7, 8, 13);
            quarter_round(&mut s, 3, 4, 9, 14);
        }
        let mut out = [0u8; 64];
        for i in 0..16 {
            out[4 * i..4 * i + 4].copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
        }
        out
    }
}

/// Ring words `offset .. offset + len` of PRG stream `(key, stream)`.
///
/// The key stream of nonce `stream` is the concatenation of [`chacha::block`] outputs for
/// counters 0, 1, 2, …; ring word `w` is key-stream bytes `8w .. 8w + 8` read
/// little-endian (so block `b` holds words `8b .. 8b + 8`). Word indices are taken mod
/// 2^64 (an offset near the top wraps to word 0).
pub fn prg_words(key: &[u8; 32], stream: u64, offset: u64, len: usize) -> Vec<u64> {
    (0..len as u64)
        .map(|i| {
            let w = reduce(&(lift(offset) + BigInt::from(i)));
            let block = chacha::block(key, w / 8, stream);
            let j = (w % 8) as usize;
            let mut b = [0u8; 8];
            b.copy_from_slice(&block[8 * j..8 * j + 8]);
            u64::from_le_bytes(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
    }

    /// RFC 8439 section 2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00,
    /// block count 1. In the 64/64 layout: counter = 1 | 0x09000000 << 32, nonce = 0x4a000000.
    #[test]
    fn rfc8439_block() {
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = i as u8;
        }
        let out = chacha::block(&key, 1 | (0x0900_0000 << 32), 0x4a00_0000);
        let want =
            hex("10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4 c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 6c 4e
             d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2 b5 12 9c d1 de 16 4e b9 cb d0 83 e8 a2 50 3c 4e");
        assert_eq!(out.to_vec(), want);
    }

    /// RFC 8439 appendix A.1, test vectors 1 and 2: all-zero key and nonce, counters 0 and 1.
    #[test]
    fn rfc8439_zero_key() {
        let key = [0u8; 32];
        let b0 = hex("76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28 bd d2 19 b8 a0 8d ed 1a a8 36 ef cc 8b 77 0d c7
             da 41 59 7c 51 57 48 8d 77 24 e0 3f b8 d8 4a 37 6a 43 b8 f4 15 18 a1 1c c3 87 b6 69 b2 ee 65 86");
        let b1 = hex("9f 07 e7 be 55 51 38 7a 98 ba 97 7c 73 2d 08 0d cb 0f 29 a0 48 e3 65 69 12 c6 53 3e 32 ee 7a ed
             29 b7 21 76 9c e6 4e 43 d5 71 33 b0 74 d8 39 d5 31 ed 1f 28 51 0a fb 45 ac e1 0a 1f 4b 79 4d 6f");
        assert_eq!(chacha::block(&key, 0, 0).to_vec(), b0);
        assert_eq!(chacha::block(&key, 1, 0).to_vec(), b1);
        let w = prg_words(&key, 0, 7, 2);
        assert_eq!(w[0].to_le_bytes().to_vec(), b0[56..64].to_vec());
        assert_eq!(w[1].to_le_bytes().to_vec(), b1[0..8].to_vec());
    }

    #[test]
    fn elementwise_by_hand() {
        assert_eq!(BinOp::Add.apply(u64::MAX, 2), 1);
        assert_eq!(BinOp::Sub.apply(0, 1), u64::MAX);
        assert_eq!(BinOp::Mul.apply(1 << 63, 2), 0);
        assert_eq!(BinOp::Xor.apply(0b1100, 0b1010), 0b0110);
        assert_eq!(BinOp::And.apply(0b1100, 0b1010), 0b1000);
        assert_eq!(BinOp::Or.apply(0b1100, 0b1010), 0b1110);
        assert_eq!(UnOp::Neg.apply(1), u64::MAX);
        assert_eq!(UnOp::Not.apply(0), u64::MAX);
        assert_eq!(UnOp::ShrArith(4).apply(u64::MAX - 15), u64::MAX);
        assert_eq!(UnOp::ShrArith(63).apply(1 << 63), u64::MAX);
        assert_eq!(UnOp::ShrLogical(63).apply(1 << 63), 1);
        assert_eq!(UnOp::Shl(63).apply(3), 1 << 63);
    }

    #[test]
    fn packing_by_hand() {
        // Two bits (0 and 2) of three elements: stream 1,0 | 0,1 | 1,1.
        let p = pack_bits(&[0b001, 0b100, 0b101], 0b101);
        assert_eq!(p, vec![0b11_10_01]);
        assert_eq!(unpack_bits(&p, 3, 0b101), vec![0b001, 0b100, 0b101]);
        assert_eq!(pack_bits(&[u64::MAX; 3], 0), Vec::<u64>::new());
    }

    #[test]
    fn layout_by_hand() {
        let a: Vec<u64> = (0..6).collect();
        assert_eq!(permute(&a, &[2, 3], &[1, 0]).0, vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(slice(&a, &[2, 3], 1, 1, 3).0, vec![1, 2, 4, 5]);
        assert_eq!(sum_axis(&a, &[2, 3], 0).0, vec![3, 5, 7]);
        assert_eq!(broadcast(&[7, 8], &[2, 1], &[2, 2]), Some(vec![7, 7, 8, 8]));
        let (c, d) = concat(&[(&a[..3], &[1, 3]), (&a[3..], &[1, 3])], 0);
        assert_eq!((c, d), (a.clone(), vec![2, 3]));
    }

    #[test]
    fn conv_by_hand() {
        // 1x1x3x3 input 1..9, 2x2 kernel of ones, stride 1, no padding: 2x2 window sums.
        let p = Conv2d {
            batch: 1,
            in_c: 1,
            in_h: 3,
            in_w: 3,
            out_c: 1,
            kh: 2,
            kw: 2,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
            groups: 1,
        };
        let x: Vec<u64> = (1..=9).collect();
        assert_eq!(conv2d(&x, &[1; 4], &p), vec![12, 16, 24, 28]);
        let q = Pool2d {
            batch: 1,
            channels: 1,
            in_h: 3,
            in_w: 3,
            kh: 2,
            kw: 2,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
        };
        assert_eq!(pool_sum(&x, &q), vec![12, 16, 24, 28]);
        assert_eq!(conv2d_grad_input(&[1; 4], &[1; 4], &p), vec![1, 2, 1, 2, 4, 2, 1, 2, 1]);
        assert_eq!(pool_sum_backward(&[1; 4], &q), vec![1, 2, 1, 2, 4, 2, 1, 2, 1]);
        assert_eq!(conv2d_grad_weight(&x, &[1; 4], &p), vec![12, 16, 24, 28]);
    }
}
