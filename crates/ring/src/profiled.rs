//! [`Profiled`]: any device, with a [`triad_profile`] span around each of its calls.

use crate::device::{Addend, BinaryOp, BitRange, Device, DeviceResult, Placed, PrgTerm, RowAnd, UnaryOp};
use crate::prg::PrgKey;
use crate::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};
use triad_profile::{span, Work};

/// A device that times every call of the device inside it by kind of work
/// ([`triad_profile::Work`]) on the calling thread. It computes exactly what the inner
/// device computes (same buffers, same results); with profiling off on the thread, each
/// call costs one extra thread-local read.
#[derive(Clone, Debug)]
pub struct Profiled<D>(pub D);

impl<D: Device> Device for Profiled<D> {
    type Buffer = D::Buffer;

    fn name(&self) -> String {
        self.0.name()
    }

    fn len(&self, buf: &Self::Buffer) -> usize {
        self.0.len(buf)
    }

    fn fill(&self, len: usize, value: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Layout);
        self.0.fill(len, value)
    }

    fn from_host(&self, data: &[u64]) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Transfer);
        self.0.from_host(data)
    }

    fn from_host_vec(&self, data: Vec<u64>) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Transfer);
        self.0.from_host_vec(data)
    }

    fn to_host(&self, buf: &Self::Buffer) -> DeviceResult<Vec<u64>> {
        let _s = span(Work::Transfer);
        self.0.to_host(buf)
    }

    fn into_host(&self, buf: Self::Buffer) -> DeviceResult<Vec<u64>> {
        let _s = span(Work::Transfer);
        self.0.into_host(buf)
    }

    fn copy(&self, buf: &Self::Buffer) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Layout);
        self.0.copy(buf)
    }

    fn unary(&self, op: UnaryOp, a: &Self::Buffer) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.unary(op, a)
    }

    fn binary(&self, op: BinaryOp, a: &Self::Buffer, b: &Self::Buffer) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.binary(op, a, b)
    }

    fn binary_assign(&self, op: BinaryOp, a: &mut Self::Buffer, b: &Self::Buffer) -> DeviceResult<()> {
        let _s = span(Work::Elementwise);
        self.0.binary_assign(op, a, b)
    }

    fn binary_scalar(&self, op: BinaryOp, a: &Self::Buffer, s: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.binary_scalar(op, a, s)
    }

    fn place(&self, len: usize, pieces: &[Placed<'_, Self::Buffer>]) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.place(len, pieces)
    }

    fn and_part(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        y_shl: u32,
        r: [&Self::Buffer; 2],
        mask: u64,
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.and_part(x, y, y_shl, r, mask)
    }

    fn and_part_packed(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        y_shl: u32,
        keys: [&PrgKey; 2],
        stream: u64,
        mask: u64,
    ) -> DeviceResult<Self::Buffer> {
        // Mostly the packing (the draws are for the packed words only).
        let _s = span(Work::Bits);
        self.0.and_part_packed(x, y, y_shl, keys, stream, mask)
    }

    fn and_rows(&self, op: &RowAnd<'_, Self::Buffer>, keys: [&PrgKey; 2], stream: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Bits);
        self.0.and_rows(op, keys, stream)
    }

    fn add_prg(&self, a: &mut Self::Buffer, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
        let _s = span(Work::Prg);
        self.0.add_prg(a, terms)
    }

    fn inject_offer(&self, bits: BitRange<'_, Self::Buffer>, key: &PrgKey, stream: u64) -> DeviceResult<Self::Buffer> {
        // Mostly the ChaCha draw.
        let _s = span(Work::Prg);
        self.0.inject_offer(bits, key, stream)
    }

    fn inject_pick(
        &self,
        bits: BitRange<'_, Self::Buffer>,
        key: &PrgKey,
        stream: u64,
        r: &Self::Buffer,
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Prg);
        self.0.inject_pick(bits, key, stream, r)
    }

    fn inject_receive(
        &self,
        bits: BitRange<'_, Self::Buffer>,
        u: (&Self::Buffer, usize),
        c: (&Self::Buffer, usize),
        r: &Self::Buffer,
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.inject_receive(bits, u, c, r)
    }

    fn mul_part(
        &self,
        x: [&Self::Buffer; 2],
        y: [&Self::Buffer; 2],
        terms: &[PrgTerm<'_>],
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.mul_part(x, y, terms)
    }

    fn truncate_deal(
        &self,
        part: &Self::Buffer,
        bits: u32,
        r: [PrgTerm<'_>; 2],
        t: PrgTerm<'_>,
        e: PrgTerm<'_>,
    ) -> DeviceResult<(Self::Buffer, Self::Buffer)> {
        // Mostly the four draws.
        let _s = span(Work::Prg);
        self.0.truncate_deal(part, bits, r, t, e)
    }

    fn truncate_open(
        &self,
        c: [&Self::Buffer; 2],
        bits: u32,
        low: bool,
        e: Addend<'_, Self::Buffer>,
        plus: &[Addend<'_, Self::Buffer>],
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Elementwise);
        self.0.truncate_open(c, bits, low, e, plus)
    }

    fn pack_bits(&self, a: &Self::Buffer, mask: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Bits);
        self.0.pack_bits(a, mask)
    }

    fn bit_planes(&self, a: &Self::Buffer, from: usize, count: usize, planes: u32) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Bits);
        self.0.bit_planes(a, from, count, planes)
    }

    fn unpack_bits(&self, packed: &Self::Buffer, len: usize, mask: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Bits);
        self.0.unpack_bits(packed, len, mask)
    }

    fn sum_axis(&self, a: &Self::Buffer, outer: usize, axis: usize, inner: usize) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Layout);
        self.0.sum_axis(a, outer, axis, inner)
    }

    fn gather_strided(&self, a: &Self::Buffer, view: &StridedLayout) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Layout);
        self.0.gather_strided(a, view)
    }

    fn scatter_strided(&self, dst: &mut Self::Buffer, src: &Self::Buffer, view: &StridedLayout) -> DeviceResult<()> {
        let _s = span(Work::Layout);
        self.0.scatter_strided(dst, src, view)
    }

    fn matmul(&self, a: &Self::Buffer, b: &Self::Buffer, spec: &MatmulSpec) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Gemm);
        self.0.matmul(a, b, spec)
    }

    fn conv2d(&self, input: &Self::Buffer, weight: &Self::Buffer, p: &Conv2dParams) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Conv);
        self.0.conv2d(input, weight, p)
    }

    fn conv2d_grad_input(
        &self,
        grad_out: &Self::Buffer,
        weight: &Self::Buffer,
        p: &Conv2dParams,
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Conv);
        self.0.conv2d_grad_input(grad_out, weight, p)
    }

    fn conv2d_grad_weight(
        &self,
        input: &Self::Buffer,
        grad_out: &Self::Buffer,
        p: &Conv2dParams,
    ) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Conv);
        self.0.conv2d_grad_weight(input, grad_out, p)
    }

    fn pool_sum(&self, input: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Pool);
        self.0.pool_sum(input, p)
    }

    fn pool_sum_backward(&self, grad_out: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Pool);
        self.0.pool_sum_backward(grad_out, p)
    }

    fn pool_windows(&self, input: &Self::Buffer, p: &Pool2dParams, pad: u64) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Pool);
        self.0.pool_windows(input, p, pad)
    }

    fn pool_windows_backward(&self, windows: &Self::Buffer, p: &Pool2dParams) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Pool);
        self.0.pool_windows_backward(windows, p)
    }

    fn prg_fill(&self, key: &PrgKey, stream: u64, offset: u64, len: usize) -> DeviceResult<Self::Buffer> {
        let _s = span(Work::Prg);
        self.0.prg_fill(key, stream, offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuDevice;

    #[test]
    fn computes_what_the_inner_device_computes_and_counts_calls() {
        let dev = Profiled(CpuDevice::new());
        triad_profile::start();
        let a = dev.from_host(&[1, 2, 3, 4]).unwrap_or_else(|e| panic!("{e}"));
        let spec = MatmulSpec { batch: 1, m: 2, k: 2, n: 2, a_trans: false, b_trans: false };
        let c = dev.matmul(&a, &a, &spec).unwrap_or_else(|e| panic!("{e}"));
        let r = dev.prg_fill(&PrgKey::from_bytes([7; 32]), 3, 0, 8).unwrap_or_else(|e| panic!("{e}"));
        let p = triad_profile::finish();
        assert_eq!(dev.to_host(&c).ok(), Some(vec![7, 10, 15, 22]));
        assert_eq!(dev.to_host(&r).ok(), CpuDevice::new().prg_fill(&PrgKey::from_bytes([7; 32]), 3, 0, 8).ok());
        assert_eq!((p.calls(Work::Transfer), p.calls(Work::Gemm), p.calls(Work::Prg)), (1, 1, 1));
        assert_eq!(p.calls(Work::Elementwise), 0);
    }
}
