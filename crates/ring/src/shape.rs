//! Shapes and the parameter records of the structured ops (matmul, conv2d, pooling,
//! strided copies). Every record validates itself before a device sees it, so device
//! implementations may assume consistent sizes.

use crate::RingError;

/// Row-major dimensions of a tensor.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions (outermost first).
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar of rank 0).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1usize; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
    /// Splits the shape around `axis` into (outer, axis length, inner) element counts.
    pub fn split_at_axis(&self, axis: usize) -> Result<(usize, usize, usize), RingError> {
        if axis >= self.0.len() {
            return Err(RingError::Axis { axis, shape: self.clone() });
        }
        let outer = self.0[..axis].iter().product();
        let inner = self.0[axis + 1..].iter().product();
        Ok((outer, self.0[axis], inner))
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "x")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

/// A batched ring matrix product `c[b] = op(a[b]) · op(b[b])` for `b` in `0..batch`.
///
/// `a` holds `batch` row-major matrices of `m x k` (`k x m` when `a_trans`), `b` holds
/// `batch` matrices of `k x n` (`n x k` when `b_trans`); the result is `batch` matrices
/// of `m x n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulSpec {
    /// Number of independent products.
    pub batch: usize,
    /// Rows of the result.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
    /// `a` is stored transposed (`k x m`).
    pub a_trans: bool,
    /// `b` is stored transposed (`n x k`).
    pub b_trans: bool,
}

impl MatmulSpec {
    /// Elements of the `a` operand.
    pub fn a_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    /// Elements of the `b` operand.
    pub fn b_len(&self) -> usize {
        self.batch * self.k * self.n
    }
    /// Elements of the result.
    pub fn c_len(&self) -> usize {
        self.batch * self.m * self.n
    }
    /// Ring multiply-adds performed.
    pub fn macs(&self) -> u64 {
        (self.batch * self.m * self.k * self.n) as u64
    }
}

/// A 2-D convolution over NCHW tensors with weights `[out_c, in_c / groups, kh, kw]`.
///
/// Output is `[batch, out_c, out_h, out_w]` with
/// `out_h = (in_h + 2*pad_h - kh) / stride_h + 1` (and likewise for the width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Images in the batch.
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
    /// Zero padding above and below.
    pub pad_h: usize,
    /// Zero padding left and right.
    pub pad_w: usize,
    /// Channel groups: `in_c` and `out_c` are both multiples of it.
    pub groups: usize,
}

impl Conv2dParams {
    /// A square-kernel convolution with equal strides and paddings, one group.
    pub fn square(batch: usize, in_c: usize, in_hw: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> Self {
        Conv2dParams {
            batch,
            in_c,
            in_h: in_hw,
            in_w: in_hw,
            out_c,
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
            groups: 1,
        }
    }
    /// Checks every size is consistent; devices may assume a validated record.
    pub fn validate(&self) -> Result<(), RingError> {
        let bad = |why: &str| Err(RingError::Params { op: "conv2d", detail: format!("{why} in {self:?}") });
        if self.groups == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return bad("groups and strides must be positive");
        }
        if !self.in_c.is_multiple_of(self.groups) || !self.out_c.is_multiple_of(self.groups) {
            return bad("channels must be multiples of groups");
        }
        if self.kh == 0 || self.kw == 0 {
            return bad("kernel must be non-empty");
        }
        let padded = |n: usize, pad: usize| pad.checked_mul(2).and_then(|p2| n.checked_add(p2));
        let (Some(ph), Some(pw)) = (padded(self.in_h, self.pad_h), padded(self.in_w, self.pad_w)) else {
            return bad("padded size overflows");
        };
        if ph < self.kh || pw < self.kw {
            return bad("kernel larger than padded input");
        }
        let sizes = [self.batch, self.in_c, ph, pw, self.out_c, self.kh, self.kw];
        if sizes.iter().try_fold(1usize, |a, &d| a.checked_mul(d.max(1))).is_none() {
            return bad("sizes overflow");
        }
        Ok(())
    }
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.kh) / self.stride_h + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.kw) / self.stride_w + 1
    }
    /// Input shape `[batch, in_c, in_h, in_w]`.
    pub fn input_shape(&self) -> Shape {
        Shape::new([self.batch, self.in_c, self.in_h, self.in_w])
    }
    /// Weight shape `[out_c, in_c / groups, kh, kw]`.
    pub fn weight_shape(&self) -> Shape {
        Shape::new([self.out_c, self.in_c / self.groups, self.kh, self.kw])
    }
    /// Output shape `[batch, out_c, out_h, out_w]`.
    pub fn output_shape(&self) -> Shape {
        Shape::new([self.batch, self.out_c, self.out_h(), self.out_w()])
    }
    /// Ring multiply-adds of the forward pass.
    pub fn macs(&self) -> u64 {
        (self.batch * self.out_c * self.out_h() * self.out_w() * (self.in_c / self.groups) * self.kh * self.kw) as u64
    }
}

/// 2-D pooling windows over NCHW input: output `[batch, channels, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    /// Images in the batch.
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

impl Pool2dParams {
    /// Square window `k`, stride `s`, padding `p`.
    pub fn square(batch: usize, channels: usize, in_hw: usize, k: usize, s: usize, p: usize) -> Self {
        Pool2dParams {
            batch,
            channels,
            in_h: in_hw,
            in_w: in_hw,
            kh: k,
            kw: k,
            stride_h: s,
            stride_w: s,
            pad_h: p,
            pad_w: p,
        }
    }
    /// Checks every size is consistent.
    pub fn validate(&self) -> Result<(), RingError> {
        let bad = |why: &str| Err(RingError::Params { op: "pool2d", detail: format!("{why} in {self:?}") });
        if self.kh == 0 || self.kw == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return bad("window and strides must be positive");
        }
        let padded = |n: usize, pad: usize| pad.checked_mul(2).and_then(|p2| n.checked_add(p2));
        let (Some(ph), Some(pw)) = (padded(self.in_h, self.pad_h), padded(self.in_w, self.pad_w)) else {
            return bad("padded size overflows");
        };
        if ph < self.kh || pw < self.kw {
            return bad("window larger than padded input");
        }
        let sizes = [self.batch, self.channels, ph, pw, self.kh, self.kw];
        if sizes.iter().try_fold(1usize, |a, &d| a.checked_mul(d.max(1))).is_none() {
            return bad("sizes overflow");
        }
        if self.pad_h >= self.kh || self.pad_w >= self.kw {
            return bad("padding must be smaller than the window");
        }
        Ok(())
    }
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.kh) / self.stride_h + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.kw) / self.stride_w + 1
    }
    /// Input shape.
    pub fn input_shape(&self) -> Shape {
        Shape::new([self.batch, self.channels, self.in_h, self.in_w])
    }
    /// Output shape.
    pub fn output_shape(&self) -> Shape {
        Shape::new([self.batch, self.channels, self.out_h(), self.out_w()])
    }
    /// Shape of the window tensor: `[batch, channels, out_h, out_w, kh * kw]`.
    pub fn windows_shape(&self) -> Shape {
        Shape::new([self.batch, self.channels, self.out_h(), self.out_w(), self.kh * self.kw])
    }
}

/// A strided view of a buffer: element `idx` (a multi-index over `dims`) lives at
/// `offset + sum(idx[d] * strides[d])`. A zero stride broadcasts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StridedLayout {
    /// Dimensions of the view.
    pub dims: Vec<usize>,
    /// Stride of each dimension, in elements of the underlying buffer.
    pub strides: Vec<usize>,
    /// Position of the view's first element.
    pub offset: usize,
}

impl StridedLayout {
    /// Elements in the view.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    /// Largest buffer index the view touches plus one (0 for an empty view); `None` if
    /// that overflows.
    pub fn extent(&self) -> Option<usize> {
        if self.dims.contains(&0) {
            return Some(0);
        }
        self.dims
            .iter()
            .zip(&self.strides)
            .try_fold(self.offset, |acc, (d, s)| (d - 1).checked_mul(*s).and_then(|x| acc.checked_add(x)))?
            .checked_add(1)
    }
    /// Checks the view fits in a buffer of `len` elements.
    pub fn validate(&self, len: usize) -> Result<(), RingError> {
        if self.dims.len() != self.strides.len() {
            return Err(RingError::Params {
                op: "strided view",
                detail: format!("{} dims but {} strides", self.dims.len(), self.strides.len()),
            });
        }
        if self.extent().is_none_or(|e| e > len) {
            return Err(RingError::Params {
                op: "strided view",
                detail: format!("view {self:?} reaches past a buffer of {len} elements"),
            });
        }
        Ok(())
    }
}
