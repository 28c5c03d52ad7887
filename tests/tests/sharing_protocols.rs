//! Differential tests of the sharing protocols: three parties over real in-process links,
//! reconstructed results against the ideal functionality, the replication invariant, and
//! the documented costs. (Bit-exact agreement with the simulator is in `sharing_spec.rs`;
//! the same protocols over TCP+TLS are in `sharing_tls.rs`.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_ring::{Conv2dParams, CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, BShare, Error, Party, Product, Rounding};
use triad_transport::{LinkConfig, PartyId, TransportError};

type P = Party<CpuDevice>;

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(10), ..LinkConfig::default() }
}

fn run<R: Send>(f: impl Fn(&P) -> triad_sharing::Result<R> + Sync) -> [R; 3] {
    run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), 7, f).unwrap()
}

/// Each party's two components, to the host.
fn parts(s: &AShare<CpuDevice>) -> (Vec<u64>, Vec<u64>) {
    (s.own.to_vec().unwrap(), s.next.to_vec().unwrap())
}

/// Checks party i's `next` equals party i+1's `own` and returns the sum.
fn reconstruct(p: &[(Vec<u64>, Vec<u64>); 3]) -> Vec<u64> {
    for i in 0..3 {
        assert_eq!(p[i].1, p[(i + 1) % 3].0, "party {i}'s next component is not party {}'s own", (i + 1) % 3);
    }
    (0..p[0].0.len()).map(|j| p[0].0[j].wrapping_add(p[1].0[j]).wrapping_add(p[2].0[j])).collect()
}

fn rand_vec(n: usize, seed: u64) -> Vec<u64> {
    triad_tests::words(n, seed)
}

/// Fixed-point values of magnitude below `bound` (reals), as ring elements.
fn fixed_vec(n: usize, seed: u64, bound: f64) -> Vec<u64> {
    let f = FixedConfig::default();
    rand_vec(n, seed)
        .into_iter()
        .map(|r| f.encode(((r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound).unwrap())
        .collect()
}

/// Shares `x` from party 0 (every party passes the shape).
fn share(p: &P, x: &[u64], shape: &Shape) -> AShare<CpuDevice> {
    let t = Tensor::from_vec(&p.dev, shape.clone(), x.to_vec()).unwrap();
    let owner = PartyId::ALL[0];
    p.share_input(owner, (p.id == owner).then_some(&t), shape).unwrap()
}

#[test]
fn share_then_reveal_to_each_party() {
    let x = rand_vec(37, 1);
    for owner in PartyId::ALL {
        for to in PartyId::ALL {
            let shape = Shape::new([37]);
            let out = run(|p| {
                let t = Tensor::from_vec(&p.dev, shape.clone(), x.clone())?;
                let s = p.share_input(owner, (p.id == owner).then_some(&t), &shape)?;
                let r = p.reveal_to(to, &s)?;
                Ok((parts(&s), r.map(|t| t.to_vec().unwrap())))
            });
            let ps = [out[0].0.clone(), out[1].0.clone(), out[2].0.clone()];
            assert_eq!(reconstruct(&ps), x);
            for (i, o) in out.iter().enumerate() {
                if i == to.index() {
                    assert_eq!(o.1.as_ref(), Some(&x), "owner {owner}, target {to}");
                } else {
                    assert!(o.1.is_none());
                }
            }
            // No party's components equal the plaintext (they are masked).
            for o in &out {
                assert_ne!(o.0 .0, x);
                assert_ne!(o.0 .1, x);
            }
        }
    }
}

#[test]
fn share_input_rejects_misuse() {
    let shape = Shape::new([4]);
    // Every party passes plaintext while party 0 is the owner: parties 1 and 2 misuse the
    // call. Each party's own outcome is kept (which error the run as a whole reports is
    // a race between the misuse and the peers it leaves behind).
    let r = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), 1, |p| {
        let t = Tensor::zeros(&p.dev, shape.clone())?;
        Ok(p.share_input(PartyId::ALL[0], Some(&t), &shape).map(drop))
    })
    .unwrap();
    for (i, outcome) in r.iter().enumerate().skip(1) {
        match outcome {
            Err(Error::Usage(msg)) => {
                assert!(msg.contains("passed the plaintext but the owner is"), "party {i}: {msg}")
            }
            other => panic!("party {i}: expected the misuse error, got {other:?}"),
        }
    }
}

fn ring_product_case(
    op: Product,
    xs: Shape,
    ys: Shape,
    expect: impl Fn(&Tensor<CpuDevice>, &Tensor<CpuDevice>) -> Tensor<CpuDevice>,
) {
    let x = rand_vec(xs.numel(), 11);
    let y = rand_vec(ys.numel(), 12);
    let out = run(|p| {
        let a = share(p, &x, &xs);
        let b = share(p, &y, &ys);
        Ok(parts(&p.product(op, &a, &b)?))
    });
    let dev = CpuDevice;
    let want = expect(
        &Tensor::from_vec(&dev, xs.clone(), x.clone()).unwrap(),
        &Tensor::from_vec(&dev, ys.clone(), y.clone()).unwrap(),
    );
    assert_eq!(reconstruct(&out), want.to_vec().unwrap(), "{op:?}");
}

#[test]
fn ring_products_are_exact() {
    ring_product_case(Product::Elementwise, Shape::new([3, 5]), Shape::new([3, 5]), |a, b| a.mul(b).unwrap());
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let xs = if ta { Shape::new([7, 3]) } else { Shape::new([3, 7]) };
        let ys = if tb { Shape::new([5, 7]) } else { Shape::new([7, 5]) };
        ring_product_case(Product::Matmul { a_trans: ta, b_trans: tb }, xs, ys, |a, b| a.matmul_t(b, ta, tb).unwrap());
    }
    let p = Conv2dParams {
        batch: 2,
        in_c: 4,
        in_h: 7,
        in_w: 6,
        out_c: 6,
        kh: 3,
        kw: 2,
        stride_h: 2,
        stride_w: 1,
        pad_h: 1,
        pad_w: 1,
        groups: 2,
    };
    ring_product_case(Product::Conv2d(p), p.input_shape(), p.weight_shape(), |a, b| a.conv2d(b, &p).unwrap());
    ring_product_case(Product::Conv2dGradInput(p), p.output_shape(), p.weight_shape(), |a, b| {
        a.conv2d_grad_input(b, &p).unwrap()
    });
    ring_product_case(Product::Conv2dGradWeight(p), p.input_shape(), p.output_shape(), |a, b| {
        a.conv2d_grad_weight(b, &p).unwrap()
    });
}

/// `(x >> f)` (the floor) as the ideal truncation; share truncation (`Rounding::Floor`, the
/// default) gives the floor or one unit less.
fn assert_within_one(got: &[u64], ideal: &[i64]) {
    assert_eq!(got.len(), ideal.len());
    for (i, (&g, &w)) in got.iter().zip(ideal).enumerate() {
        let d = (g as i64).wrapping_sub(w);
        assert!((-1..=0).contains(&d), "element {i}: got {} want {w} or one less (error {d} units)", g as i64);
    }
}

#[test]
fn fixed_point_products_truncate_within_one_unit() {
    let f = FixedConfig::default().frac_bits;
    let n = 2000;
    let x = fixed_vec(n, 3, 8.0);
    let y = fixed_vec(n, 4, 8.0);
    let shape = Shape::new([n]);
    let out = run(|p| {
        let a = share(p, &x, &shape);
        let b = share(p, &y, &shape);
        Ok((
            parts(&p.product_trunc_share(Product::Elementwise, &a, &b)?),
            parts(&p.product_trunc_share(Product::Elementwise, &a, &a)?),
        ))
    });
    let prod = reconstruct(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]);
    let ideal: Vec<i64> = x.iter().zip(&y).map(|(&a, &b)| (a.wrapping_mul(b) as i64) >> f).collect();
    assert_within_one(&prod, &ideal);
    let sq = reconstruct(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]);
    let ideal: Vec<i64> = x.iter().map(|&a| (a.wrapping_mul(a) as i64) >> f).collect();
    assert_within_one(&sq, &ideal);
}

#[test]
fn fixed_point_matmul_and_conv_truncate_within_one_unit() {
    let f = FixedConfig::default().frac_bits;
    let (m, k, n) = (9, 33, 5);
    let x = fixed_vec(m * k, 5, 2.0);
    let y = fixed_vec(k * n, 6, 2.0);
    let p = Conv2dParams::square(2, 3, 8, 4, 3, 1, 1);
    let xi = fixed_vec(p.input_shape().numel(), 7, 2.0);
    let wi = fixed_vec(p.weight_shape().numel(), 8, 2.0);
    let out = run(|q| {
        let a = share(q, &x, &Shape::new([m, k]));
        let b = share(q, &y, &Shape::new([k, n]));
        let ci = share(q, &xi, &p.input_shape());
        let cw = share(q, &wi, &p.weight_shape());
        Ok((
            parts(&q.product_trunc_share(Product::Matmul { a_trans: false, b_trans: false }, &a, &b)?),
            parts(&q.product_trunc_share(Product::Conv2d(p), &ci, &cw)?),
        ))
    });
    let dev = CpuDevice;
    let ring = Tensor::from_vec(&dev, [m, k], x.clone())
        .unwrap()
        .matmul(&Tensor::from_vec(&dev, [k, n], y.clone()).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let ideal: Vec<i64> = ring.iter().map(|&v| (v as i64) >> f).collect();
    assert_within_one(&reconstruct(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]), &ideal);
    let ring = Tensor::from_vec(&dev, p.input_shape(), xi.clone())
        .unwrap()
        .conv2d(&Tensor::from_vec(&dev, p.weight_shape(), wi.clone()).unwrap(), &p)
        .unwrap()
        .to_vec()
        .unwrap();
    let ideal: Vec<i64> = ring.iter().map(|&v| (v as i64) >> f).collect();
    assert_within_one(&reconstruct(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]), &ideal);
}

#[test]
fn truncate_within_one_unit_for_negative_and_positive_values() {
    let n = 1000;
    let x: Vec<u64> = rand_vec(n, 9).into_iter().map(|r| ((r as i64) >> 20) as u64).collect();
    let shape = Shape::new([n]);
    for bits in [1u32, 13, 20, 40] {
        let out = run(|p| {
            let a = share(p, &x, &shape);
            Ok(parts(&p.truncate_share(&a, bits)?))
        });
        let ideal: Vec<i64> = x.iter().map(|&v| (v as i64) >> bits).collect();
        assert_within_one(&reconstruct(&out), &ideal);
    }
}

/// `Floor` share truncation is biased by one unit on average; `Unbiased` is not (its
/// expectation is exactly `t / 2^f`). Mean error over 2*10^4 values, in units.
#[test]
fn unbiased_rounding_removes_the_one_unit_bias() {
    let n = 20_000;
    let x: Vec<u64> = rand_vec(n, 61).into_iter().map(|r| ((r as i64) >> 24) as u64).collect();
    let shape = Shape::new([n]);
    let out = run(|p| {
        let a = share(p, &x, &shape);
        Ok((parts(&p.truncate_with(&a, 20, Rounding::Floor)?), parts(&p.truncate_with(&a, 20, Rounding::Unbiased)?)))
    });
    let mean_error = |got: Vec<u64>| -> f64 {
        let exact = x.iter().map(|&v| (v as i64) as f64 / (1u64 << 20) as f64);
        got.iter().zip(exact).map(|(&g, e)| g as i64 as f64 - e).sum::<f64>() / n as f64
    };
    let floor = mean_error(reconstruct(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]));
    let unbiased = mean_error(reconstruct(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]));
    assert!((floor + 1.0).abs() < 0.02, "Floor: mean error {floor} units, expected -1");
    assert!(unbiased.abs() < 0.02, "Unbiased: mean error {unbiased} units, expected 0");
    let out = run(|p| Ok(parts(&p.truncate_with(&share(p, &x, &shape), 20, Rounding::WrapFree)?)));
    let wrap_free = mean_error(reconstruct(&out));
    assert!(wrap_free.abs() < 0.02, "WrapFree: mean error {wrap_free} units, expected 0");
}

/// Values up to `2^62` in magnitude: ABY3 share truncation fails on about an eighth of them
/// (the parts wrap, an error of `2^(64 - bits)` units), wrap-free truncation on none; its
/// result is `floor(t / 2^bits)` or one more, for every `bits` from 1 to 62.
#[test]
fn wrap_free_truncation_never_wraps_where_share_truncation_does() {
    let n = 4096;
    let mut x: Vec<u64> = rand_vec(n, 71).into_iter().map(|r| ((r as i64) >> 1) as u64).collect();
    // The edges of the domain: ±(2^62 - 1), 0, ±1.
    x[..5].copy_from_slice(&[(1u64 << 62) - 1, (1u64 << 62).wrapping_neg() + 1, 0, 1, u64::MAX]);
    let shape = Shape::new([n]);
    for bits in [1u32, 20, 40, 62] {
        let out = run(|p| {
            let a = share(p, &x, &shape);
            Ok((parts(&p.truncate_with(&a, bits, Rounding::WrapFree)?), parts(&p.truncate_share(&a, bits)?)))
        });
        let floor: Vec<i64> = x.iter().map(|&v| (v as i64) >> bits).collect();
        let wrap_free = reconstruct(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]);
        for (i, (&g, &f)) in wrap_free.iter().zip(&floor).enumerate() {
            let d = (g as i64).wrapping_sub(f);
            assert!(d == 0 || d == 1, "bits {bits}: value {} gave {} (floor {f})", x[i] as i64, g as i64);
        }
        let aby3 = reconstruct(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]);
        let wraps = aby3.iter().zip(&floor).filter(|(&g, &f)| (g as i64).wrapping_sub(f).unsigned_abs() > 1).count();
        assert!(wraps > n / 16, "bits {bits}: share truncation wrapped only {wraps} times in {n}");
    }
}

/// The fused product with wrap-free truncation: products near `2^61` before truncation
/// (values near `2^20.5` at f = 20) come out within one unit, with no wrap.
#[test]
fn wrap_free_product_is_within_one_unit_for_large_products() {
    let n = 2048;
    let f = FixedConfig::default().frac_bits;
    let x: Vec<u64> = rand_vec(n, 81).into_iter().map(|r| ((r as i64) >> 33) as u64).collect();
    let y: Vec<u64> = rand_vec(n, 82).into_iter().map(|r| ((r as i64) >> 33) as u64).collect();
    let shape = Shape::new([n]);
    let out = run(|p| {
        let (a, b) = (share(p, &x, &shape), share(p, &y, &shape));
        Ok(parts(&p.product_trunc_with(Product::Elementwise, &a, &b, Rounding::WrapFree)?))
    });
    let ideal: Vec<i64> = x.iter().zip(&y).map(|(&a, &b)| (a as i64).wrapping_mul(b as i64) >> f).collect();
    for (i, (&g, &e)) in reconstruct(&out).iter().zip(&ideal).enumerate() {
        let d = (g as i64).wrapping_sub(e);
        assert!(d == 0 || d == 1, "element {i}: got {} expected {e} or one more", g as i64);
    }
}

#[test]
fn public_and_local_ops() {
    let x = rand_vec(10, 21);
    let c = rand_vec(10, 22);
    let shape = Shape::new([10]);
    let out = run(|p| {
        let a = share(p, &x, &shape);
        let ct = Tensor::from_vec(&p.dev, shape.clone(), c.clone())?;
        let plus = p.add_public(&a, &ct)?;
        let scaled = a.mul_scalar(3)?;
        let times = a.mul_public(&ct)?;
        let pubc = p.public(&ct)?;
        let neg = a.neg()?;
        Ok([parts(&plus), parts(&scaled), parts(&times), parts(&pubc), parts(&neg)])
    });
    let pick = |k: usize| [out[0][k].clone(), out[1][k].clone(), out[2][k].clone()];
    let zip = |f: fn(u64, u64) -> u64| -> Vec<u64> { x.iter().zip(&c).map(|(&a, &b)| f(a, b)).collect() };
    assert_eq!(reconstruct(&pick(0)), zip(|a, b| a.wrapping_add(b)));
    assert_eq!(reconstruct(&pick(1)), zip(|a, _| a.wrapping_mul(3)));
    assert_eq!(reconstruct(&pick(2)), zip(|a, b| a.wrapping_mul(b)));
    assert_eq!(reconstruct(&pick(3)), c);
    assert_eq!(reconstruct(&pick(4)), zip(|a, _| a.wrapping_neg()));
}

#[test]
fn random_sharings_are_consistent_and_fresh() {
    let shape = Shape::new([64]);
    let out = run(|p| Ok((parts(&p.random(&shape)?), parts(&p.random(&shape)?))));
    let r1 = reconstruct(&[out[0].0.clone(), out[1].0.clone(), out[2].0.clone()]);
    let r2 = reconstruct(&[out[0].1.clone(), out[1].1.clone(), out[2].1.clone()]);
    assert_ne!(r1, r2);
    assert!(r1.iter().filter(|&&v| v == 0).count() < 2);
}

#[test]
fn binary_and_xor_are_exact() {
    let x = rand_vec(50, 31);
    let y = rand_vec(50, 32);
    let shape = Shape::new([50]);
    // Random XOR sharings (fresh PRG components) with a public value folded in: the shared
    // value is v ^ r for an unknown r, opened alongside the results to check them.
    let out = run(|p| {
        let mk = |v: &[u64]| -> triad_sharing::Result<BShare<CpuDevice>> {
            let r = p.random(&shape)?;
            let rb = BShare { own: r.own, next: r.next };
            p.xor_public(&rb, &Tensor::from_vec(&p.dev, shape.clone(), v.to_vec())?)
        };
        let a = mk(&x)?;
        let b = mk(&y)?;
        let and = p.and(&a, &b)?;
        let xor = a.xor(&b)?;
        let not = p.not(&a)?;
        let open = |s: &BShare<CpuDevice>| p.reveal_all_xor(s).and_then(|t| Ok(t.to_vec()?));
        Ok([open(&a)?, open(&b)?, open(&and)?, open(&xor)?, open(&not)?])
    });
    for o in &out {
        assert_eq!(o, &out[0], "all parties open the same values");
        let (a, b) = (&o[0], &o[1]);
        assert_ne!(a, &x, "the shared value is masked by fresh randomness");
        assert_eq!(o[2], a.iter().zip(b).map(|(a, b)| a & b).collect::<Vec<_>>());
        assert_eq!(o[3], a.iter().zip(b).map(|(a, b)| a ^ b).collect::<Vec<_>>());
        assert_eq!(o[4], a.iter().map(|a| !a).collect::<Vec<_>>());
    }
}

/// Synchronises the depth clocks, so the maximum of the three round counts of the next
/// protocol is its latency, then zeroes the counters.
fn barrier(p: &P) {
    p.net.barrier().unwrap();
    p.net.reset_costs();
}

#[test]
fn documented_costs_per_protocol() {
    let n = 100usize;
    let shape = Shape::new([n]);
    let x = rand_vec(n, 41);
    let out = run(|p| {
        let a = share(p, &x, &shape);
        let b = share(p, &x, &shape);
        let mut c = Vec::new();
        barrier(p);
        let _ = p.product(Product::Elementwise, &a, &b)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.product_trunc_share(Product::Elementwise, &a, &b)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.truncate_share(&a, 20)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = share(p, &x, &shape);
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.reveal_to(PartyId::ALL[2], &a)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.reveal_all(&a)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.truncate_with(&a, 20, Rounding::WrapFree)?;
        c.push(p.net.costs().total());
        barrier(p);
        let _ = p.product_trunc_with(Product::Elementwise, &a, &b, Rounding::WrapFree)?;
        c.push(p.net.costs().total());
        Ok(c)
    });
    let bytes = (n * 8) as u64;
    // Wrap-free truncation at 20 bits, roles rotated over thirds: party i opens third i
    // (as R0) and third i - 1 (as R1), two elements per element each, and deals third i + 1
    // (as R2): T_1 and E_1 in 21 bits, both for a multiple of 64 elements (E_1 in whole words).
    let third = |r: usize| triad_sharing::third(n, r % 3).len() as u64;
    let deal = |k: u64| 85 * k.next_multiple_of(64) / 64;
    let wrap_free = |i: usize| 8 * (2 * third(i) + 2 * third(i + 2) + deal(third(i + 1)));
    let wrap_free = [wrap_free(0), wrap_free(1), wrap_free(2)];
    assert_eq!(wrap_free, [1752, 1736, 1752], "1.78 elements per element, and the dealer's padding");
    // (protocol, bytes sent by party 0, 1, 2, latency in rounds) as documented in the
    // crate docs and the book.
    let documented: [(&str, [u64; 3], u64); 8] = [
        ("ring product", [bytes; 3], 1),
        ("fixed-point mul", [bytes; 3], 2),
        ("truncate", [bytes, bytes, 0], 1),
        ("share_input from party 0", [2 * bytes, 0, 0], 1),
        ("reveal_to party 2", [bytes, 0, 0], 1),
        ("reveal_all", [bytes; 3], 1),
        ("truncate (wrap-free)", wrap_free, 2),
        ("fixed-point mul (wrap-free)", wrap_free, 2),
    ];
    for (k, (name, sent, latency)) in documented.iter().enumerate() {
        for i in 0..3 {
            assert_eq!(out[i][k].bytes_sent, sent[i], "{name}: bytes sent by party {i}");
        }
        let measured = (0..3).map(|i| out[i][k].rounds).max().unwrap();
        assert_eq!(measured, *latency, "{name}: latency");
    }
}

#[test]
fn a_party_that_quits_mid_protocol_leaves_the_others_with_errors() {
    let shape = Shape::new([16]);
    let x = rand_vec(16, 51);
    let short = LinkConfig { timeout: Duration::from_millis(1500), ..LinkConfig::default() };
    let start = std::time::Instant::now();
    let res = run_in_process_with_test_keys(CpuDevice, &short, FixedConfig::default(), 3, |p| {
        // Party 2's leaving may reach party 1 while it still waits for its input share (party
        // 0 aborts the session when party 2 closes): an error then too, not a panic.
        let t = Tensor::from_vec(&p.dev, shape.clone(), x.to_vec())?;
        let a = p.share_input(PartyId::ALL[0], (p.index() == 0).then_some(&t), &shape)?;
        if p.index() == 2 {
            // Party 2 leaves before the multiplication.
            return Ok(None);
        }
        let m = p.product_trunc_share(Product::Elementwise, &a, &a)?;
        Ok(Some(parts(&m)))
    });
    let err = res.expect_err("parties 0 and 1 must fail");
    match err {
        Error::Transport(e) => {
            assert!(
                matches!(
                    e,
                    TransportError::PeerClosed { .. }
                        | TransportError::PeerAborted { .. }
                        | TransportError::Timeout { .. }
                ),
                "{e}"
            );
            assert!(e.peer().is_some());
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

/// A protocol applied to a sharing, as the test below compares them.
type Truncation = dyn Fn(&P, &AShare<CpuDevice>) -> triad_sharing::Result<AShare<CpuDevice>> + Sync;

/// The library's defaults are the rounding the layers use: `truncate`, `mul`, `matmul`,
/// `conv2d` (and `ApproxParams::default()`) truncate wrap-free, so a library user never
/// meets share truncation's rare large error by accident; share truncation stays
/// available by name (`truncate_share`, `product_trunc_share`). Told apart by their
/// traffic: in share truncation party 2 sends nothing, in wrap-free truncation it deals.
#[test]
fn library_defaults_truncate_wrap_free() {
    assert_eq!(triad_approx::ApproxParams::default().rounding, Rounding::WrapFree);
    let n = 64;
    let x: Vec<u64> = rand_vec(n, 12).into_iter().map(|r| ((r as i64) >> 24) as u64).collect();
    let shape = Shape::new([n]);
    let sent = |f: &Truncation| {
        let out = run(|p| {
            let a = share(p, &x, &shape);
            p.net.barrier()?;
            p.net.reset_costs();
            f(p, &a)?;
            Ok(p.net.costs().total().bytes_sent)
        });
        out[2]
    };
    let wrap_free = sent(&|p, a| p.truncate_with(a, 20, Rounding::WrapFree));
    assert!(wrap_free > 0);
    assert_eq!(sent(&|p, a| p.truncate(a, 20)), wrap_free, "truncate is not wrap-free");
    assert_eq!(sent(&|p, a| p.truncate_share(a, 20)), 0, "share truncation: party 2 sends nothing");
    let mul_wrap_free = sent(&|p, a| p.product_trunc_with(Product::Elementwise, a, a, Rounding::WrapFree));
    assert_eq!(sent(&|p, a| p.mul(a, a)), mul_wrap_free, "mul is not wrap-free");
    assert_ne!(sent(&|p, a| p.product_trunc_share(Product::Elementwise, a, a)), mul_wrap_free);
}
