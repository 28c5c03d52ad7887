//! The CPU device: host `Vec<u64>` buffers, data-parallel with rayon.
//!
//! Elementwise work is split in chunks of [`CHUNK`] elements so small tensors stay on one
//! thread and large ones use every core. Matrix products and convolutions live in
//! [`gemm`] and [`conv`] (the patch matrix packed from the image by [`im2col`], through
//! [`operand`]'s views), bit packing in `bits`, and the fused passes of bit injection and
//! wrap-free truncation in `inject` and `truncate`.

mod bits;
pub mod conv;
pub mod gemm;
pub mod im2col;
mod inject;
pub mod operand;
mod pool;
mod truncate;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use bits::{bit_planes_into, contiguous, has_bmi2, pack_group, unpack_group};

use crate::device::{
    check_and_lens, check_operand_lens, check_planes, check_range, check_same_len, check_trunc_bits, Addend, BinaryOp,
    BitRange, Device, DeviceResult, Placed, PrgTerm, RowAnd, Rows, UnaryOp,
};
use crate::prg::{self, PrgKey};
use crate::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};

/// Elements per parallel work item of elementwise ops.
pub const CHUNK: usize = 1 << 14;

/// Words per PRG draw of the fused passes: drawn into a buffer that stays in L1 and
/// consumed there.
const PIECE: usize = 8 * 64;

/// `out[t] ±= F(term)[start + t]` (the term's sign), drawn a piece at a time into `buf`.
fn add_draw(out: &mut [u64], term: &PrgTerm<'_>, start: usize, buf: &mut [u64; PIECE]) {
    let r = &mut buf[..out.len()];
    prg::fill_words(term.key, term.stream, start as u64, r);
    if term.negate {
        out.iter_mut().zip(&*r).for_each(|(o, &r)| *o = o.wrapping_sub(r));
    } else {
        out.iter_mut().zip(&*r).for_each(|(o, &r)| *o = o.wrapping_add(r));
    }
}

/// `out[t] ^= F(key, stream)[start + t]` for both keys: a zero sharing's two draws, made
/// a piece at a time in `buf` (`out` at most a piece long).
fn xor_draws(out: &mut [u64], keys: [&PrgKey; 2], stream: u64, start: usize, buf: &mut [u64; PIECE]) {
    for key in keys {
        let r = &mut buf[..out.len()];
        prg::fill_words(key, stream, start as u64, r);
        out.iter_mut().zip(&*r).for_each(|(o, &r)| *o ^= r);
    }
}

/// The CPU device. It has no state: every instance is the same device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuDevice;

impl CpuDevice {
    /// The CPU device.
    pub fn new() -> Self {
        CpuDevice
    }

    /// Sets how many threads the CPU device computes with in this process (rayon's global
    /// pool), before its first use: a party's thread budget, so that three parties on one
    /// machine do not each start a full pool and oversubscribe its cores. `Err` if the
    /// pool was already started (its size then stays).
    pub fn set_threads(threads: usize) -> Result<(), String> {
        rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global().map_err(|e| e.to_string())
    }

    /// Runs `f` on a thread of the CPU device's pool, so that the device's parallel loops
    /// inside it start from a worker (with one thread: inline, with no hand-off to the pool
    /// and back for every call).
    pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| f())
    }

    /// The threads the CPU device computes with.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }
}

/// Builds a vector of `n` elements without zero-filling it first: chunk `i` of `chunk`
/// elements (the last one shorter) is handed to `f(i, out)`, in parallel, and `f` writes
/// every element of `out`. (Zero-filling fresh outputs was a sixth of a ReLU's time.)
fn par_build(n: usize, chunk: usize, f: impl Fn(usize, &mut [MaybeUninit<u64>]) + Sync) -> Vec<u64> {
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(i, o)| f(i, o));
    // SAFETY: the first `n` elements are initialised: `par_chunks_mut` hands each of them to
    // exactly one call of `f`, and every caller below writes its whole chunk.
    unsafe { v.set_len(n) };
    v
}

/// Words `col .. col + len` of row `row` of an [`Device::and_rows`] operand (checked by the
/// caller).
fn row_segment(o: Rows<'_, Vec<u64>>, row: usize, width: usize, col: usize, len: usize) -> &[u64] {
    let from = (o.first + row * o.step) * width + col;
    &o.buf[from..from + len]
}

/// [`Device::place`]: every chunk of the output is written once, zeros where no piece lies
/// (pieces checked by the caller).
fn place_pieces(len: usize, pieces: &[Placed<'_, Vec<u64>>]) -> Vec<u64> {
    // Pieces in output order, so the gaps between them are zeros (sorted once, not per chunk).
    let mut order: Vec<&Placed<'_, Vec<u64>>> = pieces.iter().collect();
    order.sort_by_key(|p| p.at);
    par_build(len, CHUNK, |i, o| {
        let start = i * CHUNK;
        let end = start + o.len();
        let mut at = start;
        for p in order.iter().filter(|p| p.at < end && p.at + p.count > start) {
            let lo = p.at.max(start);
            let hi = (p.at + p.count).min(end);
            for slot in &mut o[at.min(lo) - start..lo - start] {
                slot.write(0);
            }
            let src = &p.src[p.from + (lo - p.at)..p.from + (hi - p.at)];
            for (slot, &v) in o[lo - start..hi - start].iter_mut().zip(src) {
                slot.write(v);
            }
            at = at.max(hi);
        }
        for slot in &mut o[at - start..] {
            slot.write(0);
        }
    })
}

fn map1(a: &[u64], f: impl Fn(u64) -> u64 + Sync) -> Vec<u64> {
    par_build(a.len(), CHUNK, |i, o| {
        for (o, &a) in o.iter_mut().zip(&a[i * CHUNK..]) {
            o.write(f(a));
        }
    })
}

/// `f` of two operands of the same length (checked by the caller: a shorter `b` would leave
/// words of the result unwritten).
fn map2(a: &[u64], b: &[u64], f: impl Fn(u64, u64) -> u64 + Sync) -> Vec<u64> {
    par_build(a.len(), CHUNK, |i, o| {
        for ((o, &a), &b) in o.iter_mut().zip(&a[i * CHUNK..]).zip(&b[i * CHUNK..]) {
            o.write(f(a, b));
        }
    })
}

/// Expands `$call` once per op with `$f` bound to that op's closure, so each inner loop
/// is monomorphised (and vectorised) rather than calling through a function pointer.
macro_rules! dispatch_binary {
    ($op:expr, $f:ident => $call:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |a: u64, b: u64| a.wrapping_add(b);
                $call
            }
            BinaryOp::Sub => {
                let $f = |a: u64, b: u64| a.wrapping_sub(b);
                $call
            }
            BinaryOp::Mul => {
                let $f = |a: u64, b: u64| a.wrapping_mul(b);
                $call
            }
            BinaryOp::Xor => {
                let $f = |a: u64, b: u64| a ^ b;
                $call
            }
            BinaryOp::And => {
                let $f = |a: u64, b: u64| a & b;
                $call
            }
            BinaryOp::Or => {
                let $f = |a: u64, b: u64| a | b;
                $call
            }
        }
    };
}

fn zip_assign(a: &mut [u64], b: &[u64], f: impl Fn(u64, u64) -> u64 + Sync) {
    a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(a, b)| {
        for (a, &b) in a.iter_mut().zip(b) {
            *a = f(*a, b);
        }
    })
}

/// One word of [`Device::and_part`]: `(x0 & (y0' ^ y1')) ^ (x1 & y0') ^ r0 ^ r1`, masked,
/// with `y_k' = y_k << sh`.
#[inline(always)]
fn and_word([x0, x1]: [u64; 2], [y0, y1]: [u64; 2], [r0, r1]: [u64; 2], sh: u32, mask: u64) -> u64 {
    let (a, b) = (y0 << sh, y1 << sh);
    ((x0 & (a ^ b)) ^ (x1 & a) ^ r0 ^ r1) & mask
}

/// Row-major iteration helper for strided views: calls `f(row, src_base)` for every row
/// (all dimensions but the last) of `view`.
fn row_bases(view: &StridedLayout) -> (usize, usize, usize) {
    let rank = view.dims.len();
    if rank == 0 {
        return (1, 1, 0);
    }
    let rows: usize = view.dims[..rank - 1].iter().product();
    (rows, view.dims[rank - 1], view.strides[rank - 1])
}

fn row_base(view: &StridedLayout, mut row: usize) -> usize {
    let rank = view.dims.len();
    let mut base = view.offset;
    if rank == 0 {
        return base;
    }
    for d in (0..rank - 1).rev() {
        let i = row % view.dims[d];
        row /= view.dims[d];
        base += i * view.strides[d];
    }
    base
}

impl Device for CpuDevice {
    type Buffer = Vec<u64>;

    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn len(&self, buf: &Vec<u64>) -> usize {
        buf.len()
    }

    fn fill(&self, len: usize, value: u64) -> DeviceResult<Vec<u64>> {
        Ok(vec![value; len])
    }

    fn from_host(&self, data: &[u64]) -> DeviceResult<Vec<u64>> {
        Ok(data.to_vec())
    }

    fn from_host_vec(&self, data: Vec<u64>) -> DeviceResult<Vec<u64>> {
        Ok(data)
    }

    fn to_host(&self, buf: &Vec<u64>) -> DeviceResult<Vec<u64>> {
        Ok(buf.clone())
    }

    fn into_host(&self, buf: Vec<u64>) -> DeviceResult<Vec<u64>> {
        Ok(buf)
    }

    fn copy(&self, buf: &Vec<u64>) -> DeviceResult<Vec<u64>> {
        Ok(buf.clone())
    }

    fn unary(&self, op: UnaryOp, a: &Vec<u64>) -> DeviceResult<Vec<u64>> {
        Ok(match op {
            UnaryOp::Neg => map1(a, |x| x.wrapping_neg()),
            UnaryOp::Not => map1(a, |x| !x),
            UnaryOp::Shl(s) => map1(a, move |x| x.wrapping_shl(s)),
            UnaryOp::ShrLogical(s) => map1(a, move |x| x.wrapping_shr(s)),
            UnaryOp::ShrArith(s) => map1(a, move |x| (x as i64).wrapping_shr(s) as u64),
        })
    }

    fn binary(&self, op: BinaryOp, a: &Vec<u64>, b: &Vec<u64>) -> DeviceResult<Vec<u64>> {
        check_operand_lens("cpu", "binary", a.len(), b.len())?;
        Ok(dispatch_binary!(op, f => map2(a, b, f)))
    }

    fn binary_assign(&self, op: BinaryOp, a: &mut Vec<u64>, b: &Vec<u64>) -> DeviceResult<()> {
        check_operand_lens("cpu", "binary_assign", a.len(), b.len())?;
        dispatch_binary!(op, f => zip_assign(a, b, f));
        Ok(())
    }

    fn binary_scalar(&self, op: BinaryOp, a: &Vec<u64>, s: u64) -> DeviceResult<Vec<u64>> {
        Ok(dispatch_binary!(op, f => map1(a, move |x| f(x, s))))
    }

    fn place(&self, len: usize, pieces: &[Placed<'_, Vec<u64>>]) -> DeviceResult<Vec<u64>> {
        for p in pieces {
            p.check("cpu", len, p.src.len())?;
        }
        Ok(place_pieces(len, pieces))
    }

    fn and_part(
        &self,
        x: [&Vec<u64>; 2],
        y: [&Vec<u64>; 2],
        y_shl: u32,
        r: [&Vec<u64>; 2],
        mask: u64,
    ) -> DeviceResult<Vec<u64>> {
        check_and_lens("cpu", x.map(Vec::len), y.map(Vec::len), Some(r.map(Vec::len)))?;
        let n = x[0].len();
        let sh = y_shl % 64;
        Ok(par_build(n, CHUNK, |i, o| {
            let at = i * CHUNK..i * CHUNK + o.len();
            let ys = y[0][at.clone()].iter().zip(&y[1][at.clone()]);
            let rs = r[0][at.clone()].iter().zip(&r[1][at.clone()]);
            let xs = x[0][at.clone()].iter().zip(&x[1][at]);
            for (o, (((&x0, &x1), (&y0, &y1)), (&r0, &r1))) in o.iter_mut().zip(xs.zip(ys).zip(rs)) {
                o.write(and_word([x0, x1], [y0, y1], [r0, r1], sh, mask));
            }
        }))
    }

    fn and_part_packed(
        &self,
        x: [&Vec<u64>; 2],
        y: [&Vec<u64>; 2],
        y_shl: u32,
        keys: [&PrgKey; 2],
        stream: u64,
        mask: u64,
    ) -> DeviceResult<Vec<u64>> {
        check_and_lens("cpu", x.map(Vec::len), y.map(Vec::len), None)?;
        // Each group of 64 elements fills exactly k words of the stream: its parts are made
        // into a buffer in L1 and packed from there, and the draws are XOR-ed into the
        // packed words a piece at a time.
        let n = x[0].len();
        let k = mask.count_ones() as usize;
        let mut out = vec![0u64; (n * k).div_ceil(64)];
        if k == 0 || n == 0 {
            return Ok(out);
        }
        let run = contiguous(mask);
        let bmi2 = run.is_none() && has_bmi2();
        let sh = y_shl % 64;
        out.par_chunks_mut(k * 256).enumerate().for_each(|(c, o)| {
            let mut z = [0u64; 64];
            for (g, og) in o.chunks_mut(k).enumerate() {
                let e0 = (c * 256 + g) * 64;
                let e1 = (e0 + 64).min(n);
                let z = &mut z[..e1 - e0];
                let xs = x[0][e0..e1].iter().zip(&x[1][e0..e1]);
                let ys = y[0][e0..e1].iter().zip(&y[1][e0..e1]);
                for (z, ((&x0, &x1), (&y0, &y1))) in z.iter_mut().zip(xs.zip(ys)) {
                    *z = and_word([x0, x1], [y0, y1], [0, 0], sh, mask);
                }
                pack_group(z, mask, k as u32, run, bmi2, og);
            }
            let mut r = [0u64; PIECE];
            for (j, piece) in o.chunks_mut(PIECE).enumerate() {
                xor_draws(piece, keys, stream, c * k * 256 + j * PIECE, &mut r);
            }
        });
        Ok(out)
    }

    fn and_rows(&self, op: &RowAnd<'_, Vec<u64>>, keys: [&PrgKey; 2], stream: u64) -> DeviceResult<Vec<u64>> {
        op.check("cpu", Vec::len)?;
        let width = op.width;
        // A piece of the result at a time, in L1: its AND words row segment by row
        // segment, then the two draws XOR-ed in.
        Ok(par_build(op.rows * width, CHUNK, |c, out| {
            let (mut z, mut r) = ([0u64; PIECE], [0u64; PIECE]);
            for (j, piece) in out.chunks_mut(PIECE).enumerate() {
                let start = c * CHUNK + j * PIECE;
                let z = &mut z[..piece.len()];
                let mut k = 0;
                while k < z.len() {
                    let (row, col) = ((start + k) / width, (start + k) % width);
                    let len = (width - col).min(z.len() - k);
                    let at = |o| row_segment(o, row, width, col, len);
                    let (x, y) = (op.x, op.y);
                    let xs = at(x[0]).iter().zip(at(x[1]));
                    let ys = at(y[0]).iter().zip(at(y[1]));
                    let zs = z[k..k + len].iter_mut();
                    for (z, ((&x0, &x1), (&y0, &y1))) in zs.zip(xs.zip(ys)) {
                        *z = x0 & (y0 ^ y1) ^ x1 & y0;
                    }
                    if let Some(plus) = op.plus {
                        z[k..k + len].iter_mut().zip(at(plus)).for_each(|(z, &p)| *z ^= p);
                    }
                    k += len;
                }
                xor_draws(z, keys, stream, start, &mut r);
                for (o, &z) in piece.iter_mut().zip(&*z) {
                    o.write(z);
                }
            }
        }))
    }

    fn add_prg(&self, a: &mut Vec<u64>, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
        a.par_chunks_mut(CHUNK).enumerate().for_each(|(i, a)| {
            let mut buf = [0u64; PIECE];
            for (j, piece) in a.chunks_mut(PIECE).enumerate() {
                for t in terms {
                    add_draw(piece, t, i * CHUNK + j * PIECE, &mut buf);
                }
            }
        });
        Ok(())
    }

    fn inject_offer(&self, bits: BitRange<'_, Vec<u64>>, key: &PrgKey, stream: u64) -> DeviceResult<Vec<u64>> {
        bits.check("cpu", bits.src.len(), bits.also.map(Vec::len))?;
        Ok(inject::offer(&bits, key, stream))
    }

    fn inject_pick(
        &self,
        bits: BitRange<'_, Vec<u64>>,
        key: &PrgKey,
        stream: u64,
        r: &Vec<u64>,
    ) -> DeviceResult<Vec<u64>> {
        bits.check("cpu", bits.src.len(), bits.also.map(Vec::len))?;
        check_range("cpu", "bit injection", 0, bits.count, r.len())?;
        Ok(inject::pick(&bits, key, stream, r))
    }

    fn inject_receive(
        &self,
        bits: BitRange<'_, Vec<u64>>,
        u: (&Vec<u64>, usize),
        c: (&Vec<u64>, usize),
        r: &Vec<u64>,
    ) -> DeviceResult<Vec<u64>> {
        bits.check("cpu", bits.src.len(), bits.also.map(Vec::len))?;
        let n = bits.count;
        for (buf, at) in [u, c, (r, 0)] {
            check_range("cpu", "bit injection", at, n, buf.len())?;
        }
        Ok(inject::receive(&bits, &u.0[u.1..u.1 + n], &c.0[c.1..c.1 + n], &r[..n]))
    }

    fn mul_part(&self, x: [&Vec<u64>; 2], y: [&Vec<u64>; 2], terms: &[PrgTerm<'_>]) -> DeviceResult<Vec<u64>> {
        let n = x[0].len();
        check_same_len("cpu", "mul_part", &[x[0], x[1], y[0], y[1]].map(Vec::len))?;
        Ok(par_build(n, CHUNK, |i, o| {
            let mut acc = [0u64; PIECE];
            let mut buf = [0u64; PIECE];
            for (j, piece) in o.chunks_mut(PIECE).enumerate() {
                let start = i * CHUNK + j * PIECE;
                let m = piece.len();
                let acc = &mut acc[..m];
                let at = start..start + m;
                let xs = x[0][at.clone()].iter().zip(&x[1][at.clone()]);
                let ys = y[0][at.clone()].iter().zip(&y[1][at]);
                for (a, ((&x0, &x1), (&y0, &y1))) in acc.iter_mut().zip(xs.zip(ys)) {
                    *a = x0.wrapping_mul(y0.wrapping_add(y1)).wrapping_add(x1.wrapping_mul(y0));
                }
                for t in terms {
                    add_draw(acc, t, start, &mut buf);
                }
                for (o, &a) in piece.iter_mut().zip(&*acc) {
                    o.write(a);
                }
            }
        }))
    }

    fn truncate_deal(
        &self,
        part: &Vec<u64>,
        bits: u32,
        r: [PrgTerm<'_>; 2],
        t: PrgTerm<'_>,
        e: PrgTerm<'_>,
    ) -> DeviceResult<(Vec<u64>, Vec<u64>)> {
        check_trunc_bits("cpu", bits)?;
        Ok(truncate::deal(part, bits, r, t, e))
    }

    fn truncate_open(
        &self,
        c: [&Vec<u64>; 2],
        bits: u32,
        low: bool,
        e: Addend<'_, Vec<u64>>,
        plus: &[Addend<'_, Vec<u64>>],
    ) -> DeviceResult<Vec<u64>> {
        check_trunc_bits("cpu", bits)?;
        // The default opens `c` with `binary` first: its check, and its error.
        check_operand_lens("cpu", "binary", c[0].len(), c[1].len())?;
        let n = c[0].len();
        let bufs = [e].into_iter().chain(plus.iter().copied()).filter_map(|a| match a {
            Addend::Buf(b) | Addend::Less(b) => Some(b.len()),
            Addend::Prg(_) => None,
        });
        for len in std::iter::once(c[1].len()).chain(bufs) {
            check_range("cpu", "truncate_open", 0, n, len)?;
        }
        Ok(truncate::open([c[0], c[1]], bits, low, e, plus))
    }

    fn pack_bits(&self, a: &Vec<u64>, mask: u64) -> DeviceResult<Vec<u64>> {
        let k = mask.count_ones();
        let total_bits = a.len() * k as usize;
        let mut out = vec![0u64; total_bits.div_ceil(64)];
        if k == 0 || a.is_empty() {
            return Ok(out);
        }
        let run = contiguous(mask);
        let bmi2 = run.is_none() && has_bmi2();
        // 64 elements always fill exactly k words, so groups are independent.
        out.par_chunks_mut(k as usize * 256).zip(a.par_chunks(64 * 256)).for_each(|(o, a)| {
            for (og, ag) in o.chunks_mut(k as usize).zip(a.chunks(64)) {
                pack_group(ag, mask, k, run, bmi2, og);
            }
        });
        Ok(out)
    }

    fn bit_planes(&self, a: &Vec<u64>, from: usize, count: usize, planes: u32) -> DeviceResult<Vec<u64>> {
        check_planes("cpu", from, count, planes, a.len())?;
        let groups = count.div_ceil(64);
        let mut out = vec![0u64; planes as usize * groups];
        if groups == 0 {
            return Ok(out);
        }
        // Each task takes a run of groups: its piece of every row.
        const RUN: usize = 64;
        let mut tasks: Vec<Vec<&mut [u64]>> = (0..groups.div_ceil(RUN)).map(|_| Vec::new()).collect();
        for row in out.chunks_mut(groups) {
            for (t, piece) in row.chunks_mut(RUN).enumerate() {
                tasks[t].push(piece);
            }
        }
        let words = &a[from..from + count];
        tasks.into_par_iter().enumerate().for_each(|(t, mut rows)| bit_planes_into(words, t * RUN, &mut rows));
        Ok(out)
    }

    fn unpack_bits(&self, packed: &Vec<u64>, len: usize, mask: u64) -> DeviceResult<Vec<u64>> {
        let k = mask.count_ones();
        if k == 0 || len == 0 {
            return Ok(vec![0u64; len]);
        }
        let run = contiguous(mask);
        let bmi2 = run.is_none() && has_bmi2();
        let kw = k as usize;
        // Every element is written (no zero-fill first: this runs once per AND of a
        // comparison circuit, on buffers as large as its input).
        Ok(par_build(len, 64 * 256, |ci, o| {
            for (gi, og) in o.chunks_mut(64).enumerate() {
                let start = (ci * 256 + gi) * kw;
                let words = packed.get(start..).unwrap_or(&[]);
                unpack_group(&words[..kw.min(words.len())], mask, k, run, bmi2, og);
            }
        }))
    }

    fn sum_axis(&self, a: &Vec<u64>, outer: usize, axis: usize, inner: usize) -> DeviceResult<Vec<u64>> {
        let mut out = vec![0u64; outer * inner];
        if inner == 0 {
            return Ok(out);
        }
        // Blocks of whole output rows, each reading about CHUNK words: a task per row would
        // be a task per element when `inner` is 1 (a bias gradient's sum over the pixels).
        let rows = (CHUNK / (axis * inner).max(1)).max(1);
        out.par_chunks_mut(rows * inner).enumerate().for_each(|(t, block)| {
            for (k, row) in block.chunks_mut(inner).enumerate() {
                let src = &a[(t * rows + k) * axis * inner..][..axis * inner];
                if let [r] = row {
                    *r = src.iter().fold(0u64, |s, &v| s.wrapping_add(v));
                    continue;
                }
                for src in src.chunks_exact(inner) {
                    for (r, &s) in row.iter_mut().zip(src) {
                        *r = r.wrapping_add(s);
                    }
                }
            }
        });
        Ok(out)
    }

    fn gather_strided(&self, a: &Vec<u64>, view: &StridedLayout) -> DeviceResult<Vec<u64>> {
        let n = view.numel();
        if n == 0 {
            return Ok(Vec::new());
        }
        let (_rows, width, stride) = row_bases(view);
        // Blocks of whole rows, about CHUNK words each: a task per row would be a task per
        // 24 words for a bias broadcast over a 24x24 image.
        let per = (CHUNK / width.max(1)).max(1);
        Ok(par_build(n, width * per, |t, block| {
            for (k, row) in block.chunks_mut(width).enumerate() {
                let base = row_base(view, t * per + k);
                if stride == 1 {
                    for (o, &v) in row.iter_mut().zip(&a[base..base + width]) {
                        o.write(v);
                    }
                } else {
                    for (j, o) in row.iter_mut().enumerate() {
                        o.write(a[base + j * stride]);
                    }
                }
            }
        }))
    }

    fn scatter_strided(&self, dst: &mut Vec<u64>, src: &Vec<u64>, view: &StridedLayout) -> DeviceResult<()> {
        if view.numel() == 0 {
            return Ok(());
        }
        let (rows, width, stride) = row_bases(view);
        for r in 0..rows {
            let base = row_base(view, r);
            let s = &src[r * width..(r + 1) * width];
            if stride == 1 {
                dst[base..base + width].copy_from_slice(s);
            } else {
                for (j, &v) in s.iter().enumerate() {
                    dst[base + j * stride] = v;
                }
            }
        }
        Ok(())
    }

    fn matmul(&self, a: &Vec<u64>, b: &Vec<u64>, spec: &MatmulSpec) -> DeviceResult<Vec<u64>> {
        let mut c = vec![0u64; spec.c_len()];
        let (al, bl, cl) = (spec.m * spec.k, spec.k * spec.n, spec.m * spec.n);
        for i in 0..spec.batch {
            gemm::gemm(
                spec.m,
                spec.k,
                spec.n,
                &a[i * al..(i + 1) * al],
                spec.a_trans,
                &b[i * bl..(i + 1) * bl],
                spec.b_trans,
                &mut c[i * cl..(i + 1) * cl],
            );
        }
        Ok(c)
    }

    fn conv2d(&self, input: &Vec<u64>, weight: &Vec<u64>, p: &Conv2dParams) -> DeviceResult<Vec<u64>> {
        Ok(conv::forward(input, weight, p))
    }

    fn conv2d_grad_input(&self, grad_out: &Vec<u64>, weight: &Vec<u64>, p: &Conv2dParams) -> DeviceResult<Vec<u64>> {
        Ok(conv::grad_input(grad_out, weight, p))
    }

    fn conv2d_grad_weight(&self, input: &Vec<u64>, grad_out: &Vec<u64>, p: &Conv2dParams) -> DeviceResult<Vec<u64>> {
        Ok(conv::grad_weight(input, grad_out, p))
    }

    fn pool_sum(&self, input: &Vec<u64>, p: &Pool2dParams) -> DeviceResult<Vec<u64>> {
        Ok(pool::sum(input, p))
    }

    fn pool_sum_backward(&self, grad_out: &Vec<u64>, p: &Pool2dParams) -> DeviceResult<Vec<u64>> {
        Ok(pool::sum_backward(grad_out, p))
    }

    fn pool_windows(&self, input: &Vec<u64>, p: &Pool2dParams, pad: u64) -> DeviceResult<Vec<u64>> {
        Ok(pool::windows(input, p, pad))
    }

    fn pool_windows_backward(&self, windows: &Vec<u64>, p: &Pool2dParams) -> DeviceResult<Vec<u64>> {
        Ok(pool::windows_backward(windows, p))
    }

    fn prg_fill(&self, key: &PrgKey, stream: u64, offset: u64, len: usize) -> DeviceResult<Vec<u64>> {
        // Each chunk is generated into a small buffer that stays in L1, then copied out.
        const PRG_CHUNK: usize = 8 * 2048;
        Ok(par_build(len, PRG_CHUNK, |i, o| {
            let mut buf = [0u64; PIECE];
            for (j, piece) in o.chunks_mut(PIECE).enumerate() {
                let at = offset.wrapping_add((i * PRG_CHUNK + j * PIECE) as u64);
                prg::fill_words(key, stream, at, &mut buf[..piece.len()]);
                for (d, &s) in piece.iter_mut().zip(&buf) {
                    d.write(s);
                }
            }
        }))
    }
}
