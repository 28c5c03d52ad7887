//! Protocol benchmarks: secure matrix product, elementwise product and ReLU, with three
//! parties in one process and as three processes over mutual TLS on loopback.
//!
//! `cargo bench -p triad-tests --bench protocols [-- filter]` (filter: a substring of the
//! operation name, e.g. `relu`)
//!
//! Prints a markdown table: operation, mode, wall time (median of runs, after setup), bytes
//! sent per party, rounds. In three-process mode the bench re-executes itself as the three
//! parties (`TRIAD_BENCH_PARTY=i`), with certificates and a config written to a temp dir.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape};
use triad_sharing::{run_in_process, AShare, Party, Product, Result};
use triad_transport::{connect_tls, generate_test_pki, LinkConfig, PartiesConfig, PartyId, TlsIdentity};

#[derive(Clone, Copy, Debug)]
enum Op {
    Matmul(usize, usize, usize),
    Mul(usize),
    Relu(usize),
}

impl Op {
    fn name(&self) -> String {
        match self {
            Op::Matmul(m, k, n) => format!("matmul {m}x{k}x{n}"),
            Op::Mul(n) => format!("elementwise mul 10^{}", (*n as f64).log10().round()),
            Op::Relu(n) => format!("relu 10^{}", (*n as f64).log10().round()),
        }
    }
}

const OPS: [Op; 5] = [
    Op::Matmul(128, 800, 500),
    Op::Matmul(1024, 1024, 1024),
    Op::Mul(10_000_000),
    Op::Relu(100_000),
    Op::Relu(1_000_000),
];
const RUNS: usize = 3;

fn random_share(p: &Party<CpuDevice>, shape: &Shape) -> Result<AShare<CpuDevice>> {
    // Uniform shares of an unknown value: the timing does not depend on the values.
    p.random(shape)
}

/// Runs `op` RUNS times on one party; returns (median seconds, bytes sent, rounds) per run.
fn run_op(p: &Party<CpuDevice>, op: Op) -> Result<(f64, u64, u64)> {
    let (xs, ys) = match op {
        Op::Matmul(m, k, n) => (Shape::new([m, k]), Shape::new([k, n])),
        Op::Mul(n) | Op::Relu(n) => (Shape::new([n]), Shape::new([n])),
    };
    let x = random_share(p, &xs)?;
    let y = random_share(p, &ys)?;
    let mut times = Vec::new();
    let mut cost = (0, 0);
    for _ in 0..RUNS {
        // Start together, with synchronised depth clocks.
        p.net.barrier()?;
        p.net.reset_costs();
        let t = Instant::now();
        let z = match op {
            Op::Matmul(..) => p.product_trunc_share(Product::Matmul { a_trans: false, b_trans: false }, &x, &y)?,
            Op::Mul(_) => p.product_trunc_share(Product::Elementwise, &x, &y)?,
            Op::Relu(_) => triad_compare::relu(p, &x)?.out,
        };
        times.push(t.elapsed().as_secs_f64());
        let c = p.net.costs().total();
        cost = (c.bytes_sent, c.rounds);
        drop(z);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[RUNS / 2], cost.0, cost.1))
}

fn in_process(op: Op) -> Result<PerParty> {
    let link = LinkConfig { timeout: Duration::from_secs(120), ..LinkConfig::default() };
    run_in_process(CpuDevice, &link, FixedConfig::default(), |p| run_op(p, op))
}

fn party_main(id: usize, config: PathBuf) -> Result<()> {
    let cfg = PartiesConfig::load(&config).map_err(|e| triad_sharing::Error::Usage(e.to_string()))?;
    let me = PartyId::ALL[id];
    let ident = TlsIdentity::load(&cfg, me)?;
    let net = connect_tls(&cfg, me, ident)?;
    let p = Party::setup(CpuDevice, net, FixedConfig::default())?;
    for op in ops_selected() {
        let (t, bytes, rounds) = run_op(&p, op)?;
        println!("RESULT {} {t} {bytes} {rounds}", op.name());
    }
    Ok(())
}

fn ops_selected() -> Vec<Op> {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    OPS.into_iter().filter(|o| filter.as_ref().is_none_or(|f| o.name().contains(f.as_str()))).collect()
}

/// Writes certificates and a config on free loopback ports into a temp dir.
fn write_setup() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("triad-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pki = generate_test_pki(["127.0.0.1", "127.0.0.1", "127.0.0.1"]).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("ca.pem"), &pki.ca_cert_pem)?;
    let mut parties = String::new();
    for (i, pp) in pki.parties.iter().enumerate() {
        std::fs::write(dir.join(format!("p{i}.pem")), &pp.cert_pem)?;
        std::fs::write(dir.join(format!("p{i}.key")), &pp.key_pem)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        parties.push_str(&format!(
            "[[party]]\nid = {i}\naddress = \"127.0.0.1:{port}\"\ncert = \"p{i}.pem\"\nkey = \"p{i}.key\"\n"
        ));
    }
    let cfg = format!("session = \"bench\"\ntimeout_ms = 120000\nca = \"ca.pem\"\n{parties}");
    std::fs::write(dir.join("parties.toml"), cfg)?;
    Ok(dir)
}

/// Per party: (median seconds, bytes sent, rounds).
type PerParty = [(f64, u64, u64); 3];

fn three_processes() -> std::io::Result<Vec<(String, PerParty)>> {
    let dir = write_setup()?;
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(&exe)
                .args(&args)
                .env("TRIAD_BENCH_PARTY", i.to_string())
                .env("TRIAD_BENCH_CONFIG", dir.join("parties.toml"))
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| c.wait_with_output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()))
        .collect::<std::io::Result<_>>()?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for op in ops_selected() {
        let mut r = [(0.0, 0, 0); 3];
        for (i, out) in outs.iter().enumerate() {
            let line = out.lines().find(|l| l.starts_with(&format!("RESULT {} ", op.name())));
            let Some(line) = line else {
                return Err(std::io::Error::other(format!("party {i} printed no result for {}", op.name())));
            };
            let f: Vec<&str> = line.rsplitn(4, ' ').collect();
            r[i] = (f[2].parse().unwrap_or(0.0), f[1].parse().unwrap_or(0), f[0].parse().unwrap_or(0));
        }
        rows.push((op.name(), r));
    }
    Ok(rows)
}

fn print_row(name: &str, mode: &str, r: &PerParty) {
    let t = r.iter().map(|x| x.0).fold(0.0, f64::max);
    let bytes: Vec<String> = r.iter().map(|x| format!("{:.2}", x.1 as f64 / 1e6)).collect();
    let rounds = r.iter().map(|x| x.2).max().unwrap_or(0);
    println!("| {name} | {mode} | {:.1} | {} | {rounds} |", t * 1e3, bytes.join(" / "));
}

fn main() {
    if let (Ok(id), Ok(cfg)) = (std::env::var("TRIAD_BENCH_PARTY"), std::env::var("TRIAD_BENCH_CONFIG")) {
        let id: usize = id.parse().unwrap_or(0);
        if let Err(e) = party_main(id, PathBuf::from(cfg)) {
            eprintln!("party {id}: {e}");
            std::process::exit(1);
        }
        return;
    }
    println!("| operation | mode | time (ms) | MB sent by party 0 / 1 / 2 | rounds (latency) |");
    println!("|---|---|---:|---|---:|");
    for op in ops_selected() {
        match in_process(op) {
            Ok(r) => print_row(&op.name(), "3 threads, in-process links", &r),
            Err(e) => println!("| {} | in-process | error: {e} | | |", op.name()),
        }
    }
    match three_processes() {
        Ok(rows) => {
            for (name, r) in rows {
                print_row(&name, "3 processes, mutual TLS on loopback", &r);
            }
        }
        Err(e) => println!("| three processes | error: {e} | | | |"),
    }
}
