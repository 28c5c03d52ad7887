#![allow(clippy::unwrap_used)]

use super::super::operand::{Out, View};
use super::*;

fn rng(seed: &mut u64) -> u64 {
    // splitmix64
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn naive(m: usize, k: usize, n: usize, a: &[u64], at: bool, b: &[u64], bt: bool) -> Vec<u64> {
    let mut c = vec![0u64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0u64;
            for kk in 0..k {
                let av = if at { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if bt { b[j * k + kk] } else { b[kk * n + j] };
                s = s.wrapping_add(av.wrapping_mul(bv));
            }
            c[i * n + j] = s;
        }
    }
    c
}

fn check(kernel: Option<Kernel>, m: usize, k: usize, n: usize, seed: &mut u64) {
    let a: Vec<u64> = (0..m * k).map(|_| rng(seed)).collect();
    let b: Vec<u64> = (0..k * n).map(|_| rng(seed)).collect();
    for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
        let want = naive(m, k, n, &a, at, &b, bt);
        let mut c = vec![0xDEAD_BEEFu64; m * n];
        match kernel {
            Some(kn) => gemm_with(kn, m, k, n, &a, at, &b, bt, &mut c),
            None => gemm(m, k, n, &a, at, &b, bt, &mut c),
        }
        assert_eq!(c, want, "kernel {kernel:?} m={m} k={k} n={n} at={at} bt={bt}");
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (0, 0, 0),
    (0, 5, 3),
    (3, 0, 5),
    (4, 7, 0),
    (1, 1, 1),
    (1, 2, 1),
    (2, 3, 5),
    (7, 13, 17),
    (8, 16, 16),
    (9, 1, 33),
    (17, 31, 19),
    (31, 2, 29),
    (37, 41, 43),
    (64, 64, 64),
    (65, 257, 67),
    (3, 301, 2),
];

#[test]
fn every_kernel_matches_naive() {
    let mut seed = 1;
    let kernels = Kernel::available();
    assert!(kernels.contains(&Kernel::Scalar));
    assert_eq!(kernels[0], Kernel::detect());
    for kn in kernels {
        for &(m, k, n) in SHAPES {
            check(Some(kn), m, k, n, &mut seed);
        }
    }
}

#[test]
fn dispatching_entry_matches_naive() {
    let mut seed = 2;
    for &(m, k, n) in SHAPES {
        check(None, m, k, n, &mut seed);
    }
    // Blocks split across several parallel tasks and cache blocks.
    check(None, 300, 20, 600, &mut seed);
    // A few rows past the tiny size (gemm_few_rows), partial column blocks included.
    check(None, 1, 800, 500, &mut seed);
    check(None, 4, 333, 65, &mut seed);
    check(None, 3, 3000, 7, &mut seed);
    check(None, 130, 300, 70, &mut seed);
    // Dot products around the AVX-512 loop's 32-word steps, and its tail.
    for k in [31, 32, 33, 64, 95] {
        check(None, 2, k, 300, &mut seed);
    }
}

/// The few-columns path of the operands' entry against the naive product: a row-major
/// `a` and few columns (1, 4, 5, 12, 16), including row blocks with a partial last one
/// (the last group of four rows one, two or three rows), and columns too long for it (the
/// packed path).
#[test]
fn few_columns_match_naive() {
    let mut seed = 5;
    let shapes = [
        (5, 2000, 1),
        (37, 300, 4),
        (100, 1000, 16),
        (24, 9000, 16),
        (6, 100, 17),
        (9, 4608, 16),
        (7, 1040, 5),
        (35, 333, 12),
    ];
    // k below, at and past chunks of 16 (the Winograd chunks and their plain tail), odd
    // k, and every column count up to 16 (blocks of four columns and their remainders).
    let more = (1..=16).map(|n| (9, 1024 + [15, 16, 17, 33, 47, 160][n % 6], n));
    for (m, k, n) in shapes.into_iter().chain(more) {
        let a: Vec<u64> = (0..m * k).map(|_| rng(&mut seed)).collect();
        let b: Vec<u64> = (0..k * n).map(|_| rng(&mut seed)).collect();
        let mut c = vec![0xDEAD_BEEFu64; m * n];
        gemm_ops(m, k, n, &View::rows(&a, k), &View::cols(&b, n), Out::dense(&mut c, n));
        assert_eq!(c, naive(m, k, n, &a, false, &b, false), "m={m} k={k} n={n}");
    }
}

#[test]
fn huge_k() {
    let mut seed = 3;
    for kn in Kernel::available() {
        check(Some(kn), 5, 4099, 11, &mut seed);
        check(Some(kn), 1, 20_000, 1, &mut seed);
    }
    check(None, 19, 3001, 23, &mut seed);
}

#[test]
fn random_sizes() {
    let mut seed = 4;
    for _ in 0..40 {
        let m = (rng(&mut seed) % 50) as usize;
        let k = (rng(&mut seed) % 90) as usize;
        let n = (rng(&mut seed) % 50) as usize;
        check(None, m, k, n, &mut seed);
        let kn = Kernel::available()[(rng(&mut seed) % Kernel::available().len() as u64) as usize];
        check(Some(kn), m, k, n, &mut seed);
    }
}

#[test]
fn extreme_values_wrap() {
    let (m, k, n) = (9, 33, 17);
    for kn in Kernel::available() {
        let a = vec![u64::MAX; m * k];
        let b = vec![u64::MAX - 1; k * n];
        let mut c = vec![0u64; m * n];
        gemm_with(kn, m, k, n, &a, false, &b, false, &mut c);
        assert_eq!(c, naive(m, k, n, &a, false, &b, false), "{kn:?}");
    }
}
