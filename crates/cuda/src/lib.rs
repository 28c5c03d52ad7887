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

pub mod gemm;
pub mod nvrtc;
pub mod staging;

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, DeviceRepr, DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use triad_ring::device::{BinaryOp, Device, DeviceError, DeviceResult, UnaryOp};
use triad_ring::prg::PrgKey;
use triad_ring::shape::{Conv2dParams, MatmulSpec, Pool2dParams, StridedLayout};

pub use gemm::GemmPath;
pub use staging::{STAGING_BUFFERS, STAGING_CHUNK_ELEMS};

/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;
/// Most blocks of a grid-stride launch (the kernels loop over the rest).
const MAX_BLOCKS: u64 = 1 << 20;
/// Largest rank a strided-view kernel takes at once (`TRIAD_MAX_RANK` in layout.cu).
const MAX_RANK: usize = 8;
/// Target size (elements) of a convolution's columns buffer; larger batches are chunked.
const CONV_CHUNK_ELEMS: usize = 1 << 26;

/// A buffer of ring elements in GPU memory.
///
/// The allocation holds at least one element (CUDA does not allocate zero bytes); `len`
/// is the logical length.
pub struct CudaBuffer {
    data: CudaSlice<u64>,
    len: usize,
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer({} elements on cuda:{})", self.len, self.data.ordinal())
    }
}

impl CudaBuffer {
    /// The number of ring elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The underlying cudarc slice (at least one element long).
    pub fn slice(&self) -> &CudaSlice<u64> {
        &self.data
    }
    fn view(&self, offset: usize) -> CudaView<'_, u64> {
        self.data.slice(offset..)
    }
}

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

/// A strided view as the kernels take it (`struct view` in layout.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ViewArg {
    rank: u64,
    offset: u64,
    dims: [u64; MAX_RANK],
    strides: [u64; MAX_RANK],
}

// SAFETY: `ViewArg` is `repr(C)` plain data of u64 fields, laid out exactly as
// `struct view` in kernels/layout.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for ViewArg {}

/// Convolution and pooling geometry as the kernels take it (`struct geom` in conv.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Geom {
    batch: u64,
    chans: u64,
    in_h: u64,
    in_w: u64,
    kh: u64,
    kw: u64,
    stride_h: u64,
    stride_w: u64,
    pad_h: u64,
    pad_w: u64,
    out_h: u64,
    out_w: u64,
    n0: u64,
    col_sn: u64,
    col_sr: u64,
    unused: u64,
}

// SAFETY: `Geom` is `repr(C)` plain data of u64 fields, laid out exactly as `struct geom`
// in kernels/conv.cu, so it can be passed to a kernel by value.
unsafe impl DeviceRepr for Geom {}

impl Geom {
    fn conv(p: &Conv2dParams) -> Geom {
        Geom {
            batch: p.batch as u64,
            chans: p.in_c as u64,
            in_h: p.in_h as u64,
            in_w: p.in_w as u64,
            kh: p.kh as u64,
            kw: p.kw as u64,
            stride_h: p.stride_h as u64,
            stride_w: p.stride_w as u64,
            pad_h: p.pad_h as u64,
            pad_w: p.pad_w as u64,
            out_h: p.out_h() as u64,
            out_w: p.out_w() as u64,
            ..Geom::default()
        }
    }
    fn pool(p: &Pool2dParams) -> Geom {
        Geom {
            batch: p.batch as u64,
            chans: p.channels as u64,
            in_h: p.in_h as u64,
            in_w: p.in_w as u64,
            kh: p.kh as u64,
            kw: p.kw as u64,
            stride_h: p.stride_h as u64,
            stride_w: p.stride_w as u64,
            pad_h: p.pad_h as u64,
            pad_w: p.pad_w as u64,
            out_h: p.out_h() as u64,
            out_w: p.out_w() as u64,
            ..Geom::default()
        }
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

/// A contiguous run of set bits `[lo, lo + k)`, as the CPU device's `contiguous`.
fn contiguous(mask: u64) -> Option<u32> {
    if mask == 0 {
        return None;
    }
    let lo = mask.trailing_zeros();
    let k = mask.count_ones();
    let run = if k == 64 { u64::MAX } else { ((1u64 << k) - 1) << lo };
    (run == mask).then_some(lo)
}

/// Drops unit dimensions and merges dimensions that are contiguous in the underlying
/// buffer; the row-major order of the view's elements is unchanged.
fn simplify(view: &StridedLayout) -> (Vec<u64>, Vec<u64>) {
    let (mut dims, mut strides): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for (&d, &s) in view.dims.iter().zip(&view.strides) {
        if d == 1 {
            continue;
        }
        if let (Some(ld), Some(ls)) = (dims.last_mut(), strides.last_mut()) {
            // The previous dimension steps over exactly one run of this one: merge.
            if *ls == (s as u64) * (d as u64) {
                *ld *= d as u64;
                *ls = s as u64;
                continue;
            }
        }
        dims.push(d as u64);
        strides.push(s as u64);
    }
    (dims, strides)
}

/// The launches of a strided view: rank ≤ 8 pieces as (view, first dense index, count).
fn view_pieces(view: &StridedLayout) -> Vec<(ViewArg, u64, u64)> {
    let (dims, strides) = simplify(view);
    let split = dims.len().saturating_sub(MAX_RANK);
    let (outer_d, inner_d) = dims.split_at(split);
    let (outer_s, inner_s) = strides.split_at(split);
    let inner_n: u64 = inner_d.iter().product();
    let outer_n: u64 = outer_d.iter().product();
    let mut pieces = Vec::with_capacity(outer_n as usize);
    for o in 0..outer_n {
        let (mut rest, mut offset) = (o, view.offset as u64);
        for d in (0..split).rev() {
            offset += (rest % outer_d[d]) * outer_s[d];
            rest /= outer_d[d];
        }
        let mut v = ViewArg { rank: inner_d.len() as u64, offset, ..ViewArg::default() };
        v.dims[..inner_d.len()].copy_from_slice(inner_d);
        v.strides[..inner_s.len()].copy_from_slice(inner_s);
        pieces.push((v, o * inner_n, inner_n));
    }
    pieces
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
        };
        let stream = ctx.default_stream();
        // SAFETY: only tries to open the cuBLAS library by its candidate names.
        let blas =
            if unsafe { cudarc::cublas::sys::is_culib_present() } { CudaBlas::new(stream.clone()).ok() } else { None };
        let staging = staging::Staging::new(&ctx);
        let inner = Inner { ordinal, name: gpu_name, arch, stream, k, blas, staging };
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
        if a.len != b.len {
            return Err(self.err(format!("binary: lengths {} and {}", a.len, b.len)));
        }
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
        if a.len != b.len {
            return Err(self.err(format!("binary_assign: lengths {} and {}", a.len, b.len)));
        }
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

    fn pack_bits(&self, a: &CudaBuffer, mask: u64) -> DeviceResult<CudaBuffer> {
        let k = mask.count_ones();
        let words = (a.len * k as usize).div_ceil(64);
        let mut out = self.alloc(words)?;
        if words > 0 {
            let (len, w) = (a.len as u64, words as u64);
            let lo = contiguous(mask);
            let (lo, contig) = (lo.unwrap_or(0), i32::from(lo.is_some()));
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
            let lo = contiguous(mask);
            let (lo, contig) = (lo.unwrap_or(0), i32::from(lo.is_some()));
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
            let w = key.words();
            let kw = |i: usize| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
            let (k0, k1, k2, k3) = (kw(0), kw(1), kw(2), kw(3));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use triad_ring::CpuDevice;

    /// What the gather kernel computes for one piece, on the host.
    fn gather_piece(a: &[u64], v: &ViewArg, count: u64) -> Vec<u64> {
        (0..count)
            .map(|t| {
                let (mut t, mut idx) = (t, v.offset);
                for d in (0..v.rank as usize).rev() {
                    idx += (t % v.dims[d]) * v.strides[d];
                    t /= v.dims[d];
                }
                a[idx as usize]
            })
            .collect()
    }

    /// The launch pieces of a view (merged dimensions, rank > 8 split) reproduce the CPU
    /// device's gather, in order.
    #[test]
    fn view_pieces_match_cpu_gather() {
        let views = [
            (vec![], vec![], 3),
            (vec![4, 5], vec![5, 1], 0),
            (vec![3, 1, 4], vec![0, 7, 1], 2),
            (vec![2, 3, 4], vec![12, 4, 1], 1),
            (vec![2, 3, 2, 2, 3, 2, 2, 2, 3, 2], vec![3000, 900, 400, 190, 60, 25, 12, 5, 2, 1], 4),
            (vec![2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], (0..11).rev().map(|d| 2usize << d).collect(), 1),
        ];
        for (dims, strides, offset) in views {
            let view = StridedLayout { dims, strides, offset };
            let a: Vec<u64> = (0..view.extent().unwrap() as u64).map(|x| x * 7 + 1).collect();
            let want = CpuDevice.gather_strided(&a, &view).unwrap();
            let mut got = vec![0u64; want.len()];
            for (v, first, count) in view_pieces(&view) {
                assert!(v.rank as usize <= MAX_RANK);
                let piece = gather_piece(&a, &v, count);
                got[first as usize..(first + count) as usize].copy_from_slice(&piece);
            }
            assert_eq!(got, want, "{view:?}");
        }
    }

    #[test]
    fn contiguous_masks() {
        assert_eq!(contiguous(0), None);
        assert_eq!(contiguous(u64::MAX), Some(0));
        assert_eq!(contiguous(0b1110000), Some(4));
        assert_eq!(contiguous(0b1010), None);
        assert_eq!(contiguous(1 << 63), Some(63));
    }

    #[test]
    fn path_rule() {
        let d = |m, n, k| gemm::Desc { m, n, k, batch: 1, accumulate: false };
        assert_eq!(gemm::choose(&d(512, 512, 512), true), GemmPath::F64Limbs16);
        assert_eq!(gemm::choose(&d(512, 512, 512), false), GemmPath::U64Tiled);
        assert_eq!(gemm::choose(&d(8, 8, 8), true), GemmPath::U64Tiled);
        assert_eq!(gemm::choose(&d(1 << 20, 64, 4), true), GemmPath::U64Tiled);
        // The float64 bound: 2^21 products of (2^16-1)^2 stay below 2^53.
        let max = ((1u128 << 16) - 1).pow(2);
        assert!(gemm::F64_MAX_K as u128 * max < 1 << 53);
        // (the exact limit is 2^21 + 64; 2^21 is the largest power of two under it)
        assert!((gemm::F64_MAX_K as u128 + 64) * max < 1 << 53 && (gemm::F64_MAX_K as u128 + 65) * max >= 1 << 53);
        // The int8 bound: 2^17 - 1 digit products of (-128)^2 stay within int32, one more does not.
        assert!(gemm::I8_MAX_K as i64 * (1 << 14) <= i64::from(i32::MAX));
        assert!((gemm::I8_MAX_K as i64 + 1) * (1 << 14) > i64::from(i32::MAX));
    }

    #[test]
    fn new_without_a_driver_is_unavailable() {
        // SAFETY: only probes for the library.
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            return; // a machine with a driver: covered by the GPU suite
        }
        assert!(matches!(CudaDevice::new(0), Err(DeviceError::Unavailable { .. })));
    }
}
