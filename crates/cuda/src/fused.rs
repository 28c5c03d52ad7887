//! The fused [`Device`](triad_ring::Device) methods with kernels of their own
//! (`kernels/fused.cu`): `add_prg`, `mul_part`, `truncate_deal`, `truncate_open`,
//! `and_part_packed` and the sign circuit's `and_rows`, one pass each. A thread takes eight
//! consecutive words, the eight ring words of one ChaCha block, and draws every PRG word it
//! adds in registers. `bit_planes` (`kernels/bits.cu`) is one pass too, a thread per row
//! word. Each
//! method checks its arguments as its default in `triad_ring::device::fused` does, in the
//! same order, and returns the same errors.
//!
//! A launch takes at most [`ADDENDS`](crate::args::ADDENDS) addends (PRG streams or
//! buffers, two buffers at most); `add_prg` with more terms, or a `mul_part` or
//! `truncate_open` with more addends, adds the rest with further in-place launches, which
//! wrapping addition leaves bit for bit the same.

use cudarc::driver::{LaunchConfig, PushKernelArg};
use triad_ring::device::{
    check_and_lens, check_planes, check_range, check_same_len, check_trunc_bits, Addend, Device, DeviceResult, PrgTerm,
    RowAnd,
};
use triad_ring::prg::PrgKey;

use crate::args::{mask_run, Addends, RowSel};
use crate::{grid, CudaBuffer, CudaDevice};

/// A launch over the groups of eight words of `n` (one thread a group).
fn groups(n: usize) -> LaunchConfig {
    grid((n as u64).div_ceil(8))
}

/// One launch's addends and the buffers their kinds 1 and 2 name.
#[derive(Default)]
struct Batch<'a> {
    addends: Addends,
    bufs: [Option<&'a CudaBuffer>; 2],
}

/// The addends in order, cut into launches of at most `ADDENDS` addends and two buffers
/// (at least one launch, possibly with no addend).
fn batches<'a>(items: impl IntoIterator<Item = Addend<'a, CudaBuffer>>) -> Vec<Batch<'a>> {
    let mut out = Vec::new();
    let mut cur = Batch::default();
    for a in items {
        let buf = match a {
            Addend::Buf(b) | Addend::Less(b) => Some(b),
            Addend::Prg(_) => None,
        };
        if cur.addends.full() || (buf.is_some() && cur.bufs[1].is_some()) {
            out.push(std::mem::take(&mut cur));
        }
        match (a, buf) {
            (Addend::Prg(t), _) => cur.addends.push_prg(&t),
            (_, Some(b)) => {
                let slot = usize::from(cur.bufs[0].is_some());
                cur.bufs[slot] = Some(b);
                cur.addends.push_buf(slot as u64, matches!(a, Addend::Less(_)));
            }
            (_, None) => {}
        }
    }
    out.push(cur);
    out
}

impl CudaDevice {
    /// The buffer arguments `b0`, `b1` of a launch: its buffers, or the one-word spare
    /// where it has none (a kernel reads a buffer only for an addend that names it).
    fn buf_args<'a>(&'a self, b: &Batch<'a>) -> [&'a cudarc::driver::CudaSlice<u64>; 2] {
        b.bufs.map(|b| b.map_or(&self.inner.spare, |b| &b.data))
    }

    /// `a += ` the batch's addends, in place.
    fn add_addends(&self, a: &mut CudaBuffer, batch: &Batch<'_>) -> DeviceResult<()> {
        if a.len == 0 || batch.addends.count() == 0 {
            return Ok(());
        }
        let n = a.len as u64;
        let [b0, b1] = self.buf_args(batch);
        let mut l = self.stream().launch_builder(&self.inner.k.add_addends);
        l.arg(&mut a.data).arg(b0).arg(b1).arg(&n).arg(&batch.addends);
        // SAFETY: add_addends_u64(a, b0, b1, n, s) updates a[0..n) and reads b0 and b1
        // below n only for addends of kind 1 and 2, which name buffers of at least n words
        // (checked by the callers); `a` is a distinct allocation from both.
        unsafe { l.launch(groups(a.len)) }.map_err(|e| self.drv(e))?;
        Ok(())
    }
}

/// [`Device::add_prg`]: one launch (a launch per [`ADDENDS`](crate::args::ADDENDS) terms).
pub(crate) fn add_prg(dev: &CudaDevice, a: &mut CudaBuffer, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
    for b in batches(terms.iter().map(|&t| Addend::Prg(t))) {
        dev.add_addends(a, &b)?;
    }
    Ok(())
}

/// [`Device::mul_part`]: the products and the draws in one launch.
pub(crate) fn mul_part(
    dev: &CudaDevice,
    x: [&CudaBuffer; 2],
    y: [&CudaBuffer; 2],
    terms: &[PrgTerm<'_>],
) -> DeviceResult<CudaBuffer> {
    check_same_len(&dev.name(), "mul_part", &[x[0].len, x[1].len, y[0].len, y[1].len])?;
    let n = x[0].len;
    let mut out = dev.alloc(n)?;
    if n == 0 {
        return Ok(out);
    }
    let mut bs = batches(terms.iter().map(|&t| Addend::Prg(t))).into_iter();
    let first = bs.next().unwrap_or_default();
    let n64 = n as u64;
    let mut l = dev.stream().launch_builder(&dev.inner.k.mul_part);
    l.arg(&mut out.data).arg(&x[0].data).arg(&x[1].data).arg(&y[0].data).arg(&y[1].data).arg(&n64);
    l.arg(&first.addends);
    // SAFETY: mul_part_u64(out, x0, x1, y0, y1, n, s) writes out[0..n) and reads the four
    // operands below n, all n words long (checked); its addends are PRG streams only.
    unsafe { l.launch(groups(n)) }.map_err(|e| dev.drv(e))?;
    for b in bs {
        dev.add_addends(&mut out, &b)?;
    }
    Ok(out)
}

/// [`Device::truncate_deal`]: both outputs in one launch.
pub(crate) fn truncate_deal(
    dev: &CudaDevice,
    part: &CudaBuffer,
    bits: u32,
    r: [PrgTerm<'_>; 2],
    t: PrgTerm<'_>,
    e: PrgTerm<'_>,
) -> DeviceResult<(CudaBuffer, CudaBuffer)> {
    check_trunc_bits(&dev.name(), bits)?;
    let n = part.len;
    let (mut tv, mut ev) = (dev.alloc(n)?, dev.alloc(n)?);
    if n > 0 {
        let s = Addends::prg(&[r[0], r[1], t, e]);
        let n64 = n as u64;
        let mut l = dev.stream().launch_builder(&dev.inner.k.truncate_deal);
        l.arg(&mut tv.data).arg(&mut ev.data).arg(&part.data).arg(&n64).arg(&bits).arg(&s);
        // SAFETY: truncate_deal_u64(tout, eout, part, n, bits, s) writes tout[0..n) and
        // eout[0..n) (two allocations of n words) and reads part[0..n); bits is in 1..=62
        // (checked), so its shifts stay below 64; s holds four PRG streams.
        unsafe { l.launch(groups(n)) }.map_err(|e| dev.drv(e))?;
    }
    Ok((tv, ev))
}

/// [`Device::truncate_open`]: `e` and the first addends in one launch (the rest, past four
/// addends or two buffers, in place after it).
pub(crate) fn truncate_open(
    dev: &CudaDevice,
    c: [&CudaBuffer; 2],
    bits: u32,
    low: bool,
    e: Addend<'_, CudaBuffer>,
    plus: &[Addend<'_, CudaBuffer>],
) -> DeviceResult<CudaBuffer> {
    check_trunc_bits(&dev.name(), bits)?;
    // The default opens `c` with `binary` first: its check, and its error.
    dev.same_len("binary", c[0].len, c[1].len)?;
    let n = c[0].len;
    let all = || std::iter::once(e).chain(plus.iter().copied());
    for a in all() {
        if let Addend::Buf(b) | Addend::Less(b) = a {
            check_range(&dev.name(), "truncate_open", 0, n, b.len)?;
        }
    }
    let mut out = dev.alloc(n)?;
    if n == 0 {
        return Ok(out);
    }
    let mut bs = batches(all()).into_iter();
    let first = bs.next().unwrap_or_default();
    let [b0, b1] = dev.buf_args(&first);
    let (n64, low) = (n as u64, i32::from(low));
    let mut l = dev.stream().launch_builder(&dev.inner.k.truncate_open);
    l.arg(&mut out.data).arg(&c[0].data).arg(&c[1].data).arg(b0).arg(b1).arg(&n64).arg(&bits).arg(&low);
    l.arg(&first.addends);
    // SAFETY: truncate_open_u64(out, c0, c1, b0, b1, n, bits, low, s) writes out[0..n)
    // and reads c0, c1 (n words each, checked) and b0, b1 below n only for the addends
    // naming them, buffers of at least n words (checked); its first addend is `e`; bits
    // is in 1..=62 (checked).
    unsafe { l.launch(groups(n)) }.map_err(|e| dev.drv(e))?;
    for b in bs {
        dev.add_addends(&mut out, &b)?;
    }
    Ok(out)
}

/// [`Device::and_part_packed`]: the masked AND parts, their packing and the two draws in
/// one launch, eight packed words a thread.
pub(crate) fn and_part_packed(
    dev: &CudaDevice,
    x: [&CudaBuffer; 2],
    y: [&CudaBuffer; 2],
    y_shl: u32,
    keys: [&PrgKey; 2],
    stream: u64,
    mask: u64,
) -> DeviceResult<CudaBuffer> {
    // The default's `and_part` checks, in its order, naming the device as `binary` does.
    check_and_lens(&dev.dev_name(), x.map(|b| b.len), y.map(|b| b.len), None)?;
    let (n, k) = (x[0].len, mask.count_ones());
    let words = (n * k as usize).div_ceil(64);
    let mut out = dev.alloc(words)?;
    if words == 0 {
        return Ok(out);
    }
    let draw = |key| PrgTerm { key, stream, negate: false };
    let s = Addends::prg(&[draw(keys[0]), draw(keys[1])]);
    let (lo, contig) = mask_run(mask);
    let (n64, w64, sh) = (n as u64, words as u64, y_shl % 64);
    let mut l = dev.stream().launch_builder(&dev.inner.k.and_part_packed);
    l.arg(&mut out.data).arg(&x[0].data).arg(&x[1].data).arg(&y[0].data).arg(&y[1].data);
    l.arg(&n64).arg(&w64).arg(&mask).arg(&k).arg(&lo).arg(&contig).arg(&sh).arg(&s);
    // SAFETY: and_part_packed_u64(out, x0, x1, y0, y1, n, words, mask, k, lo, contiguous,
    // y_shl, s) writes out[0..words) and reads the four operands (n words each, checked)
    // at elements below n only; k >= 1 and n >= 1 here (words > 0), and y_shl < 64.
    unsafe { l.launch(groups(words)) }.map_err(|e| dev.drv(e))?;
    Ok(out)
}

/// [`Device::and_rows`]: the selected rows' AND parts, `plus` and the two draws in one
/// launch, eight words a thread.
pub(crate) fn and_rows(
    dev: &CudaDevice,
    op: &RowAnd<'_, CudaBuffer>,
    keys: [&PrgKey; 2],
    stream: u64,
) -> DeviceResult<CudaBuffer> {
    op.check(&dev.name(), |b| b.len)?;
    let n = op.rows * op.width;
    let mut out = dev.alloc(n)?;
    if n == 0 {
        return Ok(out);
    }
    let mut sel = RowSel::default();
    for (i, o) in op.selections().enumerate() {
        sel.first[i] = o.first as u64;
        sel.step[i] = o.step as u64;
    }
    let draw = |key| PrgTerm { key, stream, negate: false };
    let s = Addends::prg(&[draw(keys[0]), draw(keys[1])]);
    let plus = op.plus.map_or(&dev.inner.spare, |p| &p.buf.data);
    let (n64, w64, has_plus) = (n as u64, op.width as u64, i32::from(op.plus.is_some()));
    let mut l = dev.stream().launch_builder(&dev.inner.k.and_rows);
    l.arg(&mut out.data).arg(&op.x[0].buf.data).arg(&op.x[1].buf.data).arg(&op.y[0].buf.data);
    l.arg(&op.y[1].buf.data).arg(plus).arg(&n64).arg(&w64).arg(&has_plus).arg(&sel).arg(&s);
    // SAFETY: and_rows_u64(out, x0, x1, y0, y1, plus, n, width, has_plus, sel, s) writes
    // out[0..n) and reads each operand at (first + r step) width + col for r < rows and col
    // < width, inside its buffer (checked), and `plus` only when has_plus.
    unsafe { l.launch(groups(n)) }.map_err(|e| dev.drv(e))?;
    Ok(out)
}

/// [`Device::bit_planes`]: one launch, a thread per output word.
pub(crate) fn bit_planes(
    dev: &CudaDevice,
    a: &CudaBuffer,
    from: usize,
    count: usize,
    planes: u32,
) -> DeviceResult<CudaBuffer> {
    check_planes(&dev.name(), from, count, planes, a.len)?;
    let groups = count.div_ceil(64);
    let n = planes as usize * groups;
    let mut out = dev.alloc(n)?;
    if n == 0 {
        return Ok(out);
    }
    let (from64, count64, groups64) = (from as u64, count as u64, groups as u64);
    let mut l = dev.stream().launch_builder(&dev.inner.k.bit_planes);
    l.arg(&mut out.data).arg(&a.data).arg(&from64).arg(&count64).arg(&groups64).arg(&planes);
    // SAFETY: bit_planes_u64(out, a, from, count, groups, planes) writes out[0..planes
    // groups) and reads a[from..from + count) only (checked inside `a`).
    unsafe { l.launch(grid(n as u64)) }.map_err(|e| dev.drv(e))?;
    Ok(out)
}
