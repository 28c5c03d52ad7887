//! Differential tests of the comparison protocols (`triad-compare`): three parties over
//! real in-process links, reconstructed results against the ideal functionalities of
//! `triad_spec::compare`, with edge values and odd shapes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_compare as cmp;
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Pool2dParams, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, BShare, Party};
use triad_spec::compare as ideal;
use triad_tests::SplitMix;
use triad_transport::{LinkConfig, PartyId};

type P = Party<CpuDevice>;
type Parts = (Vec<u64>, Vec<u64>);

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(30), ..LinkConfig::default() }
}

fn run<R: Send>(seed: u64, f: impl Fn(&P) -> triad_sharing::Result<R> + Sync) -> [R; 3] {
    run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, f).unwrap()
}

fn parts(s: &AShare<CpuDevice>) -> Parts {
    (s.own.to_vec().unwrap(), s.next.to_vec().unwrap())
}

fn bparts(s: &BShare<CpuDevice>) -> Parts {
    (s.own.to_vec().unwrap(), s.next.to_vec().unwrap())
}

fn check_replicated(p: &[Parts; 3]) {
    for i in 0..3 {
        assert_eq!(p[i].1, p[(i + 1) % 3].0, "party {i}'s next component is not party {}'s own", (i + 1) % 3);
    }
}

fn open(p: &[Parts; 3]) -> Vec<u64> {
    check_replicated(p);
    (0..p[0].0.len()).map(|j| p[0].0[j].wrapping_add(p[1].0[j]).wrapping_add(p[2].0[j])).collect()
}

fn open_xor(p: &[Parts; 3]) -> Vec<u64> {
    check_replicated(p);
    (0..p[0].0.len()).map(|j| p[0].0[j] ^ p[1].0[j] ^ p[2].0[j]).collect()
}

fn col<T: Clone>(out: &[Vec<T>; 3], k: usize) -> [T; 3] {
    [out[0][k].clone(), out[1][k].clone(), out[2][k].clone()]
}

fn share(p: &P, x: &[u64], shape: &Shape) -> AShare<CpuDevice> {
    let owner = PartyId::ALL[0];
    let t = (p.id == owner).then(|| Tensor::from_vec(&p.dev, shape.clone(), x.to_vec()).unwrap());
    p.share_input(owner, t.as_ref(), shape).unwrap()
}

const EDGES: [u64; 12] = [
    0,
    1,
    u64::MAX,                    // -1 ulp
    (1 << 63) - 1,               // largest
    1 << 63,                     // most negative
    (1 << 63) + 1,               // most negative + 1
    1 << 62,                     // 2^62
    (1u64 << 62).wrapping_neg(), // -2^62
    (1 << 62) - 1,
    (1u64 << 62).wrapping_neg() + 1,
    2,
    u64::MAX - 1,
];

/// `n` ring values: the edges first, then uniform words.
fn ring_values(n: usize, seed: u64) -> Vec<u64> {
    let mut g = SplitMix(seed);
    (0..n).map(|k| if k < EDGES.len() { EDGES[k] } else { g.next_u64() }).collect()
}

/// `n` values in the fixed-point range `|x| < 2^62`, some tiny (near 0), some large.
fn fixed_values(n: usize, seed: u64) -> Vec<u64> {
    let mut g = SplitMix(seed);
    (0..n)
        .map(|k| {
            let r = g.next_u64();
            match k % 4 {
                0 => ((r >> 2) as i64 >> (r % 60)) as u64, // |v| < 2^62, any scale
                1 => (r % 7).wrapping_sub(3),              // -3 ..= 3: many ties
                2 => ((r >> 2) as i64 >> 1) as u64,        // large
                _ => (r >> 2) | (1 << 63) | (1 << 62),     // in [-2^62, 0): -2^62 itself possible
            }
        })
        .map(|v| if v == (1u64 << 62).wrapping_neg() { v + 1 } else { v })
        .collect()
}

const SIZES: [usize; 6] = [1, 2, 7, 63, 65, 1000];

#[test]
fn msb_drelu_and_gtz_are_exact_for_every_ring_value() {
    for (s, &n) in SIZES.iter().enumerate() {
        let x = ring_values(n, 100 + s as u64);
        let shape = Shape::new([n]);
        let out = run(3, |p| {
            let a = share(p, &x, &shape);
            Ok(vec![bparts(&cmp::msb(p, &a)?), bparts(&cmp::drelu(p, &a)?), bparts(&cmp::gtz(p, &a)?)])
        });
        let msb = open_xor(&col(&out, 0));
        let drelu = open_xor(&col(&out, 1));
        let gtz = open_xor(&col(&out, 2));
        for k in 0..n {
            assert_eq!(msb[k], ideal::msb(x[k]), "msb of {:#x} (n = {n})", x[k]);
            assert_eq!(drelu[k], ideal::drelu(x[k]), "drelu of {:#x}", x[k]);
            if x[k] != 1 << 63 {
                assert_eq!(gtz[k], ideal::gtz(x[k]), "gtz of {:#x}", x[k]);
            }
        }
    }
}

/// The sign from the low bits: the ideal `msb_within` (bit `bits - 1`) for every ring value,
/// the edges of its domain among them, so it is the MSB exactly on the domain; and ReLU
/// on it, forward and backward.
#[test]
fn msb_and_relu_within_match_the_ideal_at_every_width() {
    for (s, &bits) in [2u32, 17, 42, 48, 63, 64].iter().enumerate() {
        let n = 300;
        let top = 1u64 << (bits - 1);
        let mut x = ring_values(n, 500 + s as u64);
        // The domain's edges, inside and out, and values of every scale.
        let edges = [top.wrapping_sub(1), top, top.wrapping_neg(), top.wrapping_neg().wrapping_sub(1)];
        x[..4].copy_from_slice(&edges);
        for (k, v) in x.iter_mut().enumerate().skip(12).step_by(2) {
            *v = ((*v as i64) >> (k % 64)) as u64;
        }
        let g = SplitMix(600 + s as u64).words(n);
        let shape = Shape::new([n]);
        let out = run(8, |p| {
            let a = share(p, &x, &shape);
            let gr = share(p, &g, &shape);
            let m = cmp::msb_within(p, &a, bits)?;
            let r = cmp::relu_within(p, &a, bits)?;
            let back = cmp::relu_backward(p, &gr, &r.mask)?;
            Ok(vec![bparts(&m), parts(&r.out), parts(&back)])
        });
        let (m, y, back) = (open_xor(&col(&out, 0)), open(&col(&out, 1)), open(&col(&out, 2)));
        let mut inside = 0;
        for k in 0..n {
            assert_eq!(m[k], ideal::msb_within(x[k], bits), "msb_within {bits} of {:#x}", x[k]);
            assert_eq!(y[k], ideal::relu_within(x[k], bits), "relu_within {bits} of {:#x}", x[k]);
            let d = 1 - ideal::msb_within(x[k], bits);
            assert_eq!(back[k], g[k].wrapping_mul(d), "relu backward at {:#x}", x[k]);
            if ideal::in_sign_domain(x[k], bits) {
                inside += 1;
                assert_eq!(m[k], ideal::msb(x[k]), "inside the domain, the MSB of {:#x}", x[k]);
            }
        }
        assert!(inside >= 3, "{bits} bits: only {inside} values inside the domain");
    }
    // Widths outside 2..=64 are a usage error, not a panic.
    let out = run(8, |p| {
        let a = share(p, &[1, 2], &Shape::new([2]));
        Ok([1u32, 65].map(|b| cmp::msb_within(p, &a, b).is_err()))
    });
    assert!(out.iter().all(|r| r.iter().all(|&e| e)));
}

#[test]
fn comparisons_match_the_ideal_in_range() {
    for (s, &n) in SIZES.iter().enumerate() {
        let x = fixed_values(n, 7 + s as u64);
        let mut y = fixed_values(n, 70 + s as u64);
        // Equal pairs too.
        for k in (0..n).step_by(5) {
            y[k] = x[k];
        }
        let shape = Shape::new([n]);
        let out = run(4, |p| {
            let a = share(p, &x, &shape);
            let b = share(p, &y, &shape);
            Ok(vec![bparts(&cmp::lt(p, &a, &b)?), bparts(&cmp::gt(p, &a, &b)?), bparts(&cmp::ge(p, &a, &b)?)])
        });
        let (lt, gt, ge) = (open_xor(&col(&out, 0)), open_xor(&col(&out, 1)), open_xor(&col(&out, 2)));
        for k in 0..n {
            assert!(ideal::in_domain(x[k], y[k]));
            assert_eq!(lt[k], ideal::lt(x[k], y[k]), "{:#x} < {:#x}", x[k], y[k]);
            assert_eq!(gt[k], ideal::gt(x[k], y[k]), "{:#x} > {:#x}", x[k], y[k]);
            assert_eq!(ge[k], ideal::ge(x[k], y[k]), "{:#x} >= {:#x}", x[k], y[k]);
        }
    }
}

#[test]
fn relu_forward_and_backward_are_exact() {
    for (s, &n) in SIZES.iter().enumerate() {
        let x = ring_values(n, 200 + s as u64);
        let g = SplitMix(300 + s as u64).words(n);
        let shape = Shape::new([n]);
        let out = run(5, |p| {
            let a = share(p, &x, &shape);
            let gr = share(p, &g, &shape);
            let r = cmp::relu(p, &a)?;
            let back = cmp::relu_backward(p, &gr, &r.mask)?;
            Ok(vec![parts(&r.out), parts(&r.mask), parts(&back)])
        });
        let (y, mask, back) = (open(&col(&out, 0)), open(&col(&out, 1)), open(&col(&out, 2)));
        for k in 0..n {
            assert_eq!(y[k], ideal::relu(x[k]), "relu of {:#x}", x[k]);
            assert_eq!(mask[k], ideal::drelu(x[k]), "drelu of {:#x}", x[k]);
            assert_eq!(back[k], ideal::relu_backward(g[k], x[k]), "relu backward at {:#x}", x[k]);
        }
    }
}

#[test]
fn a2b_and_b2a_round_trip() {
    for (s, &n) in SIZES.iter().enumerate() {
        let x = ring_values(n, 400 + s as u64);
        let shape = Shape::new([n]);
        let out = run(6, |p| {
            let a = share(p, &x, &shape);
            let b = cmp::a2b(p, &a)?;
            let back = cmp::b2a(p, &b)?;
            Ok((bparts(&b), parts(&back)))
        });
        let bin = open_xor(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]);
        let arith = open(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]);
        assert_eq!(bin, x, "a2b, n = {n}");
        assert_eq!(arith, x, "b2a, n = {n}");
    }
}

#[test]
fn inject_bit_of_random_binary_sharings_in_every_lane_position() {
    for (s, &n) in SIZES.iter().enumerate() {
        for lane in [0u32, 1, 31, 63] {
            let out = run(7 + s as u64, |p| {
                // A random binary sharing: the components of a random arithmetic sharing.
                let r = p.random(&Shape::new([n]))?;
                let b = BShare { own: r.own, next: r.next };
                let a = cmp::inject_bit(p, &b, lane)?;
                Ok((bparts(&b), parts(&a)))
            });
            let bits = open_xor(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]);
            let arith = open(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]);
            for k in 0..n {
                assert_eq!(arith[k], (bits[k] >> lane) & 1, "lane {lane}, element {k} of {n}");
            }
        }
    }
}

#[test]
fn masked_and_keeps_only_the_mask_lanes() {
    let n = 129;
    for mask in [u64::MAX, 0, 1, 1 << 63, 0x2AAA_AAAA_AAAA_AAA8, 0xF0F0_0000_FFFF_0001] {
        let out = run(8, |p| {
            let x = p.random(&Shape::new([n]))?;
            let y = p.random(&Shape::new([n]))?;
            let (x, y) = (BShare { own: x.own, next: x.next }, BShare { own: y.own, next: y.next });
            let z = cmp::and_packed(p, &x, &y, mask)?;
            Ok(vec![bparts(&x), bparts(&y), bparts(&z)])
        });
        let (x, y, z) = (open_xor(&col(&out, 0)), open_xor(&col(&out, 1)), open_xor(&col(&out, 2)));
        for k in 0..n {
            assert_eq!(z[k], x[k] & y[k] & mask);
        }
        // Lanes outside the mask are zero in every component.
        for o in &out {
            assert!(o[2].0.iter().all(|v| v & !mask == 0));
        }
    }
}

fn max_case(dims: &[usize], axis: usize, seed: u64) {
    let shape = Shape::new(dims.to_vec());
    let n = shape.numel();
    let x = fixed_values(n, seed);
    let mut out_dims = dims.to_vec();
    out_dims.remove(axis);
    let g = fixed_values(out_dims.iter().product(), seed + 1);
    let gshape = Shape::new(out_dims);
    let out = run(9, |p| {
        let a = share(p, &x, &shape);
        let gr = share(p, &g, &gshape);
        let m = cmp::max_axis(p, &a, axis)?;
        let am = cmp::argmax_axis(p, &a, axis)?;
        let back = cmp::max_axis_backward(p, &gr, &am, axis)?;
        Ok(vec![parts(&m), parts(&am.max), parts(&am.onehot), parts(&back)])
    });
    let want = ideal::max_axis(&x, dims, axis);
    let onehot = ideal::argmax_axis(&x, dims, axis);
    assert_eq!(open(&col(&out, 0)), want, "max over axis {axis} of {dims:?}");
    assert_eq!(open(&col(&out, 1)), want, "argmax's max over axis {axis} of {dims:?}");
    assert_eq!(open(&col(&out, 2)), onehot, "argmax over axis {axis} of {dims:?}");
    assert_eq!(open(&col(&out, 3)), ideal::max_axis_backward(&g, &onehot, dims, axis), "max backward");
}

#[test]
fn max_and_argmax_along_odd_axes() {
    max_case(&[1], 0, 1);
    max_case(&[7], 0, 2);
    max_case(&[2, 1, 3], 1, 3);
    max_case(&[3, 5, 2], 1, 4);
    max_case(&[4, 9], 1, 5);
    max_case(&[6, 4], 0, 6);
    max_case(&[2, 13, 3], 1, 7);
    max_case(&[3, 2, 10], 2, 8);
    max_case(&[1, 33], 1, 9);
}

fn pool(
    batch: usize,
    channels: usize,
    hw: (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    pad: (usize, usize),
) -> Pool2dParams {
    Pool2dParams {
        batch,
        channels,
        in_h: hw.0,
        in_w: hw.1,
        kh: k.0,
        kw: k.1,
        stride_h: s.0,
        stride_w: s.1,
        pad_h: pad.0,
        pad_w: pad.1,
    }
}

fn maxpool_case(pp: Pool2dParams, seed: u64) {
    let sp = triad_tests::convert::pool_back(&pp);
    let x = fixed_values(pp.input_shape().numel(), seed);
    let g = fixed_values(pp.output_shape().numel(), seed + 1);
    let out = run(10, |p| {
        let a = share(p, &x, &pp.input_shape());
        let gr = share(p, &g, &pp.output_shape());
        let mp = cmp::maxpool(p, &a, &pp)?;
        let back = cmp::maxpool_backward(p, &gr, &mp)?;
        Ok(vec![parts(&mp.out), parts(&mp.onehot), parts(&back)])
    });
    let (want, onehot) = ideal::maxpool(&x, &sp);
    assert_eq!(open(&col(&out, 0)), want, "maxpool {pp:?}");
    assert_eq!(open(&col(&out, 1)), onehot, "maxpool one-hot {pp:?}");
    assert_eq!(open(&col(&out, 2)), ideal::maxpool_backward(&g, &onehot, &sp), "maxpool backward {pp:?}");
}

#[test]
fn maxpool_forward_and_backward_with_odd_sizes_strides_and_padding() {
    maxpool_case(pool(2, 3, (6, 6), (2, 2), (2, 2), (0, 0)), 1);
    maxpool_case(pool(1, 2, (7, 5), (3, 2), (2, 1), (1, 1)), 2);
    maxpool_case(pool(2, 1, (5, 5), (3, 3), (3, 3), (1, 1)), 3);
    maxpool_case(pool(1, 1, (1, 1), (1, 1), (1, 1), (0, 0)), 4);
    maxpool_case(pool(1, 3, (4, 7), (2, 3), (1, 2), (1, 2)), 5);
}

#[test]
fn maxpool_padding_never_wins_over_very_negative_values() {
    // Every real value is near the bottom of the range: padding (-2^62) must still lose.
    let pp = pool(1, 1, (3, 3), (3, 3), (1, 1), (1, 1));
    let sp = triad_tests::convert::pool_back(&pp);
    let x: Vec<u64> = (0..9u64).map(|k| (1u64 << 62).wrapping_neg() + 1 + (k % 2)).collect();
    let out = run(11, |p| {
        let a = share(p, &x, &pp.input_shape());
        let mp = cmp::maxpool(p, &a, &pp)?;
        Ok(vec![parts(&mp.out), parts(&mp.onehot)])
    });
    let (want, onehot) = ideal::maxpool(&x, &sp);
    assert_eq!(open(&col(&out, 0)), want);
    assert_eq!(open(&col(&out, 1)), onehot);
}
