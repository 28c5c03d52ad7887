//! `triad bench`: the paper's timing tables. Private inference at batch 1 and private
//! training per iteration at the paper's batch sizes, with time, bytes per party and
//! rounds for every top-level layer and in total, three parties in one process.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use triad_fixed::FixedConfig;
use triad_layers::{one_hot, softmax_xent_grad, Backend, Graph, Model, Sgd, SplitMix};
use triad_ring::Device;
use triad_sharing::{run_in_process, Party};
use triad_transport::{Cost, CostTable, LinkConfig};

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
    /// Per layer, then the total (last row).
    pub rows: Vec<Row>,
}

fn row(phase: &str, layer: String, secs: f64, costs: &[Cost; 3]) -> Row {
    Row {
        phase: phase.to_string(),
        layer,
        secs,
        rounds: costs.iter().map(|c| c.rounds).max().unwrap_or(0),
        bytes: [costs[0].bytes_sent, costs[1].bytes_sent, costs[2].bytes_sent],
    }
}

/// Records each node's time (from the previous node's end to its own) as
/// `(phase, label, seconds)`.
fn timer<'a>(
    phase: &'static str,
    labels: &'a [String],
    times: &'a mut Vec<(String, String, f64)>,
) -> impl FnMut(usize) + 'a {
    let mut t = Instant::now();
    move |i| {
        times.push((phase.into(), labels.get(i).cloned().unwrap_or_default(), t.elapsed().as_secs_f64()));
        t = Instant::now();
    }
}

/// Times one forward pass (and with `train`, backward pass and SGD step) on random
/// inputs; per-layer times are party 0's.
fn bench_one<D: Device>(dev: D, net: &Graph, batch: usize, train: bool) -> Result<Vec<Row>> {
    let dims: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let classes: usize = net.out_dims()?.iter().product();
    let numel: usize = dims.iter().product();
    let mut rng = SplitMix(9);
    let x: Vec<f64> = (0..numel).map(|_| rng.unit()).collect();
    let labels: Vec<u8> = (0..batch).map(|_| (rng.next_u64() % classes as u64) as u8).collect();
    let y = one_hot(&labels, classes);
    let w = net.init_weights(3);
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let out = run_in_process(dev, &link, FixedConfig::default(), |p: &Party<D>| {
        let owner = p.id == OWNER;
        let mut model = Model::new(p, net, OWNER, owner.then_some(&w[..]))?;
        model.train = train;
        let xs = p.input(OWNER, owner.then_some(&x[..]), &dims)?;
        let ys = p.input(OWNER, owner.then_some(&y[..]), &[batch, classes])?;
        p.net.barrier()?;
        p.net.reset_costs();
        let mut times: Vec<(String, String, f64)> = Vec::new();
        let t_all = Instant::now();
        let labels: Vec<String> =
            model.graph.nodes.iter().map(|n| format!("{}  {}", n.name, n.op.describe())).collect();
        let h = model.forward_observed(p, xs, &mut timer("forward", &labels, &mut times))?;
        if train {
            let t = Instant::now();
            let (_, g) = softmax_xent_grad(p, &h, &ys)?;
            times.push(("loss".into(), "loss".into(), t.elapsed().as_secs_f64()));
            model.backward_observed(p, g, &mut timer("backward", &labels, &mut times))?;
            let t = Instant::now();
            model.sgd_step(p, &Sgd::new(0.01))?;
            times.push(("sgd".into(), "sgd".into(), t.elapsed().as_secs_f64()));
        }
        Ok((times, t_all.elapsed().as_secs_f64(), p.net.costs()))
    })?;
    let tables: [CostTable; 3] = [out[0].2.clone(), out[1].2.clone(), out[2].2.clone()];
    let mut rows = Vec::new();
    for (phase, layer, secs) in &out[0].0 {
        let scope = match phase.as_str() {
            "forward" | "backward" => format!("{phase}/{}", layer.split_whitespace().next().unwrap_or("")),
            other => other.to_string(),
        };
        let c = [tables[0].subtree(&scope), tables[1].subtree(&scope), tables[2].subtree(&scope)];
        rows.push(row(phase, layer.clone(), *secs, &c));
    }
    let total = [tables[0].total(), tables[1].total(), tables[2].total()];
    rows.push(row("total", "total".into(), out[0].1, &total));
    Ok(rows)
}

/// Runs one benchmark on the chosen backend, or with `dry_run` on
/// [`DryRunDevice`](triad_ring::DryRunDevice) (exact bytes and rounds, no times).
pub fn bench(
    m: ModelName,
    d: Shape,
    train: bool,
    batch: usize,
    backend: BackendKind,
    dry_run: bool,
) -> Result<BenchResult> {
    let net = m.net(d).map_err(Error::Usage)?;
    let rows = if dry_run {
        let mut rows = bench_one(triad_ring::DryRunDevice, &net, batch, train)?;
        for r in &mut rows {
            r.secs = f64::NAN;
        }
        rows
    } else {
        crate::with_device!(backend, dev => bench_one(dev, &net, batch, train)?)
    };
    Ok(BenchResult {
        model: m.as_str().to_string(),
        net: net.name.clone(),
        dataset: d.as_str().to_string(),
        mode: if train { "training" } else { "inference" }.to_string(),
        batch,
        backend,
        dry_run,
        rows,
    })
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
    s
}
