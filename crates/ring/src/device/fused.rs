//! The default implementations of the fused methods, written with the unfused ones: the
//! definition each override must reproduce bit for bit (the device suite's `ring_ops`
//! tests compare the CPU device's overrides with these).

use super::{
    check_planes, check_range, check_same_len, check_trunc_bits, Addend, BinaryOp, BitRange, Device, DeviceResult,
    Placed, PrgTerm, RowAnd, Rows, StridedLayout, UnaryOp,
};
use crate::prg::PrgKey;

/// [`Device::place`] as zeros, and per piece a strided gather and a strided scatter.
pub fn place<D: Device>(dev: &D, len: usize, pieces: &[Placed<'_, D::Buffer>]) -> DeviceResult<D::Buffer> {
    let mut out = dev.fill(len, 0)?;
    for p in pieces {
        p.check(&dev.name(), len, dev.len(p.src))?;
        if p.count == 0 {
            continue;
        }
        let view = |offset| StridedLayout { dims: vec![p.count], strides: vec![1], offset };
        let part = dev.gather_strided(p.src, &view(p.from))?;
        dev.scatter_strided(&mut out, &part, &view(p.at))?;
    }
    Ok(out)
}

/// [`Device::and_part`] as shifts, XORs and ANDs.
pub fn and_part<D: Device>(
    dev: &D,
    x: [&D::Buffer; 2],
    y: [&D::Buffer; 2],
    y_shl: u32,
    r: [&D::Buffer; 2],
    mask: u64,
) -> DeviceResult<D::Buffer> {
    let shifted;
    let y = if y_shl == 0 {
        y
    } else {
        shifted = [dev.unary(UnaryOp::Shl(y_shl), y[0])?, dev.unary(UnaryOp::Shl(y_shl), y[1])?];
        [&shifted[0], &shifted[1]]
    };
    let mut z = dev.binary(BinaryOp::Xor, y[0], y[1])?;
    dev.binary_assign(BinaryOp::And, &mut z, x[0])?;
    dev.binary_assign(BinaryOp::Xor, &mut z, &dev.binary(BinaryOp::And, x[1], y[0])?)?;
    dev.binary_assign(BinaryOp::Xor, &mut z, &dev.binary(BinaryOp::Xor, r[0], r[1])?)?;
    dev.binary_scalar(BinaryOp::And, &z, mask)
}

/// The bits of a [`BitRange`] as words of 0 and 1.
fn bit_words<D: Device>(dev: &D, b: &BitRange<'_, D::Buffer>) -> DeviceResult<D::Buffer> {
    b.check(&dev.name(), dev.len(b.src), b.also.map(|a| dev.len(a)))?;
    let view = StridedLayout { dims: vec![b.count], strides: vec![1], offset: b.from };
    let mut w = dev.gather_strided(b.src, &view)?;
    if let Some(also) = b.also {
        dev.binary_assign(BinaryOp::Xor, &mut w, &dev.gather_strided(also, &view)?)?;
    }
    dev.binary_scalar(BinaryOp::And, &dev.unary(UnaryOp::ShrLogical(b.bit), &w)?, 1)
}

/// `count` words of `buf` from `at`.
fn words<D: Device>(dev: &D, buf: &D::Buffer, at: usize, count: usize) -> DeviceResult<D::Buffer> {
    check_range(&dev.name(), "bit injection", at, count, dev.len(buf))?;
    dev.gather_strided(buf, &StridedLayout { dims: vec![count], strides: vec![1], offset: at })
}

/// `(1 - 2f)·a`: `-a` where `f` is 1, `a` where it is 0.
fn signed<D: Device>(dev: &D, f: &D::Buffer, a: &D::Buffer) -> DeviceResult<D::Buffer> {
    let sign = dev.binary_scalar(BinaryOp::Add, &dev.binary_scalar(BinaryOp::Mul, f, 2u64.wrapping_neg())?, 1)?;
    dev.binary(BinaryOp::Mul, &sign, a)
}

/// [`Device::inject_offer`] as the bits, a draw and a subtraction.
pub fn inject_offer<D: Device>(
    dev: &D,
    bits: BitRange<'_, D::Buffer>,
    key: &PrgKey,
    stream: u64,
) -> DeviceResult<D::Buffer> {
    let e = bit_words(dev, &bits)?;
    dev.binary(BinaryOp::Sub, &e, &dev.prg_fill(key, stream, 0, bits.count)?)
}

/// [`Device::inject_pick`] as the bits, a draw, a signed product and a subtraction.
pub fn inject_pick<D: Device>(
    dev: &D,
    bits: BitRange<'_, D::Buffer>,
    key: &PrgKey,
    stream: u64,
    r: &D::Buffer,
) -> DeviceResult<D::Buffer> {
    let n = bits.count;
    let f = bit_words(dev, &bits)?;
    let r = words(dev, r, 0, n)?;
    dev.binary(BinaryOp::Sub, &signed(dev, &f, &dev.prg_fill(key, stream, 0, n)?)?, &r)
}

/// [`Device::inject_receive`] as gathers, a signed product, two additions and a subtraction.
pub fn inject_receive<D: Device>(
    dev: &D,
    bits: BitRange<'_, D::Buffer>,
    u: (&D::Buffer, usize),
    c: (&D::Buffer, usize),
    r: &D::Buffer,
) -> DeviceResult<D::Buffer> {
    let n = bits.count;
    let f = bit_words(dev, &bits)?;
    let (u, c, r) = (words(dev, u.0, u.1, n)?, words(dev, c.0, c.1, n)?, words(dev, r, 0, n)?);
    let mut out = signed(dev, &f, &u)?;
    dev.binary_assign(BinaryOp::Add, &mut out, &f)?;
    dev.binary_assign(BinaryOp::Add, &mut out, &c)?;
    dev.binary_assign(BinaryOp::Sub, &mut out, &r)?;
    Ok(out)
}

/// An [`Addend`] as a buffer of `n` words, and whether it is subtracted.
fn addend<D: Device>(dev: &D, a: Addend<'_, D::Buffer>, n: usize) -> DeviceResult<(D::Buffer, bool)> {
    match a {
        Addend::Prg(t) => Ok((dev.prg_fill(t.key, t.stream, 0, n)?, t.negate)),
        Addend::Buf(b) | Addend::Less(b) => {
            check_range(&dev.name(), "truncate_open", 0, n, dev.len(b))?;
            Ok((words(dev, b, 0, n)?, matches!(a, Addend::Less(_))))
        }
    }
}

/// The bits of wrap-free truncation's `E` and its shares: the top `bits + 1`.
pub fn e_bits(bits: u32) -> u64 {
    !0u64 << (63 - bits)
}

/// `a ± F(term)`.
fn with_prg<D: Device>(dev: &D, a: D::Buffer, term: PrgTerm<'_>) -> DeviceResult<D::Buffer> {
    let r = dev.prg_fill(term.key, term.stream, 0, dev.len(&a))?;
    dev.binary(if term.negate { BinaryOp::Sub } else { BinaryOp::Add }, &a, &r)
}

/// [`Device::mul_part`] as products, sums and [`Device::add_prg`].
pub fn mul_part<D: Device>(
    dev: &D,
    x: [&D::Buffer; 2],
    y: [&D::Buffer; 2],
    terms: &[PrgTerm<'_>],
) -> DeviceResult<D::Buffer> {
    check_same_len(&dev.name(), "mul_part", &[x[0], x[1], y[0], y[1]].map(|b| dev.len(b)))?;
    let mut z = dev.binary(BinaryOp::Mul, x[0], &dev.binary(BinaryOp::Add, y[0], y[1])?)?;
    dev.binary_assign(BinaryOp::Add, &mut z, &dev.binary(BinaryOp::Mul, x[1], y[0])?)?;
    dev.add_prg(&mut z, terms)?;
    Ok(z)
}

/// [`Device::truncate_deal`] as shifts, draws and elementwise passes.
pub fn truncate_deal<D: Device>(
    dev: &D,
    part: &D::Buffer,
    bits: u32,
    r: [PrgTerm<'_>; 2],
    t: PrgTerm<'_>,
    e: PrgTerm<'_>,
) -> DeviceResult<(D::Buffer, D::Buffer)> {
    check_trunc_bits(&dev.name(), bits)?;
    let mut v = dev.binary_scalar(BinaryOp::Sub, &dev.unary(UnaryOp::Neg, part)?, 1u64 << 62)?;
    add_prg(dev, &mut v, &r)?;
    let m = dev.unary(UnaryOp::ShrLogical(63), &v)?;
    let low = dev.unary(UnaryOp::ShrLogical(bits + 1), &dev.unary(UnaryOp::Shl(1), &v)?)?;
    let tv = dev.binary(BinaryOp::Sub, &dev.unary(UnaryOp::Shl(63 - bits), &m)?, &low)?;
    let ev = dev.unary(UnaryOp::Neg, &dev.unary(UnaryOp::Shl(64 - bits), &m)?)?;
    let ev = dev.binary_scalar(BinaryOp::Add, &ev, 1u64 << (63 - bits))?;
    let high = e_bits(bits);
    let f = dev.binary_scalar(BinaryOp::And, &dev.prg_fill(e.key, e.stream, 0, dev.len(&ev))?, high)?;
    let ev = dev.binary(if e.negate { BinaryOp::Sub } else { BinaryOp::Add }, &ev, &f)?;
    Ok((with_prg(dev, tv, t)?, ev))
}

/// [`Device::truncate_open`] as shifts, draws and elementwise passes.
pub fn truncate_open<D: Device>(
    dev: &D,
    c: [&D::Buffer; 2],
    bits: u32,
    low: bool,
    e: Addend<'_, D::Buffer>,
    plus: &[Addend<'_, D::Buffer>],
) -> DeviceResult<D::Buffer> {
    check_trunc_bits(&dev.name(), bits)?;
    let n = dev.len(c[0]);
    let v = dev.binary(BinaryOp::Add, c[0], c[1])?;
    let (e, negate) = addend(dev, e, n)?;
    let e = dev.binary_scalar(BinaryOp::And, &e, e_bits(bits))?;
    let e = if negate { dev.unary(UnaryOp::Neg, &e)? } else { e };
    let mut out = dev.binary(BinaryOp::Mul, &dev.unary(UnaryOp::ShrLogical(63), &v)?, &e)?;
    if low {
        let l = dev.unary(UnaryOp::ShrLogical(bits + 1), &dev.unary(UnaryOp::Shl(1), &v)?)?;
        dev.binary_assign(BinaryOp::Add, &mut out, &dev.binary_scalar(BinaryOp::Sub, &l, 1u64 << (62 - bits))?)?;
    }
    for &a in plus {
        let (b, negate) = addend(dev, a, n)?;
        dev.binary_assign(if negate { BinaryOp::Sub } else { BinaryOp::Add }, &mut out, &b)?;
    }
    Ok(out)
}

/// [`Device::add_prg`] as one [`Device::prg_fill`] and one add or subtract per term.
pub fn add_prg<D: Device>(dev: &D, a: &mut D::Buffer, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
    let n = dev.len(a);
    for t in terms {
        let r = dev.prg_fill(t.key, t.stream, 0, n)?;
        dev.binary_assign(if t.negate { BinaryOp::Sub } else { BinaryOp::Add }, a, &r)?;
    }
    Ok(())
}

/// [`Device::and_part_packed`] as [`Device::and_part`] with zeros, [`Device::pack_bits`]
/// and two [`Device::prg_fill`]s XOR-ed in.
pub fn and_part_packed<D: Device>(
    dev: &D,
    x: [&D::Buffer; 2],
    y: [&D::Buffer; 2],
    y_shl: u32,
    keys: [&PrgKey; 2],
    stream: u64,
    mask: u64,
) -> DeviceResult<D::Buffer> {
    let zero = dev.fill(dev.len(x[0]), 0)?;
    let mut packed = dev.pack_bits(&dev.and_part(x, y, y_shl, [&zero, &zero], mask)?, mask)?;
    let w = dev.len(&packed);
    for key in keys {
        dev.binary_assign(BinaryOp::Xor, &mut packed, &dev.prg_fill(key, stream, 0, w)?)?;
    }
    Ok(packed)
}

/// [`Device::bit_planes`] as a gather of the words and one [`Device::pack_bits`] per row
/// (a mask of the row's one bit packs exactly that row), placed one after another.
pub fn bit_planes<D: Device>(
    dev: &D,
    a: &D::Buffer,
    from: usize,
    count: usize,
    planes: u32,
) -> DeviceResult<D::Buffer> {
    check_planes(&dev.name(), from, count, planes, dev.len(a))?;
    let groups = count.div_ceil(64);
    let words = dev.gather_strided(a, &StridedLayout { dims: vec![count], strides: vec![1], offset: from })?;
    let rows = (0..planes).map(|j| dev.pack_bits(&words, 1 << j)).collect::<DeviceResult<Vec<_>>>()?;
    let pieces: Vec<Placed<'_, D::Buffer>> =
        rows.iter().enumerate().map(|(j, src)| Placed { at: j * groups, src, from: 0, count: groups }).collect();
    dev.place(planes as usize * groups, &pieces)
}

/// [`Device::and_rows`] as a strided gather of each selection,
/// [`and_part_packed`](Device::and_part_packed) with every lane kept, and an XOR of `plus`.
pub fn and_rows<D: Device>(
    dev: &D,
    op: &RowAnd<'_, D::Buffer>,
    keys: [&PrgKey; 2],
    stream: u64,
) -> DeviceResult<D::Buffer> {
    op.check(&dev.name(), |b| dev.len(b))?;
    let take = |o: &Rows<'_, D::Buffer>| dev.gather_strided(o.buf, &o.view(op.rows, op.width));
    let (x, y) = (op.x, op.y);
    let (x0, x1, y0, y1) = (take(&x[0])?, take(&x[1])?, take(&y[0])?, take(&y[1])?);
    let mut z = dev.and_part_packed([&x0, &x1], [&y0, &y1], 0, keys, stream, u64::MAX)?;
    if let Some(plus) = &op.plus {
        dev.binary_assign(BinaryOp::Xor, &mut z, &take(plus)?)?;
    }
    Ok(z)
}
