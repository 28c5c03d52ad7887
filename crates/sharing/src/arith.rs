//! Arithmetic (additive) replicated shares and their protocols.
//!
//! `x = x_0 + x_1 + x_2 mod 2^64`; party `i` holds `(x_i, x_{i+1})` as
//! [`AShare::own`] and [`AShare::next`]. Messages of the protocols here all travel in the
//! same direction: each party sends to its previous party and receives from its next.

use triad_ring::{Addend, BinaryOp, Conv2dParams, Device, Placed, Shape, Tensor};
use triad_transport::{PartyId, Peer};

use crate::error::{Error, Result};
use crate::party::Party;

/// Party `i`'s two components `(x_i, x_{i+1})` of a replicated arithmetic sharing.
#[derive(Debug)]
pub struct AShare<D: Device> {
    /// `x_i`.
    pub own: Tensor<D>,
    /// `x_{i+1}`.
    pub next: Tensor<D>,
}

impl<D: Device> AShare<D> {
    /// Wraps two components of equal shape.
    pub fn new(own: Tensor<D>, next: Tensor<D>) -> Result<Self> {
        if own.shape() != next.shape() {
            return Err(Error::Usage(format!(
                "share components differ in shape: {} and {}",
                own.shape(),
                next.shape()
            )));
        }
        Ok(AShare { own, next })
    }
    /// The shape of the shared tensor.
    pub fn shape(&self) -> &Shape {
        self.own.shape()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.own.numel()
    }
    /// A deep copy.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(AShare { own: self.own.try_clone()?, next: self.next.try_clone()? })
    }
    fn map2(&self, other: &Self, op: BinaryOp) -> Result<Self> {
        Ok(AShare { own: self.own.binary(op, &other.own)?, next: self.next.binary(op, &other.next)? })
    }
    /// `x + y` (local).
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.map2(other, BinaryOp::Add)
    }
    /// `x - y` (local).
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.map2(other, BinaryOp::Sub)
    }
    /// `x += y` (local).
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.own.add_assign(&other.own)?;
        self.next.add_assign(&other.next)?;
        Ok(())
    }
    /// `-x` (local).
    pub fn neg(&self) -> Result<Self> {
        Ok(AShare { own: self.own.neg()?, next: self.next.neg()? })
    }
    /// `c * x` for a public ring scalar `c` (local; no truncation).
    pub fn mul_scalar(&self, c: u64) -> Result<Self> {
        Ok(AShare { own: self.own.scalar(BinaryOp::Mul, c)?, next: self.next.scalar(BinaryOp::Mul, c)? })
    }
    /// `c ⊙ x` for a public ring tensor `c` of the same shape (local; no truncation).
    pub fn mul_public(&self, c: &Tensor<D>) -> Result<Self> {
        Ok(AShare { own: self.own.mul(c)?, next: self.next.mul(c)? })
    }
    /// `x << s`, i.e. `2^s * x` (local).
    pub fn shl(&self, s: u32) -> Result<Self> {
        Ok(AShare { own: self.own.shl(s)?, next: self.next.shl(s)? })
    }
    /// Sum along `axis` (local).
    pub fn sum_axis(&self, axis: usize) -> Result<Self> {
        Ok(AShare { own: self.own.sum_axis(axis)?, next: self.next.sum_axis(axis)? })
    }
    /// Applies the same layout change to both components (reshape, permute, slice...).
    pub fn map_layout(
        &self,
        f: impl Fn(&Tensor<D>) -> std::result::Result<Tensor<D>, triad_ring::RingError>,
    ) -> Result<Self> {
        Ok(AShare { own: f(&self.own)?, next: f(&self.next)? })
    }
    /// Same elements, new shape.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        Ok(AShare { own: self.own.reshape(shape.clone())?, next: self.next.reshape(shape)? })
    }
}

/// How a truncation rounds.
///
/// Share truncation returns `floor(t / 2^bits)` or one less, each about half the time: on
/// average `t / 2^bits - 1` unit. `Floor` is that protocol as published (ABY3, CryptGPU);
/// `Unbiased` adds one unit (party 0 adds 1 to its part, free), so the result is
/// `floor(t / 2^bits)` or one more and its expectation is exactly `t / 2^bits`: stochastic
/// rounding. Sums of many truncated values (a bias gradient sums `N·OH·OW` of them) drift
/// with `Floor` and do not with `Unbiased`.
///
/// Both fail outright with probability about `|t| / 2^64` (the parts wrap: an error of
/// `2^(64 - bits)` units). A product of two values near 1 at `f = 20` has `|t| ≈ 2^40`, so
/// about one truncation in 10^7 fails; a LeNet training step truncates millions of values,
/// and one failure in a weight gradient ruins the model. `WrapFree` is a different protocol
/// without that failure: party 2 deals a masked truncation pair whose top bit is shared,
/// parties 0 and 1 open `t + 2^62 + r` to each other only, and the carry into the top bit
/// is corrected linearly (see [`Party::truncate_wrap_free`]). It needs `|t| < 2^62` (a
/// precondition, not a probability), gives `floor(t / 2^bits)` or one more with expectation
/// exactly `t / 2^bits`, and sends two elements per output from every party: twice the
/// bytes of a fused share-truncated product, three times those of a standalone share
/// truncation (where party 2 sends nothing), whose one round becomes two; training uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rounding {
    /// `floor(t / 2^bits)` or one less (ABY3 share truncation as published).
    #[default]
    Floor,
    /// `floor(t / 2^bits)` or one more; exactly unbiased (ABY3 share truncation).
    Unbiased,
    /// `floor(t / 2^bits)` or one more, exactly unbiased, and no large error for any
    /// `|t| < 2^62` (dealer-assisted truncation with the top bit corrected).
    WrapFree,
}

/// A bilinear map of the ring, evaluated by the device on local components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    /// Elementwise product (equal shapes).
    Elementwise,
    /// Matrix product of rank-2 tensors, either operand transposed.
    Matmul {
        /// Left operand transposed.
        a_trans: bool,
        /// Right operand transposed.
        b_trans: bool,
    },
    /// Convolution: left is the input, right the weight.
    Conv2d(Conv2dParams),
    /// Gradient of a convolution's input: left is the output gradient, right the weight.
    Conv2dGradInput(Conv2dParams),
    /// Gradient of a convolution's weight: left is the input, right the output gradient.
    Conv2dGradWeight(Conv2dParams),
}

impl Product {
    /// `B(a, b)` on plain ring tensors.
    pub fn apply<D: Device>(&self, a: &Tensor<D>, b: &Tensor<D>) -> Result<Tensor<D>> {
        Ok(match self {
            Product::Elementwise => a.mul(b)?,
            Product::Matmul { a_trans, b_trans } => a.matmul_t(b, *a_trans, *b_trans)?,
            Product::Conv2d(p) => a.conv2d(b, p)?,
            Product::Conv2dGradInput(p) => a.conv2d_grad_input(b, p)?,
            Product::Conv2dGradWeight(p) => a.conv2d_grad_weight(b, p)?,
        })
    }
    /// A short name for cost tables.
    pub fn name(&self) -> &'static str {
        match self {
            Product::Elementwise => "mul",
            Product::Matmul { .. } => "matmul",
            Product::Conv2d(_) => "conv2d",
            Product::Conv2dGradInput(_) => "conv2d_grad_input",
            Product::Conv2dGradWeight(_) => "conv2d_grad_weight",
        }
    }
}

impl<D: Device> Party<D> {
    // ---- input and output ----------------------------------------------------------------

    /// Secret-shares a plaintext ring tensor held by `owner`. The owner passes
    /// `Some(x)`, the others `None`; all pass the shape.
    ///
    /// Components `x_o = F(k_o)` and `x_{o+1} = F(k_{o+1})` come from the PRG keys the
    /// owner shares with its neighbours; the owner sends `x_{o+2} = x - x_o - x_{o+1}` to
    /// both. One round; the owner sends `2n` elements, the others nothing.
    pub fn share_input(&self, owner: PartyId, x: Option<&Tensor<D>>, shape: &Shape) -> Result<AShare<D>> {
        let _g = self.net.scope("share_input");
        let s = self.next_stream();
        let me = self.id;
        if (me == owner) != x.is_some() {
            return Err(Error::Usage(format!(
                "share_input: {me} {} the plaintext but the owner is {owner}",
                if x.is_some() { "passed" } else { "did not pass" }
            )));
        }
        if me == owner {
            let x = x.ok_or_else(|| Error::Usage("owner without input".into()))?;
            if x.shape() != shape {
                return Err(Error::Usage(format!(
                    "share_input: plaintext shape {} differs from the agreed shape {shape}",
                    x.shape()
                )));
            }
            let own = self.prg_prev(shape, s)?;
            let next = self.prg_next(shape, s)?;
            let last = x.sub(&own)?.sub(&next)?;
            self.send(Peer::Next, &last)?;
            self.send_owned(Peer::Prev, last)?;
            AShare::new(own, next)
        } else if me.prev() == owner {
            // I am o+1: (x_{o+1}, x_{o+2}).
            let own = self.prg_prev(shape, s)?;
            let next = self.recv(Peer::Prev, shape)?;
            AShare::new(own, next)
        } else {
            // I am o-1 = o+2: (x_{o+2}, x_o).
            let next = self.prg_next(shape, s)?;
            let own = self.recv(Peer::Next, shape)?;
            AShare::new(own, next)
        }
    }

    /// Opens `x` to one party: `to` gets `Some(x)`, the others `None`. The party after
    /// `to` sends it the missing component. One round; one party sends `n` elements.
    pub fn reveal_to(&self, to: PartyId, x: &AShare<D>) -> Result<Option<Tensor<D>>> {
        let _g = self.net.scope("reveal");
        if self.id == to {
            let missing = self.recv(Peer::Next, x.shape())?;
            Ok(Some(x.own.add(&x.next)?.add(&missing)?))
        } else if self.id.prev() == to {
            self.send(Peer::Prev, &x.next)?;
            Ok(None)
        } else {
            Ok(None)
        }
    }

    /// Opens `x` to all three parties. Only for values that are public by design (a
    /// final output everyone owns, or a value masked by fresh randomness): every party
    /// sends its `next` component to its previous party. One round, `n` elements each.
    pub fn reveal_all(&self, x: &AShare<D>) -> Result<Tensor<D>> {
        let _g = self.net.scope("reveal_all");
        self.send(Peer::Prev, &x.next)?;
        let missing = self.recv(Peer::Next, x.shape())?;
        Ok(x.own.add(&x.next)?.add(&missing)?)
    }

    // ---- public values --------------------------------------------------------------------

    /// The sharing `(c, 0, 0)` of a public tensor `c` (no communication, no randomness).
    pub fn public(&self, c: &Tensor<D>) -> Result<AShare<D>> {
        let zero = Tensor::zeros(&self.dev, c.shape().clone())?;
        Ok(match self.index() {
            0 => AShare::new(c.try_clone()?, zero)?,
            2 => AShare::new(zero, c.try_clone()?)?,
            _ => AShare::new(zero.try_clone()?, zero)?,
        })
    }

    /// `x + c` for a public tensor `c` (local: component `x_0` absorbs `c`).
    pub fn add_public(&self, x: &AShare<D>, c: &Tensor<D>) -> Result<AShare<D>> {
        let mut out = x.try_clone()?;
        match self.index() {
            0 => out.own.add_assign(c)?,
            2 => out.next.add_assign(c)?,
            _ => {
                if x.shape() != c.shape() {
                    return Err(triad_ring::RingError::ShapeMismatch {
                        op: "add_public",
                        left: x.shape().clone(),
                        right: c.shape().clone(),
                    }
                    .into());
                }
            }
        }
        Ok(out)
    }

    /// `x + c` for a public ring scalar `c`.
    pub fn add_scalar(&self, x: &AShare<D>, c: u64) -> Result<AShare<D>> {
        let mut out = x.try_clone()?;
        match self.index() {
            0 => out.own = out.own.scalar(BinaryOp::Add, c)?,
            2 => out.next = out.next.scalar(BinaryOp::Add, c)?,
            _ => {}
        }
        Ok(out)
    }

    /// A fresh sharing of a uniformly random tensor nobody knows, without communication:
    /// `(F(k_i), F(k_{i+1}))`.
    pub fn random(&self, shape: &Shape) -> Result<AShare<D>> {
        let s = self.next_stream();
        AShare::new(self.prg_prev(shape, s)?, self.prg_next(shape, s)?)
    }

    // ---- products -----------------------------------------------------------------------------

    /// This party's 3-out-of-3 part `z_i = B(x_i, y_i) + B(x_i, y_{i+1}) + B(x_{i+1}, y_i) + α_i`
    /// of `B(x, y)`, where `α` is a fresh zero sharing. Two products, the components of the
    /// smaller operand summed first: `B(x_i, y_i + y_{i+1}) + B(x_{i+1}, y_i)`, or
    /// `B(x_i + x_{i+1}, y_i) + B(x_i, y_{i+1})` when `x` is the smaller (a batch-1 input
    /// against a layer's weights: the sum is then 800 words, not 400,000). Both are the
    /// same ring element, so the message is the same.
    fn product_local(&self, op: Product, x: &AShare<D>, y: &AShare<D>) -> Result<Tensor<D>> {
        if op == Product::Elementwise && x.shape() == y.shape() {
            // One fused pass: the same ring element, with the zero sharing `add_zero_share`
            // would add (the next stream).
            let s = self.next_stream();
            let terms = [self.prev_term(s, false), self.next_term(s, true)];
            let z = self
                .dev
                .mul_part([x.own.buffer(), x.next.buffer()], [y.own.buffer(), y.next.buffer()], &terms)
                .map_err(triad_ring::RingError::from)?;
            return Ok(Tensor::from_buffer(&self.dev, x.shape().clone(), z)?);
        }
        let mut z = if x.shape().numel() < y.shape().numel() {
            let x_sum = x.own.add(&x.next)?;
            let mut z = op.apply(&x_sum, &y.own)?;
            z.add_assign(&op.apply(&x.own, &y.next)?)?;
            z
        } else {
            let y_sum = y.own.add(&y.next)?;
            let mut z = op.apply(&x.own, &y_sum)?;
            z.add_assign(&op.apply(&x.next, &y.own)?)?;
            z
        };
        self.add_zero_share(&mut z)?;
        Ok(z)
    }

    /// The ring product `B(x, y)` of two sharings (no truncation). Each party sends its
    /// 3-out-of-3 part to its previous party: one round, `|B(x, y)|` elements each.
    pub fn product(&self, op: Product, x: &AShare<D>, y: &AShare<D>) -> Result<AShare<D>> {
        let _g = self.net.scope(op.name());
        let z = self.product_local(op, x, y)?;
        self.reshare(z)
    }

    /// Turns a 3-out-of-3 sharing into a replicated one: send `z_i` to the previous party,
    /// receive `z_{i+1}` from the next. One round, `n` elements each.
    pub fn reshare(&self, z: Tensor<D>) -> Result<AShare<D>> {
        self.send(Peer::Prev, &z)?;
        let next = self.recv(Peer::Next, z.shape())?;
        AShare::new(z, next)
    }

    /// The fixed-point product `B(x, y) / 2^f`: the ring product followed by wrap-free
    /// truncation ([`Rounding::WrapFree`], what the layers use: never a large error for
    /// `|B(x, y)| < 2^62`), two rounds, about `1.78·|B(x, y)|` elements sent by each party
    /// at `f = 20` ([`truncate_wrap_free`](Self::truncate_wrap_free)).
    pub fn product_trunc(&self, op: Product, x: &AShare<D>, y: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc_with(op, x, y, Rounding::WrapFree)
    }

    /// The fixed-point product with ABY3 share truncation ([`Rounding::Floor`],
    /// CryptGPU's protocol), fused so each party sends `|B(x, y)|` elements in total (two
    /// rounds of latency; see [`truncate_parts`](Self::truncate_parts)). It fails with a
    /// large error with probability about `|x|/2^63` per element: for measurement and
    /// comparison with CryptGPU, not for models.
    pub fn product_trunc_share(&self, op: Product, x: &AShare<D>, y: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc_with(op, x, y, Rounding::Floor)
    }

    /// [`product_trunc`](Self::product_trunc) with the given [`Rounding`].
    pub fn product_trunc_with(&self, op: Product, x: &AShare<D>, y: &AShare<D>, r: Rounding) -> Result<AShare<D>> {
        let _g = self.net.scope(op.name());
        let z = self.product_local(op, x, y)?;
        if r == Rounding::WrapFree {
            let shape = z.shape().clone();
            return self.truncate_wrap_free(z, self.fixed.frac_bits, &shape);
        }
        // Party 2 hands z_2 to party 1, which then holds z_1 + z_2: a 2-out-of-2 sharing
        // (z_0 at party 0, z_1 + z_2 at party 1) that truncate_parts finishes.
        match self.index() {
            2 => {
                let shape = z.shape().clone();
                self.send_owned(Peer::Prev, z)?;
                self.truncate_parts_with(None, self.fixed.frac_bits, &shape, r)
            }
            1 => {
                let z2 = self.recv(Peer::Next, z.shape())?;
                let shape = z.shape().clone();
                self.truncate_parts_with(Some(z.add(&z2)?), self.fixed.frac_bits, &shape, r)
            }
            _ => {
                let shape = z.shape().clone();
                self.truncate_parts_with(Some(z), self.fixed.frac_bits, &shape, r)
            }
        }
    }

    /// Elementwise fixed-point product `x ⊙ y / 2^f` (wrap-free truncation, as every
    /// product of this family: [`product_trunc`](Self::product_trunc)).
    pub fn mul(&self, x: &AShare<D>, y: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc(Product::Elementwise, x, y)
    }

    /// Fixed-point square `x ⊙ x / 2^f`.
    pub fn square(&self, x: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc(Product::Elementwise, x, x)
    }

    /// Fixed-point matrix product `x · y / 2^f`.
    pub fn matmul(&self, x: &AShare<D>, y: &AShare<D>) -> Result<AShare<D>> {
        self.product_trunc(Product::Matmul { a_trans: false, b_trans: false }, x, y)
    }

    /// Fixed-point convolution of input `x` with weight `w`.
    pub fn conv2d(&self, x: &AShare<D>, w: &AShare<D>, p: &Conv2dParams) -> Result<AShare<D>> {
        self.product_trunc(Product::Conv2d(*p), x, w)
    }

    // ---- truncation ---------------------------------------------------------------------------

    /// Divides a sharing by `2^bits` with wrap-free truncation ([`Rounding::WrapFree`]:
    /// exact stochastic rounding for any `|x| < 2^62`, never a large error; two rounds,
    /// 1.78n elements sent by each party at 20 bits).
    pub fn truncate(&self, x: &AShare<D>, bits: u32) -> Result<AShare<D>> {
        self.truncate_with(x, bits, Rounding::WrapFree)
    }

    /// Divides a sharing by `2^bits` with ABY3 share truncation ([`Rounding::Floor`], as
    /// CryptGPU): one round, parties 0 and 1 each send `n` elements, party 2 nothing; a
    /// large error with probability about `|x|/2^63` per element. For measurement.
    ///
    /// Party 1 already holds `x_1 + x_2`, party 0 holds `x_0`: a 2-out-of-2 sharing that
    /// [`truncate_parts`](Self::truncate_parts) finishes.
    pub fn truncate_share(&self, x: &AShare<D>, bits: u32) -> Result<AShare<D>> {
        self.truncate_with(x, bits, Rounding::Floor)
    }

    /// [`truncate`](Self::truncate) with the given [`Rounding`].
    pub fn truncate_with(&self, x: &AShare<D>, bits: u32, r: Rounding) -> Result<AShare<D>> {
        let _g = self.net.scope("truncate");
        if r == Rounding::WrapFree {
            // Any additive split will do: party i's part is its own component x_i.
            return self.truncate_wrap_free(x.own.try_clone()?, bits, x.shape());
        }
        match self.index() {
            0 => self.truncate_parts_with(Some(x.own.try_clone()?), bits, x.shape(), r),
            1 => self.truncate_parts_with(Some(x.own.add(&x.next)?), bits, x.shape(), r),
            _ => self.truncate_parts_with(None, bits, x.shape(), r),
        }
    }

    /// Finishes a truncation from a 2-out-of-2 sharing `t = a + b` with `a` at party 0 and
    /// `b` at party 1 (`part` is `Some` on those two): each shifts its part arithmetically
    /// by `bits`, then the result is re-shared with masks `r01 = F(k_1)` (parties 0, 1) and
    /// `r12 = F(k_2)` (parties 1, 2) as
    /// `s_0 = (a >> bits) + r01`, `s_1 = (b >> bits) - r01 - r12`, `s_2 = r12`.
    /// Party 0 sends `s_0` to party 2, party 1 sends `s_1` to party 0.
    ///
    /// The result is `t / 2^bits` up to an error of one unit in the last place, except with
    /// probability about `|t| / 2^64` when the parts wrap (see the book's truncation
    /// chapter for the measured rate).
    pub fn truncate_parts(&self, part: Option<Tensor<D>>, bits: u32, shape: &Shape) -> Result<AShare<D>> {
        self.truncate_parts_with(part, bits, shape, Rounding::Floor)
    }

    /// [`truncate_parts`](Self::truncate_parts) with the given [`Rounding`]: `Unbiased`
    /// makes party 0's part `(a >> bits) + 1 + r01`.
    pub fn truncate_parts_with(
        &self,
        part: Option<Tensor<D>>,
        bits: u32,
        shape: &Shape,
        rounding: Rounding,
    ) -> Result<AShare<D>> {
        if rounding == Rounding::WrapFree {
            return Err(Error::Usage("truncate_parts: WrapFree goes through truncate_wrap_free".into()));
        }
        let shifted = match (self.index(), part) {
            (0, Some(a)) => {
                let s0 = a.sar(bits)?;
                Some(if rounding == Rounding::Unbiased { s0.scalar(BinaryOp::Add, 1)? } else { s0 })
            }
            (1, Some(b)) => Some(b.sar(bits)?),
            (2, None) => None,
            (i, p) => {
                return Err(Error::Usage(format!(
                    "truncate_parts: party {i} {} a part",
                    if p.is_some() { "passed" } else { "did not pass" }
                )))
            }
        };
        self.reshare_2of2(shifted, shape)
    }

    /// Turns a 2-out-of-2 sharing `u = u_0 + u_1` (`u_0` at party 0, `u_1` at party 1,
    /// `None` at party 2) into a replicated one with masks `r01 = F(k_1)` (parties 0, 1) and
    /// `r12 = F(k_2)` (parties 1, 2): `s_0 = u_0 + r01`, `s_1 = u_1 - r01 - r12`,
    /// `s_2 = r12`. Party 0 sends `s_0` to party 2, party 1 sends `s_1` to party 0: one
    /// round, `n` elements from each of parties 0 and 1.
    fn reshare_2of2(&self, part: Option<Tensor<D>>, shape: &Shape) -> Result<AShare<D>> {
        let s = self.next_stream();
        match (self.index(), part) {
            (0, Some(mut s0)) => {
                s0.add_prg(&[self.next_term(s, false)])?;
                self.send(Peer::Prev, &s0)?;
                let s1 = self.recv(Peer::Next, shape)?;
                AShare::new(s0, s1)
            }
            (1, Some(mut s1)) => {
                let r12 = self.prg_next(shape, s)?;
                s1.add_prg(&[self.prev_term(s, true)])?;
                s1.sub_assign(&r12)?;
                self.send(Peer::Prev, &s1)?;
                AShare::new(s1, r12)
            }
            (2, None) => {
                let r12 = self.prg_prev(shape, s)?;
                let s0 = self.recv(Peer::Next, shape)?;
                AShare::new(r12, s0)
            }
            (i, p) => Err(Error::Usage(format!(
                "reshare_2of2: party {i} {} a part",
                if p.is_some() { "passed" } else { "did not pass" }
            ))),
        }
    }

    /// Wrap-free truncation ([`Rounding::WrapFree`]): `t / 2^bits` of a value `t` given as
    /// the parties' additive `part`s (`t = part_0 + part_1 + part_2`), for any `|t| < 2^62`.
    ///
    /// The elements are split into three thirds ([`third`]); third `r` runs with roles
    /// `Rj = party (j + r) mod 3`, so every party deals for one third and opens the other
    /// two. In a third, `R2` deals: `r = R_0 + R_1 - part_{R2} - 2^62` with `R_0 = F(k_{R0})`
    /// (known to `R2`, `R0`) and `R_1 = F(k_{R2})` (`R1`, `R2`), so its own part is folded
    /// into the mask and never travels (and so is the public `2^62` below); with `r'` the low 63 bits of `r` and `m` its top bit,
    /// it shares `T = m·2^(63-bits) - (r' >> bits)` and `E = (1 - 2m)·2^(63-bits)` between
    /// `R0` (`T_0 = F(k_{R0})`, `E_0` = the top `bits + 1` bits of another `F(k_{R0})`) and
    /// `R1` (`T_1`, and `E_1`, a multiple of `2^(63-bits)` sent in its top `bits + 1` bits).
    /// `R0` and `R1` open `c = part_{R0} + part_{R1} + R_0 + R_1 = t + 2^62 + r` to each
    /// other (`R0` sends `part_{R0} + R_0`, `R1` sends `part_{R1} + R_1`): each
    /// sees `t` under a mask it does not know (`R_1`, resp. `R_0`), and `R2` never sees
    /// `c`. With `x = t + 2^62 ∈ [0, 2^63)`, the carry of `x + r'` into bit 63 is
    /// `c_63 ⊕ m`, so `u = (c' >> bits) - 2^(62-bits) + T + c_63·E` with `c'` the low 63
    /// bits of `c` is `floor(t / 2^bits)` plus `[c' mod 2^bits < r' mod 2^bits]`, a carry
    /// that is 1 with probability `(t mod 2^bits) / 2^bits`: exact stochastic rounding,
    /// never a wrap. `R0` holds `u_0 = (c' >> bits) - 2^(62-bits) + T_0 + c_63·E_0`, `R1`
    /// `u_1 = T_1 + c_63·E_1`, and a 2-out-of-2 resharing (`s_0 = u_0 + F(k_{R1})` to `R2`,
    /// `s_1 = u_1 - F(k_{R1}) - F(k_{R2})` to `R0`, `s_2 = F(k_{R2})`) finishes, its masks
    /// added in the same pass as `u`.
    ///
    /// Cost: two rounds (the dealer's message travels beside the opening). Elements sent
    /// per element by every party: `(2 + 2 + 1 + (bits + 1)/64) / 3`, 1.78 at `bits = 20`
    /// (2 for the openers and `2 + (bits + 1)/64` for the dealer before the roles rotated
    /// and `E_1` shrank). `bits` must be in `1..=62`.
    pub fn truncate_wrap_free(&self, part: Tensor<D>, bits: u32, shape: &Shape) -> Result<AShare<D>> {
        if !(1..=62).contains(&bits) {
            return Err(Error::Usage(format!("truncate_wrap_free: bits {bits} outside 1..=62")));
        }
        if part.numel() != shape.numel() {
            return Err(Error::Usage(format!("truncate_wrap_free: a part of {} for {shape}", part.shape())));
        }
        // Per third: the mask r, the dealt T and E, and the resharing.
        let streams: Vec<[u64; 4]> =
            (0..3).map(|_| [self.next_stream(), self.next_stream(), self.next_stream(), self.next_stream()]).collect();
        let (n, i) = (shape.numel(), self.index());
        // The third where this party plays role j, its elements and its streams.
        let role = |j: usize| {
            let r = (i + 3 - j) % 3;
            (third(n, r), streams[r])
        };
        let ((t0, sa), (t1, sb), (t2, sd)) = (role(0), role(1), role(2));
        let (k0, k1, k2) = (t0.len(), t1.len(), t2.len());
        let dev = &self.dev;
        let ring = |b: std::result::Result<D::Buffer, triad_ring::DeviceError>, len: usize| -> Result<Tensor<D>> {
            Ok(Tensor::from_buffer(dev, Shape::new([len]), b.map_err(triad_ring::RingError::from)?)?)
        };
        let place = |len: usize, pieces: &[Placed<'_, D::Buffer>]| ring(dev.place(len, pieces), len);
        let cut = |r: &std::ops::Range<usize>| place(r.len(), &[placed(&part, 0, r.start, r.len())]);
        let sh = |len: usize| Shape::new([len]);
        let (prg, buf) = (Addend::Prg, Addend::Buf);
        let high = triad_ring::device::fused::e_bits(bits);

        // ---- round 1: the openings and the deal ----------------------------------------
        // R0 (third t0): c0 = part + R_0, R_0 from my prev key, to R1 (next).
        let mut c0 = cut(&t0)?;
        c0.add_prg(&[self.prev_term(sa[0], false)])?;
        // R1 (third t1): c1 = part + R_1, R_1 from my next key, to R0 (prev).
        let mut c1 = cut(&t1)?;
        c1.add_prg(&[self.next_term(sb[0], false)])?;
        // R2 (third t2): T_1 and E_1 (its top bits + 1 bits, packed) to R1 (prev). The deal
        // runs over a multiple of 64 elements (zero parts past the third), so that the packed
        // E_1 fills whole words with uniform bits: no padding tells a zero from a value. T_1
        // travels whole too (at most 63 words more than the third; uniform like the rest).
        let kp = k2.next_multiple_of(64);
        let part_d = place(kp, &[placed(&part, 0, t2.start, k2)])?;
        let r = [self.next_term(sd[0], false), self.prev_term(sd[0], false)];
        let (td, ed) = (self.next_term(sd[1], true), self.next_term(sd[2], true));
        let (t_1, e_1) = dev.truncate_deal(part_d.buffer(), bits, r, td, ed).map_err(triad_ring::RingError::from)?;
        let t_1 = ring(Ok(t_1), kp)?;
        let e_1 = ring(dev.pack_bits(&e_1, high), packed_len(kp, bits))?;
        self.send(Peer::Next, &c0)?;
        self.send(Peer::Prev, &c1)?;
        self.send_owned(Peer::Prev, t_1)?;
        self.send_owned(Peer::Prev, e_1)?;
        // From prev: its R0 opening of my R1 third. From next: its R1 opening of my R0
        // third, then its deal for my R1 third.
        let c0_of_prev = self.recv(Peer::Prev, &sh(k1))?;
        let c1_of_next = self.recv(Peer::Next, &sh(k0))?;
        let k1p = k1.next_multiple_of(64);
        let t_1 = self.recv(Peer::Next, &sh(k1p))?;
        let e_1 = self.recv(Peer::Next, &sh(packed_len(k1p, bits)))?;
        let e_1 = ring(dev.unpack_bits(e_1.buffer(), k1p, high), k1p)?;

        // ---- round 2: the resharing ------------------------------------------------------
        // R0: s_0 = u_0 + r01 with u_0 = low - 2^(62-bits) + T_0 + high·E_0, to R2 (prev).
        let (e0, t0_, r01) = (self.prev_term(sa[2], false), self.prev_term(sa[1], false), self.next_term(sa[3], false));
        let s0 = ring(
            dev.truncate_open([c0.buffer(), c1_of_next.buffer()], bits, true, prg(e0), &[prg(t0_), prg(r01)]),
            k0,
        )?;
        // R1: s_1 = u_1 - r01 - r12 with u_1 = T_1 + high·E_1, to R0 (prev); r12 is also my
        // next component there, so it is drawn once.
        let r12 = self.prg_next(&sh(k1), sb[3])?;
        let plus = [buf(t_1.buffer()), prg(self.prev_term(sb[3], true)), Addend::Less(r12.buffer())];
        let s1 =
            ring(dev.truncate_open([c1.buffer(), c0_of_prev.buffer()], bits, false, buf(e_1.buffer()), &plus), k1)?;
        // Reassemble in element order: R0 holds (s_0, s_1), R1 (s_1, r12), R2 (r12, s_0). My
        // own components first, so that s_0 and s_1 then go to the transport uncopied.
        let r12_of_dealer = self.prg_prev(&sh(k2), sd[3])?;
        let (a0, a1, a2) = (t0.start, t1.start, t2.start);
        let own = place(n, &[placed(&s0, a0, 0, k0), placed(&s1, a1, 0, k1), placed(&r12_of_dealer, a2, 0, k2)])?;
        self.send_owned(Peer::Prev, s0)?;
        self.send_owned(Peer::Prev, s1)?;
        // From next: s_0 for my dealt third (it is R0 there), s_1 for my R0 third.
        let s0_of_next = self.recv(Peer::Next, &sh(k2))?;
        let s1_of_next = self.recv(Peer::Next, &sh(k0))?;
        let next =
            place(n, &[placed(&s1_of_next, a0, 0, k0), placed(&r12, a1, 0, k1), placed(&s0_of_next, a2, 0, k2)])?;
        AShare::new(own.reshape(shape.clone())?, next.reshape(shape.clone())?)
    }
}

/// Elements `n r / 3 .. n (r + 1) / 3` (`r` in `0..3`): the thirds of a protocol whose party
/// roles rotate, so that every party sends the same amount (wrap-free truncation here, the
/// comparisons' summands and bit injection in `triad-compare`, which assemble their thirds
/// with [`placed`]).
pub fn third(n: usize, r: usize) -> std::ops::Range<usize> {
    r * n / 3..(r + 1) * n / 3
}

/// Words of `len` values of `bits + 1` bits packed back to back: wrap-free truncation's
/// `E_1` (`len` a multiple of 64, so the words are whole).
fn packed_len(len: usize, bits: u32) -> usize {
    (len * (bits as usize + 1)).div_ceil(64)
}

/// `count` words of `t` from `from`, placed at `at` ([`Device::place`]'s piece).
pub fn placed<D: Device>(t: &Tensor<D>, at: usize, from: usize, count: usize) -> Placed<'_, D::Buffer> {
    Placed { at, src: t.buffer(), from, count }
}
