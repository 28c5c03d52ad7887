//! `Tensor<D>`: a shape plus a buffer of ring elements on device `D`.
//!
//! Every shape-dependent operation checks its operands and returns a typed
//! [`RingError`] before the device sees them. Arithmetic wraps mod 2^64.

use crate::device::{BinaryOp, Device, PrgTerm, UnaryOp};
use crate::prg::PrgKey;
use crate::shape::{Conv2dParams, MatmulSpec, Pool2dParams, Shape, StridedLayout};
use crate::RingError;

/// A tensor over Z_{2^64} resident on device `D`.
pub struct Tensor<D: Device> {
    dev: D,
    shape: Shape,
    buf: D::Buffer,
}

impl<D: Device> std::fmt::Debug for Tensor<D> {
    /// Prints the shape and device only: a tensor may hold a secret share.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{} on {}", self.shape, self.dev.name())
    }
}

type R<T> = Result<T, RingError>;

impl<D: Device> Tensor<D> {
    // ---- construction ------------------------------------------------------------------
    /// Wraps a device buffer; its length must match the shape.
    pub fn from_buffer(dev: &D, shape: impl Into<Shape>, buf: D::Buffer) -> R<Self> {
        let shape = shape.into();
        let len = dev.len(&buf);
        if len != shape.numel() {
            return Err(RingError::Length { shape, len });
        }
        Ok(Tensor { dev: dev.clone(), shape, buf })
    }
    /// A tensor from host data in row-major order.
    pub fn from_vec(dev: &D, shape: impl Into<Shape>, data: Vec<u64>) -> R<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(RingError::Length { shape, len: data.len() });
        }
        let buf = dev.from_host_vec(data)?;
        Ok(Tensor { dev: dev.clone(), shape, buf })
    }
    /// A tensor of zeros.
    pub fn zeros(dev: &D, shape: impl Into<Shape>) -> R<Self> {
        Self::full(dev, shape, 0)
    }
    /// A tensor filled with `value`.
    pub fn full(dev: &D, shape: impl Into<Shape>, value: u64) -> R<Self> {
        let shape = shape.into();
        let buf = dev.fill(shape.numel(), value)?;
        Ok(Tensor { dev: dev.clone(), shape, buf })
    }
    /// Words `offset ..` of the PRG stream `(key, stream)` in the given shape.
    pub fn prg(dev: &D, shape: impl Into<Shape>, key: &PrgKey, stream: u64, offset: u64) -> R<Self> {
        let shape = shape.into();
        let buf = dev.prg_fill(key, stream, offset, shape.numel())?;
        Ok(Tensor { dev: dev.clone(), shape, buf })
    }

    // ---- access -------------------------------------------------------------------------
    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }
    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    /// The device buffer.
    pub fn buffer(&self) -> &D::Buffer {
        &self.buf
    }
    /// The device buffer, mutably.
    pub fn buffer_mut(&mut self) -> &mut D::Buffer {
        &mut self.buf
    }
    /// Consumes the tensor into its buffer.
    pub fn into_buffer(self) -> D::Buffer {
        self.buf
    }
    /// Copies the elements to the host, row-major.
    pub fn to_vec(&self) -> R<Vec<u64>> {
        Ok(self.dev.to_host(&self.buf)?)
    }
    /// A deep copy on the same device.
    pub fn try_clone(&self) -> R<Self> {
        Ok(Tensor { dev: self.dev.clone(), shape: self.shape.clone(), buf: self.dev.copy(&self.buf)? })
    }

    fn same_shape(&self, other: &Self, op: &'static str) -> R<()> {
        if self.shape != other.shape {
            return Err(RingError::ShapeMismatch { op, left: self.shape.clone(), right: other.shape.clone() });
        }
        Ok(())
    }
    fn with(&self, shape: Shape, buf: D::Buffer) -> Self {
        Tensor { dev: self.dev.clone(), shape, buf }
    }

    // ---- elementwise ----------------------------------------------------------------------
    /// `op(self, other)` elementwise (equal shapes).
    pub fn binary(&self, op: BinaryOp, other: &Self) -> R<Self> {
        self.same_shape(other, "elementwise")?;
        Ok(self.with(self.shape.clone(), self.dev.binary(op, &self.buf, &other.buf)?))
    }
    /// `self = op(self, other)` in place (equal shapes).
    pub fn binary_assign(&mut self, op: BinaryOp, other: &Self) -> R<()> {
        self.same_shape(other, "elementwise")?;
        Ok(self.dev.binary_assign(op, &mut self.buf, &other.buf)?)
    }
    /// `op(self, s)` with a public scalar.
    pub fn scalar(&self, op: BinaryOp, s: u64) -> R<Self> {
        Ok(self.with(self.shape.clone(), self.dev.binary_scalar(op, &self.buf, s)?))
    }
    /// `op(self)` elementwise.
    pub fn unary(&self, op: UnaryOp) -> R<Self> {
        Ok(self.with(self.shape.clone(), self.dev.unary(op, &self.buf)?))
    }
    /// `self + other`.
    pub fn add(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::Add, other)
    }
    /// `self - other`.
    pub fn sub(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::Sub, other)
    }
    /// `self * other` elementwise.
    pub fn mul(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::Mul, other)
    }
    /// `self ^ other`.
    pub fn xor(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::Xor, other)
    }
    /// `self & other`.
    pub fn and(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::And, other)
    }
    /// `self | other`.
    pub fn or(&self, other: &Self) -> R<Self> {
        self.binary(BinaryOp::Or, other)
    }
    /// `self += other`.
    pub fn add_assign(&mut self, other: &Self) -> R<()> {
        self.binary_assign(BinaryOp::Add, other)
    }
    /// `self += ±F(key, stream)` for every term ([`Device::add_prg`]: fused, the draws are
    /// never written out whole).
    pub fn add_prg(&mut self, terms: &[PrgTerm<'_>]) -> R<()> {
        Ok(self.dev.add_prg(&mut self.buf, terms)?)
    }
    /// `self -= other`.
    pub fn sub_assign(&mut self, other: &Self) -> R<()> {
        self.binary_assign(BinaryOp::Sub, other)
    }
    /// `self ^= other`.
    pub fn xor_assign(&mut self, other: &Self) -> R<()> {
        self.binary_assign(BinaryOp::Xor, other)
    }
    /// `-self`.
    pub fn neg(&self) -> R<Self> {
        self.unary(UnaryOp::Neg)
    }
    /// `!self`.
    pub fn not(&self) -> R<Self> {
        self.unary(UnaryOp::Not)
    }
    /// `self << s`.
    pub fn shl(&self, s: u32) -> R<Self> {
        self.check_shift(s)?;
        self.unary(UnaryOp::Shl(s))
    }
    /// Logical `self >> s`.
    pub fn shr(&self, s: u32) -> R<Self> {
        self.check_shift(s)?;
        self.unary(UnaryOp::ShrLogical(s))
    }
    /// Arithmetic `self >> s`.
    pub fn sar(&self, s: u32) -> R<Self> {
        self.check_shift(s)?;
        self.unary(UnaryOp::ShrArith(s))
    }
    fn check_shift(&self, s: u32) -> R<()> {
        if s >= 64 {
            return Err(RingError::Params { op: "shift", detail: format!("shift by {s} is not below 64") });
        }
        Ok(())
    }

    // ---- bits -------------------------------------------------------------------------------
    /// Packs the `mask` bits of every element into a dense 1-D stream; see
    /// [`Device::pack_bits`].
    pub fn pack_bits(&self, mask: u64) -> R<Self> {
        let buf = self.dev.pack_bits(&self.buf, mask)?;
        let n = self.dev.len(&buf);
        Ok(self.with(Shape::new([n]), buf))
    }
    /// Unpacks a stream made by [`pack_bits`](Self::pack_bits) into `shape`.
    pub fn unpack_bits(&self, shape: impl Into<Shape>, mask: u64) -> R<Self> {
        let shape = shape.into();
        let need = (shape.numel() * mask.count_ones() as usize).div_ceil(64);
        if self.numel() != need {
            return Err(RingError::Length { shape, len: self.numel() });
        }
        let buf = self.dev.unpack_bits(&self.buf, shape.numel(), mask)?;
        Ok(self.with(shape, buf))
    }

    // ---- layout ------------------------------------------------------------------------------
    /// Same elements, new shape of equal size.
    pub fn reshape(self, shape: impl Into<Shape>) -> R<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(RingError::Length { shape, len: self.numel() });
        }
        Ok(Tensor { dev: self.dev, shape, buf: self.buf })
    }
    /// Materialises a strided view of this tensor's buffer.
    pub fn gather(&self, view: &StridedLayout) -> R<Self> {
        view.validate(self.numel())?;
        Ok(self.with(Shape::new(view.dims.clone()), self.dev.gather_strided(&self.buf, view)?))
    }
    /// Permutes the axes: result axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> R<Self> {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(RingError::Params {
                op: "permute",
                detail: format!("{perm:?} is not a permutation of the axes of {}", self.shape),
            });
        }
        let strides = self.shape.strides();
        self.gather(&StridedLayout {
            dims: perm.iter().map(|&p| self.dims()[p]).collect(),
            strides: perm.iter().map(|&p| strides[p]).collect(),
            offset: 0,
        })
    }
    /// Transpose of a matrix (rank 2).
    pub fn transpose(&self) -> R<Self> {
        if self.shape.rank() != 2 {
            return Err(RingError::Rank { op: "transpose", expected: 2, shape: self.shape.clone() });
        }
        self.permute(&[1, 0])
    }
    /// Elements `range` along `axis`.
    pub fn slice(&self, axis: usize, range: std::ops::Range<usize>) -> R<Self> {
        let (_, len, _) = self.shape.split_at_axis(axis)?;
        if range.start > range.end || range.end > len {
            return Err(RingError::Params {
                op: "slice",
                detail: format!("range {range:?} outside axis {axis} of {}", self.shape),
            });
        }
        let strides = self.shape.strides();
        let mut dims = self.dims().to_vec();
        dims[axis] = range.len();
        self.gather(&StridedLayout { offset: range.start * strides[axis], dims, strides })
    }
    /// Concatenates tensors along `axis`; all other dimensions must agree.
    pub fn concat(parts: &[&Self], axis: usize) -> R<Self> {
        let first = parts.first().ok_or(RingError::Params { op: "concat", detail: "nothing to concatenate".into() })?;
        first.shape.split_at_axis(axis)?;
        let mut dims = first.dims().to_vec();
        dims[axis] = 0;
        for p in parts {
            let mut pd = p.dims().to_vec();
            if pd.len() != dims.len() {
                return Err(RingError::ShapeMismatch {
                    op: "concat",
                    left: first.shape.clone(),
                    right: p.shape.clone(),
                });
            }
            dims[axis] += pd[axis];
            pd[axis] = 0;
            let mut fd = first.dims().to_vec();
            fd[axis] = 0;
            if pd != fd {
                return Err(RingError::ShapeMismatch {
                    op: "concat",
                    left: first.shape.clone(),
                    right: p.shape.clone(),
                });
            }
        }
        let shape = Shape::new(dims);
        let strides = shape.strides();
        let mut out = Tensor::zeros(&first.dev, shape)?;
        let mut at = 0;
        for p in parts {
            let view = StridedLayout { dims: p.dims().to_vec(), strides: strides.clone(), offset: at * strides[axis] };
            out.dev.scatter_strided(&mut out.buf, &p.buf, &view)?;
            at += p.dims()[axis];
        }
        Ok(out)
    }
    /// Broadcasts to `shape` (numpy rules: trailing axes align; size-1 axes repeat).
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> R<Self> {
        let shape = shape.into();
        let (src, dst) = (self.dims(), shape.dims());
        let err = || RingError::ShapeMismatch { op: "broadcast", left: self.shape.clone(), right: shape.clone() };
        if src.len() > dst.len() {
            return Err(err());
        }
        let lead = dst.len() - src.len();
        let sstr = self.shape.strides();
        let mut strides = vec![0usize; dst.len()];
        for (i, &d) in src.iter().enumerate() {
            if d == dst[lead + i] {
                strides[lead + i] = sstr[i];
            } else if d != 1 {
                return Err(err());
            }
        }
        self.gather(&StridedLayout { dims: dst.to_vec(), strides, offset: 0 })
    }
    /// Sums along `axis`, removing it.
    pub fn sum_axis(&self, axis: usize) -> R<Self> {
        let (outer, len, inner) = self.shape.split_at_axis(axis)?;
        let mut dims = self.dims().to_vec();
        dims.remove(axis);
        Ok(self.with(Shape::new(dims), self.dev.sum_axis(&self.buf, outer, len, inner)?))
    }

    // ---- linear algebra --------------------------------------------------------------------------
    /// Matrix product of rank-2 tensors, either operand optionally transposed:
    /// `op(self) · op(other)`.
    pub fn matmul_t(&self, other: &Self, a_trans: bool, b_trans: bool) -> R<Self> {
        let (ad, bd) = (self.dims(), other.dims());
        if ad.len() != 2 || bd.len() != 2 {
            return Err(RingError::Rank {
                op: "matmul",
                expected: 2,
                shape: if ad.len() != 2 { self.shape.clone() } else { other.shape.clone() },
            });
        }
        let (m, k) = if a_trans { (ad[1], ad[0]) } else { (ad[0], ad[1]) };
        let (k2, n) = if b_trans { (bd[1], bd[0]) } else { (bd[0], bd[1]) };
        if k != k2 {
            return Err(RingError::ShapeMismatch {
                op: "matmul",
                left: self.shape.clone(),
                right: other.shape.clone(),
            });
        }
        let spec = MatmulSpec { batch: 1, m, k, n, a_trans, b_trans };
        Ok(self.with(Shape::new([m, n]), self.dev.matmul(&self.buf, &other.buf, &spec)?))
    }
    /// Matrix product `self · other`.
    pub fn matmul(&self, other: &Self) -> R<Self> {
        self.matmul_t(other, false, false)
    }
    /// Convolution forward; `self` is the input `[N, C, H, W]`.
    pub fn conv2d(&self, weight: &Self, p: &Conv2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.input_shape(), "conv2d input")?;
        weight.expect_shape(&p.weight_shape(), "conv2d weight")?;
        Ok(self.with(p.output_shape(), self.dev.conv2d(&self.buf, &weight.buf, p)?))
    }
    /// Gradient of a convolution's input; `self` is the output gradient.
    pub fn conv2d_grad_input(&self, weight: &Self, p: &Conv2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.output_shape(), "conv2d output gradient")?;
        weight.expect_shape(&p.weight_shape(), "conv2d weight")?;
        Ok(self.with(p.input_shape(), self.dev.conv2d_grad_input(&self.buf, &weight.buf, p)?))
    }
    /// Gradient of a convolution's weight; `self` is the input, `grad_out` the output gradient.
    pub fn conv2d_grad_weight(&self, grad_out: &Self, p: &Conv2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.input_shape(), "conv2d input")?;
        grad_out.expect_shape(&p.output_shape(), "conv2d output gradient")?;
        Ok(self.with(p.weight_shape(), self.dev.conv2d_grad_weight(&self.buf, &grad_out.buf, p)?))
    }
    /// Window sums of a pooling layer.
    pub fn pool_sum(&self, p: &Pool2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.input_shape(), "pool input")?;
        Ok(self.with(p.output_shape(), self.dev.pool_sum(&self.buf, p)?))
    }
    /// Adjoint of [`pool_sum`](Self::pool_sum).
    pub fn pool_sum_backward(&self, p: &Pool2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.output_shape(), "pool output gradient")?;
        Ok(self.with(p.input_shape(), self.dev.pool_sum_backward(&self.buf, p)?))
    }
    /// Pooling windows `[N, C, OH, OW, KH*KW]`, padded positions holding `pad`.
    pub fn pool_windows(&self, p: &Pool2dParams, pad: u64) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.input_shape(), "pool input")?;
        Ok(self.with(p.windows_shape(), self.dev.pool_windows(&self.buf, p, pad)?))
    }
    /// Adjoint of [`pool_windows`](Self::pool_windows).
    pub fn pool_windows_backward(&self, p: &Pool2dParams) -> R<Self> {
        p.validate()?;
        self.expect_shape(&p.windows_shape(), "pool windows gradient")?;
        Ok(self.with(p.input_shape(), self.dev.pool_windows_backward(&self.buf, p)?))
    }

    fn expect_shape(&self, want: &Shape, what: &'static str) -> R<()> {
        if &self.shape != want {
            return Err(RingError::ShapeMismatch { op: what, left: want.clone(), right: self.shape.clone() });
        }
        Ok(())
    }
}
