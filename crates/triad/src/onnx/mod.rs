//! Bring your own model: `triad infer --onnx MODEL.onnx --inputs X.npy --output Y.npy`
//! and `triad inspect`.
//!
//! The model owner's ONNX file is imported ([`triad_onnx::import_file`]) before any
//! party starts, so an unsupported operator or a bad file is one line; the owner's
//! inputs (`[N, C, H, W]` or `[N, F]`, float32 or float64) and weights are secret-shared,
//! the graph (public, like a zoo architecture) is run privately, and only the outputs
//! are opened, to the owner, who writes them as `[N, outputs]` float64.
//!
//! - [`parties`]: the job as each party runs it, in one process or as one of three
//!   processes (`triad party ... infer --onnx` / `--onnx-from-owner`): party 0 announces
//!   the public graph, the others check and decode it, then all run it.
//! - [`train`]: `triad train --onnx` on NumPy data or a dataset (the bundled MNIST).
//! - [`range`]: the fixed-point range check `inspect`, `infer` and `train` print.
//! - [`local`]: the same jobs as a library on values in memory (the Python package's
//!   local mode).

use std::path::Path;
use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::{argmax_rows, layer_cost_table, Backend, Graph, Model, Sgd};
use triad_sharing::{run_in_process, Party};
use triad_transport::{CostTable, LinkConfig};

use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::run::BackendKind;

pub(crate) mod cli;
pub mod local;
pub mod parties;
pub mod range;
pub mod train;
mod train_data;

use parties::{OwnerModel, PublicGraph};

/// What `infer --onnx` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxReport {
    /// The model file.
    pub model: String,
    /// Nodes of the imported graph.
    pub nodes: usize,
    /// Trainable parameters.
    pub params: usize,
    /// The SHA-256 of the public graph (what parties 1 and 2 pin with `--expect-graph`).
    pub graph_sha256: String,
    /// Samples classified.
    pub samples: usize,
    /// The predicted class (argmax) of every sample.
    pub predictions: Vec<usize>,
    /// Where the outputs were written.
    pub output: Option<String>,
    /// Wall time of the private inference in seconds.
    pub secs: f64,
    /// Bytes sent by each party.
    pub bytes: [u64; 3],
    /// Communication rounds (the most any party counted).
    pub rounds: u64,
}

/// Imports the owner's ONNX file, or one error line naming what cannot be imported.
pub fn import(path: &Path) -> Result<triad_onnx::Imported> {
    triad_onnx::import_file(path).map_err(|e| Error::Usage(e.to_string()))
}

/// The owner's NumPy inputs, checked against the graph's input shape: `(n, values)`.
pub fn read_inputs(g: &Graph, inputs: &Path) -> Result<(usize, Vec<f64>)> {
    let (shape, x) = triad_layers::data::npy::read_f64(inputs)?;
    let n = check_inputs(g, &inputs.display().to_string(), &shape, &x)?;
    Ok((n, x))
}

/// The owner's inputs `x` of shape `shape` (`[N, ...]`, row-major), checked against the
/// graph's input shape: the number of samples `N`, or one error line naming `what` (the
/// file, or the argument).
pub fn check_inputs(g: &Graph, what: &str, shape: &[usize], x: &[f64]) -> Result<usize> {
    let per: Vec<usize> = shape.iter().skip(1).copied().collect();
    if shape.is_empty() || per != g.input() {
        return Err(Error::Usage(format!(
            "{what}: inputs of shape {shape:?}; the model takes [N, {}]",
            g.input().iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    if shape[0] == 0 {
        return Err(Error::Usage(format!("{what}: no samples")));
    }
    let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if len != Some(x.len()) {
        return Err(Error::Usage(format!("{what}: {} values for the shape {shape:?}", x.len())));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Usage(format!("{what}: element {i} is not finite")));
    }
    Ok(shape[0])
}

/// The most range warnings `infer` and `train` print (`inspect` prints every one).
const MAX_RANGE_LINES: usize = 10;

/// Prints a warning line (stderr) for every node whose magnitude bound threatens the
/// fixed-point range ([`range::check`]), for inputs bounded by the largest of `x`: the
/// first [`MAX_RANGE_LINES`], then one line with how many more (worst-case bounds grow
/// with depth, and a deep model would otherwise bury its own output). Then the owner's
/// plaintext check ([`crate::precheck`]) on the first `first` samples (`train`: in
/// training mode), which refuses the job if a value certainly leaves the range.
pub fn warn_ranges(im: &triad_onnx::Imported, x: &[f64], frac_bits: u32, first: usize, train: bool) -> Result<()> {
    let bound = range::input_bound(x);
    let warnings = range::check(&im.graph, &im.weights, bound, frac_bits)?;
    for w in warnings.iter().take(MAX_RANGE_LINES) {
        eprintln!("{} (inputs bounded by {bound})", w.line());
    }
    if warnings.len() > MAX_RANGE_LINES {
        let more = warnings.len() - MAX_RANGE_LINES;
        eprintln!("warning: {more} more nodes may leave the fixed-point range (triad inspect --input-bound {bound} lists every one)");
    }
    let per: usize = im.graph.input().iter().product();
    let n = first.min(crate::precheck::SAMPLES_CHECKED).min(x.len() / per.max(1));
    crate::precheck::owner_range_check(&im.graph, &im.weights, &x[..n * per], n, frac_bits, train)
}

/// The fixed-point configuration of `--frac-bits`.
pub(crate) fn fixed_config(frac_bits: u32) -> Result<FixedConfig> {
    crate::run::fixed_config(frac_bits)
}

/// Private inference of an ONNX model on the owner's NumPy inputs, three parties in this
/// process (the same announcement and job as three processes run, [`parties::infer`]);
/// with `output` the outputs are written there as `[N, outputs]` float64.
pub fn infer(
    model: &Path,
    im: &triad_onnx::Imported,
    inputs: &Path,
    output: Option<&Path>,
    batch: Option<usize>,
    frac_bits: u32,
    guard: bool,
    backend: BackendKind,
) -> Result<OnnxReport> {
    let (n, x) = read_inputs(&im.graph, inputs)?;
    let (logits, mut report) = infer_values(model, im, n, &x, batch, frac_bits, guard, backend)?;
    if let Some(path) = output {
        let outs = logits.len() / n;
        triad_layers::data::npy::write_f64(path, &[n, outs], &logits)?;
        report.output = Some(path.display().to_string());
    }
    Ok(report)
}

/// Private inference of an ONNX model on `n` samples `x` (row-major, checked by
/// [`check_inputs`]), three parties in this process: the opened outputs, `n` rows of the
/// graph's output size, and the report (`output` unset).
pub fn infer_values(
    model: &Path,
    im: &triad_onnx::Imported,
    n: usize,
    x: &[f64],
    batch: Option<usize>,
    frac_bits: u32,
    guard: bool,
    backend: BackendKind,
) -> Result<(Vec<f64>, OnnxReport)> {
    let public = PublicGraph::of(&im.graph)?;
    let fixed = fixed_config(frac_bits)?;
    warn_ranges(im, x, frac_bits, n, false)?;
    let batch = batch.unwrap_or(64).clamp(1, n);
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let owner = OwnerModel { graph: &public, weights: &im.weights, x, n, batch };
    let results = crate::with_device!(backend, dev => run_in_process(dev, &link, fixed, |p: &Party<_>| {
        let mine = (p.id == OWNER).then_some(&owner);
        parties::infer(p, mine, None, false, guard).map_err(crate::run::into_protocol)
    }).map_err(crate::run::from_protocol)?);
    let [o0, o1, o2] = results;
    let logits = o0.logits.unwrap_or_default();
    let outs: usize = im.graph.out_dims()?.iter().product();
    let totals = [o0.costs.total(), o1.costs.total(), o2.costs.total()];
    let report = OnnxReport {
        model: model.display().to_string(),
        nodes: im.graph.nodes.len() - 1,
        params: im.graph.num_params(),
        graph_sha256: public.sha256,
        samples: n,
        predictions: argmax_rows(&logits, outs.max(1)),
        output: None,
        secs: o0.secs,
        bytes: totals.each_ref().map(|c| c.bytes_sent),
        rounds: totals.iter().map(|c| c.rounds).max().unwrap_or(0),
    };
    Ok((logits, report))
}

/// The human-readable lines of an [`OnnxReport`].
pub fn render(r: &OnnxReport) -> String {
    let mut s = format!(
        "model     {} ({} nodes, {} parameters, graph sha256 {})\nsamples   {} classified privately in {:.3} s\n",
        r.model, r.nodes, r.params, r.graph_sha256, r.samples, r.secs
    );
    s.push_str(&format!(
        "traffic   {} / {} / {} bytes sent by parties 0 / 1 / 2, {} rounds\n",
        r.bytes[0], r.bytes[1], r.bytes[2], r.rounds
    ));
    let shown: Vec<String> = r.predictions.iter().take(20).map(usize::to_string).collect();
    let more = if r.predictions.len() > 20 { " ..." } else { "" };
    s.push_str(&format!("classes   {}{more}\n", shown.join(" ")));
    if let Some(o) = &r.output {
        s.push_str(&format!("output    {o} (the outputs, opened to party 0 only)\n"));
    }
    s
}

/// The dry run's cost table of one forward pass (batch `batch`), or of a training step.
fn dry_costs(g: &Graph, batch: usize, train: bool) -> Result<String> {
    let zeros: Vec<Vec<f64>> = g.tensors().iter().map(|t| vec![0.0; t.shape.iter().product()]).collect();
    let mut dims = vec![batch];
    dims.extend(g.input());
    let x = vec![0.0; dims.iter().product()];
    let classes: usize = g.out_dims()?.iter().product();
    let y = vec![0.0; batch * classes];
    let link = LinkConfig { timeout: Duration::from_secs(3600), ..LinkConfig::default() };
    let costs = run_in_process(triad_ring::DryRunDevice, &link, FixedConfig::default(), |p| {
        let owner = p.id == OWNER;
        let mut m = Model::new(p, g, OWNER, owner.then_some(&zeros[..]))?;
        m.train = train;
        let xs = p.input(OWNER, owner.then_some(&x[..]), &dims)?;
        let ys = p.input(OWNER, owner.then_some(&y[..]), &[batch, classes])?;
        p.net.barrier()?;
        p.net.reset_costs();
        if train {
            m.train_step(p, xs, &ys, &Sgd::new(0.01))?;
        } else {
            m.forward(p, xs)?;
        }
        Ok(p.net.costs())
    })?;
    let costs: [CostTable; 3] = costs;
    let other: &[&str] = if train { &["loss", "sgd"] } else { &[] };
    Ok(layer_cost_table(g, &costs, "forward", other)
        + &if train { layer_cost_table(g, &costs, "backward", &[]) } else { String::new() })
}

/// What `triad inspect` looks at: a graph, the owner's plaintext weights (the ONNX
/// file's, or a zoo model's initial ones), and the range check's input bound.
#[derive(Clone, Copy, Debug)]
pub struct Inspected<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// Its weights in state order.
    pub weights: &'a [Vec<f64>],
    /// Where they come from (`the ONNX file's`, `initial, seed 42`).
    pub weights_from: &'a str,
    /// The bound on the inputs' magnitude for the range check.
    pub input_bound: f64,
    /// Fractional bits.
    pub frac_bits: u32,
}

/// `triad inspect`: every node with its output shape, every tensor with its shape, the
/// graph's digest, the fixed-point range check ([`range::check`]), and the exact bytes
/// and rounds of a private forward pass at batch 1 and of a training step at
/// `train_batch` (the dry run), for an ONNX file or a zoo graph.
pub fn inspect(m: &Inspected, source: &str, train_batch: usize) -> Result<String> {
    let g = m.graph;
    let mut s = format!("{source}\n\n{}\n", g.summary(false)?);
    s.push_str("tensors (owner's, secret-shared)\n");
    for t in g.tensors() {
        s.push_str(&format!(
            "  {:<40} {:<18} {}\n",
            t.name,
            format!("{:?}", t.shape),
            if t.trainable { "parameter" } else { "buffer" }
        ));
    }
    let public = PublicGraph::of(g)?;
    s.push_str(&format!("\ngraph sha256 {} (what parties 1 and 2 pin with --expect-graph)\n", public.sha256));
    let training = PublicGraph::of(&train::training_graph(g))?;
    if training.sha256 != public.sha256 {
        let what = "without the final softmax: what party ... train sends";
        s.push_str(&format!("training graph sha256 {} ({what})\n", training.sha256));
    }
    s.push_str(&format!(
        "\nfixed-point range ({} fractional bits, inputs bounded by {}, weights {})\n",
        m.frac_bits, m.input_bound, m.weights_from
    ));
    let warnings = range::check(g, m.weights, m.input_bound, m.frac_bits)?;
    if warnings.is_empty() {
        s.push_str("  every node's bound is within the range\n");
    }
    for w in &warnings {
        s.push_str(&format!("  {}\n", w.line()));
    }
    s.push_str("\nprivate inference, batch 1 (dry run: exact bytes and rounds)\n");
    s.push_str(&dry_costs(g, 1, false)?);
    s.push_str(&format!("\nprivate training step, batch {train_batch} (dry run; forward rows, then backward)\n"));
    s.push_str(&dry_costs(g, train_batch, true)?);
    Ok(s)
}
