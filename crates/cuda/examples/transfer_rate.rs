//! Host transfer bandwidth of the CUDA device, host to device (H2D) and device to host
//! (D2H), beside the raw pageable and pinned rates measured in the same run:
//!
//! ```sh
//! cargo run --release -p triad-cuda --example transfer_rate -- 64 [reps]   # MiB per transfer
//! ```
//!
//! One line per measurement, `what MiB seconds_per_transfer GB/s` (10^9 bytes per second):
//! - `device H2D/D2H`: `from_host` / `to_host`, through the device's pinned staging
//!   buffers (chunks of `STAGING_CHUNK_ELEMS`, copied by the host into and out of them);
//! - `pageable H2D/D2H`: cudarc's copies straight from and to a `Vec` (the driver stages
//!   them itself);
//! - `pinned H2D/D2H`: copies straight from and to one page-locked buffer of the whole size
//!   (the DMA rate with no host copy: the ceiling of the other two).
//!
//! Part of the prepared GPU check (`tools/gpu-check/`). It also runs under the CPU-executed
//! emulator, where the rates mean nothing.
use std::time::Instant;

use cudarc::driver::CudaContext;
use triad_cuda::CudaDevice;
use triad_ring::Device;

fn report(what: &str, bytes: usize, secs: f64) {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!("{what:<14} {mib:>8.1} MiB  {secs:>10.6} s  {:>8.2} GB/s", bytes as f64 / secs / 1e9);
}

/// Times `f` after one warm-up call: the mean over `reps` calls, each ending synchronised.
fn time<E: std::fmt::Display>(reps: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, String> {
    f().map_err(|e| e.to_string())?;
    let t = Instant::now();
    for _ in 0..reps {
        f().map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed().as_secs_f64() / reps.max(1) as f64)
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(Ok(64), |s| s.parse()).map_err(|e| format!("MiB: {e}"))?;
    let reps: usize = args.next().map_or(Ok(5), |s| s.parse()).map_err(|e| format!("reps: {e}"))?;
    let n = (mib << 20) / 8;
    let bytes = n * 8;
    let dev = CudaDevice::new(0).map_err(|e| e.to_string())?;
    println!("device {} (staging: {})", dev.name(), if dev.pinned_staging() { "pinned" } else { "pageable" });
    let data: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();

    let buf = dev.from_host(&data).map_err(|e| e.to_string())?;
    report("device H2D", bytes, time(reps, || dev.from_host(&data).and_then(|_| dev.synchronize()))?);
    let mut back = Vec::new();
    report("device D2H", bytes, time(reps, || dev.to_host(&buf).map(|v| back = v))?);
    if back != data {
        return Err("device round trip differs".to_string());
    }

    let ctx = CudaContext::new(0).map_err(|e| e.to_string())?;
    let stream = ctx.default_stream();
    // SAFETY: every element is written by the first copy into it before it is read.
    let mut slice = unsafe { stream.alloc::<u64>(n.max(1)) }.map_err(|e| e.to_string())?;
    let mut host = data.clone();
    report(
        "pageable H2D",
        bytes,
        time(reps, || stream.memcpy_htod(&data, &mut slice).and_then(|_| stream.synchronize()))?,
    );
    report(
        "pageable D2H",
        bytes,
        time(reps, || stream.memcpy_dtoh(&slice, &mut host).and_then(|_| stream.synchronize()))?,
    );
    // Without CU_MEMHOSTALLOC_WRITECOMBINED, as the device's staging buffers.
    // SAFETY: uninitialised; filled from `data` before the first copy from it.
    let mut pinned = unsafe { ctx.alloc_pinned_with_flags::<u64>(n.max(1), 0) }.map_err(|e| e.to_string())?;
    pinned.as_mut_slice().map_err(|e| e.to_string())?[..n].copy_from_slice(&data);
    report(
        "pinned H2D",
        bytes,
        time(reps, || {
            let src = &pinned.as_slice()?[..n];
            stream.memcpy_htod(src, &mut slice).and_then(|_| stream.synchronize())
        })?,
    );
    report(
        "pinned D2H",
        bytes,
        time(reps, || {
            let dst = &mut pinned.as_mut_slice()?[..n];
            stream.memcpy_dtoh(&slice, dst).and_then(|_| stream.synchronize())
        })?,
    );
    if pinned.as_slice().map_err(|e| e.to_string())?[..n] != data[..] {
        return Err("pinned round trip differs".to_string());
    }
    Ok(())
}
