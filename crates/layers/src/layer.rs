//! Layers at run time: a graph node's [`Op`] plus its parameters (on some
//! [`Backend`]) and what the forward pass keeps for the backward pass.
//!
//! Every layer's forward and backward are written once, below, against [`Backend`]; the
//! private run and the plaintext twin execute the same lines.

use triad_ring::{Conv2dParams, Pool2dParams};
use triad_sharing::{Error, Product, Result};
use triad_transport::PartyId;

use crate::backend::Backend;
use crate::graph::{ConvSpec, Op, PoolSpec};

/// Batch-norm constants.
pub const BN_EPS: f64 = 1e-5;
/// Weight of the batch statistics in the running averages.
pub const BN_MOMENTUM: f64 = 0.1;

/// A trainable tensor, its gradient from the last backward pass, and its momentum buffer.
#[derive(Debug)]
pub struct Param<B: Backend> {
    /// The value.
    pub value: B::T,
    /// `∂loss/∂value` from the last [`Layer::backward`].
    pub grad: Option<B::T>,
    /// SGD momentum buffer (created on first use).
    pub velocity: Option<B::T>,
}

impl<B: Backend> Param<B> {
    fn new(value: B::T) -> Self {
        Param { value, grad: None, velocity: None }
    }
}

/// What a forward pass keeps for the backward pass.
#[derive(Debug)]
enum Cache<B: Backend> {
    Empty,
    /// Conv2d: its input and the call's parameters.
    Conv(B::T, Conv2dParams),
    /// Linear: its input.
    Input(B::T),
    /// AvgPool: the call's parameters.
    Pool(Pool2dParams),
    /// MaxPool: the one-hot positions of the maxima.
    MaxPool(B::T, Pool2dParams),
    /// ReLU: the DReLU bit as 0/1.
    Mask(B::T),
    /// Tanh, sigmoid, softmax: the output.
    Output(B::T),
    /// Flatten, reshape, global average pooling: the input dimensions.
    Dims(Vec<usize>),
    /// Concat: the sizes of the parts along the axis.
    Parts(Vec<usize>),
    /// BatchNorm (training): normalised input `x̂` and `1/sqrt(var + eps)` per channel.
    Norm {
        xhat: B::T,
        inv: B::T,
    },
}

/// One node of a model on backend `B`: its op, its tensors, what the forward pass kept.
#[derive(Debug)]
pub struct Layer<B: Backend> {
    /// What the node computes.
    pub op: Op,
    /// Its scope name (`03_relu`, `04_residual/body/00_conv2d`).
    pub name: String,
    /// Trainable parameters: conv / linear weight then bias; batch norm `γ`, `β`.
    pub params: Vec<Param<B>>,
    /// Batch norm's running mean and variance (not trained by SGD).
    pub buffers: Vec<B::T>,
    cache: Cache<B>,
    /// Batch norm at inference: the per-channel affine map `(a, c)` with
    /// `a = γ / sqrt(running var + eps)`, `c = β - running mean · a`: computed in float64
    /// by the owner of plaintext weights when the model is built, or on shares on the
    /// first inference pass after training, and kept until the next training pass or
    /// [`params_mut`](Self::params_mut). Code that writes `params` or `buffers` directly
    /// must call `params_mut` (or run a training pass) before the next inference.
    pub(crate) folded: Option<(B::T, B::T)>,
}

fn take<T>(c: &mut T, empty: T) -> T {
    std::mem::replace(c, empty)
}

fn missing(name: &str) -> Error {
    Error::Usage(format!("{name}: backward without a forward pass"))
}

/// `[N, C, ...] -> [C]`: sum over every axis but the channel axis.
fn channel_sum<B: Backend>(b: &B, x: &B::T) -> Result<B::T> {
    channel_sum_owned(b, b.copy(x)?)
}

/// [`channel_sum`] of a tensor no longer needed (reshaped in place, not copied).
fn channel_sum_owned<B: Backend>(b: &B, x: B::T) -> Result<B::T> {
    let d = b.dims(&x);
    let rest: usize = d[2..].iter().product();
    let r = b.reshape(x, &[d[0], d[1], rest])?;
    b.sum_axis(&b.sum_axis(&r, 2)?, 0)
}

/// `[C] -> dims` (`[N, C, ...]`), repeating along every other axis.
fn channel_bcast<B: Backend>(b: &B, v: &B::T, dims: &[usize]) -> Result<B::T> {
    let mut s = vec![dims[1]];
    s.extend(std::iter::repeat_n(1, dims.len() - 2));
    b.broadcast(&b.reshape(b.copy(v)?, &s)?, dims)
}

/// The ring's convolution parameters for a batch of dimensions `d` (`[N, C, H, W]`).
fn conv_params(c: &ConvSpec, d: &[usize]) -> Conv2dParams {
    Conv2dParams {
        batch: d[0],
        in_c: d[1],
        in_h: d[2],
        in_w: d[3],
        out_c: c.out_c,
        kh: c.kh,
        kw: c.kw,
        stride_h: c.stride_h,
        stride_w: c.stride_w,
        pad_h: c.pad_h,
        pad_w: c.pad_w,
        groups: c.groups,
    }
}

/// The ring's pooling parameters for a batch of dimensions `d` (`[N, C, H, W]`).
fn pool_params(p: &PoolSpec, d: &[usize]) -> Pool2dParams {
    Pool2dParams {
        batch: d[0],
        channels: d[1],
        in_h: d[2],
        in_w: d[3],
        kh: p.kh,
        kw: p.kw,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
    }
}

/// `[N] ++ per-sample dims`.
fn batched(n: usize, dims: &[usize]) -> Vec<usize> {
    std::iter::once(n).chain(dims.iter().copied()).collect()
}

/// The single input of a one-input op.
fn one<T>(mut xs: Vec<T>, name: &str) -> Result<T> {
    match (xs.pop(), xs.is_empty()) {
        (Some(x), true) => Ok(x),
        _ => Err(Error::Usage(format!("{name}: expected one input"))),
    }
}

impl<B: Backend> Layer<B> {
    /// Builds a node's layer, taking its parameters then its buffers in order from
    /// `next_tensor` (which brings each tensor in on the backend, e.g. secret-shares it).
    pub fn build(op: &Op, name: &str, next_tensor: &mut dyn FnMut(&[usize]) -> Result<B::T>) -> Result<Self> {
        let mut params = Vec::new();
        for s in op.param_shapes() {
            params.push(Param::new(next_tensor(&s)?));
        }
        let mut buffers = Vec::new();
        for s in op.buffer_shapes() {
            buffers.push(next_tensor(&s)?);
        }
        Ok(Layer { op: op.clone(), name: name.to_string(), params, buffers, cache: Cache::Empty, folded: None })
    }

    /// Every parameter. Handing them out drops a folded batch norm (its map is recomputed
    /// from the new parameters on the next inference pass).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.folded = None;
        self.params.iter_mut().collect()
    }

    /// Every parameter, read only.
    pub fn params(&self) -> Vec<&Param<B>> {
        self.params.iter().collect()
    }

    /// The forward pass on the node's inputs (batches `[N, ...]`). `train` selects batch
    /// statistics in batch norm. Whatever the backward pass needs is cached.
    pub fn forward(&mut self, b: &B, xs: Vec<B::T>, train: bool) -> Result<B::T> {
        let _s = b.scope(&self.name);
        let name = self.name.clone();
        match self.op.clone() {
            Op::Input { .. } => one(xs, &name),
            Op::Conv(c) => {
                let x = one(xs, &name)?;
                let p = conv_params(&c, &b.dims(&x));
                let mut y = b.product(Product::Conv2d(p), &x, &self.params[0].value)?;
                if let Some(bias) = self.params.get(1) {
                    y = b.add(&y, &channel_bcast(b, &bias.value, &b.dims(&y))?)?;
                }
                self.cache = Cache::Conv(x, p);
                Ok(y)
            }
            Op::Linear { .. } => {
                let x = one(xs, &name)?;
                let mut y = b.product(Product::Matmul { a_trans: false, b_trans: true }, &x, &self.params[0].value)?;
                if let Some(bias) = self.params.get(1) {
                    y = b.add(&y, &b.broadcast(&bias.value, &b.dims(&y))?)?;
                }
                self.cache = Cache::Input(x);
                Ok(y)
            }
            Op::AvgPool(ps) => {
                let x = one(xs, &name)?;
                let p = pool_params(&ps, &b.dims(&x));
                let y = b.scale(&b.pool_sum(&x, &p)?, 1.0 / (ps.kh * ps.kw) as f64)?;
                self.cache = Cache::Pool(p);
                Ok(y)
            }
            Op::MaxPool(ps) => {
                let x = one(xs, &name)?;
                let p = pool_params(&ps, &b.dims(&x));
                let (y, onehot) = b.maxpool(&x, &p)?;
                self.cache = Cache::MaxPool(onehot, p);
                Ok(y)
            }
            Op::GlobalAvgPool { keep_dims } => {
                let x = one(xs, &name)?;
                let d = b.dims(&x);
                let hw = d[2] * d[3];
                let s = b.sum_axis(&b.reshape(x, &[d[0], d[1], hw])?, 2)?;
                let y = b.scale(&s, 1.0 / hw as f64)?;
                self.cache = Cache::Dims(d.clone());
                if keep_dims {
                    b.reshape(y, &[d[0], d[1], 1, 1])
                } else {
                    Ok(y)
                }
            }
            Op::Relu => {
                let (y, m) = b.relu(&one(xs, &name)?)?;
                self.cache = Cache::Mask(m);
                Ok(y)
            }
            Op::Tanh | Op::Sigmoid | Op::Softmax => {
                let x = one(xs, &name)?;
                let y = match self.op {
                    Op::Tanh => b.tanh(&x)?,
                    Op::Sigmoid => b.sigmoid(&x)?,
                    _ => b.softmax(&x)?,
                };
                self.cache = Cache::Output(b.copy(&y)?);
                Ok(y)
            }
            Op::Flatten | Op::Reshape { .. } => {
                let x = one(xs, &name)?;
                let d = b.dims(&x);
                let to = match &self.op {
                    Op::Reshape { dims } => batched(d[0], dims),
                    _ => vec![d[0], d[1..].iter().product()],
                };
                self.cache = Cache::Dims(d);
                b.reshape(x, &to)
            }
            Op::BatchNorm { .. } => self.batchnorm_forward(b, one(xs, &name)?, train),
            Op::Add | Op::Sub => match xs.as_slice() {
                [x, y] if matches!(self.op, Op::Add) => b.add(x, y),
                [x, y] => b.sub(x, y),
                _ => Err(Error::Usage(format!("{name}: expected two inputs"))),
            },
            Op::AddConst(c) => b.add_public(&one(xs, &name)?, &c.values, &c.dims),
            Op::MulConst(c) => b.mul_public(&one(xs, &name)?, &c.values, &c.dims),
            Op::AddBuffer { .. } | Op::MulBuffer { .. } => {
                let x = one(xs, &name)?;
                let t = self.buffer_like(b, &b.dims(&x))?;
                if matches!(self.op, Op::AddBuffer { .. }) {
                    b.add(&x, &t)
                } else {
                    b.product(Product::Elementwise, &x, &t)
                }
            }
            Op::Concat { axis } => {
                let parts: Vec<&B::T> = xs.iter().collect();
                self.cache = Cache::Parts(parts.iter().map(|p| b.dims(p)[axis + 1]).collect());
                b.concat(&parts, axis + 1)
            }
            Op::Pad { top, left, bottom, right } => {
                let x = one(xs, &name)?;
                let d = b.dims(&x);
                let mut rows = Vec::new();
                let zeros = |shape: &[usize]| b.constant(shape, 0.0);
                let (t, bt) = (zeros(&[d[0], d[1], top, d[3]])?, zeros(&[d[0], d[1], bottom, d[3]])?);
                for (part, n) in [(&t, top), (&x, d[2]), (&bt, bottom)] {
                    if n > 0 {
                        rows.push(part);
                    }
                }
                let y = b.concat(&rows, 2)?;
                let h = d[2] + top + bottom;
                let (l, r) = (zeros(&[d[0], d[1], h, left])?, zeros(&[d[0], d[1], h, right])?);
                let mut cols = Vec::new();
                for (part, n) in [(&l, left), (&y, d[3]), (&r, right)] {
                    if n > 0 {
                        cols.push(part);
                    }
                }
                b.concat(&cols, 3)
            }
        }
    }

    /// The backward pass: takes `∂loss/∂output`, stores the parameter gradients in
    /// [`Param::grad`], and returns `∂loss/∂input` for each input whose `need` is true
    /// (`None` for the others: a model's first layers skip that product).
    pub fn backward(&mut self, b: &B, g: B::T, need: &[bool]) -> Result<Vec<Option<B::T>>> {
        let _s = b.scope(&self.name);
        let first = need.first().copied().unwrap_or(false);
        let only = |x: Result<B::T>| -> Result<Vec<Option<B::T>>> { Ok(vec![if first { Some(x?) } else { None }]) };
        match (&self.op, take(&mut self.cache, Cache::Empty)) {
            (Op::Conv(_), Cache::Conv(x, p)) => {
                self.params[0].grad = Some(b.product(Product::Conv2dGradWeight(p), &x, &g)?);
                let dx =
                    if first { Some(b.product(Product::Conv2dGradInput(p), &g, &self.params[0].value)?) } else { None };
                // The bias gradient last, so it can take `g` (local: no stream is drawn).
                if self.params.len() > 1 {
                    self.params[1].grad = Some(channel_sum_owned(b, g)?);
                }
                Ok(vec![dx])
            }
            (Op::Linear { .. }, Cache::Input(x)) => {
                self.params[0].grad = Some(b.product(Product::Matmul { a_trans: true, b_trans: false }, &g, &x)?);
                if self.params.len() > 1 {
                    self.params[1].grad = Some(b.sum_axis(&g, 0)?);
                }
                if first {
                    only(b.product(Product::Matmul { a_trans: false, b_trans: false }, &g, &self.params[0].value))
                } else {
                    Ok(vec![None])
                }
            }
            (Op::AvgPool(ps), Cache::Pool(p)) => {
                if !first {
                    return Ok(vec![None]);
                }
                let gs = b.scale(&g, 1.0 / (ps.kh * ps.kw) as f64)?;
                only(b.pool_sum_backward(&gs, &p))
            }
            (Op::MaxPool(_), Cache::MaxPool(onehot, p)) => {
                if !first {
                    return Ok(vec![None]);
                }
                only(b.maxpool_backward(&g, &onehot, &p))
            }
            (Op::GlobalAvgPool { .. }, Cache::Dims(d)) => {
                if !first {
                    return Ok(vec![None]);
                }
                let hw = d[2] * d[3];
                let gs = b.scale(&b.reshape(g, &[d[0], d[1], 1])?, 1.0 / hw as f64)?;
                only(b.reshape(b.broadcast(&gs, &[d[0], d[1], hw])?, &d))
            }
            (Op::Relu, Cache::Mask(m)) => only(b.mask(&g, &m)),
            (Op::Tanh, Cache::Output(y)) => {
                // d tanh = 1 - y².
                let y2 = b.product(Product::Elementwise, &y, &y)?;
                let one = b.constant(&b.dims(&y), 1.0)?;
                only(b.product(Product::Elementwise, &g, &b.sub(&one, &y2)?))
            }
            (Op::Sigmoid, Cache::Output(y)) => {
                // d sigmoid = y (1 - y).
                let one = b.constant(&b.dims(&y), 1.0)?;
                let dy = b.product(Product::Elementwise, &y, &b.sub(&one, &y)?)?;
                only(b.product(Product::Elementwise, &g, &dy))
            }
            (Op::Softmax, Cache::Output(y)) => {
                // dx = y ⊙ (g - Σ_j g_j y_j), per row.
                let d = b.dims(&y);
                let gy = b.product(Product::Elementwise, &g, &y)?;
                let s = b.reshape(b.sum_axis(&gy, 1)?, &[d[0], 1])?;
                let t = b.sub(&g, &b.broadcast(&s, &d)?)?;
                only(b.product(Product::Elementwise, &y, &t))
            }
            (Op::Flatten | Op::Reshape { .. }, Cache::Dims(d)) => only(b.reshape(g, &d)),
            (Op::BatchNorm { .. }, Cache::Norm { xhat, inv }) => {
                let dx = self.batchnorm_backward(b, g, xhat, inv)?;
                Ok(vec![first.then_some(dx)])
            }
            (Op::Add, _) => {
                let g2 = if need.get(1).copied().unwrap_or(false) { Some(b.copy(&g)?) } else { None };
                Ok(vec![first.then_some(g), g2])
            }
            (Op::Sub, _) => {
                let g2 = if need.get(1).copied().unwrap_or(false) {
                    Some(b.sub(&b.constant(&b.dims(&g), 0.0)?, &g)?)
                } else {
                    None
                };
                Ok(vec![first.then_some(g), g2])
            }
            (Op::AddConst(_), _) => Ok(vec![first.then_some(g)]),
            (Op::MulConst(c), _) => only(b.mul_public(&g, &c.values, &c.dims)),
            (Op::AddBuffer { .. }, _) => Ok(vec![first.then_some(g)]),
            (Op::MulBuffer { .. }, _) => {
                if !first {
                    return Ok(vec![None]);
                }
                let t = self.buffer_like(b, &b.dims(&g))?;
                only(b.product(Product::Elementwise, &g, &t))
            }
            (Op::Concat { axis }, Cache::Parts(sizes)) => {
                let mut out = Vec::with_capacity(sizes.len());
                let mut start = 0;
                for (i, n) in sizes.iter().enumerate() {
                    out.push(if need.get(i).copied().unwrap_or(false) {
                        Some(b.slice(&g, axis + 1, start, *n)?)
                    } else {
                        None
                    });
                    start += n;
                }
                Ok(out)
            }
            (Op::Pad { top, left, bottom, right }, _) => {
                let d = b.dims(&g);
                let (h, w) = (d[2], d[3]);
                let rows = b.slice(&g, 2, *top, h - top - bottom)?;
                only(b.slice(&rows, 3, *left, w - left - right))
            }
            _ => Err(missing(&self.name)),
        }
    }

    /// The node's one buffer broadcast to `dims` (NumPy rules: leading unit axes added).
    fn buffer_like(&self, b: &B, dims: &[usize]) -> Result<B::T> {
        let t = self.buffers.first().ok_or_else(|| Error::Usage(format!("{}: no tensor", self.name)))?;
        let td = b.dims(t);
        let mut lifted = vec![1; dims.len().saturating_sub(td.len())];
        lifted.extend(td);
        b.broadcast(&b.reshape(b.copy(t)?, &lifted)?, dims)
    }

    /// Batch norm forward. Training: batch statistics over `N, H, W` per channel,
    /// `x̂ = (x - μ) / sqrt(σ² + eps)`, `y = γ x̂ + β`, running averages updated with
    /// [`BN_MOMENTUM`]. Inference: the running statistics, folded once into a per-channel
    /// affine map `y = a x + c` (one inverse square root and two products per channel, on
    /// the first inference pass after training; then one product per pass instead of an
    /// inverse square root and two products). An inference pass keeps nothing for a
    /// backward pass.
    /// On shares `1/sqrt` is `triad-approx`'s inverse square root, whose domain is about
    /// `[0.1, 170]`: the per-channel variance must be at least about 0.1.
    fn batchnorm_forward(&mut self, b: &B, x: B::T, train: bool) -> Result<B::T> {
        let d = b.dims(&x);
        let c = d[1];
        if !train {
            if self.folded.is_none() {
                let eps = b.constant(&[c], BN_EPS)?;
                let inv = b.inv_sqrt(&b.add(&self.buffers[1], &eps)?)?;
                let a = b.product(Product::Elementwise, &self.params[0].value, &inv)?;
                let ma = b.product(Product::Elementwise, &self.buffers[0], &a)?;
                self.folded = Some((a, b.sub(&self.params[1].value, &ma)?));
            }
            let (a, c) = self.folded.as_ref().ok_or_else(|| missing(&self.name))?;
            let y = b.product(Product::Elementwise, &x, &channel_bcast(b, a, &d)?)?;
            self.cache = Cache::Empty;
            return b.add(&y, &channel_bcast(b, c, &d)?);
        }
        self.folded = None;
        let m = (d.iter().product::<usize>() / c) as f64;
        let eps = b.constant(&[c], BN_EPS)?;
        let (xc, inv) = {
            let mean = b.scale(&channel_sum(b, &x)?, 1.0 / m)?;
            let xc = b.sub(&x, &channel_bcast(b, &mean, &d)?)?;
            let sq = b.product(Product::Elementwise, &xc, &xc)?;
            let var = b.scale(&channel_sum(b, &sq)?, 1.0 / m)?;
            let inv = b.inv_sqrt(&b.add(&var, &eps)?)?;
            // Running statistics (unbiased variance, as PyTorch).
            let rm = b.add(&b.scale(&self.buffers[0], 1.0 - BN_MOMENTUM)?, &b.scale(&mean, BN_MOMENTUM)?)?;
            let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
            let rv = b.add(&b.scale(&self.buffers[1], 1.0 - BN_MOMENTUM)?, &b.scale(&var, BN_MOMENTUM * unbias)?)?;
            self.buffers = vec![rm, rv];
            (xc, inv)
        };
        let xhat = b.product(Product::Elementwise, &xc, &channel_bcast(b, &inv, &d)?)?;
        let y = b.product(Product::Elementwise, &xhat, &channel_bcast(b, &self.params[0].value, &d)?)?;
        let y = b.add(&y, &channel_bcast(b, &self.params[1].value, &d)?)?;
        self.cache = Cache::Norm { xhat, inv };
        Ok(y)
    }

    /// Batch norm backward (training statistics):
    /// `dβ = Σ g`, `dγ = Σ g x̂`, `dx̂ = γ g`,
    /// `dx = inv · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ x̂))`, means over `N, H, W`.
    fn batchnorm_backward(&mut self, b: &B, g: B::T, xhat: B::T, inv: B::T) -> Result<B::T> {
        let d = b.dims(&g);
        let m = (d.iter().product::<usize>() / d[1]) as f64;
        let gx = b.product(Product::Elementwise, &g, &xhat)?;
        self.params[0].grad = Some(channel_sum(b, &gx)?);
        self.params[1].grad = Some(channel_sum(b, &g)?);
        let dxhat = b.product(Product::Elementwise, &g, &channel_bcast(b, &self.params[0].value, &d)?)?;
        let s1 = b.scale(&channel_sum(b, &dxhat)?, 1.0 / m)?;
        let dx_x = b.product(Product::Elementwise, &dxhat, &xhat)?;
        let s2 = b.scale(&channel_sum(b, &dx_x)?, 1.0 / m)?;
        let t = b.sub(&dxhat, &channel_bcast(b, &s1, &d)?)?;
        let t = b.sub(&t, &b.product(Product::Elementwise, &xhat, &channel_bcast(b, &s2, &d)?)?)?;
        b.product(Product::Elementwise, &t, &channel_bcast(b, &inv, &d)?)
    }
}

/// Brings in weights in parameter order: `weights` is `Some` at `owner` (and always on
/// the plaintext twin), `None` at the other parties.
pub(crate) fn weight_source<'a, B: Backend>(
    b: &'a B,
    owner: PartyId,
    weights: Option<&'a [Vec<f64>]>,
) -> impl FnMut(&[usize]) -> Result<B::T> + 'a {
    let mut i = 0usize;
    move |shape: &[usize]| {
        let w = match weights {
            Some(ws) => {
                let w = ws.get(i).ok_or_else(|| Error::Usage(format!("weight tensor {i} missing")))?;
                if w.len() != shape.iter().product::<usize>() {
                    return Err(Error::Usage(format!("weight tensor {i}: {} values for shape {shape:?}", w.len())));
                }
                Some(w.as_slice())
            }
            None => None,
        };
        i += 1;
        b.input(owner, w, shape)
    }
}
