//! Arithmetic (additive) replicated shares and their protocols.
//!
//! `x = x_0 + x_1 + x_2 mod 2^64`; party `i` holds `(x_i, x_{i+1})` as
//! [`AShare::own`] and [`AShare::next`]. Messages of the protocols here all travel in the
//! same direction: each party sends to its previous party and receives from its next.

use triad_ring::{Addend, BinaryOp, Conv2dParams, Device, Shape, Tensor};
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
    /// `|B(x, y)| < 2^62`), two rounds, `2·|B(x, y)|` elements sent by each party.
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
    /// `2n` elements sent by each party).
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
            let part = match self.index() {
                0 => x.own.try_clone()?,
                1 => x.own.add(&x.next)?,
                _ => Tensor::zeros(&self.dev, x.shape().clone())?,
            };
            return self.truncate_wrap_free(part, bits, x.shape());
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
    /// the parties' additive `part`s (`t = part_0 + part_1 + part_2`; party 2 passes zeros
    /// when it has no part), for any `|t| < 2^62`.
    ///
    /// Party 2 deals: `r = R_0 + R_1 - part_2` with `R_0 = F(k_0)` (known to parties 2, 0)
    /// and `R_1 = F(k_2)` (parties 1, 2), so its own part is folded into the mask and never
    /// travels; with `r'` the low 63 bits of `r` and `m` its top bit, it shares
    /// `T = m·2^(63-bits) - (r' >> bits)` and `E = (1 - 2m)·2^(63-bits)` between party 0
    /// (`T_0`, `E_0` from `F(k_0)`) and party 1 (`T_1`, `E_1`, sent by party 2). Parties 0
    /// and 1 open `c = part_0 + part_1 + 2^62 + R_0 + R_1 = t + 2^62 + r` to each other
    /// (party 0 sends `part_0 + 2^62 + R_0`, party 1 sends `part_1 + R_1`): each sees `t`
    /// under a mask it does not know (`R_1`, resp. `R_0`), and party 2 never sees `c`. With
    /// `x = t + 2^62 ∈ [0, 2^63)`, the carry of `x + r'` into bit 63 is `c_63 ⊕ m`, so
    /// `u = (c' >> bits) - 2^(62-bits) + T + c_63·E` with `c'` the low 63 bits of `c` is
    /// `floor(t / 2^bits)` plus `[c' mod 2^bits < r' mod 2^bits]`, a carry that is 1 with
    /// probability `(t mod 2^bits) / 2^bits`: exact stochastic rounding, never a wrap.
    /// Party 0 holds `u_0 = (c' >> bits) - 2^(62-bits) + T_0 + c_63·E_0`, party 1
    /// `u_1 = T_1 + c_63·E_1`, and the 2-out-of-2 resharing of [`truncate_parts`](Self::truncate_parts) finishes.
    ///
    /// Cost: two rounds (the dealer's message travels beside the opening). Elements sent:
    /// `2n` by each party. `bits` must be in `1..=62`.
    pub fn truncate_wrap_free(&self, part: Tensor<D>, bits: u32, shape: &Shape) -> Result<AShare<D>> {
        if !(1..=62).contains(&bits) {
            return Err(Error::Usage(format!("truncate_wrap_free: bits {bits} outside 1..=62")));
        }
        let (s_r, s_t, s_e) = (self.next_stream(), self.next_stream(), self.next_stream());
        // The 2-out-of-2 resharing's stream (`reshare_2of2`'s), whose masks the openers add
        // in the same pass as the truncation's last step.
        let s = self.next_stream();
        let dev = &self.dev;
        let tensor = |b: std::result::Result<D::Buffer, triad_ring::DeviceError>| -> Result<Tensor<D>> {
            Ok(Tensor::from_buffer(dev, shape.clone(), b.map_err(triad_ring::RingError::from)?)?)
        };
        let (prg, buf) = (Addend::Prg, Addend::Buf);
        match self.index() {
            0 => {
                let mut c0 = part;
                c0.add_prg(&[self.prev_term(s_r, false)])?;
                let c0 = c0.scalar(BinaryOp::Add, 1u64 << 62)?;
                self.send(Peer::Next, &c0)?;
                let c1 = self.recv(Peer::Next, shape)?;
                // s_0 = u_0 + r01 with u_0 = low - 2^(62-bits) + T_0 + high·E_0.
                let (e0, t0, r01) = (self.prev_term(s_e, false), self.prev_term(s_t, false), self.next_term(s, false));
                let s0 =
                    tensor(dev.truncate_open([c0.buffer(), c1.buffer()], bits, true, prg(e0), &[prg(t0), prg(r01)]))?;
                self.send(Peer::Prev, &s0)?;
                let s1 = self.recv(Peer::Next, shape)?;
                AShare::new(s0, s1)
            }
            1 => {
                let mut c1 = part;
                c1.add_prg(&[self.next_term(s_r, false)])?;
                self.send(Peer::Prev, &c1)?;
                let c0 = self.recv(Peer::Prev, shape)?;
                let t1 = self.recv(Peer::Next, shape)?;
                let e1 = self.recv(Peer::Next, shape)?;
                // s_1 = u_1 - r01 - r12 with u_1 = T_1 + high·E_1; r12 is also the next
                // component, so it is drawn once.
                let r12 = self.prg_next(shape, s)?;
                let plus = [buf(t1.buffer()), prg(self.prev_term(s, true)), Addend::Less(r12.buffer())];
                let s1 = tensor(dev.truncate_open([c1.buffer(), c0.buffer()], bits, false, buf(e1.buffer()), &plus))?;
                self.send(Peer::Prev, &s1)?;
                AShare::new(s1, r12)
            }
            _ => {
                let r = [self.next_term(s_r, false), self.prev_term(s_r, false)];
                let (t, e) = (self.next_term(s_t, true), self.next_term(s_e, true));
                let (t, e) = dev.truncate_deal(part.buffer(), bits, r, t, e).map_err(triad_ring::RingError::from)?;
                self.send_owned(Peer::Prev, tensor(Ok(t))?)?;
                self.send_owned(Peer::Prev, tensor(Ok(e))?)?;
                let r12 = self.prg_prev(shape, s)?;
                AShare::new(r12, self.recv(Peer::Next, shape)?)
            }
        }
    }
}
