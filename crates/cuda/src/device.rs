//! The [`Device`] methods of [`CudaDevice`]: each a launch (or a few) of a kernel of
//! `kernels/` over resident buffers.

use cudarc::driver::PushKernelArg;
use triad_ring::device::{Addend, BinaryOp, Device, DeviceResult, PrgTerm, RowAnd, UnaryOp};
use triad_ring::prg::PrgKey;
use triad_ring::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};

use crate::args::{key_words, mask_run, view_pieces, Geom};
use crate::{fused, gemm, grid, CudaBuffer, CudaDevice};

/// Target size (elements) of a convolution's columns buffer; larger batches are chunked.
const CONV_CHUNK_ELEMS: usize = 1 << 26;

/// The op codes of elementwise.cu.
fn unary_code(op: UnaryOp) -> (u32, u32) {
    match op {
        UnaryOp::Neg => (0, 0),
        UnaryOp::Not => (1, 0),
        UnaryOp::Shl(s) => (2, s),
        UnaryOp::ShrLogical(s) => (3, s),
        UnaryOp::ShrArith(s) => (4, s),
    }
}

fn binary_code(op: BinaryOp) -> u32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Xor => 3,
        BinaryOp::And => 4,
        BinaryOp::Or => 5,
    }
}

impl Device for CudaDevice {
    type Buffer = CudaBuffer;

    fn name(&self) -> String {
        format!("cuda:{} ({})", self.inner.ordinal, self.inner.name)
    }

    fn len(&self, buf: &CudaBuffer) -> usize {
        buf.len
    }

    fn fill(&self, len: usize, value: u64) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(len)?;
        if len > 0 {
            let n = len as u64;
            let mut b = self.stream().launch_builder(&self.inner.k.fill);
            b.arg(&mut out.data).arg(&value).arg(&n);
            // SAFETY: fill_u64(u64* out, u64 value, u64 n) writes out[0..n); `out` holds n.
            unsafe { b.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn from_host(&self, data: &[u64]) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(data.len())?;
        if !data.is_empty() {
            self.upload(data, &mut out.data)?;
        }
        Ok(out)
    }

    fn to_host(&self, buf: &CudaBuffer) -> DeviceResult<Vec<u64>> {
        if buf.len == 0 {
            return Ok(Vec::new());
        }
        self.download(&buf.data, buf.len)
    }

    fn copy(&self, buf: &CudaBuffer) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(buf.len)?;
        if buf.len > 0 {
            self.stream().memcpy_dtod(&buf.data.slice(..buf.len), &mut out.data).map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn unary(&self, op: UnaryOp, a: &CudaBuffer) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(a.len)?;
        if a.len > 0 {
            let (code, s) = unary_code(op);
            let n = a.len as u64;
            let mut b = self.stream().launch_builder(&self.inner.k.unary);
            b.arg(&mut out.data).arg(&a.data).arg(&n).arg(&code).arg(&s);
            // SAFETY: unary_u64(u64* out, const u64* a, u64 n, uint op, uint s) reads
            // a[0..n) and writes out[0..n); both hold n elements.
            unsafe { b.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn binary(&self, op: BinaryOp, a: &CudaBuffer, b: &CudaBuffer) -> DeviceResult<CudaBuffer> {
        self.same_len("binary", a.len, b.len)?;
        let mut out = self.alloc(a.len)?;
        if a.len > 0 {
            let (n, code) = (a.len as u64, binary_code(op));
            let mut l = self.stream().launch_builder(&self.inner.k.binary);
            l.arg(&mut out.data).arg(&a.data).arg(&b.data).arg(&n).arg(&code);
            // SAFETY: binary_u64(out, a, b, u64 n, uint op) reads a, b and writes out over
            // [0, n); all three hold n elements.
            unsafe { l.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn binary_assign(&self, op: BinaryOp, a: &mut CudaBuffer, b: &CudaBuffer) -> DeviceResult<()> {
        self.same_len("binary_assign", a.len, b.len)?;
        if a.len > 0 {
            let (n, code) = (a.len as u64, binary_code(op));
            let mut l = self.stream().launch_builder(&self.inner.k.binary_assign);
            l.arg(&mut a.data).arg(&b.data).arg(&n).arg(&code);
            // SAFETY: binary_assign_u64(u64* a, const u64* b, u64 n, uint op) updates a
            // over [0, n); both hold n elements and are distinct allocations.
            unsafe { l.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(())
    }

    fn binary_scalar(&self, op: BinaryOp, a: &CudaBuffer, s: u64) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(a.len)?;
        if a.len > 0 {
            let (n, code) = (a.len as u64, binary_code(op));
            let mut l = self.stream().launch_builder(&self.inner.k.binary_scalar);
            l.arg(&mut out.data).arg(&a.data).arg(&s).arg(&n).arg(&code);
            // SAFETY: binary_scalar_u64(out, a, u64 s, u64 n, uint op) reads a and writes
            // out over [0, n); both hold n elements.
            unsafe { l.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn and_part_packed(
        &self,
        x: [&CudaBuffer; 2],
        y: [&CudaBuffer; 2],
        y_shl: u32,
        keys: [&PrgKey; 2],
        stream: u64,
        mask: u64,
    ) -> DeviceResult<CudaBuffer> {
        fused::and_part_packed(self, x, y, y_shl, keys, stream, mask)
    }

    fn and_rows(&self, op: &RowAnd<'_, CudaBuffer>, keys: [&PrgKey; 2], stream: u64) -> DeviceResult<CudaBuffer> {
        fused::and_rows(self, op, keys, stream)
    }

    fn bit_planes(&self, a: &CudaBuffer, from: usize, count: usize, planes: u32) -> DeviceResult<CudaBuffer> {
        fused::bit_planes(self, a, from, count, planes)
    }

    fn add_prg(&self, a: &mut CudaBuffer, terms: &[PrgTerm<'_>]) -> DeviceResult<()> {
        fused::add_prg(self, a, terms)
    }

    fn mul_part(&self, x: [&CudaBuffer; 2], y: [&CudaBuffer; 2], terms: &[PrgTerm<'_>]) -> DeviceResult<CudaBuffer> {
        fused::mul_part(self, x, y, terms)
    }

    fn truncate_deal(
        &self,
        part: &CudaBuffer,
        bits: u32,
        r: [PrgTerm<'_>; 2],
        t: PrgTerm<'_>,
        e: PrgTerm<'_>,
    ) -> DeviceResult<(CudaBuffer, CudaBuffer)> {
        fused::truncate_deal(self, part, bits, r, t, e)
    }

    fn truncate_open(
        &self,
        c: [&CudaBuffer; 2],
        bits: u32,
        low: bool,
        e: Addend<'_, CudaBuffer>,
        plus: &[Addend<'_, CudaBuffer>],
    ) -> DeviceResult<CudaBuffer> {
        fused::truncate_open(self, c, bits, low, e, plus)
    }

    fn pack_bits(&self, a: &CudaBuffer, mask: u64) -> DeviceResult<CudaBuffer> {
        let k = mask.count_ones();
        let words = (a.len * k as usize).div_ceil(64);
        let mut out = self.alloc(words)?;
        if words > 0 {
            let (len, w) = (a.len as u64, words as u64);
            let (lo, contig) = mask_run(mask);
            let mut l = self.stream().launch_builder(&self.inner.k.pack_bits);
            l.arg(&mut out.data).arg(&a.data).arg(&len).arg(&w).arg(&mask).arg(&k).arg(&lo).arg(&contig);
            // SAFETY: pack_bits_u64(out, a, len, words, mask, k, lo, contiguous) writes
            // out[0..words) and reads a[0..len); k >= 1 here, and each word reads only
            // elements below len.
            unsafe { l.launch(grid(w)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn unpack_bits(&self, packed: &CudaBuffer, len: usize, mask: u64) -> DeviceResult<CudaBuffer> {
        let k = mask.count_ones();
        if k == 0 {
            return self.zeros(len);
        }
        let mut out = self.alloc(len)?;
        if len > 0 {
            let (n, w) = (len as u64, packed.len as u64);
            let (lo, contig) = mask_run(mask);
            let mut l = self.stream().launch_builder(&self.inner.k.unpack_bits);
            l.arg(&mut out.data).arg(&packed.data).arg(&w).arg(&n).arg(&mask).arg(&k).arg(&lo).arg(&contig);
            // SAFETY: unpack_bits_u64(out, packed, words, len, mask, k, lo, contiguous)
            // writes out[0..len) and reads only packed words below `words` (its length).
            unsafe { l.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn sum_axis(&self, a: &CudaBuffer, outer: usize, axis: usize, inner: usize) -> DeviceResult<CudaBuffer> {
        let n = outer * inner;
        if a.len < outer * axis * inner {
            return Err(self.err("sum_axis: buffer too short"));
        }
        let mut out = self.alloc(n)?;
        if n > 0 {
            let (o, x, i) = (outer as u64, axis as u64, inner as u64);
            let mut l = self.stream().launch_builder(&self.inner.k.sum_axis);
            l.arg(&mut out.data).arg(&a.data).arg(&o).arg(&x).arg(&i);
            // SAFETY: sum_axis_u64(out, a, outer, axis, inner) writes out[0..outer*inner)
            // and reads a[0..outer*axis*inner), checked above.
            unsafe { l.launch(grid(n as u64)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn gather_strided(&self, a: &CudaBuffer, view: &StridedLayout) -> DeviceResult<CudaBuffer> {
        let n = view.numel();
        if view.extent().is_none_or(|e| e > a.len) {
            return Err(self.err("gather_strided: view past the buffer"));
        }
        let mut out = self.alloc(n)?;
        if n == 0 {
            return Ok(out);
        }
        for (v, first, count) in view_pieces(view) {
            let mut l = self.stream().launch_builder(&self.inner.k.gather);
            l.arg(&mut out.data).arg(&a.data).arg(&v).arg(&count).arg(&first);
            // SAFETY: gather_strided_u64(out, a, view, n, out_offset) writes
            // out[first..first+count) (within n) and reads a at view positions, all below
            // the view's extent, checked against a's length above.
            unsafe { l.launch(grid(count)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn scatter_strided(&self, dst: &mut CudaBuffer, src: &CudaBuffer, view: &StridedLayout) -> DeviceResult<()> {
        let n = view.numel();
        if view.extent().is_none_or(|e| e > dst.len) || src.len < n {
            return Err(self.err("scatter_strided: view past the buffer"));
        }
        if n == 0 {
            return Ok(());
        }
        for (v, first, count) in view_pieces(view) {
            let mut l = self.stream().launch_builder(&self.inner.k.scatter);
            l.arg(&mut dst.data).arg(&src.data).arg(&v).arg(&count).arg(&first);
            // SAFETY: scatter_strided_u64(dst, src, view, n, src_offset) reads
            // src[first..first+count) (within src) and writes dst at view positions, below
            // the extent checked above; the view never aliases itself.
            unsafe { l.launch(grid(count)) }.map_err(|e| self.drv(e))?;
        }
        Ok(())
    }

    fn matmul(&self, a: &CudaBuffer, b: &CudaBuffer, spec: &MatmulSpec) -> DeviceResult<CudaBuffer> {
        if a.len < spec.a_len() || b.len < spec.b_len() {
            return Err(self.err("matmul: operands too short"));
        }
        let mut c = self.alloc(spec.c_len())?;
        if spec.c_len() == 0 {
            return Ok(c);
        }
        let (m, k, n) = (spec.m, spec.k, spec.n);
        let desc = gemm::Desc { m, n, k, batch: spec.batch, accumulate: false };
        let ao = gemm::Operand { offset: 0, ld: if spec.a_trans { m } else { k }, stride: m * k, trans: spec.a_trans };
        let bo = gemm::Operand { offset: 0, ld: if spec.b_trans { k } else { n }, stride: k * n, trans: spec.b_trans };
        let co = gemm::Out { offset: 0, ld: n, stride: m * n };
        self.gemm(&desc, a, &ao, b, &bo, &mut c, &co)?;
        Ok(c)
    }

    fn conv2d(&self, input: &CudaBuffer, weight: &CudaBuffer, p: &Conv2dParams) -> DeviceResult<CudaBuffer> {
        let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
        let (kdim, rows) = (cg * p.kh * p.kw, p.in_c * p.kh * p.kw);
        let out_len = p.batch * p.out_c * ohw;
        if input.len < p.input_shape().numel() || weight.len < p.weight_shape().numel() {
            return Err(self.err("conv2d: operands too short"));
        }
        if out_len == 0 {
            return self.alloc(0);
        }
        if kdim == 0 {
            return self.zeros(out_len);
        }
        let mut out = self.alloc(out_len)?;
        let per_image = rows * ohw;
        let nb = (CONV_CHUNK_ELEMS / per_image.max(1)).clamp(1, p.batch);
        let mut cols = self.alloc(nb * per_image)?;
        for n0 in (0..p.batch).step_by(nb) {
            let nbc = nb.min(p.batch - n0);
            let g = Geom {
                batch: nbc as u64,
                n0: n0 as u64,
                col_sn: per_image as u64,
                col_sr: ohw as u64,
                ..Geom::conv(p)
            };
            self.im2col(&mut cols, input, g, nbc * per_image)?;
            for grp in 0..p.groups {
                let desc = gemm::Desc { m: ocg, n: ohw, k: kdim, batch: nbc, accumulate: false };
                let wo = gemm::Operand { offset: grp * ocg * kdim, ld: kdim, stride: 0, trans: false };
                let co_in = gemm::Operand { offset: grp * kdim * ohw, ld: ohw, stride: per_image, trans: false };
                let oo = gemm::Out { offset: (n0 * p.out_c + grp * ocg) * ohw, ld: ohw, stride: p.out_c * ohw };
                self.gemm(&desc, weight, &wo, &cols, &co_in, &mut out, &oo)?;
            }
        }
        Ok(out)
    }

    fn conv2d_grad_input(
        &self,
        grad_out: &CudaBuffer,
        weight: &CudaBuffer,
        p: &Conv2dParams,
    ) -> DeviceResult<CudaBuffer> {
        let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
        let (kdim, rows) = (cg * p.kh * p.kw, p.in_c * p.kh * p.kw);
        let image = p.in_c * p.in_h * p.in_w;
        if grad_out.len < p.output_shape().numel() || weight.len < p.weight_shape().numel() {
            return Err(self.err("conv2d_grad_input: operands too short"));
        }
        if p.batch * image == 0 {
            return self.alloc(0);
        }
        let mut out = self.alloc(p.batch * image)?;
        let per_image = rows * ohw;
        let nb = (CONV_CHUNK_ELEMS / per_image.max(1)).clamp(1, p.batch);
        let mut cols = self.alloc(nb * per_image)?;
        for n0 in (0..p.batch).step_by(nb) {
            let nbc = nb.min(p.batch - n0);
            for grp in 0..p.groups {
                // cols[n] rows of group g = W_gᵀ · grad[n, g].
                let desc = gemm::Desc { m: kdim, n: ohw, k: ocg, batch: nbc, accumulate: false };
                let wo = gemm::Operand { offset: grp * ocg * kdim, ld: kdim, stride: 0, trans: true };
                let go = gemm::Operand {
                    offset: (n0 * p.out_c + grp * ocg) * ohw,
                    ld: ohw,
                    stride: p.out_c * ohw,
                    trans: false,
                };
                let co = gemm::Out { offset: grp * kdim * ohw, ld: ohw, stride: per_image };
                self.gemm(&desc, weight, &wo, grad_out, &go, &mut cols, &co)?;
            }
            let g = Geom {
                batch: nbc as u64,
                n0: n0 as u64,
                col_sn: per_image as u64,
                col_sr: ohw as u64,
                ..Geom::conv(p)
            };
            let total = (nbc * image) as u64;
            let mut l = self.stream().launch_builder(&self.inner.k.col2im);
            l.arg(&mut out.data).arg(&cols.data).arg(&g);
            // SAFETY: col2im_u64(out, cols, geom) writes the chunk's images
            // out[n0*image..(n0+nbc)*image) and reads cols[0..nbc*rows*ohw), both in range.
            unsafe { l.launch(grid(total)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn conv2d_grad_weight(
        &self,
        input: &CudaBuffer,
        grad_out: &CudaBuffer,
        p: &Conv2dParams,
    ) -> DeviceResult<CudaBuffer> {
        let (ohw, ocg, cg) = (p.out_h() * p.out_w(), p.out_c / p.groups, p.in_c / p.groups);
        let (kdim, rows) = (cg * p.kh * p.kw, p.in_c * p.kh * p.kw);
        let out_len = p.out_c * kdim;
        if input.len < p.input_shape().numel() || grad_out.len < p.output_shape().numel() {
            return Err(self.err("conv2d_grad_weight: operands too short"));
        }
        if out_len == 0 {
            return self.alloc(0);
        }
        if p.batch == 0 {
            return self.zeros(out_len);
        }
        let mut out = self.alloc(out_len)?;
        let per_image = rows * ohw;
        let nb = (CONV_CHUNK_ELEMS / per_image.max(1)).clamp(1, p.batch);
        let mut cols = self.alloc(nb * per_image)?;
        let mut gp = self.alloc(nb * p.out_c * ohw)?;
        for (ci, n0) in (0..p.batch).step_by(nb).enumerate() {
            let nbc = nb.min(p.batch - n0);
            let cn = nbc * ohw;
            // cols as [rows, nbc*ohw]; grad as [OC, nbc*ohw].
            let g = Geom { batch: nbc as u64, n0: n0 as u64, col_sn: ohw as u64, col_sr: cn as u64, ..Geom::conv(p) };
            self.im2col(&mut cols, input, g, nbc * per_image)?;
            let view = StridedLayout {
                dims: vec![p.out_c, nbc, ohw],
                strides: vec![ohw, p.out_c * ohw, 1],
                offset: n0 * p.out_c * ohw,
            };
            for (v, first, count) in view_pieces(&view) {
                let mut l = self.stream().launch_builder(&self.inner.k.gather);
                l.arg(&mut gp.data).arg(&grad_out.data).arg(&v).arg(&count).arg(&first);
                // SAFETY: gather_strided_u64 writes gp[first..first+count) (gp holds
                // nb*OC*ohw >= the view's size) and reads grad_out inside the chunk's images.
                unsafe { l.launch(grid(count)) }.map_err(|e| self.drv(e))?;
            }
            for grp in 0..p.groups {
                // dW_g (+)= grad_g [ocg, cn] · cols_gᵀ [cn, kdim].
                let desc = gemm::Desc { m: ocg, n: kdim, k: cn, batch: 1, accumulate: ci > 0 };
                let go = gemm::Operand { offset: grp * ocg * cn, ld: cn, stride: 0, trans: false };
                let co = gemm::Operand { offset: grp * kdim * cn, ld: cn, stride: 0, trans: true };
                let oo = gemm::Out { offset: grp * ocg * kdim, ld: kdim, stride: 0 };
                self.gemm(&desc, &gp, &go, &cols, &co, &mut out, &oo)?;
            }
        }
        Ok(out)
    }

    fn pool_sum(&self, input: &CudaBuffer, p: &Pool2dParams) -> DeviceResult<CudaBuffer> {
        let n = p.output_shape().numel();
        if input.len < p.input_shape().numel() {
            return Err(self.err("pool_sum: input too short"));
        }
        let mut out = self.alloc(n)?;
        if n > 0 {
            let g = Geom::pool(p);
            let mut l = self.stream().launch_builder(&self.inner.k.pool_sum);
            l.arg(&mut out.data).arg(&input.data).arg(&g);
            // SAFETY: pool_sum_u64(out, input, geom) writes out[0..N*C*OH*OW) and reads
            // input inside [0, N*C*H*W), both checked.
            unsafe { l.launch(grid(n as u64)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn pool_sum_backward(&self, grad_out: &CudaBuffer, p: &Pool2dParams) -> DeviceResult<CudaBuffer> {
        self.pool_backward(grad_out, p, false)
    }

    fn pool_windows(&self, input: &CudaBuffer, p: &Pool2dParams, pad: u64) -> DeviceResult<CudaBuffer> {
        let n = p.windows_shape().numel();
        if input.len < p.input_shape().numel() {
            return Err(self.err("pool_windows: input too short"));
        }
        let mut out = self.alloc(n)?;
        if n > 0 {
            let g = Geom::pool(p);
            let mut l = self.stream().launch_builder(&self.inner.k.pool_windows);
            l.arg(&mut out.data).arg(&input.data).arg(&g).arg(&pad);
            // SAFETY: pool_windows_u64(out, input, geom, pad) writes out[0..N*C*OH*OW*KK)
            // and reads input inside [0, N*C*H*W), both checked.
            unsafe { l.launch(grid(n as u64)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    fn pool_windows_backward(&self, windows: &CudaBuffer, p: &Pool2dParams) -> DeviceResult<CudaBuffer> {
        self.pool_backward(windows, p, true)
    }

    fn prg_fill(&self, key: &PrgKey, stream: u64, offset: u64, len: usize) -> DeviceResult<CudaBuffer> {
        let mut out = self.alloc(len)?;
        if len > 0 {
            let [k0, k1, k2, k3] = key_words(key);
            let n = len as u64;
            let blocks = ((offset & 7) + n).div_ceil(8);
            let mut l = self.stream().launch_builder(&self.inner.k.prg);
            l.arg(&mut out.data).arg(&k0).arg(&k1).arg(&k2).arg(&k3).arg(&stream).arg(&offset).arg(&n);
            // SAFETY: prg_fill_u64(out, k0..k3, stream, offset, len) writes exactly
            // out[0..len); `out` holds len elements.
            unsafe { l.launch(grid(blocks)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }
}

impl CudaDevice {
    fn im2col(&self, cols: &mut CudaBuffer, input: &CudaBuffer, g: Geom, total: usize) -> DeviceResult<()> {
        if total == 0 {
            return Ok(());
        }
        let mut l = self.stream().launch_builder(&self.inner.k.im2col);
        l.arg(&mut cols.data).arg(&input.data).arg(&g);
        // SAFETY: im2col_u64(cols, input, geom) writes total = batch*rows*ohw elements of
        // cols at n*col_sn + r*col_sr + p, all below total (cols holds at least that), and
        // reads input inside the chunk's images.
        unsafe { l.launch(grid(total as u64)) }.map_err(|e| self.drv(e))?;
        Ok(())
    }

    fn pool_backward(&self, grad: &CudaBuffer, p: &Pool2dParams, windows: bool) -> DeviceResult<CudaBuffer> {
        let n = p.input_shape().numel();
        let need = if windows { p.windows_shape().numel() } else { p.output_shape().numel() };
        if grad.len < need {
            return Err(self.err("pool backward: gradient too short"));
        }
        let mut out = self.alloc(n)?;
        if n > 0 {
            let g = Geom::pool(p);
            let w = i32::from(windows);
            let mut l = self.stream().launch_builder(&self.inner.k.pool_backward);
            l.arg(&mut out.data).arg(&grad.data).arg(&g).arg(&w);
            // SAFETY: pool_backward_u64(out, grad, geom, windows) writes out[0..N*C*H*W)
            // and reads grad inside its checked length.
            unsafe { l.launch(grid(n as u64)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }
}
