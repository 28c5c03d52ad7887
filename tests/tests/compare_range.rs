//! The overflow guard's range check (`triad_compare::all_in_range`) against its ideal
//! functionality (`triad_spec::compare::all_in_range`): three parties over real
//! in-process links, the opened bit equal to the ideal one on values at and around every
//! edge (`±2^bits`, `±2^bits - 1`, the ends of the ring), for several `bits` and sizes
//! (one element, odd counts, a tensor whose only offender is its last element), and the
//! same bit at every party.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_compare::all_in_range;
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, Party};
use triad_spec::compare as ideal;
use triad_tests::SplitMix;
use triad_transport::{LinkConfig, PartyId};

fn check(x: &[u64], bits: u32, seed: u64) -> bool {
    let link = LinkConfig { timeout: Duration::from_secs(30), ..LinkConfig::default() };
    let shape = Shape::new([x.len()]);
    let out = run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), seed, |p: &Party<CpuDevice>| {
        let owner = PartyId::ALL[0];
        let t = (p.id == owner).then(|| Tensor::from_vec(&p.dev, shape.clone(), x.to_vec()).unwrap());
        let a = p.share_input(owner, t.as_ref(), &shape)?;
        all_in_range(p, &a, bits)
    })
    .unwrap();
    assert!(out[0] == out[1] && out[1] == out[2], "the parties opened different bits: {out:?}");
    let want = ideal::all_in_range(x, bits);
    assert_eq!(out[0], want, "bits {bits}, {} values: protocol says {}, ideal {want}", x.len(), out[0]);
    out[0]
}

/// Values in range: `|x| < 2^(bits - 1)`.
fn inside(n: usize, bits: u32, seed: u64) -> Vec<u64> {
    SplitMix(seed).words(n).into_iter().map(|v| ((v as i64) >> (65 - bits).min(63)) as u64).collect()
}

#[test]
fn range_check_matches_the_ideal_at_every_edge() {
    for bits in [1u32, 2, 21, 41, 61, 62] {
        let b = 1i128 << bits;
        let edges: Vec<i128> = vec![-b - 1, -b, -b + 1, -1, 0, 1, b - 1, b, b + 1, i64::MIN as i128, i64::MAX as i128];
        for (k, &e) in edges.iter().enumerate() {
            if e < i64::MIN as i128 || e > i64::MAX as i128 {
                continue;
            }
            // The edge value alone, and last among 37 values in range.
            let v = e as i64 as u64;
            check(&[v], bits, 10 + k as u64);
            let mut x = inside(36, bits, k as u64);
            x.push(v);
            check(&x, bits, 40 + k as u64);
        }
    }
}

#[test]
fn range_check_says_yes_and_no_on_larger_tensors() {
    for n in [1usize, 2, 63, 64, 65, 1000, 4097] {
        let x = inside(n, 41, n as u64);
        assert!(check(&x, 41, 1), "{n} values in range");
        for at in [0, n / 2, n - 1] {
            let mut y = x.clone();
            y[at] = (1u64 << 41) + 5;
            assert!(!check(&y, 41, 2), "{n} values, offender at {at}");
            y[at] = (-(1i64 << 41) - 1) as u64;
            assert!(!check(&y, 41, 3), "{n} values, negative offender at {at}");
        }
    }
    // Empty: vacuously in range, with no communication needed.
    assert!(check(&[], 41, 4));
}
