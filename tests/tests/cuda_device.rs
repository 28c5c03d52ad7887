//! The GPU differential suite: the device suite stamped over the CUDA device (with the
//! GEMM path chosen per shape, and with each path forced: u64, float64 limbs, int8 digits), exactness of the limb paths at
//! their bounds, the fused methods with kernels of their own against their defaults and the CPU
//! device (`triad_tests::fused_checks`), and protocols run with every party on the GPU giving the same shares as
//! on the CPU.
//!
//! The tests that need a GPU are `#[ignore]`d: a plain `cargo test` counts them as
//! ignored. `tools/cuda-emu/test` and `tools/gpu-check` run them with `--include-ignored`
//! and `TRIAD_REQUIRE_GPU=1`, where a missing GPU (no CUDA driver library, no device, or no
//! NVRTC) fails instead of printing a skip line.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_cuda::{CudaDevice, GemmPath};
use triad_fixed::FixedConfig;
use triad_ring::{Conv2dParams, CpuDevice, Device, MatmulSpec, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, Party};
use triad_tests::gpu::cuda;
use triad_transport::{LinkConfig, PartyId};

/// The CUDA device with one GEMM path forced (`None` when absent or the path cannot run).
fn cuda_with(path: GemmPath) -> Option<CudaDevice> {
    let dev = cuda()?;
    if !dev.gemm_paths().contains(&path) {
        if triad_tests::gpu::required() {
            panic!("TRIAD_REQUIRE_GPU=1 but GEMM path {path:?} cannot run on {}", dev.name());
        }
        eprintln!("cuda: GEMM path {path:?} unavailable on {}", dev.name());
        return None;
    }
    Some(dev.with_gemm_path(Some(path)))
}

triad_tests::device_suite!(cuda_auto, optional cuda());
triad_tests::device_suite!(cuda_u64_gemm, optional cuda_with(GemmPath::U64Tiled));
triad_tests::device_suite!(cuda_f64_gemm, optional cuda_with(GemmPath::F64Limbs16));
triad_tests::device_suite!(cuda_i8_gemm, optional cuda_with(GemmPath::I8Digits8));

/// The device, or return: `cuda()` / `cuda_with` already printed the one skip line.
macro_rules! gpu_or_skip {
    ($e:expr, $test:literal) => {
        match $e {
            Some(d) => d,
            None => return,
        }
    };
}

/// The fused methods with kernels of their own (`add_prg`, `mul_part`, `truncate_deal`,
/// `truncate_open`, `and_part_packed`, `bit_planes`, `and_rows`) against their defaults on the device and against the
/// CPU device, bit for bit, and their argument errors against the defaults'
/// (`triad_tests::fused_checks`); one test per check.
mod fused {
    use triad_tests::fused_checks;

    macro_rules! stamp {
        ($($check:ident),*) => {
            $(
                #[test]
                #[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
                fn $check() {
                    let dev = gpu_or_skip!(super::cuda(), "fused");
                    fused_checks::$check(&dev);
                }
            )*
            #[test]
            fn stamps_every_check() {
                let names: Vec<&str> = fused_checks::value_checks::<triad_ring::CpuDevice>().iter().map(|c| c.0).collect();
                let stamped = [$(stringify!($check)),*];
                assert_eq!(stamped[..names.len()], names[..], "the stamped checks and `value_checks` differ");
            }
        };
    }
    stamp!(add_prg, mul_part, truncate_deal, truncate_open, and_part_packed, bit_planes, and_rows, argument_errors);
}

fn matmul_both<D: Device>(dev: &D, spec: &MatmulSpec, a: &[u64], b: &[u64]) -> Vec<u64> {
    let (ab, bb) = (dev.from_host(a).unwrap(), dev.from_host(b).unwrap());
    dev.to_host(&dev.matmul(&ab, &bb, spec).unwrap()).unwrap()
}

/// Every path on shapes that cross its tiles and the chosen path's threshold, with all
/// transposes, against the CPU device; operands of all-ones limbs (`u64::MAX`) are the
/// worst case for the float64 bound.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn gemm_paths_match_cpu() {
    let base = gpu_or_skip!(cuda(), "gemm_paths_match_cpu");
    for path in base.gemm_paths() {
        let dev = base.with_gemm_path(Some(path));
        for (batch, m, k, n) in [(1, 1, 1, 1), (3, 65, 130, 63), (1, 256, 512, 192), (2, 7, 1000, 9), (1, 5, 0, 4)] {
            for (a_trans, b_trans) in [(false, false), (true, false), (false, true), (true, true)] {
                let spec = MatmulSpec { batch, m, k, n, a_trans, b_trans };
                for fill in [None, Some(u64::MAX)] {
                    let a = fill.map_or_else(|| triad_tests::words(spec.a_len(), 1), |v| vec![v; spec.a_len()]);
                    let b = fill.map_or_else(|| triad_tests::words(spec.b_len(), 2), |v| vec![v; spec.b_len()]);
                    let want = matmul_both(&CpuDevice, &spec, &a, &b);
                    assert_eq!(matmul_both(&dev, &spec, &a, &b), want, "{path:?} {spec:?} fill {fill:?}");
                }
            }
        }
    }
}

/// An inner dimension past 2^21 (the float64 limb bound) with every limb at its maximum:
/// exact only because the sum is split into chunks.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn f64_path_splits_long_sums() {
    let dev = gpu_or_skip!(cuda_with(GemmPath::F64Limbs16), "f64_path_splits_long_sums");
    let k = (1 << 21) + 77;
    let spec = MatmulSpec { batch: 1, m: 2, k, n: 1, a_trans: false, b_trans: false };
    let a = vec![u64::MAX; spec.a_len()];
    let mut b = vec![u64::MAX; spec.b_len()];
    b[5] = 0x0001_0001_0001_0001;
    assert_eq!(matmul_both(&dev, &spec, &a, &b), matmul_both(&CpuDevice, &spec, &a, &b));
}

/// An inner dimension past 2^17 - 1 (the int8 digit bound) with every digit at -128 (the
/// largest digit product, 2^14): exact only because the sum is split into chunks.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn i8_path_splits_long_sums() {
    let dev = gpu_or_skip!(cuda_with(GemmPath::I8Digits8), "i8_path_splits_long_sums");
    let k = triad_cuda::gemm::I8_MAX_K + 77;
    let spec = MatmulSpec { batch: 1, m: 2, k, n: 1, a_trans: false, b_trans: false };
    // Bytes of x + 0x8080..80 are all zero: every balanced digit is -128.
    let worst = 0u64.wrapping_sub(0x8080_8080_8080_8080);
    let a = vec![worst; spec.a_len()];
    let mut b = vec![worst; spec.b_len()];
    b[5] = u64::MAX;
    assert_eq!(matmul_both(&dev, &spec, &a, &b), matmul_both(&CpuDevice, &spec, &a, &b));
}

/// Forward, gradient of the input, gradient of the weight.
fn conv_ops<D: Device>(dev: &D, p: &Conv2dParams, x: &[u64], w: &[u64], g: &[u64]) -> [Vec<u64>; 3] {
    let (x, w, g) = (dev.from_host(x).unwrap(), dev.from_host(w).unwrap(), dev.from_host(g).unwrap());
    [
        dev.to_host(&dev.conv2d(&x, &w, p).unwrap()).unwrap(),
        dev.to_host(&dev.conv2d_grad_input(&g, &w, p).unwrap()).unwrap(),
        dev.to_host(&dev.conv2d_grad_weight(&x, &g, p).unwrap()).unwrap(),
    ]
}

/// Convolutions large enough to choose the float64 path, against the CPU device.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn conv_large_matches_cpu() {
    let base = gpu_or_skip!(cuda(), "conv_large_matches_cpu");
    let shapes = [
        Conv2dParams::square(8, 16, 16, 32, 3, 1, 1),
        Conv2dParams::square(4, 3, 32, 64, 5, 2, 2),
        Conv2dParams { groups: 4, ..Conv2dParams::square(2, 16, 9, 8, 3, 1, 1) },
    ];
    for path in base.gemm_paths() {
        let dev = base.with_gemm_path(Some(path));
        for p in shapes {
            let x = triad_tests::words(p.input_shape().numel(), 3);
            let w = triad_tests::words(p.weight_shape().numel(), 4);
            let g = triad_tests::words(p.output_shape().numel(), 5);
            assert_eq!(conv_ops(&dev, &p, &x, &w, &g), conv_ops(&CpuDevice, &p, &x, &w, &g), "{path:?} {p:?}");
        }
    }
}

/// A strided view of rank above 8 (split into several launches) and a long PRG fill.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn high_rank_views_and_long_prg() {
    let dev = gpu_or_skip!(cuda(), "high_rank_views_and_long_prg");
    let dims = vec![2usize, 3, 2, 2, 3, 2, 2, 2, 3, 2];
    let n: usize = dims.iter().product();
    // Every other element along each axis of a buffer twice as wide: no merges possible.
    let mut strides = vec![0usize; dims.len()];
    let mut s = 2;
    for d in (0..dims.len()).rev() {
        strides[d] = s;
        s *= 2 * dims[d];
    }
    let view = triad_ring::StridedLayout { dims, strides, offset: 1 };
    let len = view.extent().unwrap();
    let data = triad_tests::words(len, 9);
    let want = CpuDevice.gather_strided(&data, &view).unwrap();
    let buf = dev.from_host(&data).unwrap();
    assert_eq!(dev.to_host(&dev.gather_strided(&buf, &view).unwrap()).unwrap(), want);
    let src = triad_tests::words(n, 10);
    let mut cpu_dst = data.clone();
    CpuDevice.scatter_strided(&mut cpu_dst, &src, &view).unwrap();
    let mut dst = dev.from_host(&data).unwrap();
    dev.scatter_strided(&mut dst, &dev.from_host(&src).unwrap(), &view).unwrap();
    assert_eq!(dev.to_host(&dst).unwrap(), cpu_dst);

    let key = triad_ring::PrgKey::from_bytes([7; 32]);
    for (offset, len) in [(5u64, 3_000_001usize), (u64::MAX - 12, 100)] {
        let want = CpuDevice.prg_fill(&key, 9, offset, len).unwrap();
        assert_eq!(dev.to_host(&dev.prg_fill(&key, 9, offset, len).unwrap()).unwrap(), want, "offset {offset}");
    }
}

// ---- protocols -------------------------------------------------------------------------------

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(30), ..LinkConfig::default() }
}

/// Party 0 shares x and w, then: elementwise product, matrix product with truncation,
/// convolution. Each party returns its two share components of every result.
fn protocol_flow<D: Device>(dev: D) -> [Vec<Vec<u64>>; 3] {
    let p = Conv2dParams::square(2, 3, 8, 4, 3, 1, 1);
    let (xs, ws) = (Shape::new([16, 24]), Shape::new([24, 8]));
    let (cx, cw) = (p.input_shape(), p.weight_shape());
    run_in_process_with_test_keys(dev, &link(), FixedConfig::default(), 11, |party: &Party<D>| {
        let owner = PartyId::ALL[0];
        let mine = party.id == owner;
        let input = |shape: &Shape, seed: u64| -> triad_sharing::Result<AShare<D>> {
            let t = if mine {
                Some(Tensor::from_vec(&party.dev, shape.dims().to_vec(), triad_tests::words(shape.numel(), seed))?)
            } else {
                None
            };
            party.share_input(owner, t.as_ref(), shape)
        };
        let (x, w) = (input(&xs, 1)?, input(&ws, 2)?);
        let x2 = input(&xs, 3)?;
        let (ix, iw) = (input(&cx, 4)?, input(&cw, 5)?);
        let prod = party.mul(&x, &x2)?;
        let mm = party.matmul(&x, &w)?;
        let conv = party.conv2d(&ix, &iw, &p)?;
        let random = party.random(&xs)?;
        let mut out = Vec::new();
        for s in [&prod, &mm, &conv, &random] {
            out.push(s.own.to_vec()?);
            out.push(s.next.to_vec()?);
        }
        Ok(out)
    })
    .unwrap()
}

/// The same protocol run with every party on the GPU gives the same shares, bit for bit,
/// as on the CPU (the PRG, products, reshares and truncations all agree).
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn sharing_protocols_match_cpu() {
    let dev = gpu_or_skip!(cuda(), "sharing_protocols_match_cpu");
    let want = protocol_flow(CpuDevice);
    assert_eq!(protocol_flow(dev.clone()), want, "chosen paths");
    for path in dev.gemm_paths() {
        assert_eq!(protocol_flow(dev.with_gemm_path(Some(path))), want, "{path:?}");
    }
}

/// Not ignored: without a GPU, opening one prints one clear line and the suite goes on;
/// with `TRIAD_REQUIRE_GPU=1` it fails. Checked on device 1000, which no machine has, and
/// on device 0 as this machine has it.
#[test]
fn a_missing_gpu_is_one_line_or_a_failure() {
    use triad_tests::gpu::decide;
    let (dev, line) = decide(CudaDevice::new(1000), false).unwrap();
    assert!(dev.is_none());
    assert!(line.starts_with("skipped: no CUDA device (") && !line.contains('\n'), "{line}");
    let err = decide(CudaDevice::new(1000), true).unwrap_err();
    assert!(err.starts_with("TRIAD_REQUIRE_GPU=1 but the CUDA device is unavailable"), "{err}");
    // This machine's device 0: present, or the line (a failure under TRIAD_REQUIRE_GPU=1).
    if cuda().is_none() {
        assert!(!triad_tests::gpu::required(), "cuda() returned None although the GPU is required");
    }
}

#[test]
fn unavailable_is_an_error_not_a_panic() {
    // Whatever this machine has, asking for a device far past any real ordinal must
    // report Unavailable (or, with no GPU at all, the reason there is none).
    match CudaDevice::new(1000) {
        Err(triad_ring::DeviceError::Unavailable { reason, .. }) => eprintln!("cuda:1000 unavailable: {reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Launches that a GPU refuses are errors, not wrong results: a kernel looked up in
/// another file's module, a block over the kernel's launch bounds (`gemm_u64_tiled` is
/// `__launch_bounds__(256)`), and shared memory over the 48 KiB a kernel gets without
/// opting in; the same launch within its limits computes. (The CPU-executed CUDA emulator
/// checks these from the CUBIN's metadata; a GPU checks them itself.)
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn launches_over_the_limits_are_refused() {
    use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
    use cudarc::nvrtc::Ptx;
    let dev = gpu_or_skip!(cuda(), "launches_over_the_limits_are_refused");
    let images = triad_cuda::nvrtc::compile_all_cached(dev.arch()).unwrap();
    let cubin = |name: &str| images.iter().find(|c| c.name == name).unwrap().cubin.clone();
    let ctx = CudaContext::new(0).unwrap();
    let elementwise = ctx.load_module(Ptx::from_binary(cubin("elementwise.cu"))).unwrap();
    assert!(elementwise.load_function("gemm_u64_tiled").is_err(), "a kernel of gemm.cu found in elementwise.cu");
    let gemm = ctx.load_module(Ptx::from_binary(cubin("gemm.cu"))).unwrap().load_function("gemm_u64_tiled").unwrap();
    let stream = ctx.default_stream();
    let (a, b) = (stream.clone_htod(&[3u64]).unwrap(), stream.clone_htod(&[5u64]).unwrap());
    let mut c = stream.clone_htod(&[0u64]).unwrap();
    let one = 1u64;
    let no = 0i32;
    let launch = |threads: u32, shared: u32, c: &mut cudarc::driver::CudaSlice<u64>| {
        let mut l = stream.launch_builder(&gemm);
        l.arg(c).arg(&a).arg(&b).arg(&one).arg(&one).arg(&one);
        l.arg(&one).arg(&one).arg(&one).arg(&one).arg(&one).arg(&one).arg(&one).arg(&no).arg(&no).arg(&no);
        let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: shared };
        // SAFETY: gemm_u64_tiled with m = n = k = batch = 1 reads a[0], b[0] and writes c[0],
        // all one-element allocations.
        unsafe { l.launch(cfg) }.map(|_| ())
    };
    assert!(launch(512, 0, &mut c).is_err(), "512 threads over __launch_bounds__(256)");
    assert!(launch(256, 40 * 1024, &mut c).is_err(), "16 KiB static + 40 KiB dynamic shared memory over 48 KiB");
    launch(256, 0, &mut c).unwrap();
    assert_eq!(stream.clone_dtoh(&c).unwrap(), vec![15]);
}

// ---- host transfers --------------------------------------------------------------------------

/// Whether the pinned staging buffers are expected: everywhere, except under the emulator
/// with `CUEMU_PINNED_BYTES=0`, which makes `cuMemHostAlloc` fail (the pageable fallback).
fn pinned_expected() -> bool {
    std::env::var("CUEMU_PINNED_BYTES").map_or(true, |v| v != "0")
}

/// Round trips through the staging buffers of every size that matters: empty, one element,
/// odd sizes, one chunk exactly, one element either side of it, and several chunks (so that
/// both buffers are reused while copies from them may still be in flight), bit exact.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn transfers_round_trip_bit_exact() {
    let dev = gpu_or_skip!(cuda(), "transfers_round_trip_bit_exact");
    assert_eq!(dev.pinned_staging(), pinned_expected(), "staging of {}", dev.name());
    let chunk = triad_cuda::STAGING_CHUNK_ELEMS;
    for n in [0, 1, 3, 7, 1001, 4097, chunk - 1, chunk, chunk + 1, 2 * chunk + 5, 3 * chunk + 12_345] {
        let data = triad_tests::words(n, n as u64 + 17);
        let buf = dev.from_host(&data).unwrap();
        assert_eq!(dev.len(&buf), n);
        assert_eq!(dev.to_host(&buf).unwrap(), data, "{n} elements");
    }
}

/// Uploads, kernels and downloads interleaved: several uploads back to back (each reusing a
/// staging buffer whose last copy may be in flight), kernels reading them, a download
/// between two uploads, and three threads transferring at once through one device's pool;
/// every result against the CPU device.
#[test]
#[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
fn transfers_interleaved_with_compute() {
    use triad_ring::BinaryOp;
    let dev = gpu_or_skip!(cuda(), "transfers_interleaved_with_compute");
    let chunk = triad_cuda::STAGING_CHUNK_ELEMS;
    let flow = |d: &CudaDevice, n: usize, seed: u64| {
        let (x, y, z) = (triad_tests::words(n, seed), triad_tests::words(n, seed + 1), triad_tests::words(n, seed + 2));
        let (bx, by) = (d.from_host(&x).unwrap(), d.from_host(&y).unwrap());
        let sum = d.binary(BinaryOp::Add, &bx, &by).unwrap();
        let bz = d.from_host(&z).unwrap();
        let prod = d.binary(BinaryOp::Mul, &sum, &bz).unwrap();
        let got_sum = d.to_host(&sum).unwrap();
        let bw = d.from_host(&got_sum).unwrap();
        let diff = d.binary(BinaryOp::Sub, &prod, &bw).unwrap();
        let cpu = CpuDevice;
        let want_sum = cpu.binary(BinaryOp::Add, &x, &y).unwrap();
        let want_prod = cpu.binary(BinaryOp::Mul, &want_sum, &z).unwrap();
        let want_diff = cpu.binary(BinaryOp::Sub, &want_prod, &want_sum).unwrap();
        assert_eq!(got_sum, want_sum, "sum, {n} elements");
        assert_eq!(d.to_host(&diff).unwrap(), want_diff, "difference, {n} elements");
        assert_eq!(d.to_host(&prod).unwrap(), want_prod, "product, {n} elements");
    };
    for (i, n) in [1, 5, chunk + 3, 2 * chunk + 1].into_iter().enumerate() {
        flow(&dev, n, 100 + 10 * i as u64);
    }
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let d = dev.clone();
            s.spawn(move || {
                for (i, n) in [chunk / 2 + t as usize, 3, chunk + 11].into_iter().enumerate() {
                    flow(&d, n, 1000 * (t + 1) + 10 * i as u64);
                }
            });
        }
    });
}
