//! Ring GEMM / conv vs an f64 GEMM (matrixmultiply) on the same shapes, same run.
//!
//! `cargo bench -p triad-ring --bench gemm [-- FILTER]` (or `GEMM_BENCH_FILTER=FILTER`):
//! prints a markdown table; rows whose name does not contain FILTER are skipped.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use triad_ring::cpu::{conv, gemm};
use triad_ring::Conv2dParams;

/// Median of `runs` timed calls after `warm` warm-up calls, in seconds.
fn time(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64();
    // Aim for ~0.4 s of timed work per measurement, 5..=30 runs.
    let runs = ((0.4 / once.max(1e-6)) as usize).clamp(5, 30);
    for _ in 0..2.min(runs) {
        f();
    }
    let mut ts: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ts[runs / 2]
}

fn fill(len: usize, seed: u64) -> Vec<u64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s ^ (s >> 29)
        })
        .collect()
}

fn f64_gemm_time(m: usize, k: usize, n: usize) -> f64 {
    let a: Vec<f64> = (0..m * k).map(|i| (i % 7) as f64).collect();
    let b: Vec<f64> = (0..k * n).map(|i| (i % 5) as f64).collect();
    let mut c = vec![0f64; m * n];
    time(|| {
        // SAFETY: a is m x k, b is k x n, c is m x n, all row-major and in bounds.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        black_box(&mut c);
    })
}

fn row(name: &str, macs: f64, ring: f64, f: f64) {
    println!(
        "| {name} | {:.3} | {:.2} | {:.3} | {:.2} | {:.0}% |",
        ring * 1e3,
        macs / ring / 1e9,
        f * 1e3,
        macs / f / 1e9,
        100.0 * f / ring
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("GEMM_BENCH_FILTER").ok())
        .unwrap_or_default();
    println!("CPU: {} ({} threads)", cpu_model(), rayon::current_num_threads());
    println!("ring kernel: {}", gemm::kernel_name());
    println!("available kernels: {:?}", gemm::Kernel::available());
    println!();
    println!("| shape | ring ms | ring GMAC/s | f64 ms | f64 GMAC/s | ring/f64 |");
    println!("|---|---:|---:|---:|---:|---:|");

    for &(m, k, n) in &[(128usize, 800usize, 500usize), (512, 512, 512), (1024, 1024, 1024)] {
        let name = format!("gemm {m}x{k}x{n}");
        if !name.contains(&filter) {
            continue;
        }
        let a = fill(m * k, 1);
        let b = fill(k * n, 2);
        let mut c = vec![0u64; m * n];
        let ring = time(|| {
            gemm::gemm(m, k, n, &a, false, &b, false, &mut c);
            black_box(&mut c);
        });
        let f = f64_gemm_time(m, k, n);
        row(&name, (m * k * n) as f64, ring, f);
        if std::env::var_os("GEMM_BENCH_KERNELS").is_some() {
            for kn in gemm::Kernel::available() {
                let t = time(|| {
                    gemm::gemm_with(kn, m, k, n, &a, false, &b, false, &mut c);
                    black_box(&mut c);
                });
                row(&format!("{name} [{kn:?}]"), (m * k * n) as f64, t, f);
            }
        }
    }

    let mut convs: Vec<(String, Conv2dParams)> = Vec::new();
    for batch in [1usize, 128] {
        convs.push((format!("lenet conv1 b{batch} 1->20 28x28 k5"), Conv2dParams::square(batch, 1, 28, 20, 5, 1, 0)));
        convs.push((format!("lenet conv2 b{batch} 20->50 12x12 k5"), Conv2dParams::square(batch, 20, 12, 50, 5, 1, 0)));
    }
    let vgg = [
        (3usize, 64usize, 32usize),
        (64, 64, 32),
        (64, 128, 16),
        (128, 128, 16),
        (128, 256, 8),
        (256, 256, 8),
        (256, 512, 4),
        (512, 512, 4),
        (512, 512, 2),
    ];
    for batch in [1usize, 32] {
        for &(ic, oc, hw) in &vgg {
            convs.push((
                format!("vgg16 b{batch} {ic}->{oc} {hw}x{hw} k3p1"),
                Conv2dParams::square(batch, ic, hw, oc, 3, 1, 1),
            ));
        }
    }
    for (name, p) in convs {
        let name = format!("conv {name}");
        if !name.contains(&filter) {
            continue;
        }
        let input = fill(p.input_shape().numel(), 3);
        let weight = fill(p.weight_shape().numel(), 4);
        let ring = time(|| {
            black_box(conv::forward(&input, &weight, &p));
        });
        // The equivalent im2col product: [OC x C*KH*KW] · [C*KH*KW x N*OH*OW].
        let (m, k, n) = (p.out_c, p.in_c / p.groups * p.kh * p.kw, p.batch * p.out_h() * p.out_w());
        let f = f64_gemm_time(m, k, n);
        row(&name, p.macs() as f64, ring, f);
    }
}
