//! Binary (XOR) replicated shares over u64 lanes.
//!
//! `x = x_0 ^ x_1 ^ x_2`; party `i` holds `(x_i, x_{i+1})`. Each `u64` carries 64
//! independent bit lanes, so one AND of two tensors of `n` words is `64 n` AND gates.

use triad_ring::{BinaryOp, Device, Shape, Tensor, UnaryOp};
use triad_transport::Peer;

use crate::error::Result;
use crate::party::Party;

/// Party `i`'s two components `(x_i, x_{i+1})` of a replicated XOR sharing.
#[derive(Debug)]
pub struct BShare<D: Device> {
    /// `x_i`.
    pub own: Tensor<D>,
    /// `x_{i+1}`.
    pub next: Tensor<D>,
}

impl<D: Device> BShare<D> {
    /// The shape of the shared tensor.
    pub fn shape(&self) -> &Shape {
        self.own.shape()
    }
    fn map2(&self, other: &Self, op: BinaryOp) -> Result<Self> {
        Ok(BShare { own: self.own.binary(op, &other.own)?, next: self.next.binary(op, &other.next)? })
    }
    fn map1(&self, op: UnaryOp) -> Result<Self> {
        Ok(BShare { own: self.own.unary(op)?, next: self.next.unary(op)? })
    }
    /// `x ^ y` (local).
    pub fn xor(&self, other: &Self) -> Result<Self> {
        self.map2(other, BinaryOp::Xor)
    }
    /// `x & m` for a public mask `m` (local: every component is masked).
    pub fn and_mask(&self, m: u64) -> Result<Self> {
        Ok(BShare { own: self.own.scalar(BinaryOp::And, m)?, next: self.next.scalar(BinaryOp::And, m)? })
    }
    /// Logical `x << s` (local).
    pub fn shl(&self, s: u32) -> Result<Self> {
        self.map1(UnaryOp::Shl(s))
    }
    /// Logical `x >> s` (local).
    pub fn shr(&self, s: u32) -> Result<Self> {
        self.map1(UnaryOp::ShrLogical(s))
    }
    /// A deep copy.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(BShare { own: self.own.try_clone()?, next: self.next.try_clone()? })
    }
}

impl<D: Device> Party<D> {
    /// `x ^ c` for a public tensor `c` (component `x_0` absorbs it).
    pub fn xor_public(&self, x: &BShare<D>, c: &Tensor<D>) -> Result<BShare<D>> {
        let mut out = x.try_clone()?;
        match self.index() {
            0 => out.own.xor_assign(c)?,
            2 => out.next.xor_assign(c)?,
            _ => {}
        }
        Ok(out)
    }

    /// `!x` (the complement of every lane).
    pub fn not(&self, x: &BShare<D>) -> Result<BShare<D>> {
        let mut out = x.try_clone()?;
        match self.index() {
            0 => out.own = out.own.not()?,
            2 => out.next = out.next.not()?,
            _ => {}
        }
        Ok(out)
    }

    /// `x & y` lane by lane: `z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ β_i`, then the
    /// same one-round reshare as the arithmetic product: `n` words each.
    pub fn and(&self, x: &BShare<D>, y: &BShare<D>) -> Result<BShare<D>> {
        let _g = self.net.scope("and");
        let mut z = x.own.and(&y.own.xor(&y.next)?)?;
        z.xor_assign(&x.next.and(&y.own)?)?;
        z.xor_assign(&self.zero_share_xor(z.shape())?)?;
        self.send(Peer::Prev, &z)?;
        let next = self.recv(Peer::Next, z.shape())?;
        Ok(BShare { own: z, next })
    }

    /// Opens a binary sharing to every party (see [`Party::reveal_all`] for when that is
    /// allowed). One round, `n` words each.
    pub fn reveal_all_xor(&self, x: &BShare<D>) -> Result<Tensor<D>> {
        let _g = self.net.scope("reveal_all");
        self.send(Peer::Prev, &x.next)?;
        let missing = self.recv(Peer::Next, x.shape())?;
        Ok(x.own.xor(&x.next)?.xor(&missing)?)
    }
}
