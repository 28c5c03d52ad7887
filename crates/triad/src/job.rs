//! A job — private training or private inference — as every party runs it.
//!
//! The three parties run [`run_party`] with the same [`JobSpec`]; party 0 is the model
//! and data owner and alone holds [`OwnerInputs`]. At the start ([`crate::start`]) party 0
//! sends the others a digest of its public job parameters and the public sizes of the
//! data splits, which they check before sizing anything from them; a training job agrees
//! a run identifier (a fresh run) or continues its checkpoints' run ([`crate::resume`]:
//! the three agree the step to resume from, or stop with one line), and every start or
//! resume agrees an attempt identifier. Only party 0 computes the batch indices of a step (parties 1 and 2 need
//! only the batch size). Nothing is opened during the job except the logits of the test
//! samples (to party 0, the owner) and, with `--save-weights`, the final weights (to
//! party 0).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use triad_layers::{argmax_rows, one_hot, Backend, Graph, Model, Plain, Sgd};
use triad_ring::Device;
use triad_sharing::Party;
use triad_transport::{Cost, PartyId};

use crate::checkpoint::{self, Lineage};
use crate::data::{shuffled, Data, RANDOM_TRAIN};
use crate::error::{Error, Result};
use crate::models::{ModelName, Shape};
use crate::progress::Progress;
use crate::resume;
use crate::start;
use crate::weights;

/// Party 0: the model and data owner.
pub const OWNER: PartyId = PartyId::ALL[0];

/// Everything a job needs to know; every party gets the same (paths are each party's own).
#[derive(Clone, Debug, Serialize)]
pub struct JobSpec {
    /// Train (then evaluate), or only infer.
    pub train: bool,
    /// The model.
    pub model: ModelName,
    /// The dataset shape.
    pub dataset: Shape,
    /// Random inputs instead of real data.
    pub random: bool,
    /// The owner's dataset directory (MNIST IDX files or CIFAR-10 binary files).
    pub data: Option<PathBuf>,
    /// Training batch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Limit on the total training steps.
    pub steps: Option<usize>,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Fractional bits of the fixed-point encoding.
    pub frac_bits: u32,
    /// The overflow guard (`--guard`): off by default; opens one bit per checked tensor.
    pub guard: bool,
    /// Public seed: initial weights (without `--weights`), batch order, random inputs.
    pub seed: u64,
    /// Test samples to classify privately (`None`: the whole test split).
    pub samples: Option<usize>,
    /// Batch size of private inference.
    pub eval_batch: usize,
    /// The owner's plaintext initial weights.
    pub weights: Option<PathBuf>,
    /// Load them even if saved for another model (`--force-weights`).
    pub force_weights: bool,
    /// Where the owner writes the opened final weights.
    pub save_weights: Option<PathBuf>,
    /// Where each party writes its share checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Also checkpoint every this many steps.
    pub checkpoint_every: Option<usize>,
    /// Where each party reads its share checkpoint from.
    pub resume: Option<PathBuf>,
    /// Also train the plaintext twin on the owner (same weights, same batches).
    pub twin: bool,
}

impl JobSpec {
    /// The network.
    pub fn net(&self) -> Result<Graph> {
        self.model.net(self.dataset).map_err(Error::Usage)
    }

    /// The public parameters all three parties must agree on, as one line.
    pub(crate) fn public_line(&self) -> String {
        format!(
            "train={} model={} dataset={} random={} batch={} epochs={} steps={:?} lr={} momentum={} wd={} frac_bits={} guard={} seed={} samples={:?} eval_batch={} resume={}",
            self.train,
            self.model.as_str(),
            self.dataset.as_str(),
            self.random,
            self.batch,
            self.epochs,
            self.steps,
            self.lr,
            self.momentum,
            self.weight_decay,
            self.frac_bits,
            self.guard,
            self.seed,
            self.samples,
            self.eval_batch,
            self.resume.is_some()
        )
    }

    /// The sizes of the training and test splits when the inputs are random (`--random`,
    /// or a dataset shape without a loader), which every party can work out itself.
    pub fn random_sizes(&self) -> Option<(usize, usize)> {
        let loaded = matches!(self.dataset, Shape::Mnist | Shape::Cifar10);
        let test = self.samples.unwrap_or(if self.train { 0 } else { self.eval_batch });
        (self.random || !loaded).then_some((RANDOM_TRAIN, test))
    }

    /// Loads what the owner brings: the data and the initial plaintext weights.
    pub fn owner_inputs(&self, net: &Graph) -> Result<OwnerInputs> {
        let data = if let Some((_, test_random)) = self.random_sizes() {
            Data::random(self.dataset, self.seed, test_random)
        } else {
            match self.dataset {
                Shape::Mnist => Data::mnist(self.data.as_deref())?,
                Shape::Cifar10 => match &self.data {
                    Some(d) => Data::cifar10(d)?,
                    None => {
                        return Err(Error::Usage(
                            "cifar10 needs --data DIR (the CIFAR-10 binary files) or --random".into(),
                        ))
                    }
                },
                _ => return Err(Error::Usage(format!("no loader for {}", self.dataset.as_str()))),
            }
        };
        let weights = match &self.weights {
            Some(p) if self.force_weights => weights::load_plain_forced(p, net)?,
            Some(p) => weights::load_plain(p, net)?,
            None => net.init_weights(self.seed),
        };
        // The owner's plaintext range check on what the job computes first: whenever the
        // owner brings weights or data of its own (not for a resumed model, whose weights
        // are shares, nor for seeded weights on random inputs, the benchmark setting,
        // where a plaintext ResNet-50 forward would add seconds to every run).
        if self.resume.is_none() && (self.weights.is_some() || !self.random) {
            let (split, n) = if self.train {
                (&data.train, self.batch.min(data.train.len()))
            } else {
                (&data.test, data.test.len())
            };
            let idx: Vec<usize> = (0..n.min(crate::precheck::SAMPLES_CHECKED)).collect();
            let (x, _) = split.batch(&idx);
            crate::precheck::owner_range_check(net, &weights, &x, idx.len(), self.frac_bits, self.train)?;
        }
        Ok(OwnerInputs { data, weights })
    }
}

/// What only the owner (party 0) holds.
#[derive(Clone, Debug)]
pub struct OwnerInputs {
    /// The dataset.
    pub data: Data,
    /// The initial weights in parameter order.
    pub weights: Vec<Vec<f64>>,
}

/// Time and communication of one phase on one party.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// Training steps or samples classified.
    pub count: usize,
    /// Wall time in seconds.
    pub secs: f64,
    /// This party's communication (rounds: its view of the causal depth).
    pub cost: Cost,
}

/// The plaintext twin's result (owner only).
#[derive(Clone, Debug, Serialize)]
pub struct Twin {
    /// Test accuracy on the same samples.
    pub accuracy: Option<f64>,
    /// Training time in seconds.
    pub secs: f64,
}

/// What the owner learns.
#[derive(Clone, Debug, Serialize)]
pub struct OwnerResult {
    /// The dataset as loaded.
    pub data: String,
    /// Test accuracy of the private model (real data only).
    pub accuracy: Option<f64>,
    /// The predicted class of every classified sample.
    pub predictions: Vec<usize>,
    /// Sum of all opened logits (a checksum to compare runs).
    pub logits_sum: f64,
    /// The opened logits of the first sample.
    pub first_logits: Vec<f64>,
    /// The plaintext twin, if run.
    pub twin: Option<Twin>,
    /// Where the opened final weights were written.
    pub saved_weights: Option<PathBuf>,
}

/// One party's result.
#[derive(Clone, Debug, Serialize)]
pub struct PartyResult {
    /// 0, 1 or 2.
    pub party: usize,
    /// Training, if any.
    pub train: Option<Phase>,
    /// Private inference, if any.
    pub infer: Option<Phase>,
    /// Where this party wrote its share checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Party 0 only.
    pub owner: Option<OwnerResult>,
}

/// Runs the job as party `p`; `owner` is `Some` on party 0 only, `progress` draws there.
/// A party that fails tells the other two why (they stop with its reason).
pub fn run_party<D: Device>(
    p: &Party<D>,
    job: &JobSpec,
    net: &Graph,
    owner: Option<&OwnerInputs>,
    progress: Progress,
) -> Result<PartyResult> {
    let r = run(p, job, net, owner, progress);
    if let Err(e) = &r {
        p.net.abort_with(&e.for_peers());
    }
    r
}

fn run<D: Device>(
    p: &Party<D>,
    job: &JobSpec,
    net: &Graph,
    owner: Option<&OwnerInputs>,
    progress: Progress,
) -> Result<PartyResult> {
    let is_owner = p.id == OWNER;
    // This party's own checkpoints are read before any message: a missing or unfit file
    // is this party's own one-line error, not a peer's abort that raced ahead of it.
    let my_checkpoints = match &job.resume {
        Some(dir) => Some(checkpoint::checkpoints_of(dir, p.index(), &net.name, job.frac_bits)?),
        None => None,
    };
    let owner_sizes = owner.map(|o| (o.data.train.len(), o.data.test.len()));
    let start::Sizes { n_train, n_test, save_weights } = start::agree_job(p, job, owner_sizes)?;
    let resumed = match my_checkpoints {
        Some(mine) => Some(resume::agree_checkpoints(p, mine)?),
        None => None,
    };
    // Training continues the run of its checkpoints (or starts a new one) as a new attempt.
    let lineage = match (&resumed, job.train) {
        (_, false) => None,
        (Some((_, meta)), true) => Some(Lineage { run: meta.run, attempt: start::agree_fresh_id(p)? }),
        (None, true) => {
            let id = start::agree_fresh_id(p)?;
            Some(Lineage { run: id, attempt: id })
        }
    };
    let w0 = owner.map(|o| &o.weights[..]);
    let mut model = Model::new(p, net, OWNER, w0)?;
    model.guard = crate::onnx::parties::guard_of(p, job.guard)?;
    let mut step0 = 0usize;
    if let Some((path, _)) = &resumed {
        step0 = checkpoint::load_shares(path, p, &mut model)? as usize;
    }
    let dims = |n: usize| -> Vec<usize> { std::iter::once(n).chain(net.input().iter().copied()).collect() };
    let classes: usize = net.out_dims()?.iter().product();
    let opt = Sgd { lr: job.lr, momentum: job.momentum, weight_decay: job.weight_decay };
    let mut result = PartyResult { party: p.index(), train: None, infer: None, checkpoint: None, owner: None };

    // Training.
    let plan = if job.train { Some(TrainPlan::new(job, n_train)?) } else { None };
    if let (Some(plan), Some((_, meta))) = (&plan, &resumed) {
        if meta.step > plan.total as u64 {
            return Err(Error::Usage(format!(
                "the checkpoint is at step {}, past the {} steps of this job",
                meta.step, plan.total
            )));
        }
    }
    if let (Some(plan), Some(lineage)) = (&plan, lineage) {
        p.net.reset_costs();
        let t = Instant::now();
        let bar = if is_owner {
            progress.bar((plan.total - step0.min(plan.total)) as u64, "private training")
        } else {
            Progress::hidden().bar(0, "")
        };
        for k in step0..plan.total {
            // The batch's sample indices are the owner's business.
            let (xd, yd) = match owner {
                Some(o) => {
                    let (x, labels) = o.data.train.batch(&plan.batch(k));
                    (Some(x), Some(one_hot(&labels, classes)))
                }
                None => (None, None),
            };
            let x = p.input(OWNER, xd.as_deref(), &dims(job.batch))?;
            let y = p.input(OWNER, yd.as_deref(), &[job.batch, classes])?;
            model.train_step(p, x, &y, &opt)?;
            bar.inc(1);
            if let (Some(dir), Some(every)) = (&job.checkpoint, job.checkpoint_every) {
                if every > 0 && (k + 1) % every == 0 && k + 1 < plan.total {
                    checkpoint::save_shares(dir, p, &mut model, (k + 1) as u64, lineage)?;
                }
            }
        }
        bar.finish_and_clear();
        result.train = Some(Phase {
            count: plan.total.saturating_sub(step0),
            secs: t.elapsed().as_secs_f64(),
            cost: p.net.costs().total(),
        });
        if let Some(dir) = &job.checkpoint {
            result.checkpoint =
                Some(checkpoint::save_shares(dir, p, &mut model, plan.total.max(step0) as u64, lineage)?);
        }
    }
    let mut saved = None;
    if save_weights {
        if let Some(w) = model.open_weights(p, OWNER)? {
            if let Some(path) = &job.save_weights {
                weights::save_plain(path, net, &w)?;
                saved = Some(path.clone());
            }
        }
    }

    // Private inference on the test split: logits opened to the owner only.
    let n_eval = job.samples.map_or(n_test, |s| s.min(n_test));
    let mut logits_all: Vec<f64> = Vec::new();
    if n_eval > 0 {
        model.train = false;
        p.net.reset_costs();
        let t = Instant::now();
        let bar =
            if is_owner { progress.bar(n_eval as u64, "private inference") } else { Progress::hidden().bar(0, "") };
        for start in (0..n_eval).step_by(job.eval_batch.max(1)) {
            let idx: Vec<usize> = (start..(start + job.eval_batch).min(n_eval)).collect();
            let xd = owner.map(|o| o.data.test.batch(&idx).0);
            let x = p.input(OWNER, xd.as_deref(), &dims(idx.len()))?;
            let logits = model.forward(p, x)?;
            if let Some(l) = p.open(OWNER, &logits)? {
                logits_all.extend(l);
            }
            bar.inc(idx.len() as u64);
        }
        bar.finish_and_clear();
        result.infer = Some(Phase { count: n_eval, secs: t.elapsed().as_secs_f64(), cost: p.net.costs().total() });
    }

    // The owner's view: predictions, accuracy, and the plaintext twin.
    if let Some(o) = owner {
        let eval_idx: Vec<usize> = (0..n_eval).collect();
        let truth: Vec<u8> = eval_idx.iter().map(|&i| o.data.test.batch(&[i]).1[0]).collect();
        let predictions = argmax_rows(&logits_all, classes);
        let accuracy = (!o.data.random && n_eval > 0).then(|| acc(&predictions, &truth));
        let twin = match (&plan, job.twin) {
            (Some(plan), true) => Some(run_twin(job, net, o, plan, &opt, classes, &truth, progress)?),
            _ => None,
        };
        result.owner = Some(OwnerResult {
            data: o.data.name.clone(),
            accuracy,
            first_logits: logits_all.iter().take(classes).copied().collect(),
            logits_sum: logits_all.iter().sum(),
            predictions,
            twin,
            saved_weights: saved,
        });
    }
    Ok(result)
}

fn acc(pred: &[usize], truth: &[u8]) -> f64 {
    let right = pred.iter().zip(truth).filter(|(p, t)| **p == **t as usize).count();
    right as f64 / truth.len().max(1) as f64
}

/// The public batch schedule: epochs of a public shuffle, limited to `--steps`.
struct TrainPlan {
    batch: usize,
    per_epoch: usize,
    total: usize,
    seed: u64,
    n: usize,
}

impl TrainPlan {
    fn new(job: &JobSpec, n_train: usize) -> Result<TrainPlan> {
        if job.batch == 0 || job.batch > n_train {
            return Err(Error::Usage(format!("batch {} does not fit a training split of {n_train}", job.batch)));
        }
        let per_epoch = n_train / job.batch;
        let total = per_epoch.saturating_mul(job.epochs).min(job.steps.unwrap_or(usize::MAX));
        Ok(TrainPlan { batch: job.batch, per_epoch, total, seed: job.seed, n: n_train })
    }
    /// The sample indices of step `k`.
    fn batch(&self, k: usize) -> Vec<usize> {
        let epoch = k / self.per_epoch;
        let s = k % self.per_epoch;
        let order = shuffled(self.n, self.seed ^ (epoch as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        order[s * self.batch..(s + 1) * self.batch].to_vec()
    }
}

fn run_twin(
    job: &JobSpec,
    net: &Graph,
    o: &OwnerInputs,
    plan: &TrainPlan,
    opt: &Sgd,
    classes: usize,
    truth: &[u8],
    progress: Progress,
) -> Result<Twin> {
    let b = Plain;
    let mut twin = Model::new(&b, net, OWNER, Some(&o.weights))?;
    let dims = |n: usize| -> Vec<usize> { std::iter::once(n).chain(net.input().iter().copied()).collect() };
    let t = Instant::now();
    let bar = progress.bar(plan.total as u64, "plaintext twin");
    for k in 0..plan.total {
        let (x, labels) = o.data.train.batch(&plan.batch(k));
        let x = b.input(OWNER, Some(&x), &dims(job.batch))?;
        let y = b.input(OWNER, Some(&one_hot(&labels, classes)), &[job.batch, classes])?;
        twin.train_step(&b, x, &y, opt)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    twin.train = false;
    let mut pred = Vec::new();
    for start in (0..truth.len()).step_by(250) {
        let idx: Vec<usize> = (start..(start + 250).min(truth.len())).collect();
        let x = b.input(OWNER, Some(&o.data.test.batch(&idx).0), &dims(idx.len()))?;
        pred.extend(argmax_rows(&twin.forward(&b, x)?.data, classes));
    }
    let accuracy = (!o.data.random && !truth.is_empty()).then(|| acc(&pred, truth));
    Ok(Twin { accuracy, secs })
}
