//! The fused methods a device may override with kernels of its own (`add_prg`,
//! `mul_part`, `truncate_deal`, `truncate_open`, `and_part_packed`, `bit_planes`, `and_rows`) against their default
//! implementations on the same device (`triad_ring::device::fused`, written with the
//! unfused methods) and against the CPU device's overrides, bit for bit; and their
//! argument errors against the defaults' errors, equal as values.
//!
//! The lengths sit around the CUDA kernels' groups of eight words (one ChaCha block) and
//! blocks of 256 threads (2048 words): empty, partial and whole groups and blocks, several
//! blocks. `tests/cuda_device.rs` stamps every check over the CUDA device;
//! `tests/ring_ops.rs` runs the value checks over the CPU device (whose overrides check
//! fewer arguments than the defaults: its own proptests compare it with them).
#![allow(clippy::unwrap_used)]

use triad_ring::device::fused;
use triad_ring::{Addend, CpuDevice, Device, DeviceResult, PrgKey, PrgTerm, RowAnd, Rows};

/// A check's name and the check.
pub type Check<D> = (&'static str, fn(&D));

/// The checks of values, in order.
pub fn value_checks<D: Device>() -> Vec<Check<D>> {
    vec![
        ("add_prg", add_prg::<D>),
        ("mul_part", mul_part::<D>),
        ("truncate_deal", truncate_deal::<D>),
        ("truncate_open", truncate_open::<D>),
        ("and_part_packed", and_part_packed::<D>),
        ("bit_planes", bit_planes::<D>),
        ("and_rows", and_rows::<D>),
    ]
}

/// Lengths around the groups of eight words and the blocks of 2048.
pub const LENS: [usize; 14] = [0, 1, 5, 7, 8, 9, 63, 65, 2047, 2048, 2049, 2 * 2048 + 8, 3 * 2048 + 13, 20_001];

fn keys() -> [PrgKey; 3] {
    std::array::from_fn(|i| {
        let w = crate::words(4, 100 + i as u64);
        PrgKey::from_bytes(std::array::from_fn(|b| (w[b / 8] >> (8 * (b % 8))) as u8))
    })
}

/// `n` words of seed `seed`, with `extra` more (buffers longer than the result).
fn data(n: usize, extra: usize, seed: u64) -> Vec<u64> {
    crate::words(n + extra, seed.wrapping_mul(0x9E37_79B9).wrapping_add(n as u64))
}

fn up<D: Device>(dev: &D, v: &[u64]) -> D::Buffer {
    dev.from_host(v).unwrap()
}

fn host<D: Device>(dev: &D, b: DeviceResult<D::Buffer>) -> Vec<u64> {
    dev.to_host(&b.unwrap()).unwrap()
}

/// The device's result, the default's on the device and the CPU device's agree.
fn agree<D: Device>(dev: &D, got: DeviceResult<D::Buffer>, default: DeviceResult<D::Buffer>, cpu: Vec<u64>, at: &str) {
    let got = host(dev, got);
    assert_eq!(got, host(dev, default), "{} against its default: {at}", dev.name());
    assert_eq!(got, cpu, "{} against the CPU device: {at}", dev.name());
}

/// Terms of all keys and signs, streams 0, 7 and the last.
fn terms(keys: &[PrgKey; 3], count: usize) -> Vec<PrgTerm<'_>> {
    let streams = [0, 7, u64::MAX];
    (0..count).map(|i| PrgTerm { key: &keys[i % 3], stream: streams[i % 3], negate: i % 2 == 1 }).collect()
}

/// `add_prg` with no term, one, two, and more than one launch takes (five).
pub fn add_prg<D: Device>(dev: &D) {
    let keys = keys();
    for n in LENS {
        for count in [0, 1, 2, 5] {
            let a = data(n, 0, 1);
            let ts = terms(&keys, count);
            let mut got = up(dev, &a);
            dev.add_prg(&mut got, &ts).unwrap();
            let mut want = up(dev, &a);
            fused::add_prg(dev, &mut want, &ts).unwrap();
            let mut cpu = a.clone();
            CpuDevice.add_prg(&mut cpu, &ts).unwrap();
            agree(dev, Ok(got), Ok(want), cpu, &format!("add_prg, {n} words, {count} terms"));
        }
    }
}

/// `mul_part` with no term, a zero sharing's two, and five.
pub fn mul_part<D: Device>(dev: &D) {
    let keys = keys();
    for n in LENS {
        let v: Vec<Vec<u64>> = (0..4).map(|k| data(n, 0, 10 + k)).collect();
        let b: Vec<D::Buffer> = v.iter().map(|v| up(dev, v)).collect();
        for count in [0, 2, 5] {
            let ts = terms(&keys, count);
            let cpu = CpuDevice.mul_part([&v[0], &v[1]], [&v[2], &v[3]], &ts).unwrap();
            agree(
                dev,
                dev.mul_part([&b[0], &b[1]], [&b[2], &b[3]], &ts),
                fused::mul_part(dev, [&b[0], &b[1]], [&b[2], &b[3]], &ts),
                cpu,
                &format!("mul_part, {n} words, {count} terms"),
            );
        }
    }
}

/// `truncate_deal` at the ends of its bits and in the middle, with each sign of `t` and `e`.
pub fn truncate_deal<D: Device>(dev: &D) {
    let keys = keys();
    for (i, n) in LENS.into_iter().enumerate() {
        let part = data(n, 0, 20);
        let pb = up(dev, &part);
        for bits in [1, 20, 62] {
            let negate = [(i + bits as usize).is_multiple_of(2), i.is_multiple_of(3)];
            let r = [
                PrgTerm { key: &keys[0], stream: 3, negate: false },
                PrgTerm { key: &keys[1], stream: 3, negate: false },
            ];
            let t = PrgTerm { key: &keys[2], stream: 4, negate: negate[0] };
            let e = PrgTerm { key: &keys[2], stream: u64::MAX, negate: negate[1] };
            let (gt, ge) = dev.truncate_deal(&pb, bits, r, t, e).unwrap();
            let (wt, we) = fused::truncate_deal(dev, &pb, bits, r, t, e).unwrap();
            let (ct, ce) = CpuDevice.truncate_deal(&part, bits, r, t, e).unwrap();
            let at = format!("truncate_deal, {n} words, bits {bits}, negate {negate:?}");
            agree(dev, Ok(gt), Ok(wt), ct, &format!("{at}: t"));
            agree(dev, Ok(ge), Ok(we), ce, &format!("{at}: e"));
        }
    }
}

/// An addend as a buffer of the device (`bufs`) or of the CPU (`host`), by its place.
#[derive(Clone, Copy, Debug)]
enum Spec {
    Prg(usize),
    Buf(usize),
    Less(usize),
}

fn addend<'a, B>(s: Spec, terms: &[PrgTerm<'a>], bufs: &'a [B]) -> Addend<'a, B> {
    match s {
        Spec::Prg(i) => Addend::Prg(terms[i]),
        Spec::Buf(i) => Addend::Buf(&bufs[i]),
        Spec::Less(i) => Addend::Less(&bufs[i]),
    }
}

/// `truncate_open` with each kind of `e` (a draw of each sign, a buffer added and one
/// subtracted), with and without the low part, and with no addend, the protocol's four
/// (a buffer, two draws, a buffer subtracted) and seven with four buffers (more than one
/// launch takes); the buffers longer than the result.
pub fn truncate_open<D: Device>(dev: &D) {
    let keys = keys();
    let ts = terms(&keys, 4);
    let plus_lists: [&[Spec]; 3] = [
        &[],
        &[Spec::Buf(0), Spec::Prg(1), Spec::Prg(2), Spec::Less(1)],
        &[Spec::Less(2), Spec::Prg(0), Spec::Buf(3), Spec::Buf(0), Spec::Prg(3), Spec::Less(1), Spec::Prg(1)],
    ];
    let es = [Spec::Prg(0), Spec::Prg(1), Spec::Buf(2), Spec::Less(3)];
    for (i, n) in LENS.into_iter().enumerate() {
        let c: Vec<Vec<u64>> = (0..2).map(|k| data(n, 0, 30 + k)).collect();
        let cb: Vec<D::Buffer> = c.iter().map(|v| up(dev, v)).collect();
        let host_bufs: Vec<Vec<u64>> = (0..4).map(|k| data(n, k as usize, 40 + k)).collect();
        let bufs: Vec<D::Buffer> = host_bufs.iter().map(|v| up(dev, v)).collect();
        for (j, &e) in es.iter().enumerate() {
            for (p, plus) in plus_lists.iter().enumerate() {
                let bits = [1, 20, 62][(i + j + p) % 3];
                let low = (i + j + p) % 2 == 0;
                let ed = addend(e, &ts, &bufs);
                let pd: Vec<_> = plus.iter().map(|&s| addend(s, &ts, &bufs)).collect();
                let pc: Vec<_> = plus.iter().map(|&s| addend(s, &ts, &host_bufs)).collect();
                let cpu = CpuDevice.truncate_open([&c[0], &c[1]], bits, low, addend(e, &ts, &host_bufs), &pc).unwrap();
                agree(
                    dev,
                    dev.truncate_open([&cb[0], &cb[1]], bits, low, ed, &pd),
                    fused::truncate_open(dev, [&cb[0], &cb[1]], bits, low, ed, &pd),
                    cpu,
                    &format!("truncate_open, {n} words, bits {bits}, low {low}, e {e:?}, plus {plus:?}"),
                );
            }
        }
    }
}

/// `and_part_packed` with full, empty, one-bit, contiguous and scattered masks at shifts
/// 0, 1, 31, 63 and 69 (taken mod 64), and one length whose one-bit packing spans more
/// than one block of 2048 packed words.
pub fn and_part_packed<D: Device>(dev: &D) {
    let keys = keys();
    let masks =
        [u64::MAX, 0, 1, 1 << 63, 0xFFFF << 48, 0x7FFF_FFFE << 32, 0x8000_0000_0000_0001, 0x0123_4567_89AB_CDEF];
    let shifts = [0, 1, 31, 63, 69];
    let long = (1..=2).map(|w| (w * 2048 + 5) * 64 + 3);
    for (i, n) in LENS.into_iter().chain(long).enumerate() {
        let v: Vec<Vec<u64>> = (0..4).map(|k| data(n, 0, 50 + k)).collect();
        let b: Vec<D::Buffer> = v.iter().map(|v| up(dev, v)).collect();
        let masks = if n > 20_001 { &masks[2..3] } else { &masks[..] };
        for (j, &mask) in masks.iter().enumerate() {
            let y_shl = shifts[(i + j) % shifts.len()];
            let stream = [5, u64::MAX][(i + j) % 2];
            let k = [&keys[j % 3], &keys[(j + 1) % 3]];
            let cpu = CpuDevice.and_part_packed([&v[0], &v[1]], [&v[2], &v[3]], y_shl, k, stream, mask).unwrap();
            agree(
                dev,
                dev.and_part_packed([&b[0], &b[1]], [&b[2], &b[3]], y_shl, k, stream, mask),
                fused::and_part_packed(dev, [&b[0], &b[1]], [&b[2], &b[3]], y_shl, k, stream, mask),
                cpu,
                &format!("and_part_packed, {n} words, mask {mask:#x}, y_shl {y_shl}"),
            );
        }
    }
}

/// `bit_planes` from its definition, bit by bit.
fn planes_by_definition(a: &[u64], from: usize, count: usize, planes: u32) -> Vec<u64> {
    let groups = count.div_ceil(64);
    let mut out = vec![0u64; planes as usize * groups];
    for j in 0..planes as usize {
        for e in 0..count {
            out[j * groups + e / 64] |= ((a[from + e] >> j) & 1) << (e % 64);
        }
    }
    out
}

/// `bit_planes` over every length, from offsets inside a longer buffer, for one, some and
/// all 64 planes, against its definition as well.
pub fn bit_planes<D: Device>(dev: &D) {
    for (i, count) in LENS.into_iter().enumerate() {
        let from = [0, 3, 64][i % 3];
        let v = data(from + count, 5, 80);
        let b = up(dev, &v);
        for planes in [1, 21, 48, 63, 64] {
            let cpu = CpuDevice.bit_planes(&v, from, count, planes).unwrap();
            let at = format!("bit_planes, {count} words from {from}, {planes} planes");
            assert_eq!(cpu, planes_by_definition(&v, from, count, planes), "CPU device against the definition: {at}");
            agree(
                dev,
                dev.bit_planes(&b, from, count, planes),
                fused::bit_planes(dev, &b, from, count, planes),
                cpu,
                &at,
            );
        }
    }
}

/// `and_rows` with rows narrower and wider than a piece of the CPU device's draws, every
/// other row and every row, from several first rows, and no rows, with and without rows
/// XOR-ed in; against `and_part_packed` on the rows gathered (and the XOR) as well.
pub fn and_rows<D: Device>(dev: &D) {
    let keys = keys();
    for (i, width) in [1usize, 7, 64, 360, 2049].into_iter().enumerate() {
        for rows in [0usize, 1, 3, 23] {
            // Selection o: its rows from `first` every `step`, in a buffer with room to spare.
            let shapes = [(0, 2), (1, 2), (2, 1), (i % 3, 1 + i % 2), (1, 3)];
            let v: Vec<Vec<u64>> = shapes
                .iter()
                .enumerate()
                .map(|(k, &(first, step))| data((first + rows * step + 1) * width, 3, 90 + k as u64))
                .collect();
            let b: Vec<D::Buffer> = v.iter().map(|v| up(dev, v)).collect();
            let sel = |k: usize| Rows { buf: &b[k], first: shapes[k].0, step: shapes[k].1 };
            let cpu_sel = |k: usize| Rows { buf: &v[k], first: shapes[k].0, step: shapes[k].1 };
            // The selected rows, gathered on the host.
            let gathered: Vec<Vec<u64>> = (0..5)
                .map(|o| {
                    let (first, step) = shapes[o];
                    (0..rows).flat_map(|r| v[o][(first + r * step) * width..][..width].to_vec()).collect()
                })
                .collect();
            let g = &gathered;
            let k = [&keys[i % 3], &keys[(i + 1) % 3]];
            let stream = [3, u64::MAX][i % 2];
            for with_plus in [false, true] {
                let op =
                    RowAnd { x: [sel(0), sel(1)], y: [sel(2), sel(3)], plus: with_plus.then(|| sel(4)), rows, width };
                let cpu_op = RowAnd {
                    x: [cpu_sel(0), cpu_sel(1)],
                    y: [cpu_sel(2), cpu_sel(3)],
                    plus: with_plus.then(|| cpu_sel(4)),
                    rows,
                    width,
                };
                let cpu = CpuDevice.and_rows(&cpu_op, k, stream).unwrap();
                let at = format!("and_rows, {rows} rows of {width} words, plus {with_plus}");
                let mut want =
                    CpuDevice.and_part_packed([&g[0], &g[1]], [&g[2], &g[3]], 0, k, stream, u64::MAX).unwrap();
                if with_plus {
                    want.iter_mut().zip(&g[4]).for_each(|(w, &p)| *w ^= p);
                }
                assert_eq!(cpu, want, "CPU device against and_part_packed of the gathered rows: {at}");
                agree(dev, dev.and_rows(&op, k, stream), fused::and_rows(dev, &op, k, stream), cpu, &at);
            }
        }
    }
}

/// The error of a call, which must fail.
fn error<T: std::fmt::Debug>(r: DeviceResult<T>, at: &str) -> triad_ring::DeviceError {
    match r {
        Err(e) => e,
        Ok(v) => panic!("{at}: expected an error, got {v:?}"),
    }
}

/// Bad arguments: the device's error equals its default's, for each method that checks
/// them (bits outside 1..=62, operands of other lengths, addend buffers too short, in
/// each place). The defaults check in the order they go, so the first bad argument
/// names the error.
pub fn argument_errors<D: Device>(dev: &D) {
    let keys = keys();
    let ts = terms(&keys, 4);
    let n = 9;
    let b: Vec<D::Buffer> = (0..4).map(|k| up(dev, &data(n, 0, 60 + k))).collect();
    let (short, long) = (up(dev, &data(n - 1, 0, 70)), up(dev, &data(n, 1, 71)));
    let same = |got: triad_ring::DeviceError, want: triad_ring::DeviceError, at: &str| {
        assert_eq!(got, want, "{}: {at}", dev.name());
    };
    // mul_part: any operand of another length.
    for place in 0..4 {
        for odd in [&short, &long] {
            let mut ops: Vec<&D::Buffer> = b.iter().collect();
            ops[place] = odd;
            let at = format!("mul_part, operand {place} of {} words", dev.len(odd));
            same(
                error(dev.mul_part([ops[0], ops[1]], [ops[2], ops[3]], &ts), &at),
                error(fused::mul_part(dev, [ops[0], ops[1]], [ops[2], ops[3]], &ts), &at),
                &at,
            );
            // and_part_packed: the same operands (its default's `and_part` checks them).
            let k = [&keys[0], &keys[1]];
            let at = format!("and_part_packed, operand {place} of {} words", dev.len(odd));
            same(
                error(dev.and_part_packed([ops[0], ops[1]], [ops[2], ops[3]], 3, k, 1, u64::MAX), &at),
                error(fused::and_part_packed(dev, [ops[0], ops[1]], [ops[2], ops[3]], 3, k, 1, u64::MAX), &at),
                &at,
            );
        }
    }
    // bit_planes: planes outside 1..=64, words past the end.
    for (from, count, planes) in [(0, n, 0), (0, n, 65), (1, n, 8), (n, 1, 8), (usize::MAX, 2, 8)] {
        let at = format!("bit_planes, {count} words from {from}, {planes} planes");
        same(
            error(dev.bit_planes(&b[0], from, count, planes), &at),
            error(fused::bit_planes(dev, &b[0], from, count, planes), &at),
            &at,
        );
    }
    // and_rows: a step of 0, rows past the end of a selection (each in turn, `plus` last).
    let k = [&keys[0], &keys[1]];
    for (place, first, step) in [(0, 0, 0), (1, 0, 2), (2, 9, 1), (3, 1, 1), (0, usize::MAX, 1), (4, 0, 4), (4, 0, 0)] {
        let mut ops: Vec<Rows<'_, D::Buffer>> = (0..5).map(|k| Rows { buf: &b[k % 4], first: 0, step: 1 }).collect();
        ops[place] = Rows { buf: &b[place % 4], first, step };
        let op = RowAnd { x: [ops[0], ops[1]], y: [ops[2], ops[3]], plus: Some(ops[4]), rows: 3, width: 3 };
        let at = format!("and_rows, selection {place} from row {first} every {step}");
        same(error(dev.and_rows(&op, k, 1), &at), error(fused::and_rows(dev, &op, k, 1), &at), &at);
    }
    // The truncation's bits.
    let r = [ts[0], ts[1]];
    for bits in [0, 63, 64, u32::MAX] {
        let at = format!("truncate_deal, bits {bits}");
        same(
            error(dev.truncate_deal(&b[0], bits, r, ts[2], ts[3]), &at),
            error(fused::truncate_deal(dev, &b[0], bits, r, ts[2], ts[3]), &at),
            &at,
        );
        let at = format!("truncate_open, bits {bits}");
        let e = Addend::Buf(&short);
        same(
            error(dev.truncate_open([&b[0], &b[1]], bits, true, e, &[]), &at),
            error(fused::truncate_open(dev, [&b[0], &b[1]], bits, true, e, &[]), &at),
            &at,
        );
    }
    // truncate_open: `c` of two lengths, or a short buffer as `e` or as an addend (after
    // a good one), each kind.
    let open = |c: [&D::Buffer; 2], e: Addend<'_, D::Buffer>, plus: &[Addend<'_, D::Buffer>], at: &str| {
        same(
            error(dev.truncate_open(c, 20, false, e, plus), at),
            error(fused::truncate_open(dev, c, 20, false, e, plus), at),
            at,
        );
    };
    for odd in [&short, &long] {
        open([&b[0], odd], Addend::Prg(ts[0]), &[], &format!("truncate_open, c of {n} and {} words", dev.len(odd)));
        open([odd, &b[0]], Addend::Buf(&short), &[], &format!("truncate_open, c of {} and {n} words", dev.len(odd)));
    }
    open([&b[0], &b[1]], Addend::Buf(&short), &[], "truncate_open, e a short buffer");
    open([&b[0], &b[1]], Addend::Less(&short), &[Addend::Buf(&short)], "truncate_open, e a short buffer subtracted");
    for bad in [Addend::Buf(&short), Addend::Less(&short)] {
        let plus = [Addend::Buf(&b[2]), Addend::Prg(ts[0]), bad, Addend::Less(&short)];
        open([&b[0], &b[1]], Addend::Less(&long), &plus, &format!("truncate_open, addend {bad:?}"));
    }
}
