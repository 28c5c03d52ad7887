//! Exact ring matrix products mod 2^64 on the GPU.
//!
//! Every product is described like a BLAS call: row-major, batched, with explicit
//! leading dimensions and batch strides ([`Desc`], [`Operand`], [`Out`]), so the
//! convolutions run their per-image products without copies (a weight shared by every
//! image has batch stride 0).
//!
//! Paths ([`GemmPath`]):
//! - [`GemmPath::U64Tiled`]: a shared-memory tiled kernel of wrapping u64 multiply-adds
//!   (`gemm_u64_tiled` in kernels/gemm.cu). Exact by construction.
//! - [`GemmPath::F64Limbs16`]: CryptGPU's float64 path. Write `x = Σ_{i<4} x_i 2^{16 i}`
//!   with 16-bit limbs `x_i`. Then `a·b mod 2^64 = Σ_{i+j<4} 2^{16(i+j)} (a_i·b_j)`: the
//!   six pairs with `i + j ≥ 4` are multiples of 2^64 and drop out, leaving ten limb
//!   products. Each limb product is a float64 GEMM (cuBLAS `dgemm`), exact because every
//!   partial sum is an integer at most `k·(2^16-1)^2 < 2^53` when `k ≤ 2^21`
//!   ([`F64_MAX_K`]); longer inner dimensions are split into chunks of at most 2^21 and
//!   summed mod 2^64. Each product is converted back to u64 exactly and added in with
//!   its shift.
//!
//! - [`GemmPath::I8Digits8`]: the int8 path. Write `x = Σ_{i<8} d_i 2^{8 i} mod 2^64`
//!   with balanced digits `d_i ∈ [-128, 128)` (bytes of `x + 0x8080…80`, minus 128). The
//!   36 pairs with `i + j < 8` are int8 GEMMs with int32 sums (cuBLAS `GemmEx`, the
//!   tensor cores' int8 mode), exact because every partial sum is at most
//!   `k · 128^2 = k · 2^14 ≤ 2^31 - 1` in magnitude when `k ≤ 2^17 - 1`
//!   ([`I8_MAX_K`]); longer sums are split. Each sum is sign-extended, shifted and added
//!   in mod 2^64.
//!
//! [`choose`] picks a path by a simple shape rule, to be tuned by measurement on a
//! device.

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg};
use triad_ring::device::{DeviceError, DeviceResult};

use crate::{grid, CudaBuffer, CudaDevice};

/// Largest inner dimension one float64 limb product may sum exactly:
/// `2^21 · (2^16 - 1)^2 = 2^53 - 2^38 + 2^21 < 2^53`.
pub const F64_MAX_K: usize = 1 << 21;

/// Largest inner dimension one int8 digit product may sum exactly in int32:
/// `(2^17 - 1) · 2^14 = 2^31 - 2^14 < 2^31` (every digit product is at most
/// `(-128)^2 = 2^14` in magnitude).
pub const I8_MAX_K: usize = (1 << 17) - 1;

/// How a ring matrix product is computed. Every path gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmPath {
    /// Wrapping u64 multiply-adds in a shared-memory tiled kernel.
    U64Tiled,
    /// Four 16-bit limbs per element, ten float64 GEMMs (cuBLAS), recombined mod 2^64.
    F64Limbs16,
    /// Eight balanced 8-bit digits per element, 36 int8 GEMMs with int32 sums (cuBLAS
    /// `GemmEx`), recombined mod 2^64. Only when forced ([`choose`] does not pick it yet).
    I8Digits8,
}

impl GemmPath {
    /// Every path.
    pub const ALL: [GemmPath; 3] = [GemmPath::U64Tiled, GemmPath::F64Limbs16, GemmPath::I8Digits8];
}

/// The shape of a batched product `C[b] (m x n) = op(A[b]) · op(B[b])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Rows of each result.
    pub m: usize,
    /// Columns of each result.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Number of products.
    pub batch: usize,
    /// Add into `C` (mod 2^64) instead of overwriting it.
    pub accumulate: bool,
}

/// Where an operand lives in its buffer: matrix `b` starts at `offset + b * stride`, row
/// `r` of the stored matrix at `+ r * ld`. `trans`: `A` is stored `k x m` (`B`: `n x k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// First element.
    pub offset: usize,
    /// Leading dimension (elements between stored rows).
    pub ld: usize,
    /// Elements between consecutive matrices of the batch (0: shared).
    pub stride: usize,
    /// Stored transposed.
    pub trans: bool,
}

/// Where the result goes: `C[b]` row `r` column `j` at `offset + b*stride + r*ld + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Out {
    /// First element.
    pub offset: usize,
    /// Leading dimension.
    pub ld: usize,
    /// Elements between consecutive results.
    pub stride: usize,
}

/// The path [`CudaDevice`] uses for a shape when none is forced: the float64 limb path
/// for large products (where ten tensor-core GEMMs beat emulated 64-bit multiplies), the
/// u64 kernel for small ones (where launch overheads dominate). The threshold is a
/// placeholder, to be tuned by measurement on a device.
pub fn choose(desc: &Desc, has_cublas: bool) -> GemmPath {
    let macs = (desc.m as u128) * (desc.n as u128) * (desc.k as u128) * (desc.batch as u128);
    if has_cublas && macs >= 1 << 24 && desc.k >= 32 && fits_i32(desc) {
        GemmPath::F64Limbs16
    } else {
        GemmPath::U64Tiled
    }
}

fn fits_i32(d: &Desc) -> bool {
    let lim = i32::MAX as usize;
    d.m <= lim && d.n <= lim && d.k.min(F64_MAX_K) <= lim && d.batch <= lim
}

/// Elements an operand spans in its buffer, from its offset (0 for an empty operand).
fn span(rows: usize, cols: usize, op: &Operand, batch: usize) -> usize {
    if rows == 0 || cols == 0 || batch == 0 {
        return 0;
    }
    (batch - 1) * op.stride + (rows - 1) * op.ld + cols
}

impl CudaDevice {
    /// `C = op(A) · op(B)` (or `C += …`) on the chosen or forced path.
    pub(crate) fn gemm(
        &self,
        d: &Desc,
        a: &CudaBuffer,
        ao: &Operand,
        b: &CudaBuffer,
        bo: &Operand,
        c: &mut CudaBuffer,
        co: &Out,
    ) -> DeviceResult<()> {
        if d.m == 0 || d.n == 0 || d.batch == 0 {
            return Ok(());
        }
        let (ar, ac) = if ao.trans { (d.k, d.m) } else { (d.m, d.k) };
        let (br, bc) = if bo.trans { (d.n, d.k) } else { (d.k, d.n) };
        let (sa, sb) = (span(ar, ac, ao, d.batch), span(br, bc, bo, d.batch));
        let sc = (d.batch - 1) * co.stride + (d.m - 1) * co.ld + d.n;
        if ao.offset + sa > a.len || bo.offset + sb > b.len || co.offset + sc > c.len {
            return Err(self.err(format!("gemm: operand out of range in {d:?}")));
        }
        let path = self.path.unwrap_or_else(|| choose(d, self.has_cublas()));
        match path {
            GemmPath::F64Limbs16 | GemmPath::I8Digits8 if d.k > 0 => {
                if !self.has_cublas() {
                    return Err(DeviceError::Unavailable {
                        device: self.dev_name(),
                        reason: format!("the {path:?} GEMM path needs cuBLAS, which was not found"),
                    });
                }
                if !fits_i32(d) || [ao.ld, bo.ld, co.ld].iter().any(|&x| x > i32::MAX as usize) {
                    return self.gemm_u64(d, a, ao, b, bo, c, co);
                }
                if path == GemmPath::I8Digits8 {
                    self.gemm_i8(d, a, ao, sa, b, bo, sb, c, co)
                } else {
                    self.gemm_f64(d, a, ao, sa, b, bo, sb, c, co)
                }
            }
            _ => self.gemm_u64(d, a, ao, b, bo, c, co),
        }
    }

    fn gemm_u64(
        &self,
        d: &Desc,
        a: &CudaBuffer,
        ao: &Operand,
        b: &CudaBuffer,
        bo: &Operand,
        c: &mut CudaBuffer,
        co: &Out,
    ) -> DeviceResult<()> {
        let (tiles_n, tiles_m) = (d.n.div_ceil(64), d.m.div_ceil(64));
        if tiles_m > 65535 || tiles_n > i32::MAX as usize {
            return Err(self.err(format!("gemm: {} x {} result too large for one launch", d.m, d.n)));
        }
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: (tiles_n as u32, tiles_m as u32, d.batch.min(65535) as u32),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let (av, bv) = (a.view(ao.offset), b.view(bo.offset));
        let mut cv = c.data.slice_mut(co.offset..);
        let [m, n, k, lda, ldb, ldc, sa, sb, sc, batch] =
            [d.m, d.n, d.k, ao.ld, bo.ld, co.ld, ao.stride, bo.stride, co.stride, d.batch].map(|x| x as u64);
        let (at, bt, acc) = (i32::from(ao.trans), i32::from(bo.trans), i32::from(d.accumulate));
        let mut l = self.stream().launch_builder(&self.inner.k.gemm_u64);
        l.arg(&mut cv).arg(&av).arg(&bv).arg(&m).arg(&n).arg(&k);
        l.arg(&lda).arg(&ldb).arg(&ldc).arg(&sa).arg(&sb).arg(&sc).arg(&batch).arg(&at).arg(&bt).arg(&acc);
        // SAFETY: gemm_u64_tiled reads op(A[b]) and op(B[b]) and writes C[b] for b < batch
        // at the given leading dimensions and strides; `gemm` checked that every operand's
        // span lies inside its buffer. 256 threads match its __launch_bounds__ and its
        // 64 x 64 tile (grid x over n, y over m, z over the batch with a loop beyond 65535).
        unsafe { l.launch(cfg) }.map_err(|e| self.drv(e))?;
        Ok(())
    }

    /// Splits `len` elements of `buf` from `offset` into `planes` digit planes of `len`
    /// elements each (plane `l` at `l * len`) with `kernel`, which takes (out, in, n):
    /// `split_limbs16_f64` (four float64 limb planes) or `split_digits8_i8` (eight int8).
    fn split<T: DeviceRepr>(
        &self,
        kernel: &CudaFunction,
        planes: usize,
        buf: &CudaBuffer,
        offset: usize,
        len: usize,
    ) -> DeviceResult<CudaSlice<T>> {
        // SAFETY: the split kernel writes every element before any read.
        let mut out = unsafe { self.stream().alloc::<T>((planes * len).max(1)) }.map_err(|e| self.drv(e))?;
        if len > 0 {
            let v = buf.view(offset);
            let n = len as u64;
            let mut l = self.stream().launch_builder(kernel);
            l.arg(&mut out).arg(&v).arg(&n);
            // SAFETY: both split kernels read in[0..n) (inside `buf` from `offset`,
            // checked by the caller) and write out[0..planes·n).
            unsafe { l.launch(grid(n)) }.map_err(|e| self.drv(e))?;
        }
        Ok(out)
    }

    /// `C (+)= p << shift` over the batch with `kernel` (`acc_f64_u64` or `acc_i32_u64`,
    /// taking (c, p, m, n, ldc, stride_c, batch, shift, accumulate)), `p` dense
    /// `[batch][m][n]`.
    #[allow(clippy::too_many_arguments)]
    fn accumulate<T>(
        &self,
        kernel: &CudaFunction,
        d: &Desc,
        p: &CudaSlice<T>,
        c: &mut CudaBuffer,
        co: &Out,
        shift: u32,
        accumulate: bool,
    ) -> DeviceResult<()> {
        let accumulate = i32::from(accumulate);
        let mut cv = c.data.slice_mut(co.offset..);
        let [m, n, ldc, sc, batch] = [d.m, d.n, co.ld, co.stride, d.batch].map(|x| x as u64);
        let mut l = self.stream().launch_builder(kernel);
        l.arg(&mut cv).arg(p).arg(&m).arg(&n).arg(&ldc).arg(&sc).arg(&batch).arg(&shift).arg(&accumulate);
        // SAFETY: both accumulate kernels read p[0..batch·m·n) and update C at the
        // positions offset + b·stride + r·ld + j that `gemm` checked.
        unsafe { l.launch(grid((d.batch * d.m * d.n) as u64)) }.map_err(|e| self.drv(e))?;
        Ok(())
    }

    fn gemm_f64(
        &self,
        d: &Desc,
        a: &CudaBuffer,
        ao: &Operand,
        sa: usize,
        b: &CudaBuffer,
        bo: &Operand,
        sb: usize,
        c: &mut CudaBuffer,
        co: &Out,
    ) -> DeviceResult<()> {
        let Some(blas) = self.inner.blas.as_ref() else {
            return Err(self.err("cuBLAS missing"));
        };
        let k = &self.inner.k;
        let (la, lb): (CudaSlice<f64>, CudaSlice<f64>) =
            (self.split(&k.split_limbs16, 4, a, ao.offset, sa)?, self.split(&k.split_limbs16, 4, b, bo.offset, sb)?);
        let mn = d.m * d.n;
        let mut p = self.alloc_f64(d.batch * mn)?;
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let mut first = true;
        for k0 in (0..d.k).step_by(F64_MAX_K) {
            let kc = F64_MAX_K.min(d.k - k0);
            let a_off = if ao.trans { k0 * ao.ld } else { k0 };
            let b_off = if bo.trans { k0 } else { k0 * bo.ld };
            for i in 0..4usize {
                for j in 0..4 - i {
                    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS
                    // sees B's limb plane as its first operand and A's as its second.
                    let cfg = StridedBatchedConfig {
                        gemm: GemmConfig {
                            transa: op(bo.trans),
                            transb: op(ao.trans),
                            m: d.n as i32,
                            n: d.m as i32,
                            k: kc as i32,
                            alpha: 1.0f64,
                            lda: bo.ld.max(1) as i32,
                            ldb: ao.ld.max(1) as i32,
                            beta: 0.0f64,
                            ldc: d.n as i32,
                        },
                        batch_size: d.batch as i32,
                        stride_a: bo.stride as i64,
                        stride_b: ao.stride as i64,
                        stride_c: mn as i64,
                    };
                    let bv = lb.slice(j * sb + b_off..);
                    let av = la.slice(i * sa + a_off..);
                    // SAFETY: the limb planes mirror the u64 operands' layout (same leading
                    // dimensions and strides from the same origin), whose spans `gemm`
                    // checked; the k-chunk offsets stay inside them; `p` holds batch·m·n.
                    unsafe { blas.gemm_strided_batched(cfg, &bv, &av, &mut p) }
                        .map_err(|e| self.err(format!("cublasDgemmStridedBatched: {e:?}")))?;
                    self.accumulate(&k.acc_f64, d, &p, c, co, (16 * (i + j)) as u32, d.accumulate || !first)?;
                    first = false;
                }
            }
        }
        Ok(())
    }

    fn gemm_i8(
        &self,
        d: &Desc,
        a: &CudaBuffer,
        ao: &Operand,
        sa: usize,
        b: &CudaBuffer,
        bo: &Operand,
        sb: usize,
        c: &mut CudaBuffer,
        co: &Out,
    ) -> DeviceResult<()> {
        let Some(blas) = self.inner.blas.as_ref() else {
            return Err(self.err("cuBLAS missing"));
        };
        let kn = &self.inner.k;
        let (da, db): (CudaSlice<i8>, CudaSlice<i8>) =
            (self.split(&kn.split_digits8, 8, a, ao.offset, sa)?, self.split(&kn.split_digits8, 8, b, bo.offset, sb)?);
        let mn = d.m * d.n;
        // SAFETY: every GemmEx below writes all of batch·m·n before acc_i32_u64 reads it.
        let mut p = unsafe { self.stream().alloc::<i32>((d.batch * mn).max(1)) }.map_err(|e| self.drv(e))?;
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let (one, zero) = (1i32, 0i32);
        let stream = self.stream();
        let mut first = true;
        for k0 in (0..d.k).step_by(I8_MAX_K) {
            let kc = I8_MAX_K.min(d.k - k0);
            let a_off = if ao.trans { k0 * ao.ld } else { k0 };
            let b_off = if bo.trans { k0 } else { k0 * bo.ld };
            for i in 0..8usize {
                for j in 0..8 - i {
                    {
                        // As in the float64 path: row-major C = op(A)·op(B) is column-major
                        // Cᵀ = op(B)ᵀ·op(A)ᵀ, so B's digit plane is cuBLAS's first operand.
                        let bv = db.slice(j * sb + b_off..);
                        let av = da.slice(i * sa + a_off..);
                        let (bp, _rb) = bv.device_ptr(stream);
                        let (ap, _ra) = av.device_ptr(stream);
                        let (pp, _rp) = p.device_ptr_mut(stream);
                        // SAFETY: the digit planes mirror the u64 operands' layout (same
                        // leading dimensions and strides from the same origin), whose spans
                        // `gemm` checked; the k-chunk offsets stay inside them; `p` holds
                        // batch·m·n int32; alpha and beta are host int32 (compute type 32I).
                        unsafe {
                            cudarc::cublas::result::gemm_strided_batched_ex(
                                *blas.handle(),
                                op(bo.trans),
                                op(ao.trans),
                                d.n as i32,
                                d.m as i32,
                                kc as i32,
                                (&one as *const i32).cast(),
                                bp as *const std::ffi::c_void,
                                cudaDataType::CUDA_R_8I,
                                bo.ld.max(1) as i32,
                                bo.stride as i64,
                                ap as *const std::ffi::c_void,
                                cudaDataType::CUDA_R_8I,
                                ao.ld.max(1) as i32,
                                ao.stride as i64,
                                (&zero as *const i32).cast(),
                                pp as *mut std::ffi::c_void,
                                cudaDataType::CUDA_R_32I,
                                d.n as i32,
                                mn as i64,
                                d.batch as i32,
                                cublasComputeType_t::CUBLAS_COMPUTE_32I,
                                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                            )
                        }
                        .map_err(|e| self.err(format!("cublasGemmStridedBatchedEx (int8): {e:?}")))?;
                    }
                    self.accumulate(&kn.acc_i32, d, &p, c, co, (8 * (i + j)) as u32, d.accumulate || !first)?;
                    first = false;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rule() {
        let d = |m, n, k| Desc { m, n, k, batch: 1, accumulate: false };
        assert_eq!(choose(&d(512, 512, 512), true), GemmPath::F64Limbs16);
        assert_eq!(choose(&d(512, 512, 512), false), GemmPath::U64Tiled);
        assert_eq!(choose(&d(8, 8, 8), true), GemmPath::U64Tiled);
        assert_eq!(choose(&d(1 << 20, 64, 4), true), GemmPath::U64Tiled);
        // The float64 bound: 2^21 products of (2^16-1)^2 stay below 2^53.
        let max = ((1u128 << 16) - 1).pow(2);
        assert!(F64_MAX_K as u128 * max < 1 << 53);
        // (the exact limit is 2^21 + 64; 2^21 is the largest power of two under it)
        assert!((F64_MAX_K as u128 + 64) * max < 1 << 53 && (F64_MAX_K as u128 + 65) * max >= 1 << 53);
        // The int8 bound: 2^17 - 1 digit products of (-128)^2 stay within int32, one more does not.
        assert!(I8_MAX_K as i64 * (1 << 14) <= i64::from(i32::MAX));
        assert!((I8_MAX_K as i64 + 1) * (1 << 14) > i64::from(i32::MAX));
    }
}
