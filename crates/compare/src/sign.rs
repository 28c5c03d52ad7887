//! The sign circuit: MSB of a ring value, or the sign from its low `w` bits, bit-sliced.
//!
//! The circuit works on *rows*: row `j` of a sharing holds bit `j` of every element, 64
//! elements to a word ([`Device::bit_planes`]), so an AND of two rows is a word-wide AND
//! with nothing to mask or pack, and a row travels as it is. The elements' two summands
//! are transposed once; every later step touches only the rows still needed.

use triad_ring::{Device, RingError, RowAnd, Rows, Shape, StridedLayout, Tensor};
use triad_sharing::{placed, third, AShare, BShare, Error, Party, Result};
use triad_transport::Peer;

use crate::boolean::{exchange_parts, TOP};

/// The two summands `a + b = x` of the sign circuit, in rows, as the later rounds read
/// them: this party's part of the generate AND `a & b` on the leaves' rows `0 .. w - 1`
/// (the operands `and_x`, `and_y` of [`summands`]), and the propagate bits `a ^ b` on rows
/// `1 .. w - 1` (`prop`, the tree's `P` of leaves `1 ..`) and on row `w - 1` (`top`, the
/// sign bit's own sum).
struct Summands<D: Device> {
    and_x: Tensor<D>,
    and_y: Tensor<D>,
    prop: BShare<D>,
    top: BShare<D>,
}

/// The summands in rows, in one round, on the low `w` bits of `x`.
///
/// Groups of 64 elements are split in thirds; third `r` runs with roles `Rj = party (j + r)
/// % 3`. `R0` knows `a = x_{R0} + x_{R1}` (its two components) and shares it: component
/// `R0` is `ρ = F(k_{R0})` (a stream of the key it shares with `R2`), component `R1` is
/// `rows(a) ^ ρ`, which it sends to `R1`, and component `R2` is 0. `b = x_{R2}`, which `R1`
/// and `R2` both hold, is shared trivially (component `R2`, the others 0). `R1` sees `a`
/// under `ρ`, from a key it lacks; `R2` receives nothing. Each party sends one third of the
/// groups, `w` rows each, to its next party. In every component the nonzero thirds of `a`
/// and of `b` differ, so `a ^ b` is their pieces placed side by side.
///
/// The generate AND needs neither sharing whole: a party's 3-out-of-3 part of `a & b`,
/// `a_i&b_i ^ a_i&b_{i+1} ^ a_{i+1}&b_i`, is 0 in its `R0` third (its `b` components are
/// zero), `got & x_{R2}` in its `R1` third and `ρ & x_{R2}` in its `R2` third: `X & Y` for
/// `X` = (`got`, `ρ`) and `Y` = (`x_{R2}`, `x_{R2}`) placed at those thirds, which the masked
/// AND of the sharings `(X, X)` and `(Y, Y)` gives (`X&(Y^Y) ^ X&Y = X&Y`) with the same
/// message.
fn summands<D: Device>(p: &Party<D>, x: &AShare<D>, w: usize) -> Result<Summands<D>> {
    let n = x.shape().numel();
    let groups = n.div_ceil(64);
    let i = p.index();
    let dev = &p.dev;
    let streams: Vec<u64> = (0..3).map(|_| p.next_stream()).collect();
    let planes = w as u32;
    // Third r: its groups, and the elements they hold.
    let cols = |r: usize| third(groups, r);
    let elems = |r: usize| {
        let from = (cols(r).start * 64).min(n);
        (from, (cols(r).end * 64).min(n) - from)
    };
    // The rows of `count` words of `t` from `from`: `w` rows of their groups.
    let planes_of = |t: &Tensor<D>, (from, count): (usize, usize)| -> Result<Tensor<D>> {
        let b = dev.bit_planes(t.buffer(), from, count, planes).map_err(RingError::from)?;
        Ok(Tensor::from_buffer(dev, sh(w * count.div_ceil(64)), b)?)
    };
    // Role 0 in third i: rows(x_i + x_{i+1}) ^ ρ to R1 (the next party).
    let (from, count) = elems(i);
    let view = StridedLayout { dims: vec![count], strides: vec![1], offset: from };
    let mut sum = x.own.gather(&view)?;
    sum.add_assign(&x.next.gather(&view)?)?;
    let rho0 = p.prg_prev(&sh(w * cols(i).len()), streams[i])?;
    let mut sent = planes_of(&sum, (0, count))?;
    sent.xor_assign(&rho0)?;
    p.send(Peer::Next, &sent)?;
    // Role 2 in third i + 1: ρ of R0 (the next party), from the key shared with it; b's
    // component R2 is my own.
    let r2 = (i + 1) % 3;
    let rho2 = p.prg_next(&sh(w * cols(r2).len()), streams[r2])?;
    let b_own = planes_of(&x.own, elems(r2))?;
    // Role 1 in third i + 2: rows(a) ^ ρ from R0 (the previous party); b's component R2 is
    // my next.
    let r1 = (i + 2) % 3;
    let got = p.recv(Peer::Prev, &sh(w * cols(r1).len()))?;
    let b_next = planes_of(&x.next, elems(r1))?;
    // Rows lo..hi of the thirds' pieces, each at its third's columns.
    let place = |pieces: &[(&Tensor<D>, usize)], lo: usize, hi: usize| -> Result<Tensor<D>> {
        let mut at = Vec::with_capacity(pieces.len() * (hi - lo));
        for &(t, r) in pieces {
            let k = cols(r).len();
            for j in lo..hi {
                at.push(placed(t, (j - lo) * groups + cols(r).start, j * k, k));
            }
        }
        let len = (hi - lo) * groups;
        Ok(Tensor::from_buffer(dev, sh(len), dev.place(len, &at).map_err(RingError::from)?)?)
    };
    let (p_own, p_next) = ([(&rho0, i), (&got, r1), (&b_own, r2)], [(&sent, i), (&rho2, r2), (&b_next, r1)]);
    let leaves = w - 1;
    Ok(Summands {
        and_x: place(&[(&got, r1), (&rho2, r2)], 0, leaves)?,
        and_y: place(&[(&b_next, r1), (&b_own, r2)], 0, leaves)?,
        prop: BShare { own: place(&p_own, 1, leaves)?, next: place(&p_next, 1, leaves)? },
        top: BShare { own: place(&p_own, leaves, w)?, next: place(&p_next, leaves, w)? },
    })
}

/// Rows `first`, `first + step`, .. of both components of `t`.
fn rows<D: Device>(t: &BShare<D>, first: usize, step: usize) -> [Rows<'_, D::Buffer>; 2] {
    [Rows { buf: t.own.buffer(), first, step }, Rows { buf: t.next.buffer(), first, step }]
}

/// ANDs of row selections, all in one round: for each, each party's 3-out-of-3 part
/// `x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i`, XOR-ed with its `plus` rows when given and with
/// its part `F(k_i) ^ F(k_{i+1})` of a fresh XOR sharing of zero (one stream per AND,
/// drawn in order), in one device pass that reads the rows where they lie
/// ([`Device::and_rows`]). The parts are concatenated into one message to the previous
/// party, and each is the party's own component; the message from the next party gives the
/// next components. With `plus` the own component of a sharing `s`, the result is a sharing
/// of `x & y ^ s`: every party's part carries its component of `s`, so the next party's
/// message carries the next one. An AND of no rows is skipped (no stream drawn).
fn and_rows<D: Device>(p: &Party<D>, jobs: &[RowAnd<'_, D::Buffer>]) -> Result<Vec<BShare<D>>> {
    let _g = p.net.scope("and");
    let keys = [p.shared_key(Peer::Prev), p.shared_key(Peer::Next)];
    let mut owns = Vec::with_capacity(jobs.len());
    let mut parts = Vec::with_capacity(jobs.len());
    for op in jobs {
        let len = op.rows * op.width;
        let z = if len == 0 {
            Tensor::zeros(&p.dev, sh(0))?
        } else {
            let z = p.dev.and_rows(op, keys, p.next_stream()).map_err(RingError::from)?;
            Tensor::from_buffer(&p.dev, sh(len), z)?
        };
        parts.push(z.to_vec()?);
        owns.push(z);
    }
    let got = exchange_parts(p, parts)?;
    let mut out = Vec::with_capacity(jobs.len());
    for (own, next) in owns.into_iter().zip(got) {
        let next = Tensor::from_vec(&p.dev, [next.len()], next)?;
        out.push(BShare { own, next });
    }
    Ok(out)
}

/// `count` rows of `groups` words of each source, from row `first` every `step` rows, one
/// after another (a copy; the sources are row sharings).
fn pick<D: Device>(p: &Party<D>, groups: usize, sel: &[(&BShare<D>, usize, usize, usize)]) -> Result<BShare<D>> {
    let rows: usize = sel.iter().map(|s| s.3).sum();
    let len = rows * groups;
    let side = |k: usize| -> Result<Tensor<D>> {
        let mut at = Vec::with_capacity(rows);
        for &(src, first, step, count) in sel {
            let t = if k == 0 { &src.own } else { &src.next };
            for r in 0..count {
                at.push(placed(t, at.len() * groups, (first + r * step) * groups, groups));
            }
        }
        let b = p.dev.place(len, &at).map_err(RingError::from)?;
        Ok(Tensor::from_buffer(&p.dev, sh(len), b)?)
    };
    Ok(BShare { own: side(0)?, next: side(1)? })
}

fn sh(k: usize) -> Shape {
    Shape::new([k])
}

/// The most significant bit of `x` (its two's complement sign) as a binary sharing of a
/// bit in lane 0 (other lanes zero). Exact for every ring value.
///
/// [`msb_within`] on all 64 bits: 8 rounds and 64/3 + 181 = 202.3 bits (25.29 bytes) per
/// element per party.
pub fn msb<D: Device>(p: &Party<D>, x: &AShare<D>) -> Result<BShare<D>> {
    msb_within(p, x, 64)
}

/// The sign of `x` from its low `bits` bits alone: bit `bits - 1` of `x`, which is
/// [`msb`]`(x)` whenever `x` read as two's complement lies in `[-2^(bits-1), 2^(bits-1))`
/// (and an unrelated bit otherwise). `bits` is in `2..=64`; 64 is [`msb`].
///
/// Bit `w - 1` (`w = bits`) of `a + b` is `a_{w-1} ^ b_{w-1} ^ c`, with `c` the carry out
/// of the low `w - 1` bits: two summands (1 round, [`summands`]), generate `g_j = a_j & b_j`
/// for the `w - 1` leaves (1 round), then a carry tree over the leaves in rows
/// ([`sign_row`]): `ceil(log2(w - 1))` rounds, 6 at 48 and 64 bits. 8 rounds; at 48 bits
/// `16 + 133` bits (18.63 bytes) per element per party.
pub fn msb_within<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
    to_elements(sign_row(p, x, bits)?, x.shape(), 1)
}

/// [`msb_within`] with the bit left in lane 63 and the other lanes zero (what ReLU's bit
/// injection reads).
pub(crate) fn msb_within_top<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
    to_elements(sign_row(p, x, bits)?, x.shape(), TOP)
}

/// The elements' bits of a row, in lane `lane` of each word (a one-lane unpacking).
fn to_elements<D: Device>(row: BShare<D>, shape: &Shape, lane: u64) -> Result<BShare<D>> {
    Ok(BShare { own: row.own.unpack_bits(shape.clone(), lane)?, next: row.next.unpack_bits(shape.clone(), lane)? })
}

/// The sign bit of every element in one row (64 elements to a word).
///
/// The carry tree over the `L = w - 1` leaves: a node is a run of adjacent bits with its
/// generate `G` (a carry leaves the run) and propagate `P` (a carry crosses it). Each
/// round merges nodes `2m + 1` (high) and `2m` (low) into node `m`: `G = G_hi ^ P_hi &
/// G_lo`, `P = P_hi & P_lo`, an odd last node passing on as it is. The lowest node's `P`
/// is never read, so node 0 has none: `P` rows are kept for nodes `1 ..`, and a round
/// computes `G` for every merge and `P` for every merge but the lowest, all in one round
/// ([`and_rows`]). The root's `G` is the carry into bit `w - 1`. A round's operands are
/// every other row of the last, read where they lie, and each `G_hi` rides in its merge's
/// AND ([`and_rows`]'s `plus`).
fn sign_row<D: Device>(p: &Party<D>, x: &AShare<D>, bits: u32) -> Result<BShare<D>> {
    let _g = p.net.scope("msb");
    if !(2..=64).contains(&bits) {
        return Err(Error::Usage(format!("msb_within: bits must be in 2..=64, not {bits}")));
    }
    let groups = x.shape().numel().div_ceil(64);
    let w = bits as usize;
    let s = summands(p, x, w)?;
    // Leaves: G = g_j for j < w - 1, P of leaves 1.. (prop).
    let (x, y) = (Rows { buf: s.and_x.buffer(), first: 0, step: 1 }, Rows { buf: s.and_y.buffer(), first: 0, step: 1 });
    let generate = RowAnd { x: [x, x], y: [y, y], plus: None, rows: w - 1, width: groups };
    let mut gs = and_rows(p, &[generate])?.pop().ok_or_else(|| Error::Usage("msb: no generate".into()))?;
    let mut ps = s.prop;
    let mut nodes = w - 1;
    while nodes > 1 {
        let (m, pass) = (nodes / 2, nodes % 2 == 1);
        // G: P_{2t+1} & G_{2t} for t < m (P of node j is row j - 1). P: P_{2t+1} & P_{2t}
        // for 1 <= t < m.
        let hi_g = Rows { buf: gs.own.buffer(), first: 1, step: 2 };
        let jobs = [
            RowAnd { x: rows(&ps, 0, 2), y: rows(&gs, 0, 2), plus: Some(hi_g), rows: m, width: groups },
            RowAnd { x: rows(&ps, 2, 2), y: rows(&ps, 1, 2), plus: None, rows: m - 1, width: groups },
        ];
        let mut r = and_rows(p, &jobs)?.into_iter();
        let (g_new, p_new) = match (r.next(), r.next()) {
            (Some(g), Some(p)) => (g, p),
            _ => return Err(Error::Usage("msb: a round without its ANDs".into())),
        };
        if pass {
            gs = pick(p, groups, &[(&g_new, 0, 1, m), (&gs, nodes - 1, 1, 1)])?;
            ps = pick(p, groups, &[(&p_new, 0, 1, m - 1), (&ps, nodes - 2, 1, 1)])?;
        } else {
            gs = g_new;
            ps = p_new;
        }
        nodes = m + usize::from(pass);
    }
    // The sign: a_{w-1} ^ b_{w-1} ^ carry.
    let mut top = s.top;
    top.own.xor_assign(&gs.own)?;
    top.next.xor_assign(&gs.next)?;
    Ok(top)
}
