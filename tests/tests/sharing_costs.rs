//! The communication of every sharing protocol, pinned: bytes and rounds per party for a
//! fixed size, measured by the transport's counters over real in-process links. Any change
//! in communication shows up as a snapshot diff.
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_ring::{Conv2dParams, CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, BShare, Party, Product, Rounding};
use triad_transport::{Cost, LinkConfig, PartyId};

const N: usize = 1000;

/// Lines the parties' depth clocks up before a measurement.
fn barrier(p: &Party<CpuDevice>) {
    p.net.barrier().unwrap();
}

type Measure = Box<dyn Fn(&Party<CpuDevice>) -> triad_sharing::Result<()> + Sync>;

fn measure(name: &str, f: Measure, table: &mut String) {
    let link = LinkConfig { timeout: Duration::from_secs(10), ..LinkConfig::default() };
    let costs: [Cost; 3] = run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), 5, |p| {
        barrier(p);
        p.net.reset_costs();
        f(p)?;
        Ok(p.net.costs().total())
    })
    .unwrap();
    let sent: Vec<String> = costs.iter().map(|c| c.bytes_sent.to_string()).collect();
    let rounds: Vec<String> = costs.iter().map(|c| c.rounds.to_string()).collect();
    let latency = costs.iter().map(|c| c.rounds).max().unwrap_or(0);
    writeln!(table, "{name:<36} | {:>22} | {:>7} | {latency}", sent.join(" / "), rounds.join("/")).unwrap();
}

#[test]
fn sharing_cost_table() {
    let shape = Shape::new([N]);
    let mut t = String::new();
    writeln!(t, "protocol (n = {N})                    | bytes sent p0 / p1 / p2 | rounds  | latency").unwrap();
    let sh = shape.clone();
    measure(
        "share_input (owner 0)",
        Box::new(move |p| {
            let x = Tensor::zeros(&p.dev, sh.clone())?;
            let o = PartyId::ALL[0];
            p.share_input(o, (p.id == o).then_some(&x), &sh).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "reveal_to (party 1)",
        Box::new(move |p| {
            let x = p.public(&Tensor::zeros(&p.dev, sh.clone())?)?;
            p.reveal_to(PartyId::ALL[1], &x).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure("random (local)", Box::new(move |p| p.random(&sh).map(drop)), &mut t);
    let sh = shape.clone();
    measure(
        "product elementwise (ring)",
        Box::new(move |p| {
            let x = p.random(&sh)?;
            p.product(Product::Elementwise, &x, &x).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "mul (fixed point)",
        Box::new(move |p| {
            let x = p.random(&sh)?;
            p.product_trunc_share(Product::Elementwise, &x, &x).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "truncate",
        Box::new(move |p| {
            let x = p.random(&sh)?;
            p.truncate_share(&x, 20).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "truncate (wrap-free)",
        Box::new(move |p| {
            let x = p.random(&sh)?;
            p.truncate_with(&x, 20, Rounding::WrapFree).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "mul (fixed point, wrap-free)",
        Box::new(move |p| {
            let x = p.random(&sh)?;
            p.product_trunc_with(Product::Elementwise, &x, &x, Rounding::WrapFree).map(drop)
        }),
        &mut t,
    );
    measure(
        "matmul 20x50x50 (fixed point)",
        Box::new(|p| {
            let a = p.random(&Shape::new([20, 50]))?;
            let b = p.random(&Shape::new([50, 50]))?;
            p.product_trunc_share(Product::Matmul { a_trans: false, b_trans: false }, &a, &b).map(drop)
        }),
        &mut t,
    );
    let cp = Conv2dParams::square(1, 3, 8, 4, 3, 1, 1);
    measure(
        "conv2d 1x3x8x8 k3 -> 4 (fixed point)",
        Box::new(move |p| {
            let x = p.random(&cp.input_shape())?;
            let w = p.random(&cp.weight_shape())?;
            p.product_trunc_share(Product::Conv2d(cp), &x, &w).map(drop)
        }),
        &mut t,
    );
    let sh = shape.clone();
    measure(
        "and (binary, n words)",
        Box::new(move |p| {
            let r = p.random(&sh)?;
            let b = BShare { own: r.own, next: r.next };
            p.and(&b, &b).map(drop)
        }),
        &mut t,
    );
    insta::assert_snapshot!(t);
}
