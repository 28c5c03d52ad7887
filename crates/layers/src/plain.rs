//! Float64 tensors for the plaintext twin: the same shapes and index conventions as the
//! ring device (NCHW, weights `[out_c, in_c / groups, kh, kw]`, row-major), computed in
//! `f64` with naive loops. Written for clarity; fast enough for LeNet-sized training.

use triad_ring::{Conv2dParams, Pool2dParams};
use triad_sharing::{Error, Product, Result};

/// A dense row-major `f64` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct PTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f64>,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

impl PTensor {
    /// A tensor from its shape and data (lengths must agree).
    pub fn new(shape: impl Into<Vec<usize>>, data: Vec<f64>) -> Result<Self> {
        let shape = shape.into();
        if numel(&shape) != data.len() {
            return Err(usage(format!(
                "PTensor: shape {shape:?} needs {} elements, got {}",
                numel(&shape),
                data.len()
            )));
        }
        Ok(PTensor { shape, data })
    }
    /// Zeros.
    pub fn zeros(shape: impl Into<Vec<usize>>) -> Self {
        let shape = shape.into();
        let n = numel(&shape);
        PTensor { shape, data: vec![0.0; n] }
    }
    /// Filled with `v`.
    pub fn full(shape: impl Into<Vec<usize>>, v: f64) -> Self {
        let shape = shape.into();
        let n = numel(&shape);
        PTensor { shape, data: vec![v; n] }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    fn same(&self, o: &Self, op: &str) -> Result<()> {
        if self.shape != o.shape {
            return Err(usage(format!("{op}: shapes {:?} and {:?} differ", self.shape, o.shape)));
        }
        Ok(())
    }
    /// Elementwise `f(a, b)`.
    pub fn zip(&self, o: &Self, op: &str, f: impl Fn(f64, f64) -> f64) -> Result<Self> {
        self.same(o, op)?;
        Ok(PTensor { shape: self.shape.clone(), data: self.data.iter().zip(&o.data).map(|(&a, &b)| f(a, b)).collect() })
    }
    /// Elementwise `f(a)`.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        PTensor { shape: self.shape.clone(), data: self.data.iter().map(|&a| f(a)).collect() }
    }
    /// Same elements, new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            return Err(usage(format!("reshape {:?} to {shape:?}", self.shape)));
        }
        Ok(PTensor { shape: shape.to_vec(), data: self.data.clone() })
    }
    /// Sum along `axis`, removing it.
    pub fn sum_axis(&self, axis: usize) -> Result<Self> {
        if axis >= self.shape.len() {
            return Err(usage(format!("sum_axis {axis} of {:?}", self.shape)));
        }
        let outer: usize = self.shape[..axis].iter().product();
        let len = self.shape[axis];
        let inner: usize = self.shape[axis + 1..].iter().product();
        let mut out = vec![0.0; outer * inner];
        for o in 0..outer {
            for l in 0..len {
                for i in 0..inner {
                    out[o * inner + i] += self.data[(o * len + l) * inner + i];
                }
            }
        }
        let mut shape = self.shape.clone();
        shape.remove(axis);
        Ok(PTensor { shape, data: out })
    }
    /// Broadcasts to `shape` (numpy rules: trailing axes align, size-1 axes repeat).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        let r = shape.len();
        if self.shape.len() > r {
            return Err(usage(format!("broadcast {:?} to {shape:?}", self.shape)));
        }
        let mut src = vec![1usize; r - self.shape.len()];
        src.extend_from_slice(&self.shape);
        for (a, b) in src.iter().zip(shape) {
            if *a != 1 && a != b {
                return Err(usage(format!("broadcast {:?} to {shape:?}", self.shape)));
            }
        }
        let mut sstr = vec![0usize; r];
        let mut acc = 1;
        for d in (0..r).rev() {
            sstr[d] = if src[d] == 1 { 0 } else { acc };
            acc *= src[d];
        }
        let n = numel(shape);
        let mut data = Vec::with_capacity(n);
        let mut idx = vec![0usize; r];
        for _ in 0..n {
            data.push(self.data[idx.iter().zip(&sstr).map(|(i, s)| i * s).sum::<usize>()]);
            for d in (0..r).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(PTensor { shape: shape.to_vec(), data })
    }

    /// The bilinear map `op(self, other)` in `f64` (the twin of [`Product::apply`]).
    pub fn product(&self, op: Product, b: &Self) -> Result<Self> {
        match op {
            Product::Elementwise => self.zip(b, "mul", |x, y| x * y),
            Product::Matmul { a_trans, b_trans } => self.matmul_t(b, a_trans, b_trans),
            Product::Conv2d(p) => conv2d(self, b, &p),
            Product::Conv2dGradInput(p) => conv2d_grad_input(self, b, &p),
            Product::Conv2dGradWeight(p) => conv2d_grad_weight(self, b, &p),
        }
    }

    /// `op(self) · op(b)` for rank-2 tensors.
    pub fn matmul_t(&self, b: &Self, a_trans: bool, b_trans: bool) -> Result<Self> {
        if self.shape.len() != 2 || b.shape.len() != 2 {
            return Err(usage(format!("matmul of {:?} and {:?}", self.shape, b.shape)));
        }
        let (m, k) = if a_trans { (self.shape[1], self.shape[0]) } else { (self.shape[0], self.shape[1]) };
        let (k2, n) = if b_trans { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
        if k != k2 {
            return Err(usage(format!("matmul inner dimensions {k} and {k2}")));
        }
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for l in 0..k {
                let a = if a_trans { self.data[l * m + i] } else { self.data[i * k + l] };
                if a == 0.0 {
                    continue;
                }
                for j in 0..n {
                    let bv = if b_trans { b.data[j * k + l] } else { b.data[l * n + j] };
                    c[i * n + j] += a * bv;
                }
            }
        }
        Ok(PTensor { shape: vec![m, n], data: c })
    }
}

/// Every tap of a convolution: `f(input index, weight index, output index)`.
fn conv_taps(p: &Conv2dParams, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let cg = p.in_c / p.groups;
    let og = p.out_c / p.groups;
    for n in 0..p.batch {
        for oc in 0..p.out_c {
            let g = oc / og;
            for c in 0..cg {
                let ch = g * cg + c;
                for ky in 0..p.kh {
                    for oy in 0..oh {
                        let y = (oy * p.stride_h + ky) as isize - p.pad_h as isize;
                        if y < 0 || y as usize >= p.in_h {
                            continue;
                        }
                        for kx in 0..p.kw {
                            let wi = ((oc * cg + c) * p.kh + ky) * p.kw + kx;
                            for ox in 0..ow {
                                let x = (ox * p.stride_w + kx) as isize - p.pad_w as isize;
                                if x < 0 || x as usize >= p.in_w {
                                    continue;
                                }
                                let ii = ((n * p.in_c + ch) * p.in_h + y as usize) * p.in_w + x as usize;
                                let oi = ((n * p.out_c + oc) * oh + oy) * ow + ox;
                                f(ii, wi, oi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn check_conv(p: &Conv2dParams, a: &[usize], b: &[usize], want_a: Vec<usize>, want_b: Vec<usize>) -> Result<()> {
    p.validate()?;
    if a != want_a.as_slice() || b != want_b.as_slice() {
        return Err(usage(format!("conv operands {a:?}, {b:?}; expected {want_a:?}, {want_b:?}")));
    }
    Ok(())
}

/// Convolution forward.
pub fn conv2d(x: &PTensor, w: &PTensor, p: &Conv2dParams) -> Result<PTensor> {
    check_conv(p, &x.shape, &w.shape, p.input_shape().dims().to_vec(), p.weight_shape().dims().to_vec())?;
    let mut out = PTensor::zeros(p.output_shape().dims().to_vec());
    conv_taps(p, |ii, wi, oi| out.data[oi] += x.data[ii] * w.data[wi]);
    Ok(out)
}

/// Gradient of the input of a convolution (`g` the output gradient).
pub fn conv2d_grad_input(g: &PTensor, w: &PTensor, p: &Conv2dParams) -> Result<PTensor> {
    check_conv(p, &g.shape, &w.shape, p.output_shape().dims().to_vec(), p.weight_shape().dims().to_vec())?;
    let mut out = PTensor::zeros(p.input_shape().dims().to_vec());
    conv_taps(p, |ii, wi, oi| out.data[ii] += g.data[oi] * w.data[wi]);
    Ok(out)
}

/// Gradient of the weight of a convolution (`x` the input, `g` the output gradient).
pub fn conv2d_grad_weight(x: &PTensor, g: &PTensor, p: &Conv2dParams) -> Result<PTensor> {
    check_conv(p, &x.shape, &g.shape, p.input_shape().dims().to_vec(), p.output_shape().dims().to_vec())?;
    let mut out = PTensor::zeros(p.weight_shape().dims().to_vec());
    conv_taps(p, |ii, wi, oi| out.data[wi] += x.data[ii] * g.data[oi]);
    Ok(out)
}

/// Every window tap of a pooling layer: `f(output index, tap index, input index or None)`.
fn pool_taps(p: &Pool2dParams, mut f: impl FnMut(usize, usize, Option<usize>)) {
    let (oh, ow) = (p.out_h(), p.out_w());
    for nc in 0..p.batch * p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let oi = (nc * oh + oy) * ow + ox;
                for ky in 0..p.kh {
                    for kx in 0..p.kw {
                        let y = (oy * p.stride_h + ky) as isize - p.pad_h as isize;
                        let x = (ox * p.stride_w + kx) as isize - p.pad_w as isize;
                        let inside = y >= 0 && x >= 0 && (y as usize) < p.in_h && (x as usize) < p.in_w;
                        let ii = inside.then(|| (nc * p.in_h + y as usize) * p.in_w + x as usize);
                        f(oi, ky * p.kw + kx, ii);
                    }
                }
            }
        }
    }
}

fn check_pool(p: &Pool2dParams, shape: &[usize], want: &triad_ring::Shape) -> Result<()> {
    p.validate()?;
    if shape != want.dims() {
        return Err(usage(format!("pooling operand {shape:?}, expected {want}")));
    }
    Ok(())
}

/// Window sums (padding counts as zero).
pub fn pool_sum(x: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
    check_pool(p, &x.shape, &p.input_shape())?;
    let mut out = PTensor::zeros(p.output_shape().dims().to_vec());
    pool_taps(p, |oi, _, ii| {
        if let Some(ii) = ii {
            out.data[oi] += x.data[ii];
        }
    });
    Ok(out)
}

/// Adjoint of [`pool_sum`].
pub fn pool_sum_backward(g: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
    check_pool(p, &g.shape, &p.output_shape())?;
    let mut out = PTensor::zeros(p.input_shape().dims().to_vec());
    pool_taps(p, |oi, _, ii| {
        if let Some(ii) = ii {
            out.data[ii] += g.data[oi];
        }
    });
    Ok(out)
}

/// Max pooling: the maxima and the one-hot position (first maximum) of each window,
/// `[N, C, OH, OW, KH·KW]`; padded taps never win.
pub fn maxpool(x: &PTensor, p: &Pool2dParams) -> Result<(PTensor, PTensor)> {
    check_pool(p, &x.shape, &p.input_shape())?;
    let mut out = PTensor::full(p.output_shape().dims().to_vec(), f64::NEG_INFINITY);
    let mut arg = vec![usize::MAX; out.numel()];
    pool_taps(p, |oi, t, ii| {
        if let Some(ii) = ii {
            if x.data[ii] > out.data[oi] {
                out.data[oi] = x.data[ii];
                arg[oi] = t;
            }
        }
    });
    let k = p.kh * p.kw;
    let mut onehot = PTensor::zeros(p.windows_shape().dims().to_vec());
    for (oi, &t) in arg.iter().enumerate() {
        if t < k {
            onehot.data[oi * k + t] = 1.0;
        }
    }
    Ok((out, onehot))
}

/// Max pooling backward: each output gradient to its window's maximum.
pub fn maxpool_backward(g: &PTensor, onehot: &PTensor, p: &Pool2dParams) -> Result<PTensor> {
    check_pool(p, &g.shape, &p.output_shape())?;
    let k = p.kh * p.kw;
    let mut out = PTensor::zeros(p.input_shape().dims().to_vec());
    pool_taps(p, |oi, t, ii| {
        if let Some(ii) = ii {
            out.data[ii] += onehot.data[oi * k + t] * g.data[oi];
        }
    });
    Ok(out)
}

/// Softmax along the last axis of a rank-2 tensor (max-normalised).
pub fn softmax_rows(x: &PTensor) -> Result<PTensor> {
    if x.shape.len() != 2 {
        return Err(usage(format!("softmax of {:?}: rank 2 expected", x.shape)));
    }
    let d = x.shape[1];
    let mut out = x.clone();
    for row in out.data.chunks_mut(d) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        for v in row.iter_mut() {
            *v /= s;
        }
    }
    Ok(out)
}

/// `(outer, inner)` sizes around `axis` of `shape`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (shape[..axis].iter().product(), shape[axis + 1..].iter().product())
}

/// The tensors joined along `axis` (every other dimension equal).
pub fn concat(parts: &[&PTensor], axis: usize) -> Result<PTensor> {
    let first = parts.first().ok_or_else(|| usage("concat of no tensors".into()))?;
    if axis >= first.shape.len() {
        return Err(usage(format!("concat axis {axis} of shape {:?}", first.shape)));
    }
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in parts {
        let same = p.shape.len() == first.shape.len()
            && p.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
        if !same {
            return Err(usage(format!("concat of shapes {:?} and {:?} on axis {axis}", first.shape, p.shape)));
        }
        shape[axis] += p.shape[axis];
    }
    let (outer, inner) = around(&shape, axis);
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for p in parts {
            let run = p.shape[axis] * inner;
            data.extend_from_slice(&p.data[o * run..(o + 1) * run]);
        }
    }
    PTensor::new(shape, data)
}

/// Elements `start..start + len` along `axis`.
pub fn slice(x: &PTensor, axis: usize, start: usize, len: usize) -> Result<PTensor> {
    if axis >= x.shape.len() || start + len > x.shape[axis] {
        return Err(usage(format!("slice {start}..{} of axis {axis} of shape {:?}", start + len, x.shape)));
    }
    let (outer, inner) = around(&x.shape, axis);
    let mut shape = x.shape.clone();
    shape[axis] = len;
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        let base = (o * x.shape[axis] + start) * inner;
        data.extend_from_slice(&x.data[base..base + len * inner]);
    }
    PTensor::new(shape, data)
}
