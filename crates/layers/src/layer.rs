//! Layers at run time: an architecture's [`LayerSpec`] plus its parameters (on some
//! [`Backend`]) and what the forward pass keeps for the backward pass.
//!
//! Every layer's forward and backward are written once, below, against [`Backend`]; the
//! private run and the plaintext twin execute the same lines.

use triad_ring::{Conv2dParams, Pool2dParams};
use triad_sharing::{Error, Product, Result};
use triad_transport::PartyId;

use crate::backend::Backend;
use crate::net::{layer_name, LayerSpec};

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
    /// Tanh: its output.
    Output(B::T),
    /// Flatten: the input dimensions.
    Dims(Vec<usize>),
    /// BatchNorm (training): normalised input `x̂` and `1/sqrt(var + eps)` per channel.
    Norm {
        xhat: B::T,
        inv: B::T,
    },
}

/// One layer of a model on backend `B`.
#[derive(Debug)]
pub struct Layer<B: Backend> {
    /// What the layer is.
    pub spec: LayerSpec,
    /// Its scope name (`03_relu`).
    pub name: String,
    /// Trainable parameters: conv / linear weight then bias; batch norm `γ`, `β`.
    pub params: Vec<Param<B>>,
    /// Batch norm's running mean and variance (not trained by SGD).
    pub buffers: Vec<B::T>,
    /// Residual: the main branch.
    pub body: Vec<Layer<B>>,
    /// Residual: the shortcut branch (empty: identity).
    pub shortcut: Vec<Layer<B>>,
    cache: Cache<B>,
    /// Batch norm at inference: the per-channel affine map `(a, c)` with
    /// `a = γ / sqrt(running var + eps)`, `c = β - running mean · a`, computed on the
    /// first inference pass and kept until the next training pass or
    /// [`params_mut`](Self::params_mut). Code that writes `params` or `buffers` directly
    /// must call `params_mut` (or run a training pass) before the next inference.
    folded: Option<(B::T, B::T)>,
}

fn take<T>(c: &mut T, empty: T) -> T {
    std::mem::replace(c, empty)
}

fn missing(name: &str) -> Error {
    Error::Usage(format!("{name}: backward without a forward pass"))
}

/// `[N, C, ...] -> [C]`: sum over every axis but the channel axis.
fn channel_sum<B: Backend>(b: &B, x: &B::T) -> Result<B::T> {
    let d = b.dims(x);
    let rest: usize = d[2..].iter().product();
    let r = b.reshape(b.copy(x)?, &[d[0], d[1], rest])?;
    b.sum_axis(&b.sum_axis(&r, 2)?, 0)
}

/// `[C] -> dims` (`[N, C, ...]`), repeating along every other axis.
fn channel_bcast<B: Backend>(b: &B, v: &B::T, dims: &[usize]) -> Result<B::T> {
    let mut s = vec![dims[1]];
    s.extend(std::iter::repeat_n(1, dims.len() - 2));
    b.broadcast(&b.reshape(b.copy(v)?, &s)?, dims)
}

impl<B: Backend> Layer<B> {
    /// Builds a layer from its spec, taking its parameters in order from `next_param`
    /// (which brings each tensor in on the backend, e.g. secret-shares it).
    pub fn build(
        b: &B,
        spec: &LayerSpec,
        name: String,
        next_param: &mut dyn FnMut(&[usize]) -> Result<B::T>,
    ) -> Result<Self> {
        let mut params = Vec::new();
        for s in spec.param_shapes() {
            params.push(Param::new(next_param(&s)?));
        }
        let buffers = match spec {
            LayerSpec::BatchNorm { c } => vec![b.constant(&[*c], 0.0)?, b.constant(&[*c], 1.0)?],
            _ => vec![],
        };
        let (mut body, mut shortcut) = (Vec::new(), Vec::new());
        if let LayerSpec::Residual { body: bs, shortcut: ss } = spec {
            for (i, l) in bs.iter().enumerate() {
                body.push(Layer::build(b, l, format!("body/{}", layer_name(i, l)), next_param)?);
            }
            for (i, l) in ss.iter().enumerate() {
                shortcut.push(Layer::build(b, l, format!("shortcut/{}", layer_name(i, l)), next_param)?);
            }
        }
        Ok(Layer { spec: spec.clone(), name, params, buffers, body, shortcut, cache: Cache::Empty, folded: None })
    }

    /// Every parameter, children included, depth first (the order of
    /// [`Net::init_weights`](crate::Net::init_weights)).
    /// Handing them out drops a folded batch norm (its map is recomputed from the new
    /// parameters on the next inference pass).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.folded = None;
        let mut v: Vec<&mut Param<B>> = self.params.iter_mut().collect();
        for l in self.body.iter_mut().chain(self.shortcut.iter_mut()) {
            v.extend(l.params_mut());
        }
        v
    }

    /// Every parameter, read only, in the same order.
    pub fn params(&self) -> Vec<&Param<B>> {
        let mut v: Vec<&Param<B>> = self.params.iter().collect();
        for l in self.body.iter().chain(self.shortcut.iter()) {
            v.extend(l.params());
        }
        v
    }

    /// The forward pass on a batch `x` (`[N, ...]`). `train` selects batch statistics in
    /// batch norm. The input and whatever the backward pass needs are cached.
    pub fn forward(&mut self, b: &B, x: B::T, train: bool) -> Result<B::T> {
        let _s = b.scope(&self.name);
        let d = b.dims(&x);
        match &self.spec {
            LayerSpec::Conv2d { out_c, k, stride, pad, .. } => {
                let p = Conv2dParams {
                    batch: d[0],
                    in_c: d[1],
                    in_h: d[2],
                    in_w: d[3],
                    out_c: *out_c,
                    kh: *k,
                    kw: *k,
                    stride_h: *stride,
                    stride_w: *stride,
                    pad_h: *pad,
                    pad_w: *pad,
                    groups: 1,
                };
                let mut y = b.product(Product::Conv2d(p), &x, &self.params[0].value)?;
                if let Some(bias) = self.params.get(1) {
                    y = b.add(&y, &channel_bcast(b, &bias.value, &b.dims(&y))?)?;
                }
                self.cache = Cache::Conv(x, p);
                Ok(y)
            }
            LayerSpec::Linear { .. } => {
                let mut y = b.product(Product::Matmul { a_trans: false, b_trans: true }, &x, &self.params[0].value)?;
                y = b.add(&y, &b.broadcast(&self.params[1].value, &b.dims(&y))?)?;
                self.cache = Cache::Input(x);
                Ok(y)
            }
            LayerSpec::AvgPool { k, stride, pad } => {
                let p = Pool2dParams::square(d[0], d[1], d[2], *k, *stride, *pad);
                let p = Pool2dParams { in_w: d[3], ..p };
                let y = b.scale(&b.pool_sum(&x, &p)?, 1.0 / (k * k) as f64)?;
                self.cache = Cache::Pool(p);
                Ok(y)
            }
            LayerSpec::MaxPool { k, stride, pad } => {
                let p = Pool2dParams::square(d[0], d[1], d[2], *k, *stride, *pad);
                let p = Pool2dParams { in_w: d[3], ..p };
                let (y, onehot) = b.maxpool(&x, &p)?;
                self.cache = Cache::MaxPool(onehot, p);
                Ok(y)
            }
            LayerSpec::Relu => {
                let (y, m) = b.relu(&x)?;
                self.cache = Cache::Mask(m);
                Ok(y)
            }
            LayerSpec::Tanh => {
                let y = b.tanh(&x)?;
                self.cache = Cache::Output(b.copy(&y)?);
                Ok(y)
            }
            LayerSpec::Flatten => {
                let rest: usize = d[1..].iter().product();
                self.cache = Cache::Dims(d.clone());
                b.reshape(x, &[d[0], rest])
            }
            LayerSpec::BatchNorm { .. } => self.batchnorm_forward(b, x, train),
            LayerSpec::Residual { .. } => {
                let mut y = b.copy(&x)?;
                for l in &mut self.body {
                    y = l.forward(b, y, train)?;
                }
                let mut s = x;
                for l in &mut self.shortcut {
                    s = l.forward(b, s, train)?;
                }
                b.add(&y, &s)
            }
        }
    }

    /// The backward pass: takes `∂loss/∂output`, stores the parameter gradients in
    /// [`Param::grad`], and returns `∂loss/∂input` when `need_input_grad` (the first layer
    /// of a model skips that product).
    pub fn backward(&mut self, b: &B, g: B::T, need_input_grad: bool) -> Result<Option<B::T>> {
        let _s = b.scope(&self.name);
        match (&self.spec, take(&mut self.cache, Cache::Empty)) {
            (LayerSpec::Conv2d { .. }, Cache::Conv(x, p)) => {
                self.params[0].grad = Some(b.product(Product::Conv2dGradWeight(p), &x, &g)?);
                if self.params.len() > 1 {
                    self.params[1].grad = Some(channel_sum(b, &g)?);
                }
                if need_input_grad {
                    Ok(Some(b.product(Product::Conv2dGradInput(p), &g, &self.params[0].value)?))
                } else {
                    Ok(None)
                }
            }
            (LayerSpec::Linear { .. }, Cache::Input(x)) => {
                self.params[0].grad = Some(b.product(Product::Matmul { a_trans: true, b_trans: false }, &g, &x)?);
                self.params[1].grad = Some(b.sum_axis(&g, 0)?);
                if need_input_grad {
                    Ok(Some(b.product(
                        Product::Matmul { a_trans: false, b_trans: false },
                        &g,
                        &self.params[0].value,
                    )?))
                } else {
                    Ok(None)
                }
            }
            (LayerSpec::AvgPool { k, .. }, Cache::Pool(p)) => {
                let gs = b.scale(&g, 1.0 / (k * k) as f64)?;
                Ok(Some(b.pool_sum_backward(&gs, &p)?))
            }
            (LayerSpec::MaxPool { .. }, Cache::MaxPool(onehot, p)) => Ok(Some(b.maxpool_backward(&g, &onehot, &p)?)),
            (LayerSpec::Relu, Cache::Mask(m)) => Ok(Some(b.mask(&g, &m)?)),
            (LayerSpec::Tanh, Cache::Output(y)) => {
                // d tanh = 1 - y².
                let y2 = b.product(Product::Elementwise, &y, &y)?;
                let one = b.constant(&b.dims(&y), 1.0)?;
                Ok(Some(b.product(Product::Elementwise, &g, &b.sub(&one, &y2)?)?))
            }
            (LayerSpec::Flatten, Cache::Dims(d)) => Ok(Some(b.reshape(g, &d)?)),
            (LayerSpec::BatchNorm { .. }, Cache::Norm { xhat, inv }) => {
                self.batchnorm_backward(b, g, xhat, inv).map(Some)
            }
            (LayerSpec::Residual { .. }, _) => {
                let mut gb = b.copy(&g)?;
                for l in self.body.iter_mut().rev() {
                    gb = l.backward(b, gb, true)?.ok_or_else(|| missing(&l.name))?;
                }
                let mut gs = g;
                for l in self.shortcut.iter_mut().rev() {
                    gs = l.backward(b, gs, true)?.ok_or_else(|| missing(&l.name))?;
                }
                Ok(Some(b.add(&gb, &gs)?))
            }
            _ => Err(missing(&self.name)),
        }
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
