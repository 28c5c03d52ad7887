//! The communication of every approximation, pinned: bytes sent per party and rounds for a
//! fixed size, measured by the transport's counters over real in-process links, with the
//! per-element figures. Any change in communication shows up as a snapshot diff.
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::time::Duration;

use triad_approx::{
    exp, inv_sqrt, log, reciprocal, sigmoid, softmax, softmax_reciprocal, tanh, ApproxParams, Rounding,
};
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, AShare, Party, Result};
use triad_transport::{Cost, LinkConfig};

/// Elements per call (a multiple of 3, so bit injection's thirds are equal).
const N: usize = 999;

type S = AShare<CpuDevice>;

/// Lines the parties' depth clocks up before a measurement (`Channels::barrier`).
fn barrier(p: &Party<CpuDevice>) {
    p.net.barrier().unwrap();
}

fn measure(
    name: &str,
    shape: &[usize],
    value: f64,
    f: impl Fn(&Party<CpuDevice>, &S) -> Result<S> + Sync,
    t: &mut String,
) {
    let link = LinkConfig { timeout: Duration::from_secs(20), ..LinkConfig::default() };
    let shape = Shape::new(shape.to_vec());
    let n = shape.numel();
    let costs: [Cost; 3] = run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), 5, |p| {
        let v = p.fixed.encode(value)?;
        let x = p.public(&Tensor::full(&p.dev, shape.clone(), v)?)?;
        barrier(p);
        p.net.reset_costs();
        f(p, &x)?;
        Ok(p.net.costs().total())
    })
    .unwrap();
    let sent: Vec<String> = costs.iter().map(|c| c.bytes_sent.to_string()).collect();
    let per: Vec<String> = costs.iter().map(|c| format!("{:.2}", c.bytes_sent as f64 / n as f64)).collect();
    let rounds: Vec<String> = costs.iter().map(|c| c.rounds.to_string()).collect();
    let latency = costs.iter().map(|c| c.rounds).max().unwrap_or(0);
    writeln!(
        t,
        "{name:<28} | {:>23} | {:>23} | {:>8} | {latency}",
        sent.join(" / "),
        per.join(" / "),
        rounds.join("/")
    )
    .unwrap();
}

/// The table's header (`title` names the first column) and the elementwise functions, one
/// line each.
fn elementwise_rows(title: &str, pr: &ApproxParams) -> String {
    let mut t = String::new();
    writeln!(t, "{title:<29} | bytes sent p0 / p1 / p2 | per element p0/p1/p2    | rounds   | latency").unwrap();
    measure("exp (m = 9)", &[N], -1.0, |p, x| exp(p, x, pr), &mut t);
    measure("softmax_reciprocal (13)", &[N], 7.0, |p, x| softmax_reciprocal(p, x, pr), &mut t);
    measure("reciprocal (10)", &[N], 7.0, |p, x| reciprocal(p, x, pr), &mut t);
    measure("inv_sqrt (3)", &[N], 2.0, |p, x| inv_sqrt(p, x, pr), &mut t);
    measure("sigmoid", &[N], -1.5, |p, x| sigmoid(p, x, pr), &mut t);
    measure("tanh", &[N], 0.5, |p, x| tanh(p, x, pr), &mut t);
    measure("log", &[N], 0.3, |p, x| log(p, x, pr), &mut t);
    t
}

#[test]
fn approx_cost_table() {
    let pr = ApproxParams::default().with_rounding(Rounding::Floor);
    let mut t = elementwise_rows(&format!("function (n = {N})"), &pr);
    measure("softmax 111 x 9 (axis 1)", &[111, 9], 0.3, |p, x| softmax(p, x, 1, &pr), &mut t);
    measure("softmax 99 x 10 (axis 1)", &[99, 10], 0.3, |p, x| softmax(p, x, 1, &pr), &mut t);
    insta::assert_snapshot!(t);
}

/// The same with wrap-free truncation (what the layers use), and the layers' softmax.
#[test]
fn approx_cost_table_wrap_free() {
    let pr = ApproxParams::default().with_rounding(Rounding::WrapFree);
    let mut t = elementwise_rows(&format!("function (n = {N}), wrap-free"), &pr);
    measure("softmax 99 x 10 (axis 1)", &[99, 10], 0.3, |p, x| softmax(p, x, 1, &pr), &mut t);
    let fitted = ApproxParams::for_softmax_rows(10).with_rounding(Rounding::WrapFree);
    measure("softmax 99 x 10, fitted (8)", &[99, 10], 0.3, |p, x| softmax(p, x, 1, &fitted), &mut t);
    insta::assert_snapshot!(t);
}
