//! # triad-layers: layers, models, loss and SGD on replicated shares, with a float64 twin
//!
//! ## Design
//!
//! Three plain pieces:
//!
//! 1. **[`Graph`]**: a network, a DAG of [`Node`]s, each an [`Op`] (convolution, linear,
//!    pools, activations, softmax, batch norm, reshapes, add/sub, products by public
//!    scalars or by the model's secret buffers, concat, pad) on earlier nodes' outputs,
//!    with per-sample shapes. Shapes, parameter and buffer names ([`Graph::tensors`]), the
//!    [`Graph::summary`] table and the initial weights ([`Graph::init_weights`]) need
//!    nothing else. One representation for everything: the [`zoo`] builds LeNet, AlexNet,
//!    VGG-16 and ResNet-50/101/152 with [`Chain`] (residual blocks are `Add` nodes), the
//!    ONNX import (`triad-onnx`) with [`GraphBuilder`].
//! 2. **[`Backend`]**: the arithmetic a layer needs (fixed-point products including
//!    matmul and the three convolution forms, products by public reals, 0/1 masks, local
//!    reshapes and sums, ReLU, max pooling, tanh, softmax, log, inverse square root). Two
//!    implementations:
//!    - [`Party<D>`](triad_sharing::Party) itself: tensors are the party's
//!      [`AShare`](triad_sharing::AShare)s, operations are the protocols of
//!      `triad-sharing`, `triad-compare` and `triad-approx`;
//!    - [`Plain`]: tensors are [`PTensor`]s of `f64`, operations are exact. This is the
//!      **plaintext twin**.
//! 3. **[`Layer<B>`] and [`Model<B>`]**: a layer is one node's op, its [`Param`]s (value,
//!    gradient, momentum buffer), and a private cache. `forward` and `backward` are
//!    written **once**, generic over `B: Backend`, so the private model and its twin run
//!    literally the same lines: `Model<Party<CpuDevice>>` and `Model<Plain>` built from
//!    the same `Graph` and the same initial weights.
//!
//! ```text
//! let net = zoo::lenet(Activation::Relu, Pooling::Avg);
//! let w0 = net.init_weights(seed);                       // public seed, or owner's weights
//! // on each party:                                        party 0 owns the weights
//! let mut m = Model::new(party, &net, P0, (party.id == P0).then_some(&w0[..]))?;
//! let x = party.input(P0, data, &[n, 1, 28, 28])?;         // secret images
//! let y = party.input(P0, onehot, &[n, 10])?;              // secret labels
//! m.train_step(party, x, &y, &Sgd::new(0.05))?;            // forward, loss grad, backward, SGD
//! // the twin:
//! let mut t = Model::new(&Plain, &net, P0, Some(&w0))?;
//! t.train_step(&Plain, Plain.input(P0, Some(data), ..)?, &y_plain, &Sgd::new(0.05))?;
//! ```
//!
//! **Nothing is opened** during training: the forward pass caches its inputs (conv,
//! linear), the injected DReLU bits (ReLU), the one-hot argmax positions (max pool), the
//! outputs (tanh) and `x̂`, `1/σ` (batch norm) as shares; the backward pass is products of
//! shares; labels are shares; SGD multiplies gradient shares by the public encoded
//! learning rate and truncates. [`Model::open_weights`] and [`Backend::open`] exist for
//! the owner's final result and for tests.
//!
//! ## Layers, forward and backward
//!
//! | layer | forward | backward | truncations (fwd / bwd) |
//! |---|---|---|---|
//! | Conv2d | `conv(x, W) + b` | `dW = convW(x, g)`, `db = Σ_{n,h,w} g`, `dx = convX(g, W)` | 1 / 2 |
//! | Linear | `x·Wᵀ + b` | `dW = gᵀ·x`, `db = Σ_n g`, `dx = g·W` | 1 / 2 |
//! | AvgPool | `pool_sum(x) · 1/k²` | `pool_sumᵀ(g · 1/k²)` | 1 / 1 |
//! | MaxPool | max and one-hot argmax (compare) | `onehot · g`, windows summed back | 0 / 0 |
//! | ReLU | `x · [x ≥ 0]` (compare), bit kept | `g · bit` | 0 / 0 |
//! | Tanh | `tanh(x)` (approx) | `g · (1 - y²)` | approx / 2 |
//! | Flatten | reshape | reshape | 0 / 0 |
//! | BatchNorm | batch stats, `inv_sqrt` (approx) | the usual formula | several |
//! | Add / Sub | `x ± y` | `g`, `±g` | 0 / 0 |
//! | Sigmoid, Softmax | approx | `g·y(1-y)`, `y(g - Σgy)` | approx / 2 |
//! | GlobalAvgPool | `Σ_hw x / HW` | `g / HW` broadcast | 1 / 1 |
//! | AddConst, MulConst | `x + c`, `x·c` (public) | `g`, `g·c` | 0, 1 / 0, 1 |
//! | AddBuffer, MulBuffer | `x + t`, `x·t` (secret) | `g`, `g·t` | 0, 1 / 0, 1 |
//! | Concat, Pad, Reshape | layout | slices, crop, reshape | 0 / 0 |
//!
//! The first layer of a model skips its input gradient. The loss is softmax
//! cross-entropy: [`softmax_xent_grad`] gives `(softmax(z) - y) / N` (no logarithm in
//! backpropagation, as CryptGPU); [`xent_loss`] computes the loss value for reporting.
//!
//! ## Error against the twin
//!
//! Every fixed-point product truncates with [`Rounding::WrapFree`](triad_sharing::Rounding),
//! and so does every truncation inside the approximations (softmax, tanh, inverse square
//! root, log: `ApproxParams::with_rounding`):
//! the result is the floor of the exact product or one unit more, i.e. within `2^-f`
//! (`≈ 9.5e-7`) of it, with expectation exactly the product, and input encoding adds
//! `2^-(f+1)`. A layer with inner dimension
//! `K` (fan-in) and operands bounded by `|x| ≤ X`, `|w| ≤ Wmax` turns input errors `ε` into
//! at most `K·Wmax·ε + 2·2^-f`: errors grow by the layer's gain, not by depth alone.
//! The differential tests (`tests/tests/layers_*.rs`) assert absolute bounds derived this
//! way (with margin) for each layer, and document them next to the assertions. ReLU and
//! max pooling are exact given their inputs (except where an input within the error of 0,
//! or of a tie, flips the comparison — the twin then differs by at most that error times
//! the downstream gain). ABY3 share truncation would also fail outright with probability
//! about `|t|/2^64` per element, several times per LeNet training epoch (millions of
//! truncations per step at `|t| ≈ 2^40`); wrap-free truncation has no such failure for any
//! `|t| < 2^62`, at the price of more bytes (see the book's truncation chapter).
//!
//! ## Costs
//!
//! Every layer's protocols run inside the cost scope `forward/<NN_kind>` or
//! `backward/<NN_kind>` (`loss`, `sgd` for the rest), so
//! [`layer_cost_table`] gives rounds and bytes per party per layer.

mod backend;
mod graph;
pub mod graph_wire;
mod layer;
mod model;
pub mod plain;
pub mod zoo;

/// The datasets (re-exported for the training command and tests).
pub use triad_data as data;

pub use backend::{
    check_public_multiplier, scale_bits, Backend, Plain, PUBLIC_MULTIPLIER_MAX_REL_ERROR, SCALE_SIGNIFICANT_BITS,
};
pub use graph::{
    layer_name, Chain, Constant, ConvSpec, Graph, GraphBuilder, Node, Op, PoolSpec, SplitMix, SummaryRow, TensorInfo,
};
pub use layer::{Layer, Param, BN_EPS, BN_MOMENTUM};
pub use model::{
    argmax_rows, layer_cost_table, one_hot, serving_shapes, serving_tensors, softmax_xent_grad, xent_loss, Guard,
    Model, Sgd,
};
pub use plain::PTensor;
pub use zoo::{Activation, Dataset, Pooling};
