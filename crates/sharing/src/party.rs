//! One party of the three: its id, device, links, PRG keys and stream counter.

use std::cell::Cell;

use triad_fixed::FixedConfig;
use triad_ring::{BinaryOp, Device, PrgKey, PrgTerm, Shape, Tensor};
use triad_transport::{Channels, PartyId, Peer};

use crate::error::{Error, Result};

/// A party's two PRG keys. `prev` is shared with the previous party, `next` with the
/// next one. In global terms party `i` holds `k_i` (as `prev`) and `k_{i+1}` (as `next`);
/// key `k_j` is known to parties `j - 1` and `j` only.
#[derive(Clone, Debug)]
pub struct PairKeys {
    /// `k_i`, shared with party `i - 1`.
    pub prev: PrgKey,
    /// `k_{i+1}`, shared with party `i + 1`.
    pub next: PrgKey,
}

/// One party's view of a three-party computation. Every party runs the same program
/// (SPMD); protocol calls must be made in the same order on all three.
#[derive(Debug)]
pub struct Party<D: Device> {
    /// This party's id.
    pub id: PartyId,
    /// The device holding this party's shares.
    pub dev: D,
    /// Links to the next and previous parties, with the cost meter.
    pub net: Channels,
    /// The fixed-point configuration all parties agree on.
    pub fixed: FixedConfig,
    keys: PairKeys,
    /// Next PRG stream id. Every PRG draw takes a fresh stream, and all parties draw in
    /// the same order, so equal ids name equal streams across parties.
    stream: Cell<u64>,
}

impl<D: Device> Party<D> {
    /// Sets a party up over its links: draws the key it shares with the next party from
    /// the OS random source, sends it over the (authenticated, encrypted) link, and
    /// receives the key it shares with the previous party. One round, 32 bytes each.
    pub fn setup(dev: D, net: Channels, fixed: FixedConfig) -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Entropy(e.to_string()))?;
        let next = PrgKey::from_bytes(bytes);
        let _scope = net.scope("setup");
        net.send_bytes(Peer::Next, next.as_bytes().to_vec())?;
        let got = net.recv_bytes(Peer::Prev, 32)?;
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&got);
        drop(_scope);
        Ok(Self::from_keys(dev, net, fixed, PairKeys { prev: PrgKey::from_bytes(prev), next }))
    }

    /// A party whose keys are derived from a public seed: `k_j` is 32 bytes of
    /// `(seed, j)`. For reproducible tests only; such keys protect nothing.
    #[cfg(feature = "insecure-test-keys")]
    pub fn with_test_keys(dev: D, net: Channels, fixed: FixedConfig, seed: u64) -> Self {
        let id = net.id();
        let keys = test_keys(seed, id);
        Self::from_keys(dev, net, fixed, keys)
    }

    fn from_keys(dev: D, net: Channels, fixed: FixedConfig, keys: PairKeys) -> Self {
        Party { id: net.id(), dev, net, fixed, keys, stream: Cell::new(0) }
    }

    /// Index 0, 1 or 2.
    pub fn index(&self) -> usize {
        self.id.index()
    }

    /// Takes the next PRG stream id (the same on every party at the same point of the
    /// program).
    pub fn next_stream(&self) -> u64 {
        let s = self.stream.get();
        self.stream.set(s + 1);
        s
    }

    /// The PRG stream position, for checkpoints and for the simulator.
    pub fn stream_position(&self) -> u64 {
        self.stream.get()
    }

    /// `F(k_i, s)`: stream `s` of the key shared with the previous party. Take `s` from
    /// [`next_stream`](Self::next_stream) so every party draws the same stream.
    pub fn prg_prev(&self, shape: &Shape, stream: u64) -> Result<Tensor<D>> {
        Ok(Tensor::prg(&self.dev, shape.clone(), &self.keys.prev, stream, 0)?)
    }

    /// `F(k_{i+1}, s)`: stream `s` of the key shared with the next party.
    pub fn prg_next(&self, shape: &Shape, stream: u64) -> Result<Tensor<D>> {
        Ok(Tensor::prg(&self.dev, shape.clone(), &self.keys.next, stream, 0)?)
    }

    /// The PRG key this party shares with `peer` (`k_i` with the previous party, `k_{i+1}`
    /// with the next), for the device methods that draw their streams inside a fused pass
    /// (bit injection's). It never leaves the party.
    pub fn shared_key(&self, peer: Peer) -> &PrgKey {
        match peer {
            Peer::Prev => &self.keys.prev,
            Peer::Next => &self.keys.next,
        }
    }

    /// A term of [`Tensor::add_prg`]: stream `s` of the key shared with the previous party,
    /// `F(k_i, s)`, added (subtracted when `negate`).
    pub fn prev_term(&self, stream: u64, negate: bool) -> PrgTerm<'_> {
        PrgTerm { key: &self.keys.prev, stream, negate }
    }

    /// A term of [`Tensor::add_prg`]: stream `s` of the key shared with the next party,
    /// `F(k_{i+1}, s)`, added (subtracted when `negate`).
    pub fn next_term(&self, stream: u64, negate: bool) -> PrgTerm<'_> {
        PrgTerm { key: &self.keys.next, stream, negate }
    }

    /// `z += α_i`: this party's part of a fresh zero sharing, exactly
    /// [`zero_share`](Self::zero_share)'s (the next stream), added in one fused device pass
    /// ([`Device::add_prg`](triad_ring::Device::add_prg)).
    pub fn add_zero_share(&self, z: &mut Tensor<D>) -> Result<()> {
        let s = self.next_stream();
        Ok(z.add_prg(&[self.prev_term(s, false), self.next_term(s, true)])?)
    }

    /// This party's part `α_i = F(k_i) - F(k_{i+1})` of a fresh zero sharing
    /// (`α_0 + α_1 + α_2 = 0`), without communication.
    pub fn zero_share(&self, shape: &Shape) -> Result<Tensor<D>> {
        let s = self.next_stream();
        let mut a = self.prg_prev(shape, s)?;
        a.add_prg(&[self.next_term(s, true)])?;
        Ok(a)
    }

    /// This party's part `β_i = F(k_i) ^ F(k_{i+1})` of a fresh XOR sharing of zero.
    pub fn zero_share_xor(&self, shape: &Shape) -> Result<Tensor<D>> {
        let s = self.next_stream();
        let a = self.prg_prev(shape, s)?;
        Ok(a.binary(BinaryOp::Xor, &self.prg_next(shape, s)?)?)
    }

    /// The local half of a binary AND of `x` and `y << y_shl` (lane shift), `mask` lanes
    /// kept, packed: this party's 3-out-of-3 part `x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i`
    /// with `x = [x_i, x_{i+1}]` and `y` likewise shifted, its `mask` lanes packed
    /// ([`Tensor::pack_bits`]) and XOR-ed with this party's part `F(k_i) ^ F(k_{i+1})` of a
    /// fresh XOR sharing of zero over the packed words (the next stream), in one device pass
    /// ([`Device::and_part_packed`](triad_ring::Device::and_part_packed)). Unpacked with
    /// the same mask it is the party's component of `x & y & mask`.
    pub fn and_part_packed(&self, x: [&Tensor<D>; 2], y: [&Tensor<D>; 2], y_shl: u32, mask: u64) -> Result<Tensor<D>> {
        let shape = x[0].shape();
        if let Some(t) = [x[1], y[0], y[1]].into_iter().find(|t| t.shape() != shape) {
            return Err(Error::Usage(format!("and: operand shapes differ: {shape} and {}", t.shape())));
        }
        if y_shl >= 64 {
            return Err(Error::Usage(format!("and: shift {y_shl} is not below 64")));
        }
        let s = self.next_stream();
        let z = self
            .dev
            .and_part_packed(
                [x[0].buffer(), x[1].buffer()],
                [y[0].buffer(), y[1].buffer()],
                y_shl,
                [&self.keys.prev, &self.keys.next],
                s,
                mask,
            )
            .map_err(triad_ring::RingError::from)?;
        let words = (shape.numel() * mask.count_ones() as usize).div_ceil(64);
        Ok(Tensor::from_buffer(&self.dev, Shape::new([words]), z)?)
    }

    /// Sends a tensor's elements to a neighbour.
    pub fn send(&self, to: Peer, t: &Tensor<D>) -> Result<()> {
        self.net.send_u64s(to, t.to_vec()?)?;
        Ok(())
    }

    /// [`send`](Self::send) of a tensor no longer needed: its buffer is handed over
    /// ([`Device::into_host`](triad_ring::Device::into_host)), not copied.
    pub fn send_owned(&self, to: Peer, t: Tensor<D>) -> Result<()> {
        let words = self.dev.into_host(t.into_buffer()).map_err(triad_ring::RingError::from)?;
        self.net.send_u64s(to, words)?;
        Ok(())
    }

    /// Receives a tensor of the given shape from a neighbour.
    pub fn recv(&self, from: Peer, shape: &Shape) -> Result<Tensor<D>> {
        let v = self.net.recv_u64s(from, shape.numel())?;
        Ok(Tensor::from_vec(&self.dev, shape.clone(), v)?)
    }
}

/// The keys of party `id` for a public test seed.
#[cfg(feature = "insecure-test-keys")]
pub fn test_keys(seed: u64, id: PartyId) -> PairKeys {
    let key = |j: usize| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&seed.to_le_bytes());
        b[8] = j as u8;
        b[9] = 0xA5;
        PrgKey::from_bytes(b)
    };
    PairKeys { prev: key(id.index()), next: key((id.index() + 1) % 3) }
}
