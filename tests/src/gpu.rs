//! The GPU for the CUDA suites: device 0, or a printed skip line when there is none, or a
//! failure instead of the skip when `TRIAD_REQUIRE_GPU=1`.
//!
//! The suites' GPU tests are `#[ignore]`d, so a plain `cargo test` without a GPU counts them
//! as ignored, never as passed; `tools/cuda-emu/test` (CI: the CPU-executed CUDA emulator,
//! where device 0 is the emulator) and `tools/gpu-check` (a real GPU) run them with
//! `--include-ignored` and `TRIAD_REQUIRE_GPU=1`. One test per suite is not ignored:
//! `tests/cuda_device.rs`'s `a_missing_gpu_is_one_line_or_a_failure`, which checks the
//! no-driver path below.

use triad_cuda::CudaDevice;

/// Whether the suites must fail rather than skip without a GPU (`TRIAD_REQUIRE_GPU=1`).
pub fn required() -> bool {
    std::env::var("TRIAD_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// What a suite does with the result of opening a device: `Ok(Some(dev))` runs on it,
/// `Ok(None)` skips after printing the returned line, `Err(message)` fails (the device is
/// required).
pub fn decide<T, E: std::fmt::Display>(opened: Result<T, E>, required: bool) -> Result<(Option<T>, String), String> {
    match opened {
        Ok(dev) => Ok((Some(dev), String::new())),
        Err(e) if required => Err(format!("TRIAD_REQUIRE_GPU=1 but the CUDA device is unavailable: {e}")),
        Err(e) => Ok((None, format!("skipped: no CUDA device ({e})"))),
    }
}

/// The CUDA device 0, or `None` after a skip line; panics instead when the GPU is required.
pub fn cuda() -> Option<CudaDevice> {
    match decide(CudaDevice::new(0), required()) {
        Ok((dev, line)) => {
            if dev.is_none() {
                eprintln!("{line}");
            }
            dev
        }
        Err(msg) => panic!("{msg}"),
    }
}
