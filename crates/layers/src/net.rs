//! Architectures: what the layers are, without weights or a backend. Shape inference,
//! parameter counts, the summary table and the initial weights come from here alone.

use triad_sharing::{Error, Result};

/// One layer of an architecture. Shapes are per sample (`[C, H, W]` or `[F]`); the batch
/// dimension is added at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// Square-kernel convolution, one group: weight `[out_c, in_c, k, k]`, optional bias
    /// `[out_c]`.
    Conv2d {
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// Kernel size.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        pad: usize,
        /// Whether the layer has a bias (ResNet convolutions before batch norm do not).
        bias: bool,
    },
    /// Fully connected `y = x·Wᵀ + b`, weight `[out, inp]`, bias `[out]`.
    Linear {
        /// Input features.
        inp: usize,
        /// Output features.
        out: usize,
    },
    /// Average pooling over `k x k` windows; padding counts as zero and the divisor is
    /// always `k²` (PyTorch's `count_include_pad`).
    AvgPool {
        /// Window.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        pad: usize,
    },
    /// Max pooling over `k x k` windows (padded positions never win).
    MaxPool {
        /// Window.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        pad: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `[C, H, W] -> [C·H·W]`.
    Flatten,
    /// Batch normalisation over the channel axis (axis 1 of the batch tensor), with
    /// learnable `γ`, `β` (`[c]`) and running mean and variance.
    BatchNorm {
        /// Channels.
        c: usize,
    },
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity.
    Residual {
        /// The main branch.
        body: Vec<LayerSpec>,
        /// The projection branch (empty: identity).
        shortcut: Vec<LayerSpec>,
    },
}

/// `(k, stride, pad)` output size of one spatial dimension.
fn out_size(n: usize, k: usize, stride: usize, pad: usize) -> Result<usize> {
    if stride == 0 || n + 2 * pad < k {
        return Err(Error::Usage(format!("window {k} (stride {stride}, pad {pad}) does not fit {n}")));
    }
    Ok((n + 2 * pad - k) / stride + 1)
}

impl LayerSpec {
    /// A short lowercase name (`conv2d`, `linear`, ...), used in scope names.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::AvgPool { .. } => "avgpool",
            LayerSpec::MaxPool { .. } => "maxpool",
            LayerSpec::Relu => "relu",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Flatten => "flatten",
            LayerSpec::BatchNorm { .. } => "batchnorm",
            LayerSpec::Residual { .. } => "residual",
        }
    }

    /// A one-line description with the hyper-parameters.
    pub fn describe(&self) -> String {
        match self {
            LayerSpec::Conv2d { in_c, out_c, k, stride, pad, bias } => {
                format!("conv2d {in_c}->{out_c} k{k} s{stride} p{pad}{}", if *bias { "" } else { " nobias" })
            }
            LayerSpec::Linear { inp, out } => format!("linear {inp}->{out}"),
            LayerSpec::AvgPool { k, stride, pad } => format!("avgpool k{k} s{stride} p{pad}"),
            LayerSpec::MaxPool { k, stride, pad } => format!("maxpool k{k} s{stride} p{pad}"),
            LayerSpec::BatchNorm { c } => format!("batchnorm {c}"),
            LayerSpec::Residual { shortcut, .. } => {
                format!("residual ({})", if shortcut.is_empty() { "identity" } else { "projection" })
            }
            other => other.kind().to_string(),
        }
    }

    /// Shapes of this layer's own trainable parameters (not its children's), in the
    /// order [`crate::Layer`] keeps them: weight then bias; `γ` then `β`.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            LayerSpec::Conv2d { in_c, out_c, k, bias, .. } => {
                let mut v = vec![vec![*out_c, *in_c, *k, *k]];
                if *bias {
                    v.push(vec![*out_c]);
                }
                v
            }
            LayerSpec::Linear { inp, out } => vec![vec![*out, *inp], vec![*out]],
            LayerSpec::BatchNorm { c } => vec![vec![*c], vec![*c]],
            _ => vec![],
        }
    }

    /// Trainable parameters, children included.
    pub fn num_params(&self) -> usize {
        let own: usize = self.param_shapes().iter().map(|s| s.iter().product::<usize>()).sum();
        match self {
            LayerSpec::Residual { body, shortcut } => {
                own + body.iter().chain(shortcut).map(LayerSpec::num_params).sum::<usize>()
            }
            _ => own,
        }
    }

    /// The per-sample output shape for a per-sample input shape.
    pub fn out_dims(&self, d: &[usize]) -> Result<Vec<usize>> {
        let bad = || Error::Usage(format!("{} cannot take input {d:?}", self.describe()));
        match self {
            LayerSpec::Conv2d { in_c, out_c, k, stride, pad, .. } => match d {
                [c, h, w] if c == in_c => {
                    Ok(vec![*out_c, out_size(*h, *k, *stride, *pad)?, out_size(*w, *k, *stride, *pad)?])
                }
                _ => Err(bad()),
            },
            LayerSpec::AvgPool { k, stride, pad } | LayerSpec::MaxPool { k, stride, pad } => match d {
                [c, h, w] => Ok(vec![*c, out_size(*h, *k, *stride, *pad)?, out_size(*w, *k, *stride, *pad)?]),
                _ => Err(bad()),
            },
            LayerSpec::Linear { inp, out } => match d {
                [f] if f == inp => Ok(vec![*out]),
                _ => Err(bad()),
            },
            LayerSpec::Relu | LayerSpec::Tanh => Ok(d.to_vec()),
            LayerSpec::Flatten => Ok(vec![d.iter().product()]),
            LayerSpec::BatchNorm { c } => match d.first() {
                Some(x) if x == c => Ok(d.to_vec()),
                _ => Err(bad()),
            },
            LayerSpec::Residual { body, shortcut } => {
                let a = chain_dims(body, d)?;
                let b = chain_dims(shortcut, d)?;
                if a != b {
                    return Err(Error::Usage(format!("residual branches give {a:?} and {b:?}")));
                }
                Ok(a)
            }
        }
    }
}

/// The output shape of a chain of layers.
pub fn chain_dims(layers: &[LayerSpec], d: &[usize]) -> Result<Vec<usize>> {
    let mut d = d.to_vec();
    for l in layers {
        d = l.out_dims(&d)?;
    }
    Ok(d)
}

/// A named architecture for inputs of a given per-sample shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    /// Name, e.g. `lenet-relu-avg` or `resnet50-imagenet`.
    pub name: String,
    /// Per-sample input shape `[C, H, W]`.
    pub input: Vec<usize>,
    /// The layers in order; the last one outputs the logits.
    pub layers: Vec<LayerSpec>,
}

/// One row of [`Net::summary_rows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Scope name of the layer (`03_relu`, `04_residual/00_conv2d`).
    pub name: String,
    /// [`LayerSpec::describe`].
    pub what: String,
    /// Per-sample output shape.
    pub out: Vec<usize>,
    /// Parameters of this row (a residual row counts its own, none; its children have rows).
    pub params: usize,
}

/// The scope name of layer `i` of kind `kind`: `"{i:02}_{kind}"`.
pub fn layer_name(i: usize, spec: &LayerSpec) -> String {
    format!("{i:02}_{}", spec.kind())
}

impl Net {
    /// Per-sample output shape (the logits).
    pub fn out_dims(&self) -> Result<Vec<usize>> {
        chain_dims(&self.layers, &self.input)
    }
    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(LayerSpec::num_params).sum()
    }
    /// Every layer, residual children included (depth first), with its output shape.
    pub fn summary_rows(&self) -> Result<Vec<SummaryRow>> {
        fn walk(prefix: &str, layers: &[LayerSpec], d: &[usize], rows: &mut Vec<SummaryRow>) -> Result<Vec<usize>> {
            let mut d = d.to_vec();
            for (i, l) in layers.iter().enumerate() {
                let name = format!("{prefix}{}", layer_name(i, l));
                let out = l.out_dims(&d)?;
                let own: usize = l.param_shapes().iter().map(|s| s.iter().product::<usize>()).sum();
                rows.push(SummaryRow { name: name.clone(), what: l.describe(), out: out.clone(), params: own });
                if let LayerSpec::Residual { body, shortcut } = l {
                    walk(&format!("{name}/body/"), body, &d, rows)?;
                    walk(&format!("{name}/shortcut/"), shortcut, &d, rows)?;
                }
                d = out;
            }
            Ok(d)
        }
        let mut rows = Vec::new();
        walk("", &self.layers, &self.input, &mut rows)?;
        Ok(rows)
    }
    /// The summary table: layer, output shape, parameters; then the totals. With
    /// `collapse_residuals`, residual blocks show as one row with their parameter total
    /// (for the deep ResNets).
    pub fn summary(&self, collapse_residuals: bool) -> Result<String> {
        let mut rows = self.summary_rows()?;
        if collapse_residuals {
            let mut out: Vec<SummaryRow> = Vec::new();
            for r in rows {
                if r.name.contains("/") {
                    if let Some(last) = out.last_mut() {
                        last.params += r.params;
                    }
                } else {
                    out.push(r);
                }
            }
            rows = out;
        }
        let w = rows.iter().map(|r| r.name.len() + r.what.len() + 2).max().unwrap_or(10).max(10);
        let mut s = format!("{} (input {:?})\n", self.name, self.input);
        s.push_str(&format!("{:<w$}  {:<16}  {:>12}\n", "layer", "output", "params"));
        for r in &rows {
            let lw = format!("{}  {}", r.name, r.what);
            s.push_str(&format!("{lw:<w$}  {:<16}  {:>12}\n", format!("{:?}", r.out), r.params));
        }
        s.push_str(&format!("{:<w$}  {:<16}  {:>12}\n", "total", format!("{:?}", self.out_dims()?), self.num_params()));
        Ok(s)
    }

    /// Initial weights in parameter order (depth first: weight, bias; `γ`, `β`), from a
    /// public seed: weights and biases uniform in `±1/sqrt(fan_in)` (PyTorch's default),
    /// `γ = 1`, `β = 0`.
    pub fn init_weights(&self, seed: u64) -> Vec<Vec<f64>> {
        fn walk(layers: &[LayerSpec], rng: &mut SplitMix, out: &mut Vec<Vec<f64>>) {
            for l in layers {
                let fan_in = match l {
                    LayerSpec::Conv2d { in_c, k, .. } => in_c * k * k,
                    LayerSpec::Linear { inp, .. } => *inp,
                    _ => 0,
                };
                for (j, s) in l.param_shapes().iter().enumerate() {
                    let n: usize = s.iter().product();
                    let v = match l {
                        LayerSpec::BatchNorm { .. } => vec![if j == 0 { 1.0 } else { 0.0 }; n],
                        _ => {
                            let bound = 1.0 / (fan_in as f64).sqrt();
                            (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * bound).collect()
                        }
                    };
                    out.push(v);
                }
                if let LayerSpec::Residual { body, shortcut } = l {
                    walk(body, rng, out);
                    walk(shortcut, rng, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.layers, &mut SplitMix(seed), &mut out);
        out
    }
}

/// splitmix64, for reproducible initial weights and synthetic inputs.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` words.
    pub fn words(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next_u64()).collect()
    }
}
