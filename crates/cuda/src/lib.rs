//! # triad-cuda: the CUDA device
//!
//! [`CudaDevice`] implements every [`Device`] method on an NVIDIA GPU with
//! [cudarc](https://docs.rs/cudarc) 0.19. Shares stay resident in GPU memory
//! ([`CudaBuffer`]); host copies happen only in `from_host*` and `to_host` (the transport
//! boundary), and go through a small fixed pool of pinned (page-locked, `cuMemHostAlloc`)
//! staging buffers, in chunks, with an event per buffer so that none is reused while a copy
//! may still use it ([`staging`]; pageable memory only if pinned allocation fails). Kernels are
//! CUDA C in `kernels/*.cu`, included into this crate and compiled at run time by NVRTC for
//! the device's architecture (sm_90 on H100/H200), once per process ([`nvrtc`]).
//!
//! Modules by concern: `buffer` ([`CudaBuffer`]), `args` (the structs kernels take by value,
//! mirroring `kernels/`, and the launch pieces of strided views), `device` (the [`Device`]
//! methods, one launch or a few each), `fused` (the seven fused methods with kernels of
//! their own, `kernels/fused.cu` and `bits.cu`), [`gemm`] (the exact matrix products), [`staging`]
//! (host transfers) and [`nvrtc`] (run-time compilation).
//!
//! The fused methods `add_prg`, `mul_part`, `truncate_deal`, `truncate_open`,
//! `and_part_packed` and `and_rows` run one kernel each (a thread per eight words, one
//! ChaCha block, the PRG words drawn in registers), and `bit_planes` one (a thread per row
//! word), equal bit for bit to their defaults in
//! `triad_ring::device::fused` and returning the same errors; the other fused methods run
//! their defaults.
//!
//! Every result is bit-identical to [`CpuDevice`](triad_ring::CpuDevice)'s: ring
//! arithmetic is wrapping u64 arithmetic, and matrix products are exact mod 2^64 on every
//! path ([`GemmPath`]): the plain u64 kernel, the CryptGPU float64 path with 16-bit
//! limbs (exact while each float64 dot product stays below 2^53), or the int8 path with
//! 8-bit digits (exact while each int32 dot product stays below 2^31; see [`gemm`]).
//!
//! With no CUDA driver library, no device, or no NVRTC, [`CudaDevice::new`] returns
//! [`DeviceError::Unavailable`]; it never panics (cudarc would, on the first call into a
//! missing library, so every library is probed before use).
//!
//! The crate builds with no CUDA installed (cudarc's `dynamic-loading`).

mod args;
mod buffer;
mod device;
mod fused;
pub mod gemm;
pub mod nvrtc;
pub mod staging;

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig};
use cudarc::nvrtc::Ptx;
use triad_ring::device::{Device, DeviceError, DeviceResult};

pub use buffer::CudaBuffer;
pub use gemm::GemmPath;
pub use staging::{STAGING_BUFFERS, STAGING_CHUNK_ELEMS};

/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;
/// Most blocks of a grid-stride launch (the kernels loop over the rest).
const MAX_BLOCKS: u64 = 1 << 20;

/// Every kernel the device launches, loaded into its context.
#[derive(Clone, Debug)]
struct Kernels {
    fill: CudaFunction,
    unary: CudaFunction,
    binary: CudaFunction,
    binary_assign: CudaFunction,
    binary_scalar: CudaFunction,
    pack_bits: CudaFunction,
    unpack_bits: CudaFunction,
    sum_axis: CudaFunction,
    gather: CudaFunction,
    scatter: CudaFunction,
    prg: CudaFunction,
    im2col: CudaFunction,
    col2im: CudaFunction,
    pool_sum: CudaFunction,
    pool_windows: CudaFunction,
    pool_backward: CudaFunction,
    gemm_u64: CudaFunction,
    split_limbs16: CudaFunction,
    acc_f64: CudaFunction,
    split_digits8: CudaFunction,
    acc_i32: CudaFunction,
    add_addends: CudaFunction,
    mul_part: CudaFunction,
    truncate_deal: CudaFunction,
    truncate_open: CudaFunction,
    and_part_packed: CudaFunction,
    and_rows: CudaFunction,
    bit_planes: CudaFunction,
}

struct Inner {
    ordinal: usize,
    name: String,
    arch: String,
    stream: Arc<CudaStream>,
    k: Kernels,
    /// cuBLAS, when its library is present (the float64 limb and int8 digit paths need it).
    blas: Option<CudaBlas>,
    /// The pinned host buffers every host transfer goes through ([`staging`]).
    staging: staging::Staging,
    /// One word of device memory, passed for a fused kernel's unused buffer arguments.
    spare: CudaSlice<u64>,
}

/// The CUDA device. Cloning is cheap (the context, stream and kernels are shared).
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<Inner>,
    /// A fixed GEMM path (tests), or `None` to choose per shape.
    path: Option<GemmPath>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("ordinal", &self.inner.ordinal)
            .field("name", &self.inner.name)
            .field("arch", &self.inner.arch)
            .field("cublas", &self.inner.blas.is_some())
            .field("gemm_path", &self.path)
            .finish()
    }
}

fn unavailable(reason: impl Into<String>) -> DeviceError {
    DeviceError::Unavailable { device: "cuda".to_string(), reason: reason.into() }
}

/// A grid-stride launch over `n` items.
fn grid(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(u64::from(THREADS)).clamp(1, MAX_BLOCKS);
    LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

impl CudaDevice {
    /// The CUDA device `ordinal`, with every kernel compiled and loaded.
    ///
    /// Returns [`DeviceError::Unavailable`] (never panics) when the CUDA driver library
    /// is absent, the device does not exist, or NVRTC cannot be loaded.
    pub fn new(ordinal: usize) -> DeviceResult<Self> {
        // SAFETY: only tries to open the driver library by its candidate names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable("the CUDA driver library (libcuda.so) was not found"));
        }
        let count = CudaContext::device_count().map_err(|e| unavailable(format!("cuInit / device count: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(format!("no CUDA device {ordinal} ({count} present)")));
        }
        nvrtc::available().map_err(unavailable)?;
        let ctx = CudaContext::new(ordinal).map_err(|e| unavailable(format!("creating a context: {e}")))?;
        let gpu_name = ctx.name().unwrap_or_else(|_| "unknown GPU".to_string());
        let (major, minor) = ctx.compute_capability().map_err(|e| unavailable(format!("compute capability: {e}")))?;
        let arch = format!("sm_{major}{minor}");
        let drv = |e: DriverError| DeviceError::Driver { device: format!("cuda:{ordinal}"), detail: e.to_string() };
        let images = nvrtc::compile_all_cached(&arch)
            .map_err(|e| DeviceError::Driver { device: format!("cuda:{ordinal}"), detail: e })?;
        let mut modules = std::collections::HashMap::new();
        for c in images.iter() {
            modules.insert(c.name, ctx.load_module(Ptx::from_binary(c.cubin.clone())).map_err(drv)?);
        }
        let f = |file: &str, name: &str| -> DeviceResult<CudaFunction> {
            let m = modules.get(file).ok_or_else(|| DeviceError::Driver {
                device: format!("cuda:{ordinal}"),
                detail: format!("kernel file {file} missing"),
            })?;
            m.load_function(name).map_err(drv)
        };
        let k = Kernels {
            fill: f("elementwise.cu", "fill_u64")?,
            unary: f("elementwise.cu", "unary_u64")?,
            binary: f("elementwise.cu", "binary_u64")?,
            binary_assign: f("elementwise.cu", "binary_assign_u64")?,
            binary_scalar: f("elementwise.cu", "binary_scalar_u64")?,
            pack_bits: f("bits.cu", "pack_bits_u64")?,
            unpack_bits: f("bits.cu", "unpack_bits_u64")?,
            sum_axis: f("layout.cu", "sum_axis_u64")?,
            gather: f("layout.cu", "gather_strided_u64")?,
            scatter: f("layout.cu", "scatter_strided_u64")?,
            prg: f("prg.cu", "prg_fill_u64")?,
            im2col: f("conv.cu", "im2col_u64")?,
            col2im: f("conv.cu", "col2im_u64")?,
            pool_sum: f("conv.cu", "pool_sum_u64")?,
            pool_windows: f("conv.cu", "pool_windows_u64")?,
            pool_backward: f("conv.cu", "pool_backward_u64")?,
            gemm_u64: f("gemm.cu", "gemm_u64_tiled")?,
            split_limbs16: f("gemm.cu", "split_limbs16_f64")?,
            acc_f64: f("gemm.cu", "acc_f64_u64")?,
            split_digits8: f("gemm.cu", "split_digits8_i8")?,
            acc_i32: f("gemm.cu", "acc_i32_u64")?,
            add_addends: f("fused.cu", "add_addends_u64")?,
            mul_part: f("fused.cu", "mul_part_u64")?,
            truncate_deal: f("fused.cu", "truncate_deal_u64")?,
            truncate_open: f("fused.cu", "truncate_open_u64")?,
            and_part_packed: f("fused.cu", "and_part_packed_u64")?,
            and_rows: f("fused.cu", "and_rows_u64")?,
            bit_planes: f("bits.cu", "bit_planes_u64")?,
        };
        let stream = ctx.default_stream();
        let spare = stream.clone_htod(&[0u64]).map_err(drv)?;
        // SAFETY: only tries to open the cuBLAS library by its candidate names.
        let blas =
            if unsafe { cudarc::cublas::sys::is_culib_present() } { CudaBlas::new(stream.clone()).ok() } else { None };
        let staging = staging::Staging::new(&ctx);
        let inner = Inner { ordinal, name: gpu_name, arch, stream, k, blas, staging, spare };
        Ok(CudaDevice { inner: Arc::new(inner), path: None })
    }

    /// This device with every matrix product (matmul, convolutions) forced onto `path`
    /// (`None`: choose per shape). For tests and benchmarks.
    pub fn with_gemm_path(&self, path: Option<GemmPath>) -> Self {
        CudaDevice { inner: self.inner.clone(), path }
    }

    /// The architecture the kernels were compiled for (`sm_90`).
    pub fn arch(&self) -> &str {
        &self.inner.arch
    }

    /// Whether cuBLAS was found (the float64 limb and int8 digit paths need it).
    pub fn has_cublas(&self) -> bool {
        self.inner.blas.is_some()
    }

    /// The GEMM paths usable on this device.
    pub fn gemm_paths(&self) -> Vec<GemmPath> {
        let mut v = vec![GemmPath::U64Tiled];
        if self.has_cublas() {
            v.push(GemmPath::F64Limbs16);
            v.push(GemmPath::I8Digits8);
        }
        v
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> DeviceResult<()> {
        self.inner.stream.synchronize().map_err(|e| self.drv(e))
    }

    fn dev_name(&self) -> String {
        format!("cuda:{}", self.inner.ordinal)
    }

    fn drv(&self, e: DriverError) -> DeviceError {
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            DeviceError::OutOfMemory { device: self.dev_name(), bytes: 0 }
        } else {
            DeviceError::Driver { device: self.dev_name(), detail: e.to_string() }
        }
    }

    fn err(&self, detail: impl Into<String>) -> DeviceError {
        DeviceError::Driver { device: self.dev_name(), detail: detail.into() }
    }

    /// `Ok` when two operands of the elementwise method `what` have equal lengths (the
    /// check, and the error, of `binary` and `binary_assign` on every device).
    fn same_len(&self, what: &str, a: usize, b: usize) -> DeviceResult<()> {
        triad_ring::device::check_operand_lens(&self.dev_name(), what, a, b)
    }

    /// A buffer of `len` elements whose contents the caller overwrites entirely.
    fn alloc(&self, len: usize) -> DeviceResult<CudaBuffer> {
        // SAFETY: the memory is uninitialised; every caller writes all `len` elements (by
        // a kernel or a copy) before any read, and the padding element of an empty buffer
        // is never read.
        let data = unsafe { self.inner.stream.alloc::<u64>(len.max(1)) }.map_err(|e| match e.0 {
            cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                DeviceError::OutOfMemory { device: self.dev_name(), bytes: len.max(1) * 8 }
            }
            _ => self.drv(e),
        })?;
        Ok(CudaBuffer { data, len })
    }

    fn alloc_f64(&self, len: usize) -> DeviceResult<CudaSlice<f64>> {
        // SAFETY: as in `alloc`: callers write every element before reading it.
        unsafe { self.inner.stream.alloc::<f64>(len.max(1)) }.map_err(|e| self.drv(e))
    }

    fn zeros(&self, len: usize) -> DeviceResult<CudaBuffer> {
        self.fill(len, 0)
    }

    fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_without_a_driver_is_unavailable() {
        // SAFETY: only probes for the library.
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            return; // a machine with a driver: covered by the GPU suite
        }
        assert!(matches!(CudaDevice::new(0), Err(DeviceError::Unavailable { .. })));
    }
}
