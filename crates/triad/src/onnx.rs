//! Bring your own model: `triad infer --onnx MODEL.onnx --inputs X.npy --output Y.npy`
//! and `triad inspect`.
//!
//! The model owner's ONNX file is imported ([`triad_onnx::import_file`]) before any
//! party starts, so an unsupported operator or a bad file is one line; the owner's
//! inputs (`[N, C, H, W]` or `[N, F]`, float32 or float64) and weights are secret-shared,
//! the graph (public, like a zoo architecture) is run privately, and only the outputs
//! are opened, to the owner, who writes them as `[N, outputs]` float64.

use std::path::Path;
use std::time::{Duration, Instant};

use triad_fixed::FixedConfig;
use triad_layers::{argmax_rows, layer_cost_table, Backend, Graph, Model, Sgd};
use triad_sharing::{run_in_process, Party};
use triad_transport::{CostTable, LinkConfig};

use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::run::BackendKind;

/// What `infer --onnx` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxReport {
    /// The model file.
    pub model: String,
    /// Nodes of the imported graph.
    pub nodes: usize,
    /// Trainable parameters.
    pub params: usize,
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

/// Private inference of an ONNX model on the owner's NumPy inputs, three parties in this
/// process.
pub fn infer(
    model: &Path,
    im: &triad_onnx::Imported,
    inputs: &Path,
    output: Option<&Path>,
    batch: Option<usize>,
    frac_bits: u32,
    backend: BackendKind,
) -> Result<OnnxReport> {
    let g = &im.graph;
    let (shape, x) = triad_layers::data::npy::read_f64(inputs)?;
    let per: Vec<usize> = shape.iter().skip(1).copied().collect();
    if shape.is_empty() || per != g.input() {
        return Err(Error::Usage(format!(
            "{}: inputs of shape {shape:?}; the model takes [N, {}]",
            inputs.display(),
            g.input().iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Usage(format!("{}: element {i} is not finite", inputs.display())));
    }
    let n = shape[0];
    let outs: usize = g.out_dims()?.iter().product();
    let batch = batch.unwrap_or(n.clamp(1, 64));
    let fixed = FixedConfig::new(frac_bits).map_err(|e| Error::Usage(format!("--frac-bits {frac_bits}: {e}")))?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let per_len: usize = per.iter().product();
    let t = Instant::now();
    let w = &im.weights;
    let results = crate::with_device!(backend, dev => run_in_process(dev, &link, fixed, |p: &Party<_>| {
        let owner = p.id == OWNER;
        let mut m = Model::new(p, g, OWNER, owner.then_some(&w[..]))?;
        m.train = false;
        p.net.barrier()?;
        p.net.reset_costs();
        let mut logits = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let k = batch.min(n - start);
            let mut dims = vec![k];
            dims.extend(&per);
            let xs = owner.then(|| &x[start * per_len..(start + k) * per_len]);
            let y = m.forward(p, p.input(OWNER, xs, &dims)?)?;
            if let Some(v) = p.open(OWNER, &y)? {
                logits.extend(v);
            }
        }
        Ok((logits, p.net.costs()))
    }))?;
    let secs = t.elapsed().as_secs_f64();
    let [(logits, c0), (_, c1), (_, c2)] = results;
    if let Some(path) = output {
        triad_layers::data::npy::write_f64(path, &[n, outs], &logits)?;
    }
    let costs = [c0, c1, c2];
    Ok(OnnxReport {
        model: model.display().to_string(),
        nodes: g.nodes.len() - 1,
        params: g.num_params(),
        samples: n,
        predictions: argmax_rows(&logits, outs.max(1)),
        output: output.map(|p| p.display().to_string()),
        secs,
        bytes: [costs[0].total().bytes_sent, costs[1].total().bytes_sent, costs[2].total().bytes_sent],
        rounds: costs.iter().map(|c| c.total().rounds).max().unwrap_or(0),
    })
}

/// The human-readable lines of an [`OnnxReport`].
pub fn render(r: &OnnxReport) -> String {
    let mut s = format!(
        "model     {} ({} nodes, {} parameters)\nsamples   {} classified privately in {:.3} s\n",
        r.model, r.nodes, r.params, r.samples, r.secs
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

/// `triad inspect`: every node with its output shape, every tensor with its shape, and
/// the exact bytes and rounds of a private forward pass at batch 1 and of a training
/// step at `train_batch` (the dry run), for an ONNX file or a zoo graph.
pub fn inspect(g: &Graph, source: &str, train_batch: usize) -> Result<String> {
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
    s.push_str("\nprivate inference, batch 1 (dry run: exact bytes and rounds)\n");
    s.push_str(&dry_costs(g, 1, false)?);
    s.push_str(&format!("\nprivate training step, batch {train_batch} (dry run; forward rows, then backward)\n"));
    s.push_str(&dry_costs(g, train_batch, true)?);
    Ok(s)
}

/// The imported graph of an ONNX file, for `inspect`.
pub fn graph_of(path: &Path) -> Result<Graph> {
    Ok(import(path)?.graph)
}

/// What `train --onnx` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxTrainReport {
    /// The model file.
    pub model: String,
    /// Training samples.
    pub samples: usize,
    /// Training steps taken.
    pub steps: usize,
    /// Wall time of private training in seconds.
    pub secs: f64,
    /// Accuracy of the trained private model on the training inputs (opened predictions).
    pub accuracy: f64,
    /// Where the trained model was written.
    pub saved: Option<String>,
}

/// Options of [`train`].
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    /// Batch size.
    pub batch: usize,
    /// Epochs over the inputs.
    pub epochs: usize,
    /// Stop after this many steps.
    pub steps: Option<usize>,
    /// SGD.
    pub sgd: Sgd,
    /// Fractional bits.
    pub frac_bits: u32,
}

/// The training graph of an imported model: without a final softmax (the loss applies
/// its own to the logits).
fn training_graph(g: &Graph) -> Graph {
    let mut t = g.clone();
    if t.nodes.len() > 2 && matches!(t.nodes.last().map(|n| &n.op), Some(triad_layers::Op::Softmax)) {
        t.nodes.pop();
    }
    t
}

/// Private training of an imported ONNX model on the owner's NumPy inputs and integer
/// labels, three parties in this process; the owner may write the trained model as an
/// ONNX file (the same graph, trained initializers).
pub fn train(
    model: &Path,
    im: &triad_onnx::Imported,
    inputs: &Path,
    labels: &Path,
    save: Option<&Path>,
    opt: TrainOptions,
    backend: BackendKind,
) -> Result<OnnxTrainReport> {
    let g = training_graph(&im.graph);
    let (shape, x) = triad_layers::data::npy::read_f64(inputs)?;
    let per: Vec<usize> = shape.iter().skip(1).copied().collect();
    if shape.is_empty() || per != g.input() {
        return Err(Error::Usage(format!("{}: inputs of shape {shape:?} do not fit the model", inputs.display())));
    }
    let n = shape[0];
    let classes: usize = g.out_dims()?.iter().product();
    let y = triad_layers::data::npy::read_labels(labels)?;
    if y.len() != n {
        return Err(Error::Usage(format!("{}: {} labels for {n} inputs", labels.display(), y.len())));
    }
    if let Some(bad) = y.iter().find(|&&l| l < 0 || l as usize >= classes) {
        return Err(Error::Usage(format!("{}: label {bad} outside 0..{classes}", labels.display())));
    }
    let mut onehot = vec![0.0; n * classes];
    for (i, &l) in y.iter().enumerate() {
        onehot[i * classes + l as usize] = 1.0;
    }
    let fixed = FixedConfig::new(opt.frac_bits).map_err(|e| Error::Usage(format!("--frac-bits: {e}")))?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let per_len: usize = per.iter().product();
    let batch = opt.batch.clamp(1, n.max(1));
    let per_epoch = n.div_ceil(batch);
    let total = opt.steps.unwrap_or(per_epoch * opt.epochs).min(per_epoch * opt.epochs.max(1));
    let w = &im.weights;
    let t = Instant::now();
    let results = crate::with_device!(backend, dev => run_in_process(dev, &link, fixed, |p: &Party<_>| {
        let owner = p.id == OWNER;
        let mut m = Model::new(p, &g, OWNER, owner.then_some(&w[..]))?;
        for step in 0..total {
            let start = (step % per_epoch) * batch;
            let k = batch.min(n - start);
            let mut dims = vec![k];
            dims.extend(&per);
            let xs = p.input(OWNER, owner.then(|| &x[start * per_len..(start + k) * per_len]), &dims)?;
            let ys = p.input(OWNER, owner.then(|| &onehot[start * classes..(start + k) * classes]), &[k, classes])?;
            m.train_step(p, xs, &ys, &opt.sgd)?;
        }
        m.train = false;
        let mut logits = Vec::new();
        for start in (0..n).step_by(batch) {
            let k = batch.min(n - start);
            let mut dims = vec![k];
            dims.extend(&per);
            let xs = p.input(OWNER, owner.then(|| &x[start * per_len..(start + k) * per_len]), &dims)?;
            let out = m.forward(p, xs)?;
            logits.extend(p.open(OWNER, &out)?.unwrap_or_default());
        }
        // The trained weights are opened (to the owner only) when the owner asked for them.
        let state = if save.is_some() { m.open_weights(p, OWNER)? } else { None };
        Ok((logits, state))
    }))?;
    let secs = t.elapsed().as_secs_f64();
    let [(logits, state), _, _] = results;
    let preds = argmax_rows(&logits, classes);
    let right = preds.iter().zip(&y).filter(|(p, l)| **p as i64 == **l).count();
    if let (Some(dst), Some(state)) = (save, state) {
        // The opened model is the owner's secret: a private file (0600, temporary name).
        let bytes = triad_onnx::trained_model(model, dst, im, &state).map_err(|e| Error::Usage(e.to_string()))?;
        crate::files::write_private(dst, &bytes)?;
    }
    Ok(OnnxTrainReport {
        model: model.display().to_string(),
        samples: n,
        steps: total,
        secs,
        accuracy: right as f64 / n.max(1) as f64,
        saved: save.map(|p| p.display().to_string()),
    })
}
