//! `triad bench`: the paper's timing tables. Private inference at batch 1 and private
//! training per iteration at the paper's batch sizes, with time, bytes per party and
//! rounds for every top-level layer and in total, three parties in one process.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use triad_fixed::FixedConfig;
use triad_layers::{one_hot, softmax_xent_grad, Backend, Graph, Model, Sgd, SplitMix};
use triad_profile::{Profile, Work};
use triad_ring::{Device, Profiled};
use triad_sharing::{run_in_process, Party};
use triad_transport::{Cost, CostTable, LinkConfig, NetModel};

use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::models::{ModelName, Shape};
use crate::report::bytes;
use crate::run::BackendKind;

/// The paper's benchmark list: (model, dataset).
pub const PAPER_MODELS: &[(ModelName, Shape)] = &[
    (ModelName::Lenet, Shape::Mnist),
    (ModelName::Alexnet, Shape::Cifar10),
    (ModelName::Alexnet, Shape::TinyImagenet),
    (ModelName::Alexnet, Shape::Imagenet),
    (ModelName::Vgg16, Shape::Cifar10),
    (ModelName::Vgg16, Shape::TinyImagenet),
    (ModelName::Vgg16, Shape::Imagenet),
    (ModelName::Resnet50, Shape::Imagenet),
    (ModelName::Resnet101, Shape::Imagenet),
    (ModelName::Resnet152, Shape::Imagenet),
];

/// The training batch sizes of the paper's timings (LeNet 128, AlexNet 128, VGG-16 32
/// on CIFAR-10 and 8 on Tiny ImageNet); `None` where the paper times no training.
pub fn paper_train_batch(m: ModelName, d: Shape) -> Option<usize> {
    match (m, d) {
        (ModelName::Lenet, Shape::Mnist) => Some(128),
        (ModelName::Alexnet, Shape::Cifar10) => Some(128),
        (ModelName::Vgg16, Shape::Cifar10) => Some(32),
        (ModelName::Vgg16, Shape::TinyImagenet) => Some(8),
        _ => None,
    }
}

/// One row of a benchmark: a layer in one phase, or a total.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `forward`, `backward`, `loss`, `sgd` or `total`.
    pub phase: String,
    /// The layer's scope name and description.
    pub layer: String,
    /// Wall time on party 0, seconds.
    pub secs: f64,
    /// Rounds (the most any party counted).
    pub rounds: u64,
    /// Bytes sent by parties 0, 1, 2.
    pub bytes: [u64; 3],
    /// With `--profile`: party 0's milliseconds per kind of work ([`Work`]), then `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<WorkMs>,
}

/// Milliseconds per kind of work ([`Work::as_str`]), then `other`.
pub type WorkMs = Vec<(&'static str, f64)>;

/// Milliseconds per kind of work, then `other` (the wall time in none of them).
fn work_ms(p: &Profile) -> WorkMs {
    let mut v: Vec<(&'static str, f64)> = Work::ALL.iter().map(|w| (w.as_str(), p.secs(*w) * 1e3)).collect();
    v.push(("other", p.other_secs() * 1e3));
    v
}

/// One benchmark: a model, a dataset, inference or training.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// `lenet`, `alexnet`, ...
    pub model: String,
    /// The zoo network's name.
    pub net: String,
    /// Dataset shape.
    pub dataset: String,
    /// `inference` or `training`.
    pub mode: String,
    /// Batch size.
    pub batch: usize,
    /// The backend.
    pub backend: BackendKind,
    /// Counted on the dry-run device: bytes and rounds are exact, times are not measured.
    pub dry_run: bool,
    /// Peak resident memory during the benchmark, bytes: the three parties together (one
    /// process); `None` where unknown or in a dry run.
    pub peak_rss_bytes: Option<u64>,
    /// The modelled network, when one was asked for (`--rtt-ms`, `--gbps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Per layer, then the total (last row).
    pub rows: Vec<Row>,
    /// With `--profile`: each party's whole profile (milliseconds per kind of work).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party_profiles: Option<Vec<WorkMs>>,
}

fn row(phase: &str, layer: String, secs: f64, costs: &[Cost; 3]) -> Row {
    Row {
        phase: phase.to_string(),
        layer,
        secs,
        rounds: costs.iter().map(|c| c.rounds).max().unwrap_or(0),
        bytes: [costs[0].bytes_sent, costs[1].bytes_sent, costs[2].bytes_sent],
        profile: None,
    }
}

/// One timed piece of a benchmark: phase, label, seconds, and its profile on party 0.
type Timed = (String, String, f64, Profile);

/// Records each node's time (from the previous node's end to its own) and what the
/// profile (when on) gathered meanwhile.
fn timer<'a>(phase: &'static str, labels: &'a [String], times: &'a mut Vec<Timed>) -> impl FnMut(usize) + 'a {
    let mut t = Instant::now();
    let mut p = triad_profile::snapshot();
    move |i| {
        let now = triad_profile::snapshot();
        let label = labels.get(i).cloned().unwrap_or_default();
        times.push((phase.into(), label, t.elapsed().as_secs_f64(), now.since(&p)));
        t = Instant::now();
        p = now;
    }
}

/// Times `f` as one piece of the benchmark.
fn timed<T>(phase: &str, times: &mut Vec<Timed>, f: impl FnOnce() -> T) -> T {
    let (t, p) = (Instant::now(), triad_profile::snapshot());
    let out = f();
    times.push((phase.into(), phase.into(), t.elapsed().as_secs_f64(), triad_profile::snapshot().since(&p)));
    out
}

/// Times one forward pass (and with `train`, backward pass and SGD step) on random
/// inputs; per-layer times are party 0's. With `profile`, each party's thread is profiled
/// ([`triad_profile`]; `dev` should be [`Profiled`] for the device's share of it).
fn bench_one<D: Device>(
    dev: D,
    link: &LinkConfig,
    net: &Graph,
    batch: usize,
    train: bool,
    profile: bool,
) -> Result<(Vec<Row>, Option<Vec<WorkMs>>)> {
    let dims: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let classes: usize = net.out_dims()?.iter().product();
    let numel: usize = dims.iter().product();
    let mut rng = SplitMix(9);
    let x: Vec<f64> = (0..numel).map(|_| rng.unit()).collect();
    let labels: Vec<u8> = (0..batch).map(|_| (rng.next_u64() % classes as u64) as u8).collect();
    let y = one_hot(&labels, classes);
    let w = net.init_weights(3);
    let out = run_in_process(dev, link, FixedConfig::default(), |p: &Party<D>| {
        let owner = p.id == OWNER;
        let mut model = Model::new(p, net, OWNER, owner.then_some(&w[..]))?;
        model.train = train;
        let xs = p.input(OWNER, owner.then_some(&x[..]), &dims)?;
        let ys = p.input(OWNER, owner.then_some(&y[..]), &[batch, classes])?;
        p.net.barrier()?;
        p.net.reset_costs();
        if profile {
            triad_profile::start();
        }
        let mut times: Vec<Timed> = Vec::new();
        let t_all = Instant::now();
        let labels: Vec<String> =
            model.graph.nodes.iter().map(|n| format!("{}  {}", n.name, n.op.describe())).collect();
        let h = model.forward_observed(p, xs, &mut timer("forward", &labels, &mut times))?;
        if train {
            let (_, g) = timed("loss", &mut times, || softmax_xent_grad(p, &h, &ys))?;
            model.backward_observed(p, g, &mut timer("backward", &labels, &mut times))?;
            timed("sgd", &mut times, || model.sgd_step(p, &Sgd::new(0.01)))?;
        }
        let secs = t_all.elapsed().as_secs_f64();
        let whole = triad_profile::finish();
        Ok((times, secs, p.net.costs(), whole))
    })?;
    let tables: [CostTable; 3] = [out[0].2.clone(), out[1].2.clone(), out[2].2.clone()];
    let mut rows = Vec::new();
    for (phase, layer, secs, prof) in &out[0].0 {
        let scope = match phase.as_str() {
            "forward" | "backward" => format!("{phase}/{}", layer.split_whitespace().next().unwrap_or("")),
            other => other.to_string(),
        };
        let c = [tables[0].subtree(&scope), tables[1].subtree(&scope), tables[2].subtree(&scope)];
        let mut r = row(phase, layer.clone(), *secs, &c);
        r.profile = profile.then(|| work_ms(prof));
        rows.push(r);
    }
    let total = [tables[0].total(), tables[1].total(), tables[2].total()];
    let mut r = row("total", "total".into(), out[0].1, &total);
    r.profile = profile.then(|| work_ms(&out[0].3));
    rows.push(r);
    let parties = profile.then(|| out.iter().map(|o| work_ms(&o.3)).collect());
    Ok((rows, parties))
}

/// How `bench` runs.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Where the shares live and the arithmetic runs.
    pub backend: BackendKind,
    /// On [`DryRunDevice`](triad_ring::DryRunDevice): exact bytes and rounds, no times.
    pub dry_run: bool,
    /// Where each party's time goes ([`triad_profile::Work`]); not with `dry_run`.
    pub profile: bool,
    /// A modelled network between the parties ([`NetModel`]); `None`: in-process links.
    pub net: Option<NetModel>,
}

/// Runs one benchmark as `opt` says. With `profile`, the rows say where party 0's time
/// went and the result holds each party's whole profile.
pub fn bench(m: ModelName, d: Shape, train: bool, batch: usize, opt: &BenchOptions) -> Result<BenchResult> {
    if opt.dry_run && opt.profile {
        return Err(Error::Usage("--profile times the arithmetic, which --dry-run does not run".into()));
    }
    let net = m.net(d).map_err(Error::Usage)?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), net: opt.net, ..LinkConfig::default() };
    crate::memory::reset_peak();
    let (rows, party_profiles) = if opt.dry_run {
        let link = LinkConfig { net: None, ..link };
        let (mut rows, _) = bench_one(triad_ring::DryRunDevice, &link, &net, batch, train, false)?;
        for r in &mut rows {
            r.secs = f64::NAN;
        }
        (rows, None)
    } else if opt.profile {
        crate::with_device!(opt.backend, dev => bench_one(Profiled(dev), &link, &net, batch, train, true)?)
    } else {
        crate::with_device!(opt.backend, dev => bench_one(dev, &link, &net, batch, train, false)?)
    };
    let backend = opt.backend;
    let dry_run = opt.dry_run;
    Ok(BenchResult {
        model: m.as_str().to_string(),
        net: net.name.clone(),
        dataset: d.as_str().to_string(),
        mode: if train { "training" } else { "inference" }.to_string(),
        batch,
        backend,
        dry_run,
        network: opt.net.filter(|_| !dry_run).map(Network::of),
        peak_rss_bytes: if dry_run { None } else { crate::memory::peak_rss_bytes() },
        rows,
        party_profiles,
    })
}

/// The modelled network of a benchmark, and what it predicts from rounds and bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Network {
    /// Round-trip time, milliseconds.
    pub rtt_ms: f64,
    /// Bandwidth of each link direction, Gbit/s.
    pub gbps: f64,
    #[serde(skip)]
    model: NetModel,
}

impl Network {
    fn of(model: NetModel) -> Network {
        Network { rtt_ms: model.rtt.as_secs_f64() * 1e3, gbps: model.bytes_per_sec as f64 * 8.0 / 1e9, model }
    }

    /// The network's share of a row's time: `rounds · rtt/2 + bytes / bandwidth`, with the
    /// bytes a party sends as if on one link (an upper bound: they go over two).
    pub fn predict_secs(&self, r: &Row) -> f64 {
        let most = r.bytes.iter().copied().max().unwrap_or(0);
        self.model.predict(r.rounds, most).as_secs_f64()
    }
}

/// A benchmark as a table.
pub fn render(b: &BenchResult) -> String {
    let mut s = String::new();
    let on = if b.dry_run { "dry run: bytes and rounds only" } else { b.backend.as_str() };
    let _ = writeln!(s, "{} on {}: private {} at batch {} ({on})", b.model, b.dataset, b.mode, b.batch);
    let w = b.rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "  {:<8}  {:<w$}  {:>10}  {:>7}  {:>12}  {:>12}  {:>12}",
        "phase", "layer", "time (ms)", "rounds", "bytes p0", "bytes p1", "bytes p2"
    );
    for r in &b.rows {
        let _ = writeln!(
            s,
            "  {:<8}  {:<w$}  {:>10}  {:>7}  {:>12}  {:>12}  {:>12}",
            r.phase,
            r.layer,
            if r.secs.is_nan() { "-".to_string() } else { format!("{:.1}", r.secs * 1e3) },
            r.rounds,
            bytes(r.bytes[0]),
            bytes(r.bytes[1]),
            bytes(r.bytes[2])
        );
    }
    if let Some(m) = b.peak_rss_bytes {
        let _ = writeln!(s, "  memory: peak resident {} for the three parties (one process)", bytes(m));
    }
    if let (Some(n), Some(total)) = (&b.network, b.rows.last()) {
        let _ = writeln!(
            s,
            "  network: {} ms round trip, {} Gbit/s per link; its share by the model (rounds · rtt/2 + bytes / bandwidth): {:.1} ms of the total",
            n.rtt_ms,
            n.gbps,
            n.predict_secs(total) * 1e3
        );
    }
    if let Some(parties) = &b.party_profiles {
        render_profile(&mut s, b, parties, w);
    }
    s
}

/// The profile tables: party 0's milliseconds per layer and kind of work, then each
/// party's totals.
fn render_profile(s: &mut String, b: &BenchResult, parties: &[WorkMs], w: usize) {
    let Some(kinds) = parties.first() else { return };
    let _ = writeln!(s, "  where the time goes (ms on each party's thread; other: in none of these)");
    let _ = write!(s, "  {:<8}  {:<w$}", "phase", "layer");
    for (k, _) in kinds {
        let _ = write!(s, "  {k:>8}");
    }
    let _ = writeln!(s);
    let cells = |s: &mut String, v: &[(&'static str, f64)]| {
        for (_, ms) in v {
            let _ = write!(s, "  {ms:>8.1}");
        }
        let _ = writeln!(s);
    };
    for r in &b.rows {
        if let Some(v) = &r.profile {
            let _ = write!(s, "  {:<8}  {:<w$}", r.phase, r.layer);
            cells(s, v);
        }
    }
    for (i, v) in parties.iter().enumerate() {
        let _ = write!(s, "  {:<8}  {:<w$}", "total", format!("party {i}"));
        cells(s, v);
    }
}
