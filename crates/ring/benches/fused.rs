//! The CPU device's fused methods against their default definitions (`device::fused`,
//! which the CUDA and dry-run devices run), on the size of LeNet's first activation at
//! batch 128 (1,474,560 words), and the batch-1 linear product.
//!
//! `cargo bench -p triad-ring --bench fused [-- FILTER]`: prints a markdown table of
//! medians; rows whose name does not contain FILTER are skipped.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use triad_ring::cpu::gemm;
use triad_ring::device::fused;
use triad_ring::{Addend, BitRange, CpuDevice, Device, Pool2dParams, PrgKey, PrgTerm};

const N: usize = 128 * 20 * 24 * 24;

/// Median of 15 timed calls after two warm-up calls, in milliseconds.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut ts: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ts[7]
}

fn words(seed: u64, n: usize) -> Vec<u64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s ^ (s >> 29)
        })
        .collect()
}

fn row(filter: &str, name: &str, fused: impl FnMut(), default: impl FnMut()) {
    if !name.contains(filter) {
        return;
    }
    let (a, b) = (time(fused), time(default));
    println!("| {name} | {a:.2} | {b:.2} | {:.1}x |", b / a);
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let dev = CpuDevice::new();
    println!("| {N} words (LeNet's first activation, batch 128) | CPU ms | default ms | ratio |");
    println!("|---|---:|---:|---:|");
    let v: Vec<Vec<u64>> = (0..4).map(|k| words(k, N)).collect();
    let (k0, k1) = (PrgKey::from_bytes([1; 32]), PrgKey::from_bytes([2; 32]));
    let term = |key, stream, negate| PrgTerm { key, stream, negate };
    let zero = [term(&k0, 1, false), term(&k1, 1, true)];

    row(
        &filter,
        "add_prg (a zero sharing added)",
        || dev.add_prg(&mut v[0].clone(), &zero).unwrap(),
        || fused::add_prg(&dev, &mut v[0].clone(), &zero).unwrap(),
    );
    row(
        &filter,
        "mul_part (an elementwise product's part)",
        || drop(black_box(dev.mul_part([&v[0], &v[1]], [&v[2], &v[3]], &zero).unwrap())),
        || drop(black_box(fused::mul_part(&dev, [&v[0], &v[1]], [&v[2], &v[3]], &zero).unwrap())),
    );
    let mask = 0x7FFF_FFFE_0000_0000;
    row(
        &filter,
        "and_part_packed (31 lanes)",
        || drop(black_box(dev.and_part_packed([&v[0], &v[1]], [&v[2], &v[3]], 32, [&k0, &k1], 3, mask).unwrap())),
        || {
            drop(black_box(
                fused::and_part_packed(&dev, [&v[0], &v[1]], [&v[2], &v[3]], 32, [&k0, &k1], 3, mask).unwrap(),
            ))
        },
    );
    let (r, e) = ([term(&k0, 4, false), term(&k1, 4, false)], (term(&k1, 5, true), term(&k1, 6, true)));
    row(
        &filter,
        "truncate_deal (the dealer)",
        || drop(black_box(dev.truncate_deal(&v[0], 20, r, e.0, e.1).unwrap())),
        || drop(black_box(fused::truncate_deal(&dev, &v[0], 20, r, e.0, e.1).unwrap())),
    );
    let plus = [Addend::Prg(term(&k0, 7, false)), Addend::Prg(term(&k1, 8, false))];
    row(
        &filter,
        "truncate_open (an opener, its resharing's mask)",
        || drop(black_box(dev.truncate_open([&v[0], &v[1]], 20, true, Addend::Prg(e.0), &plus).unwrap())),
        || drop(black_box(fused::truncate_open(&dev, [&v[0], &v[1]], 20, true, Addend::Prg(e.0), &plus).unwrap())),
    );
    let third = N / 3;
    let bits = BitRange { src: &v[0], also: Some(&v[1]), bit: 63, from: third, count: third };
    row(
        &filter,
        "inject_offer (a third)",
        || drop(black_box(dev.inject_offer(bits, &k0, 9).unwrap())),
        || drop(black_box(fused::inject_offer(&dev, bits, &k0, 9).unwrap())),
    );
    row(
        &filter,
        "inject_pick (a third)",
        || drop(black_box(dev.inject_pick(bits, &k0, 9, &v[2]).unwrap())),
        || drop(black_box(fused::inject_pick(&dev, bits, &k0, 9, &v[2]).unwrap())),
    );
    row(
        &filter,
        "inject_receive (a third)",
        || drop(black_box(dev.inject_receive(bits, (&v[3], 0), (&v[2], 0), &v[1]).unwrap())),
        || drop(black_box(fused::inject_receive(&dev, bits, (&v[3], 0), (&v[2], 0), &v[1]).unwrap())),
    );
    let p = Pool2dParams {
        batch: 128,
        channels: 20,
        in_h: 24,
        in_w: 24,
        kh: 2,
        kw: 2,
        stride_h: 2,
        stride_w: 2,
        pad_h: 0,
        pad_w: 0,
    };
    if "pool_sum 2x2 (no default)".contains(&filter) {
        println!(
            "| pool_sum 2x2 (no default) | {:.2} | | |",
            time(|| drop(black_box(dev.pool_sum(&v[0], &p).unwrap())))
        );
    }
    let (a, b) = (words(10, 800), words(11, 800 * 500));
    let mut c = vec![0u64; 500];
    if "gemm 1x800x500, b transposed (no default)".contains(&filter) {
        let t = time(|| gemm::gemm(1, 800, 500, &a, false, &b, true, &mut c));
        println!("| gemm 1x800x500, b transposed (no default) | {t:.3} | | |");
    }
}
