//! Ring GEMM throughput of every path of the CUDA device, beside cuBLAS's own float64 and
//! int8 GEMM rates measured in the same run, on square `n x n` products:
//!
//! ```sh
//! cargo run --release -p triad-cuda --example gemm_rate -- 4096 [reps]
//! ```
//!
//! One line per measurement, `what n seconds_per_product rate`, where the rate is
//! 2·n^3 / seconds in units of 10^9 multiply-adds·2 (ring or float or int ops per
//! second). Part of the prepared GPU check (`tools/gpu-check/`); it also runs (slowly, at a
//! small `n`) under the CPU-executed emulator.
use std::time::Instant;

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
// (both raw rates use the strided-batched GEMMs with one product: the entry points the
// limb paths call)
use cudarc::driver::{CudaContext, DevicePtr, DevicePtrMut};
use triad_cuda::CudaDevice;
use triad_ring::{Device, MatmulSpec};

fn report(what: &str, n: usize, secs: f64) {
    let ops = 2.0 * (n as f64).powi(3);
    println!("{what:<16} n {n:>6}  {:>10.6} s  {:>10.2} G ops/s", secs, ops / secs / 1e9);
}

/// Times `f` after one warm-up call: the mean over `reps` calls, each ended by `sync`.
fn time<E: std::fmt::Debug>(reps: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, String> {
    f().map_err(|e| format!("{e:?}"))?;
    let t = Instant::now();
    for _ in 0..reps {
        f().map_err(|e| format!("{e:?}"))?;
    }
    Ok(t.elapsed().as_secs_f64() / reps as f64)
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1024), |s| s.parse()).map_err(|e| format!("n: {e}"))?;
    let reps: usize = args.next().map_or(Ok(3), |s| s.parse()).map_err(|e| format!("reps: {e}"))?;
    let dev = CudaDevice::new(0).map_err(|e| e.to_string())?;
    println!("device {}", dev.name());
    let spec = MatmulSpec { batch: 1, m: n, k: n, n, a_trans: false, b_trans: false };
    let words: Vec<u64> = (0..(n * n) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let (a, b) = (dev.from_host(&words).map_err(|e| e.to_string())?, dev.from_host(&words).map_err(|e| e.to_string())?);
    for path in dev.gemm_paths() {
        let d = dev.with_gemm_path(Some(path));
        let secs = time(reps, || d.matmul(&a, &b, &spec).and_then(|_| d.synchronize()))?;
        report(&format!("ring {path:?}"), n, secs);
    }

    // cuBLAS's own rates on the same shape, in its own handle on the same device.
    let ctx = CudaContext::new(0).map_err(|e| e.to_string())?;
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone()).map_err(|e| format!("{e:?}"))?;
    let ni = n as i32;
    let fa = stream.clone_htod(&vec![1.0f64; n * n]).map_err(|e| e.to_string())?;
    let mut fc = stream.clone_htod(&vec![0.0f64; n * n]).map_err(|e| e.to_string())?;
    let gemm = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: ni,
        n: ni,
        k: ni,
        alpha: 1.0f64,
        lda: ni,
        ldb: ni,
        beta: 0.0f64,
        ldc: ni,
    };
    let cfg = StridedBatchedConfig { gemm, batch_size: 1, stride_a: 0, stride_b: 0, stride_c: 0 };
    let secs = time(reps, || {
        // SAFETY: fa and fc hold n·n doubles, the column-major n x n operands of cfg.
        unsafe { blas.gemm_strided_batched(cfg, &fa, &fa, &mut fc) }.map_err(|e| format!("{e:?}"))?;
        stream.synchronize().map_err(|e| e.to_string())
    })?;
    report("cublas dgemm", n, secs);
    let ia = stream.clone_htod(&vec![1i8; n * n]).map_err(|e| e.to_string())?;
    let mut ic = stream.clone_htod(&vec![0i32; n * n]).map_err(|e| e.to_string())?;
    let (one, zero) = (1i32, 0i32);
    let secs = time(reps, || {
        let (ap, _ra) = ia.device_ptr(&stream);
        let (cp, _rc) = ic.device_ptr_mut(&stream);
        // SAFETY: ia holds n·n int8 and ic n·n int32, the column-major n x n operands (one
        // product, batch strides 0);
        // alpha and beta are host int32 (compute type 32I).
        let r = unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *blas.handle(),
                cublasOperation_t::CUBLAS_OP_N,
                cublasOperation_t::CUBLAS_OP_N,
                ni,
                ni,
                ni,
                (&one as *const i32).cast(),
                ap as *const std::ffi::c_void,
                cudaDataType::CUDA_R_8I,
                ni,
                0,
                ap as *const std::ffi::c_void,
                cudaDataType::CUDA_R_8I,
                ni,
                0,
                (&zero as *const i32).cast(),
                cp as *mut std::ffi::c_void,
                cudaDataType::CUDA_R_32I,
                ni,
                0,
                1,
                cublasComputeType_t::CUBLAS_COMPUTE_32I,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        r.map_err(|e| format!("{e:?}"))?;
        stream.synchronize().map_err(|e| e.to_string())
    })?;
    report("cublas int8", n, secs);
    Ok(())
}
