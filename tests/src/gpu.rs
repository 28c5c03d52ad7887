//! The GPU for the CUDA suites: device 0, or a printed skip line when there is none, or a
//! failure instead of the skip when `TRIAD_REQUIRE_GPU=1`. CI runs the suites that use it
//! on the CPU-executed CUDA emulator (`tools/cuda-emu/test`), where device 0 is the emulator.

use triad_cuda::CudaDevice;

/// Whether the suites must fail rather than skip without a GPU (`TRIAD_REQUIRE_GPU=1`).
pub fn required() -> bool {
    std::env::var("TRIAD_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// The CUDA device 0, or `None` after a skip line; panics instead when the GPU is required.
pub fn cuda() -> Option<CudaDevice> {
    match CudaDevice::new(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            if required() {
                panic!("TRIAD_REQUIRE_GPU=1 but the CUDA device is unavailable: {e}");
            }
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}
