//! The dry-run device: buffers that hold only a length, ops that compute only sizes.
//!
//! triad's protocols are data-oblivious: which messages a party sends, how long they are and
//! in which round, depend on shapes and on the protocol, never on the values of shares. So a
//! protocol run on [`DryRunDevice`] sends exactly the messages of a real run (all zeros),
//! and the transport's byte counters and round clocks give exactly the real costs, at the
//! price of moving zeros through the links and no arithmetic at all.
//!
//! What it is for: the per-layer cost tables of models too big to run on the CPU in a test
//! (ResNet-152 on ImageNet, a VGG-16 training step; `tests/tests/layers_costs.rs`), and
//! `triad bench --dry-run`. **Every value it produces is meaningless**: [`to_host`] returns
//! zeros and results opened on it are zeros. Never use it for anything but counting.
//!
//! Every method returns a buffer of exactly the length [`CpuDevice`](crate::CpuDevice)'s
//! would have (the unit tests below check that op by op), and rejects operands whose
//! lengths do not fit the operation with [`DeviceError::Driver`], so a dry run also checks
//! the sizes a protocol hands its device.
//!
//! ```
//! use triad_ring::{DryRunDevice, Tensor};
//! let dev = DryRunDevice::new();
//! let a = Tensor::from_vec(&dev, [2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
//! let b = a.matmul(&a.transpose().unwrap()).unwrap();
//! assert_eq!(b.dims(), &[2, 2]);
//! assert_eq!(b.to_vec().unwrap(), vec![0; 4]); // values are not computed
//! ```
//!
//! [`to_host`]: Device::to_host

use crate::device::{check_planes, BinaryOp, Device, DeviceError, DeviceResult, RowAnd, UnaryOp};
use crate::prg::PrgKey;
use crate::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};

/// The dry-run device; see the [module docs](self). It has no state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DryRunDevice;

impl DryRunDevice {
    /// The dry-run device.
    pub fn new() -> Self {
        DryRunDevice
    }
}

/// A dry-run buffer: the number of elements a real buffer would hold, and nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DryBuffer {
    len: usize,
}

impl DryBuffer {
    /// A buffer standing for `len` elements.
    pub fn new(len: usize) -> Self {
        DryBuffer { len }
    }
    /// Number of elements it stands for.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it stands for no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn buf(len: usize) -> DeviceResult<DryBuffer> {
    Ok(DryBuffer { len })
}

/// Fails unless operand `what` has `want` elements.
fn expect(op: &str, what: &str, got: &DryBuffer, want: usize) -> DeviceResult<()> {
    if got.len == want {
        return Ok(());
    }
    Err(DeviceError::Driver {
        device: "dry-run".into(),
        detail: format!("{op}: {what} has {} elements, expected {want}", got.len),
    })
}

/// Fails unless the strided view fits in `len` elements.
fn expect_view(op: &str, view: &StridedLayout, len: usize) -> DeviceResult<()> {
    if view.dims.len() == view.strides.len() && view.extent().is_some_and(|e| e <= len) {
        return Ok(());
    }
    Err(DeviceError::Driver { device: "dry-run".into(), detail: format!("{op}: view {view:?} outside {len} elements") })
}

impl Device for DryRunDevice {
    type Buffer = DryBuffer;

    fn name(&self) -> String {
        "dry-run".to_string()
    }

    fn len(&self, buf: &DryBuffer) -> usize {
        buf.len
    }

    fn fill(&self, len: usize, _value: u64) -> DeviceResult<DryBuffer> {
        buf(len)
    }

    fn from_host(&self, data: &[u64]) -> DeviceResult<DryBuffer> {
        buf(data.len())
    }

    fn to_host(&self, b: &DryBuffer) -> DeviceResult<Vec<u64>> {
        Ok(vec![0; b.len])
    }

    fn copy(&self, b: &DryBuffer) -> DeviceResult<DryBuffer> {
        Ok(*b)
    }

    fn unary(&self, _op: UnaryOp, a: &DryBuffer) -> DeviceResult<DryBuffer> {
        Ok(*a)
    }

    fn binary(&self, _op: BinaryOp, a: &DryBuffer, b: &DryBuffer) -> DeviceResult<DryBuffer> {
        expect("binary", "right operand", b, a.len)?;
        Ok(*a)
    }

    fn binary_assign(&self, _op: BinaryOp, a: &mut DryBuffer, b: &DryBuffer) -> DeviceResult<()> {
        expect("binary_assign", "right operand", b, a.len)
    }

    fn binary_scalar(&self, _op: BinaryOp, a: &DryBuffer, _s: u64) -> DeviceResult<DryBuffer> {
        Ok(*a)
    }

    fn pack_bits(&self, a: &DryBuffer, mask: u64) -> DeviceResult<DryBuffer> {
        buf((a.len * mask.count_ones() as usize).div_ceil(64))
    }

    fn bit_planes(&self, a: &DryBuffer, from: usize, count: usize, planes: u32) -> DeviceResult<DryBuffer> {
        check_planes("dry-run", from, count, planes, a.len)?;
        buf(planes as usize * count.div_ceil(64))
    }

    fn and_rows(&self, op: &RowAnd<'_, DryBuffer>, _keys: [&PrgKey; 2], _stream: u64) -> DeviceResult<DryBuffer> {
        op.check("dry-run", |b| b.len)?;
        buf(op.rows * op.width)
    }

    fn unpack_bits(&self, packed: &DryBuffer, len: usize, mask: u64) -> DeviceResult<DryBuffer> {
        expect("unpack_bits", "packed stream", packed, (len * mask.count_ones() as usize).div_ceil(64))?;
        buf(len)
    }

    fn sum_axis(&self, a: &DryBuffer, outer: usize, axis: usize, inner: usize) -> DeviceResult<DryBuffer> {
        expect("sum_axis", "input", a, outer * axis * inner)?;
        buf(outer * inner)
    }

    fn gather_strided(&self, a: &DryBuffer, view: &StridedLayout) -> DeviceResult<DryBuffer> {
        expect_view("gather_strided", view, a.len)?;
        buf(view.numel())
    }

    fn scatter_strided(&self, dst: &mut DryBuffer, src: &DryBuffer, view: &StridedLayout) -> DeviceResult<()> {
        expect_view("scatter_strided", view, dst.len)?;
        expect("scatter_strided", "source", src, view.numel())
    }

    fn matmul(&self, a: &DryBuffer, b: &DryBuffer, spec: &MatmulSpec) -> DeviceResult<DryBuffer> {
        expect("matmul", "a", a, spec.a_len())?;
        expect("matmul", "b", b, spec.b_len())?;
        buf(spec.c_len())
    }

    fn conv2d(&self, input: &DryBuffer, weight: &DryBuffer, p: &Conv2dParams) -> DeviceResult<DryBuffer> {
        expect("conv2d", "input", input, p.input_shape().numel())?;
        expect("conv2d", "weight", weight, p.weight_shape().numel())?;
        buf(p.output_shape().numel())
    }

    fn conv2d_grad_input(&self, grad_out: &DryBuffer, weight: &DryBuffer, p: &Conv2dParams) -> DeviceResult<DryBuffer> {
        expect("conv2d_grad_input", "output gradient", grad_out, p.output_shape().numel())?;
        expect("conv2d_grad_input", "weight", weight, p.weight_shape().numel())?;
        buf(p.input_shape().numel())
    }

    fn conv2d_grad_weight(&self, input: &DryBuffer, grad_out: &DryBuffer, p: &Conv2dParams) -> DeviceResult<DryBuffer> {
        expect("conv2d_grad_weight", "input", input, p.input_shape().numel())?;
        expect("conv2d_grad_weight", "output gradient", grad_out, p.output_shape().numel())?;
        buf(p.weight_shape().numel())
    }

    fn pool_sum(&self, input: &DryBuffer, p: &Pool2dParams) -> DeviceResult<DryBuffer> {
        expect("pool_sum", "input", input, p.input_shape().numel())?;
        buf(p.output_shape().numel())
    }

    fn pool_sum_backward(&self, grad_out: &DryBuffer, p: &Pool2dParams) -> DeviceResult<DryBuffer> {
        expect("pool_sum_backward", "output gradient", grad_out, p.output_shape().numel())?;
        buf(p.input_shape().numel())
    }

    fn pool_windows(&self, input: &DryBuffer, p: &Pool2dParams, _pad: u64) -> DeviceResult<DryBuffer> {
        expect("pool_windows", "input", input, p.input_shape().numel())?;
        buf(p.windows_shape().numel())
    }

    fn pool_windows_backward(&self, windows: &DryBuffer, p: &Pool2dParams) -> DeviceResult<DryBuffer> {
        expect("pool_windows_backward", "windows", windows, p.windows_shape().numel())?;
        buf(p.input_shape().numel())
    }

    fn prg_fill(&self, _key: &PrgKey, _stream: u64, _offset: u64, len: usize) -> DeviceResult<DryBuffer> {
        buf(len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::CpuDevice;

    /// Runs `f` on both devices with operands of the given lengths and compares the
    /// result lengths.
    fn same_len(
        what: &str,
        lens: &[usize],
        cpu: impl Fn(&CpuDevice, &[Vec<u64>]) -> DeviceResult<Vec<u64>>,
        dry: impl Fn(&DryRunDevice, &[DryBuffer]) -> DeviceResult<DryBuffer>,
    ) {
        let c = CpuDevice::new();
        let d = DryRunDevice::new();
        let cbufs: Vec<Vec<u64>> =
            lens.iter().map(|&n| (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect()).collect();
        let dbufs: Vec<DryBuffer> = lens.iter().map(|&n| DryBuffer::new(n)).collect();
        let want = cpu(&c, &cbufs).map(|v| v.len()).map_err(|e| format!("{what}: cpu: {e}"));
        let got = dry(&d, &dbufs).map(|b| d.len(&b)).map_err(|e| format!("{what}: dry: {e}"));
        assert_eq!(got, want, "{what}");
    }

    #[test]
    fn output_lengths_match_the_cpu_device() {
        let key = PrgKey::from_bytes([7; 32]);
        same_len("fill", &[], |c, _| c.fill(13, 5), |d, _| d.fill(13, 5));
        same_len("from_host", &[], |c, _| c.from_host(&[1, 2, 3]), |d, _| d.from_host(&[1, 2, 3]));
        same_len("prg_fill", &[], |c, _| c.prg_fill(&key, 3, 9, 1000), |d, _| d.prg_fill(&key, 3, 9, 1000));
        same_len("unary", &[17], |c, b| c.unary(UnaryOp::Shl(3), &b[0]), |d, b| d.unary(UnaryOp::Shl(3), &b[0]));
        same_len(
            "binary",
            &[17, 17],
            |c, b| c.binary(BinaryOp::Xor, &b[0], &b[1]),
            |d, b| d.binary(BinaryOp::Xor, &b[0], &b[1]),
        );
        same_len(
            "binary_scalar",
            &[9],
            |c, b| c.binary_scalar(BinaryOp::Add, &b[0], 4),
            |d, b| d.binary_scalar(BinaryOp::Add, &b[0], 4),
        );
        for (n, mask) in
            [(0, u64::MAX), (1, 1), (63, !(1 << 63)), (64, 0b1011), (100, 0x0F00_FF00), (1000, 0), (65, 1 << 63)]
        {
            same_len("pack_bits", &[n], |c, b| c.pack_bits(&b[0], mask), |d, b| d.pack_bits(&b[0], mask));
            let packed = (n * mask.count_ones() as usize).div_ceil(64);
            same_len(
                "unpack_bits",
                &[packed],
                |c, b| c.unpack_bits(&b[0], n, mask),
                |d, b| d.unpack_bits(&b[0], n, mask),
            );
        }
        same_len("sum_axis", &[2 * 3 * 4], |c, b| c.sum_axis(&b[0], 2, 3, 4), |d, b| d.sum_axis(&b[0], 2, 3, 4));
        let view = StridedLayout { dims: vec![3, 2, 4], strides: vec![8, 0, 2], offset: 1 };
        same_len("gather_strided", &[24], |c, b| c.gather_strided(&b[0], &view), |d, b| d.gather_strided(&b[0], &view));
        let spec = MatmulSpec { batch: 2, m: 3, k: 5, n: 4, a_trans: true, b_trans: false };
        same_len("matmul", &[30, 40], |c, b| c.matmul(&b[0], &b[1], &spec), |d, b| d.matmul(&b[0], &b[1], &spec));
        let conv = Conv2dParams { groups: 2, stride_w: 2, pad_h: 2, ..Conv2dParams::square(2, 4, 9, 6, 3, 1, 1) };
        let (i, w, o) = (conv.input_shape().numel(), conv.weight_shape().numel(), conv.output_shape().numel());
        same_len("conv2d", &[i, w], |c, b| c.conv2d(&b[0], &b[1], &conv), |d, b| d.conv2d(&b[0], &b[1], &conv));
        same_len(
            "conv2d_grad_input",
            &[o, w],
            |c, b| c.conv2d_grad_input(&b[0], &b[1], &conv),
            |d, b| d.conv2d_grad_input(&b[0], &b[1], &conv),
        );
        same_len(
            "conv2d_grad_weight",
            &[i, o],
            |c, b| c.conv2d_grad_weight(&b[0], &b[1], &conv),
            |d, b| d.conv2d_grad_weight(&b[0], &b[1], &conv),
        );
        let pool = Pool2dParams { stride_w: 1, ..Pool2dParams::square(2, 3, 7, 3, 2, 1) };
        let (pi, po, pw) = (pool.input_shape().numel(), pool.output_shape().numel(), pool.windows_shape().numel());
        same_len("pool_sum", &[pi], |c, b| c.pool_sum(&b[0], &pool), |d, b| d.pool_sum(&b[0], &pool));
        same_len(
            "pool_sum_backward",
            &[po],
            |c, b| c.pool_sum_backward(&b[0], &pool),
            |d, b| d.pool_sum_backward(&b[0], &pool),
        );
        same_len("pool_windows", &[pi], |c, b| c.pool_windows(&b[0], &pool, 9), |d, b| d.pool_windows(&b[0], &pool, 9));
        same_len(
            "pool_windows_backward",
            &[pw],
            |c, b| c.pool_windows_backward(&b[0], &pool),
            |d, b| d.pool_windows_backward(&b[0], &pool),
        );
    }

    #[test]
    fn in_place_ops_keep_lengths_and_values_are_zero() {
        let d = DryRunDevice::new();
        let mut a = d.from_host(&[1, 2, 3, 4, 5, 6]).unwrap();
        d.binary_assign(BinaryOp::Add, &mut a, &DryBuffer::new(6)).unwrap();
        let view = StridedLayout { dims: vec![3], strides: vec![2], offset: 0 };
        d.scatter_strided(&mut a, &DryBuffer::new(3), &view).unwrap();
        assert_eq!(d.len(&a), 6);
        assert_eq!(d.to_host(&a).unwrap(), vec![0; 6]);
    }

    #[test]
    fn operands_of_the_wrong_length_are_errors() {
        let d = DryRunDevice::new();
        assert!(d.binary(BinaryOp::Add, &DryBuffer::new(3), &DryBuffer::new(4)).is_err());
        assert!(d.unpack_bits(&DryBuffer::new(2), 64, 0b111).is_err());
        let spec = MatmulSpec { batch: 1, m: 2, k: 3, n: 4, a_trans: false, b_trans: false };
        assert!(d.matmul(&DryBuffer::new(6), &DryBuffer::new(11), &spec).is_err());
        let view = StridedLayout { dims: vec![4], strides: vec![2], offset: 0 };
        assert!(d.gather_strided(&DryBuffer::new(6), &view).is_err());
    }
}
