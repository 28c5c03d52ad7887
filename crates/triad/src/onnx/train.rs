//! `triad train --onnx MODEL.onnx`: private training of an imported model on the owner's
//! NumPy inputs and labels, or on the bundled MNIST digits (or a dataset directory with
//! `--data`), three parties in this process; the owner may write the trained model as an
//! ONNX file (the same graph, trained initializers).

use std::path::Path;
use std::time::{Duration, Instant};

use triad_layers::{argmax_rows, Backend, Graph, Model, Sgd};
use triad_ring::Device;
use triad_sharing::{run_in_process, Party};
use triad_transport::{CostTable, LinkConfig, Peer};

use super::parties::{self, Announced, JobKind, OwnerModel, PublicGraph};
pub use super::train_data::TrainData;
use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::run::{BackendKind, Session};

/// What `train --onnx` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxTrainReport {
    /// The model file.
    pub model: String,
    /// The training data (`X.npy`, `mnist (bundled)`, ...).
    pub data: String,
    /// Training samples.
    pub samples: usize,
    /// Training steps taken.
    pub steps: usize,
    /// Wall time of private training in seconds.
    pub secs: f64,
    /// Accuracy of the trained private model (opened predictions) on `evaluated`.
    pub accuracy: f64,
    /// What the accuracy was measured on: the training inputs (NumPy data), or the test
    /// split's first samples (a dataset).
    pub evaluated: String,
    /// Where the trained model was written.
    pub saved: Option<String>,
    /// Bytes sent by each party in training and evaluation (three parties in this
    /// process; one party of three processes reports its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<[u64; 3]>,
    /// Communication rounds (the most any party counted; three parties in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u64>,
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
    /// The overflow guard (`--guard`).
    pub guard: bool,
}

/// The training graph of an imported model: without a final softmax (the loss applies
/// its own to the logits).
pub(crate) fn training_graph(g: &Graph) -> Graph {
    let mut t = g.clone();
    if t.nodes.len() > 2 && matches!(t.nodes.last().map(|n| &n.op), Some(triad_layers::Op::Softmax)) {
        t.nodes.pop();
    }
    t
}

/// The public plan of a training job, which party 0 announces after the graph: the
/// steps, the evaluation samples, SGD's parameters, and whether the trained weights are
/// opened to party 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Training steps (batches in order, wrapping around the samples).
    pub steps: usize,
    /// Evaluation samples classified after training.
    pub n_eval: usize,
    /// SGD.
    pub sgd: Sgd,
    /// Open the trained weights to party 0 (`--save-weights`).
    pub save: bool,
}

/// The most training steps party 0 may announce.
const MAX_STEPS: u64 = 1 << 32;

impl Plan {
    fn words(&self) -> Vec<u64> {
        let s = &self.sgd;
        vec![
            self.steps as u64,
            self.n_eval as u64,
            s.lr.to_bits(),
            s.momentum.to_bits(),
            s.weight_decay.to_bits(),
            u64::from(self.save),
        ]
    }

    /// The plan of party 0's words, or what is wrong with them.
    fn from_words(w: &[u64]) -> std::result::Result<Plan, String> {
        let [steps, n_eval, lr, momentum, wd, save] = w else { return Err("a plan has six words".into()) };
        let sgd =
            Sgd { lr: f64::from_bits(*lr), momentum: f64::from_bits(*momentum), weight_decay: f64::from_bits(*wd) };
        if *steps > MAX_STEPS || *n_eval > MAX_STEPS {
            return Err(format!("{steps} steps and {n_eval} evaluation samples (at most {MAX_STEPS})"));
        }
        if ![sgd.lr, sgd.momentum, sgd.weight_decay].iter().all(|v| v.is_finite()) || *save > 1 {
            return Err("SGD's parameters are not finite, or the save flag is neither 0 nor 1".into());
        }
        Ok(Plan { steps: *steps as usize, n_eval: *n_eval as usize, sgd, save: *save == 1 })
    }

    /// One line for the operators.
    pub fn summary(&self, n: usize, batch: usize) -> String {
        format!(
            "{} steps of batch {batch} over {n} samples, lr {}, momentum {}, weight decay {}; then {} evaluation samples; trained weights opened to party 0: {}",
            self.steps,
            self.sgd.lr,
            self.sgd.momentum,
            self.sgd.weight_decay,
            self.n_eval,
            if self.save { "yes" } else { "no" }
        )
    }
}

/// What party 0 brings to a training job.
#[derive(Clone, Copy, Debug)]
pub struct OwnerTraining<'a> {
    /// The training graph, weights, inputs and batch size.
    pub model: OwnerModel<'a>,
    /// The labels, one-hot, `[n, classes]`.
    pub onehot: &'a [f64],
    /// The evaluation inputs, `plan.n_eval` samples.
    pub eval_x: &'a [f64],
    /// The plan.
    pub plan: Plan,
}

/// One party's result of a training job.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The announced job.
    pub job: Announced,
    /// The plan.
    pub plan: Plan,
    /// The evaluation samples' opened outputs (party 0 only).
    pub logits: Option<Vec<f64>>,
    /// The opened trained weights (party 0 only, with `plan.save`).
    pub state: Option<Vec<Vec<f64>>>,
    /// Wall time of training and evaluation.
    pub secs: f64,
    /// This party's communication (the announcement excluded).
    pub costs: CostTable,
}

/// A training job as party `p`: the announcement of the graph and the plan, the owner's
/// weights, inputs and labels secret-shared batch by batch, training, the evaluation's
/// outputs (and with `plan.save` the trained weights) opened to party 0 only.
pub fn train_party<D: Device>(
    p: &Party<D>,
    owner: Option<&OwnerTraining>,
    expect: Option<&str>,
    log: bool,
    guard: bool,
) -> Result<TrainOutcome> {
    let job = parties::announce(p, JobKind::Train, owner.map(|o| &o.model), expect, log, guard)?;
    let plan = {
        let _s = p.net.scope("setup");
        match owner {
            Some(o) if p.id == OWNER => {
                for peer in Peer::BOTH {
                    p.net.send_u64s(peer, o.plan.words())?;
                }
                o.plan
            }
            _ => {
                let from = p.id.link_to(OWNER).ok_or_else(|| Error::Usage("no link to party 0".into()))?;
                let plan = Plan::from_words(&p.net.recv_u64s(from, 6)?).map_err(|e| {
                    let reason = format!("{}: party 0's training plan: {e}", p.id);
                    p.net.abort_with(&reason);
                    Error::Mismatch(reason)
                })?;
                if log {
                    eprintln!("{}: training plan from party 0: {}", p.id, plan.summary(job.n, job.batch));
                }
                plan
            }
        }
    };
    let g = &job.graph.graph;
    let per: Vec<usize> = g.input().to_vec();
    let per_len: usize = per.iter().product();
    let classes: usize = g.out_dims()?.iter().product();
    let (n, batch) = (job.n, job.batch);
    let per_epoch = n.div_ceil(batch);
    let mut m = Model::new(p, g, OWNER, owner.map(|o| o.model.weights))?;
    m.guard = parties::guard_of(p, guard)?;
    p.net.barrier()?;
    p.net.reset_costs();
    let t = Instant::now();
    for step in 0..plan.steps {
        let start = (step % per_epoch) * batch;
        let k = batch.min(n - start);
        let mut dims = vec![k];
        dims.extend(&per);
        let xs = p.input(OWNER, owner.map(|o| &o.model.x[start * per_len..(start + k) * per_len]), &dims)?;
        let ys = owner.map(|o| &o.onehot[start * classes..(start + k) * classes]);
        let y = p.input(OWNER, ys, &[k, classes])?;
        m.train_step(p, xs, &y, &plan.sgd)?;
    }
    m.train = false;
    let logits = parties::infer_batches(p, &mut m, owner.map(|o| o.eval_x), plan.n_eval, batch)?;
    // The trained weights are opened (to the owner only) when the owner asked for them.
    let state = if plan.save { m.open_weights(p, OWNER)? } else { None };
    let secs = t.elapsed().as_secs_f64();
    Ok(TrainOutcome { job, plan, logits, state, secs, costs: p.net.costs() })
}

/// Party 0's side of a training job, ready to run: the training graph, its encoding, and
/// the labels one-hot.
#[derive(Clone, Debug)]
pub struct Prepared {
    graph: PublicGraph,
    onehot: Vec<f64>,
    batch: usize,
    plan: Plan,
}

impl Prepared {
    /// Checks the owner's data against the model and fixes the plan.
    pub fn new(im: &triad_onnx::Imported, data: &TrainData, opt: TrainOptions, save: bool) -> Result<Prepared> {
        let g = training_graph(&im.graph);
        let classes: usize = g.out_dims()?.iter().product();
        let n = data.y.len();
        if n == 0 || data.x.len() != n * g.input().iter().product::<usize>() {
            return Err(Error::Usage(format!("{}: no training samples, or not of the model's shape", data.name)));
        }
        super::fixed_config(opt.frac_bits)?;
        super::warn_ranges(im, &data.x, opt.frac_bits, opt.batch.clamp(1, n), true)?;
        let mut onehot = vec![0.0; n * classes];
        for (i, &l) in data.y.iter().enumerate() {
            onehot[i * classes + l as usize] = 1.0;
        }
        let batch = opt.batch.clamp(1, n);
        let per_epoch = n.div_ceil(batch);
        let steps = opt.steps.unwrap_or(per_epoch * opt.epochs).min(per_epoch * opt.epochs.max(1));
        let plan = Plan { steps, n_eval: data.eval_y.len(), sgd: opt.sgd, save };
        Ok(Prepared { graph: PublicGraph::of(&g)?, onehot, batch, plan })
    }

    fn owner<'a>(&'a self, im: &'a triad_onnx::Imported, data: &'a TrainData) -> OwnerTraining<'a> {
        let model =
            OwnerModel { graph: &self.graph, weights: &im.weights, x: &data.x, n: data.y.len(), batch: self.batch };
        OwnerTraining { model, onehot: &self.onehot, eval_x: &data.eval_x, plan: self.plan }
    }
}

/// The owner's report of a finished training job (and the saved ONNX file).
fn owner_report(
    model: &Path,
    im: &triad_onnx::Imported,
    data: &TrainData,
    save: Option<&Path>,
    out: &TrainOutcome,
) -> Result<OnnxTrainReport> {
    let classes: usize = out.job.graph.graph.out_dims()?.iter().product();
    let preds = argmax_rows(out.logits.as_deref().unwrap_or_default(), classes);
    let right = preds.iter().zip(&data.eval_y).filter(|(p, l)| **p as i64 == **l).count();
    if let (Some(dst), Some(state)) = (save, &out.state) {
        // The opened model is the owner's secret: a private file (0600, temporary name).
        let bytes = triad_onnx::trained_model(model, dst, im, state).map_err(|e| Error::Usage(e.to_string()))?;
        crate::files::write_private(dst, &bytes)?;
    }
    Ok(OnnxTrainReport {
        model: model.display().to_string(),
        data: data.name.clone(),
        samples: data.y.len(),
        steps: out.plan.steps,
        secs: out.secs,
        accuracy: right as f64 / data.eval_y.len().max(1) as f64,
        evaluated: data.eval_name.clone(),
        saved: save.map(|p| p.display().to_string()),
        bytes: None,
        rounds: None,
    })
}

/// Private training of an imported ONNX model on the owner's data, three parties in this
/// process (the same job as three processes run, [`train_party`]); the owner may write
/// the trained model as an ONNX file (the same graph, trained initializers).
pub fn train(
    model: &Path,
    im: &triad_onnx::Imported,
    data: &TrainData,
    save: Option<&Path>,
    opt: TrainOptions,
    backend: BackendKind,
) -> Result<OnnxTrainReport> {
    let prepared = Prepared::new(im, data, opt, save.is_some())?;
    let owner = prepared.owner(im, data);
    let fixed = super::fixed_config(opt.frac_bits)?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let results = crate::with_device!(backend, dev => run_in_process(dev, &link, fixed, |p: &Party<_>| {
        let mine = (p.id == OWNER).then_some(&owner);
        train_party(p, mine, None, false, opt.guard).map_err(crate::run::into_protocol)
    }).map_err(crate::run::from_protocol)?);
    let totals = results.each_ref().map(|o| o.costs.total());
    let mut report = owner_report(model, im, data, save, &results[0])?;
    report.bytes = Some(totals.each_ref().map(|c| c.bytes_sent));
    report.rounds = totals.iter().map(|c| c.rounds).max();
    Ok(report)
}

/// What one party of three processes reports after training an ONNX model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainPartyReport {
    /// 0, 1 or 2.
    pub party: usize,
    /// How it ran.
    pub mode: String,
    /// The graph's name.
    pub graph: String,
    /// The SHA-256 of its encoding.
    pub graph_sha256: String,
    /// Training steps.
    pub steps: usize,
    /// Wall time of training and evaluation in seconds.
    pub secs: f64,
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Its communication rounds.
    pub rounds: u64,
    /// Party 0's report.
    pub owner: Option<OnnxTrainReport>,
}

/// Party 0's training job: its model file, the imported model, its data, and where the
/// trained model goes.
#[derive(Clone, Copy, Debug)]
pub struct OwnerJob<'a> {
    /// The ONNX file.
    pub model: &'a Path,
    /// Its import.
    pub im: &'a triad_onnx::Imported,
    /// The training data.
    pub data: &'a TrainData,
    /// `--save-weights`.
    pub save: Option<&'a Path>,
}

/// `triad party --id N ... train --onnx ... | --onnx-from-owner`: private training of an
/// ONNX model as one of three processes; `owner` is party 0's job, `expect` a pinned
/// graph digest of party 1 or 2.
pub fn train_as_party(
    owner: Option<OwnerJob>,
    expect: Option<&str>,
    session: Session,
    opt: TrainOptions,
    backend: BackendKind,
) -> Result<TrainPartyReport> {
    let fixed = super::fixed_config(opt.frac_bits)?;
    let me = session.me;
    let prepared = match owner {
        Some(o) if me == OWNER => Some(Prepared::new(o.im, o.data, opt, o.save.is_some())?),
        None if me != OWNER => None,
        _ => return Err(Error::Usage(parties::who_names_the_model(me))),
    };
    let mine = match (&prepared, owner) {
        (Some(pr), Some(o)) => {
            eprintln!("{me}: sending the public graph to parties 1 and 2: {}", pr.graph.summary());
            Some(pr.owner(o.im, o.data))
        }
        _ => None,
    };
    let mode = session.mode();
    let out = crate::with_device!(backend, dev => session.run(dev, fixed, |p| train_party(p, mine.as_ref(), expect, true, opt.guard))?);
    let owner_report = match owner {
        Some(o) => Some(owner_report(o.model, o.im, o.data, o.save, &out)?),
        None => None,
    };
    Ok(TrainPartyReport {
        party: me.index(),
        mode,
        graph: out.job.graph.graph.name.clone(),
        graph_sha256: out.job.graph.sha256.clone(),
        steps: out.plan.steps,
        secs: out.secs,
        bytes_sent: out.costs.total().bytes_sent,
        rounds: out.costs.total().rounds,
        owner: owner_report,
    })
}
