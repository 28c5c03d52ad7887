//! Communication of the comparison protocols: ReLU against its targets (at most 10 rounds
//! and 64 bytes sent per element per party, forward including the multiply), and a
//! snapshot of every protocol's cost table at a fixed size, so any change in
//! communication is a visible diff.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_compare as cmp;
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Pool2dParams, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, BShare, Party};
use triad_tests::SplitMix;
use triad_transport::{CostTable, LinkConfig, PartyId};

type P = Party<CpuDevice>;

fn run<R: Send>(f: impl Fn(&P) -> triad_sharing::Result<R> + Sync) -> [R; 3] {
    let link = LinkConfig { timeout: Duration::from_secs(60), ..LinkConfig::default() };
    run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), 5, f).unwrap()
}

fn share(p: &P, x: &[u64], shape: &Shape) -> AShare<CpuDevice> {
    let owner = PartyId::ALL[0];
    let t = (p.id == owner).then(|| Tensor::from_vec(&p.dev, shape.clone(), x.to_vec()).unwrap());
    p.share_input(owner, t.as_ref(), shape).unwrap()
}

/// Small fixed-point-range values (`|x| < 2^40`).
fn values(n: usize, seed: u64) -> Vec<u64> {
    SplitMix(seed).words(n).into_iter().map(|v| ((v as i64) >> 24) as u64).collect()
}

#[test]
fn relu_meets_its_round_and_byte_targets() {
    for n in [999usize, 100_000] {
        let x = values(n, 1);
        let shape = Shape::new([n]);
        let costs = run(|p| {
            let a = share(p, &x, &shape);
            p.net.reset_costs();
            let _ = cmp::relu(p, &a)?;
            Ok(p.net.costs().total())
        });
        for (i, c) in costs.iter().enumerate() {
            let per = c.bytes_sent as f64 / n as f64;
            println!("relu n = {n}: party {i}: {} rounds, {per:.3} bytes sent per element", c.rounds);
            assert!(c.rounds <= 10, "party {i}: {} rounds", c.rounds);
            assert!(per <= 64.0, "party {i}: {per} bytes per element");
        }
        // Balanced roles: the parties send within 1% of each other on large inputs.
        if n >= 100_000 {
            let (lo, hi) =
                (costs.iter().map(|c| c.bytes_sent).min().unwrap(), costs.iter().map(|c| c.bytes_sent).max().unwrap());
            assert!((hi - lo) as f64 <= 0.01 * hi as f64, "unbalanced: {lo} .. {hi}");
            assert_eq!(costs.iter().map(|c| c.rounds).max(), Some(10));
        }
    }
}

const N: usize = 999;

/// Runs `f` on all three parties after sharing inputs; returns the three cost tables of
/// `f` alone, rendered.
fn table(f: impl Fn(&P, &AShare<CpuDevice>, &AShare<CpuDevice>) -> triad_sharing::Result<()> + Sync) -> String {
    let shape = Shape::new([N]);
    let (x, y) = (values(N, 2), values(N, 3));
    let tables: [CostTable; 3] = run(|p| {
        let a = share(p, &x, &shape);
        let b = share(p, &y, &shape);
        p.net.reset_costs();
        f(p, &a, &b)?;
        Ok(p.net.costs())
    });
    let mut out = format!("{N} elements\n");
    for (i, t) in tables.iter().enumerate() {
        out.push_str(&format!("party {i}\n{}", t.render()));
    }
    out
}

fn as_binary(a: &AShare<CpuDevice>) -> BShare<CpuDevice> {
    BShare { own: a.own.try_clone().unwrap(), next: a.next.try_clone().unwrap() }
}

#[test]
fn cost_tables_snapshot() {
    insta::assert_snapshot!(
        "and_packed_63_lanes",
        table(|p, a, b| cmp::and_packed(p, &as_binary(a), &as_binary(b), !(1 << 63)).map(drop))
    );
    insta::assert_snapshot!("msb", table(|p, a, _| cmp::msb(p, a).map(drop)));
    insta::assert_snapshot!("drelu", table(|p, a, _| cmp::drelu(p, a).map(drop)));
    insta::assert_snapshot!("lt", table(|p, a, b| cmp::lt(p, a, b).map(drop)));
    insta::assert_snapshot!("a2b", table(|p, a, _| cmp::a2b(p, a).map(drop)));
    insta::assert_snapshot!("all_in_range_41_bits", table(|p, a, _| cmp::all_in_range(p, a, 41).map(drop)));
    insta::assert_snapshot!("inject_bit", table(|p, a, _| cmp::inject_bit(p, &as_binary(a), 0).map(drop)));
    insta::assert_snapshot!("b2a", table(|p, a, _| cmp::b2a(p, &as_binary(a)).map(drop)));
    insta::assert_snapshot!("relu", table(|p, a, _| cmp::relu(p, a).map(drop)));
    insta::assert_snapshot!("msb_within_48_bits", table(|p, a, _| cmp::msb_within(p, a, 48).map(drop)));
    insta::assert_snapshot!("relu_within_48_bits", table(|p, a, _| cmp::relu_within(p, a, 48).map(drop)));
    insta::assert_snapshot!(
        "relu_backward",
        table(|p, a, b| {
            // The bit is made outside the measured part.
            let r = cmp::relu(p, a)?;
            p.net.reset_costs();
            cmp::relu_backward(p, b, &r.mask).map(drop)
        })
    );
    insta::assert_snapshot!(
        "max_axis_27x37",
        table(|p, a, _| cmp::max_axis(p, &a.try_clone()?.reshape([27, 37])?, 1).map(drop))
    );
    insta::assert_snapshot!(
        "argmax_axis_27x37",
        table(|p, a, _| cmp::argmax_axis(p, &a.try_clone()?.reshape([27, 37])?, 1).map(drop))
    );
    let pool = Pool2dParams::square(1, 3, 18, 2, 2, 0);
    assert_eq!(pool.input_shape().numel(), 972);
    let pooled =
        |a: &AShare<CpuDevice>| a.map_layout(|t| t.slice(0, 0..972)).unwrap().reshape(pool.input_shape()).unwrap();
    insta::assert_snapshot!("maxpool_2x2_s2_3x18x18", table(|p, a, _| cmp::maxpool(p, &pooled(a), &pool).map(drop)));
    insta::assert_snapshot!(
        "maxpool_backward_2x2_s2_3x18x18",
        table(|p, a, b| {
            let mp = cmp::maxpool(p, &pooled(a), &pool)?;
            let g = b.map_layout(|t| t.slice(0, 0..243))?.reshape(pool.output_shape())?;
            p.net.reset_costs();
            cmp::maxpool_backward(p, &g, &mp).map(drop)
        })
    );
}
