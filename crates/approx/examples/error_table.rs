//! Sweeps each approximation's domain densely through the real three-party protocol (in
//! process, keys agreed at setup) and writes the maximum absolute and relative error
//! against float64 into `ACCURACY.md` and the book's approximations chapter, between the
//! `<!-- approx-table:begin -->` / `<!-- approx-table:end -->` markers.
//!
//! `cargo run --release -p triad-approx --example error_table [-- --points N] [--no-write]`

use std::time::Duration;

use triad_approx::{
    exp, inv_sqrt, log, reciprocal, sigmoid, softmax, softmax_reciprocal, tanh, ApproxParams, Rounding,
};
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process, AShare, Party, Result};
use triad_spec::approx as spec;
use triad_spec::approx::ErrorBound;
use triad_transport::{LinkConfig, PartyId};

type P = Party<CpuDevice>;

/// An approximation as a plain function of the party, the input and the parameters.
type Func = fn(&P, &AShare<CpuDevice>, &ApproxParams) -> Result<AShare<CpuDevice>>;

/// A function on a positive domain: name, domain ends, bound, float64 ideal, protocol.
type Positive = (&'static str, f64, f64, ErrorBound, fn(f64) -> f64, Func);

/// An error above this (in value) is a share-truncation wrap (the rare large error of
/// ABY3 truncation, about `2^44 / 2^20` in size): counted apart, not in the maxima.
const WRAP: f64 = 1000.0;

/// Relative errors are taken where `|f(x)|` is at least this.
const REL_FLOOR: f64 = 1.0 / 1024.0;

struct Row {
    name: String,
    rounding: &'static str,
    domain: String,
    points: usize,
    max_abs: f64,
    at_abs: f64,
    max_rel: f64,
    at_rel: f64,
    bound: ErrorBound,
    /// The worst `|error| / (abs + rel |f(x)|)`: at most 1 when the bound holds.
    ratio: f64,
    /// Outputs with a share-truncation wrap (error above [`WRAP`]).
    wraps: usize,
}

fn share(p: &P, x: &[u64], shape: &Shape) -> Result<AShare<CpuDevice>> {
    let owner = PartyId::ALL[0];
    let t = Tensor::from_vec(&p.dev, shape.clone(), x.to_vec())?;
    p.share_input(owner, (p.id == owner).then_some(&t), shape)
}

/// Runs `f` on the encoded inputs `xs` (a `[rows, cols]` matrix) and returns the decoded
/// outputs (opened to party 0).
fn run(xs: &[f64], cols: usize, f: impl Fn(&P, &AShare<CpuDevice>) -> Result<AShare<CpuDevice>> + Sync) -> Vec<f64> {
    let fx = FixedConfig::default();
    let enc: Vec<u64> = xs.iter().map(|&x| fx.encode(x).expect("input in range")).collect();
    let shape = Shape::new([xs.len() / cols, cols]);
    let link = LinkConfig { timeout: Duration::from_secs(600), ..LinkConfig::default() };
    let out = run_in_process(CpuDevice, &link, fx, |p| {
        let x = share(p, &enc, &shape)?;
        let y = f(p, &x)?;
        let r = p.reveal_to(PartyId::ALL[0], &y)?;
        Ok(match r {
            Some(t) => t.to_vec()?,
            None => vec![],
        })
    })
    .expect("protocol run");
    fx.decode_slice(&out[0])
}

fn row(name: String, bound: ErrorBound, xs: &[f64], got: &[f64], ideal: &[f64]) -> Row {
    let domain = format!("[{}, {}]", bound.lo, bound.hi);
    let mut r = Row {
        name,
        rounding: "",
        domain,
        points: xs.len(),
        max_abs: 0.0,
        at_abs: 0.0,
        max_rel: 0.0,
        at_rel: 0.0,
        bound,
        ratio: 0.0,
        wraps: 0,
    };
    for i in 0..got.len() {
        let e = (got[i] - ideal[i]).abs();
        if e > WRAP {
            r.wraps += 1;
            continue;
        }
        r.ratio = r.ratio.max(e / (bound.abs + bound.rel * ideal[i].abs()));
        if e > r.max_abs {
            r.max_abs = e;
            r.at_abs = xs[i];
        }
        if ideal[i].abs() >= REL_FLOOR {
            let q = e / ideal[i].abs();
            if q > r.max_rel {
                r.max_rel = q;
                r.at_rel = xs[i];
            }
        }
    }
    r
}

fn grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

/// Geometric grid for positive domains spanning decades.
fn geo(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp()).collect()
}

fn elementwise(
    name: String,
    xs: Vec<f64>,
    bound: ErrorBound,
    ideal: impl Fn(f64) -> f64,
    f: impl Fn(&P, &AShare<CpuDevice>) -> Result<AShare<CpuDevice>> + Sync,
) -> Row {
    // The ideal is taken at the input the protocol sees (encoded, read back).
    let fx = FixedConfig::default();
    let xs: Vec<f64> = xs.iter().map(|&x| fx.decode(fx.encode(x).expect("in range"))).collect();
    let got = run(&xs, 1, f);
    let want: Vec<f64> = xs.iter().map(|&x| ideal(x)).collect();
    row(name, bound, &xs, &got, &want)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--points")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize << 17);
    let write = !args.iter().any(|a| a == "--no-write");
    let mut rows = Vec::new();
    for rounding in [Rounding::Floor, Rounding::WrapFree] {
        rows.extend(sweep(n, rounding));
    }
    // Softmax as the layers call it: the reciprocal fitted to rows of 10, wrap-free.
    let fitted = ApproxParams::for_softmax_rows(10).with_rounding(Rounding::WrapFree);
    rows.push(softmax_rows("softmax, layers' parameters (d = 10, spread 8)", n, 8.0, &fitted));
    rows.push(softmax_rows("softmax, layers' parameters (d = 10, spread 30)", n, 30.0, &fitted));

    let mut table = String::new();
    table.push_str(&format!(
        "Measured by `cargo run --release -p triad-approx --example error_table` (f = 20, default \
         parameters with each rounding, {n} points per function; relative errors where \
         |f(x)| ≥ 2^-10; outputs hit by share truncation's rare large error (an error above \
         {WRAP}) are counted in the last column and left out of the maxima; the layers' \
         softmax uses `ApproxParams::for_softmax_rows(10)` with wrap-free truncation).\n\n"
    ));
    table.push_str(
        "| function | rounding | domain | points | max abs error | at x | max rel error | at x | bound (abs + rel·|f|) | worst error / bound | truncation wraps |\n",
    );
    table.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.3e} | {:.4} | {:.3e} | {:.4} | {:.1e} + {:.1e}·|f| | {:.2} | {} |\n",
            r.name,
            r.rounding,
            r.domain,
            r.points,
            r.max_abs,
            r.at_abs,
            r.max_rel,
            r.at_rel,
            r.bound.abs,
            r.bound.rel,
            r.ratio,
            r.wraps
        ));
    }
    println!("{table}");
    if write {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        for file in ["ACCURACY.md", "book/src/approx.md"] {
            let path = format!("{root}/{file}");
            match std::fs::read_to_string(&path) {
                Ok(text) => match splice(&text, &table) {
                    Some(new) => {
                        if let Err(e) = std::fs::write(&path, new) {
                            eprintln!("cannot write {path}: {e}");
                        } else {
                            eprintln!("wrote the table into {path}");
                        }
                    }
                    None => eprintln!("{path}: no approx-table markers; not written"),
                },
                Err(e) => eprintln!("cannot read {path}: {e}"),
            }
        }
    }
}

/// Every function over its domain with default parameters and the given rounding.
fn sweep(n: usize, rounding: Rounding) -> Vec<Row> {
    let pr = ApproxParams::default().with_rounding(rounding);
    let mut rows = Vec::new();
    // exp on [-512, 0] (uniform) and the part near 0 where the error is largest.
    let mut xs = grid(-512.0, 0.0, n / 2);
    xs.extend(grid(-16.0, 0.0, n / 2));
    rows.push(elementwise("exp".into(), xs, spec::EXP_BOUND, f64::exp, |p, x| exp(p, x, &pr)));
    // The functions on positive domains spanning decades (geometric grids).
    let positive: [Positive; 3] = [
        (
            "softmax_reciprocal",
            1.0,
            399.0,
            spec::SOFTMAX_RECIP_BOUND,
            |x| 1.0 / x,
            |p, x, pr| softmax_reciprocal(p, x, pr),
        ),
        ("reciprocal", 0.01, 600.0, spec::RECIP_BOUND, |x| 1.0 / x, |p, x, pr| reciprocal(p, x, pr)),
        ("inv_sqrt", 0.1, 150.0, spec::INV_SQRT_BOUND, |x| 1.0 / x.sqrt(), |p, x, pr| inv_sqrt(p, x, pr)),
    ];
    for (name, lo, hi, bound, ideal, f) in positive {
        rows.push(elementwise(name.into(), geo(lo, hi, n), bound, ideal, |p, x| f(p, x, &pr)));
    }
    let mut xs = grid(-512.0, 512.0, n / 2);
    xs.extend(grid(-16.0, 16.0, n / 2));
    rows.push(elementwise(
        "sigmoid".into(),
        xs,
        spec::SIGMOID_BOUND,
        |x| 1.0 / (1.0 + (-x).exp()),
        |p, x| sigmoid(p, x, &pr),
    ));
    let mut xs = grid(-256.0, 256.0, n / 2);
    xs.extend(grid(-8.0, 8.0, n / 2));
    rows.push(elementwise("tanh".into(), xs, spec::TANH_BOUND, f64::tanh, |p, x| tanh(p, x, &pr)));
    rows.push(elementwise("log".into(), geo(0.05, 100.0, n), spec::LOG_BOUND, f64::ln, |p, x| log(p, x, &pr)));
    // softmax over rows of 10 logits with spread up to 8 (where exp's limit error
    // `x²/2^(m+1)` weighs most), up to 30 (typical classifier outputs) and up to 512.
    for (name, spread) in [
        ("softmax (d = 10, spread 8)", 8.0),
        ("softmax (d = 10, spread 30)", 30.0),
        ("softmax (d = 10, spread 512)", 512.0),
    ] {
        rows.push(softmax_rows(name, n, spread, &pr));
    }
    for r in &mut rows {
        r.rounding = rounding_name(rounding);
    }
    rows
}

/// Softmax over `n / 10` rows of 10 logits spread uniformly over `spread`.
fn softmax_rows(name: &str, n: usize, spread: f64, pr: &ApproxParams) -> Row {
    let d = 10;
    let rows_n = n / d;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let xs: Vec<f64> = (0..rows_n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * spread - spread / 2.0
        })
        .collect();
    let fx = FixedConfig::default();
    let xs: Vec<f64> = xs.iter().map(|&x| fx.decode(fx.encode(x).expect("in range"))).collect();
    let got = run(&xs, d, |p, x| softmax(p, x, 1, pr));
    let mut want = Vec::with_capacity(xs.len());
    for r in xs.chunks(d) {
        let m = r.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = r.iter().map(|v| (v - m).exp()).sum();
        want.extend(r.iter().map(|v| (v - m).exp() / z));
    }
    let mut r = row(name.into(), spec::SOFTMAX_BOUND, &xs, &got, &want);
    r.domain = format!("rows of {d}, spread {spread}");
    r.rounding = rounding_name(pr.rounding);
    r
}

fn rounding_name(r: Rounding) -> &'static str {
    match r {
        Rounding::Floor => "floor",
        Rounding::Unbiased => "unbiased",
        Rounding::WrapFree => "wrap-free",
    }
}

/// Replaces the text between the markers.
fn splice(text: &str, table: &str) -> Option<String> {
    let (b, e) = ("<!-- approx-table:begin -->", "<!-- approx-table:end -->");
    let i = text.find(b)? + b.len();
    let j = text[i..].find(e)? + i;
    Some(format!("{}\n{}{}", &text[..i], table, &text[j..]))
}
