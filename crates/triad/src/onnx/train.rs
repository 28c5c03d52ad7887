//! `triad train --onnx MODEL.onnx`: private training of an imported model on the owner's
//! NumPy inputs and labels, or on the bundled MNIST digits (or a dataset directory with
//! `--data`), three parties in this process; the owner may write the trained model as an
//! ONNX file (the same graph, trained initializers).

use std::path::Path;
use std::time::{Duration, Instant};

use triad_layers::{argmax_rows, Backend, Graph, Model, Sgd};
use triad_sharing::{run_in_process, Party};
use triad_transport::LinkConfig;

use crate::data::Data;
use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::models::Shape;
use crate::run::BackendKind;

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

/// The owner's training data: inputs row-major with integer labels, and the samples the
/// trained model is evaluated on.
#[derive(Clone, Debug)]
pub struct TrainData {
    /// For reports.
    pub name: String,
    /// Training inputs.
    pub x: Vec<f64>,
    /// Training labels.
    pub y: Vec<i64>,
    /// What the evaluation samples are, for reports.
    pub eval_name: String,
    /// Evaluation inputs.
    pub eval_x: Vec<f64>,
    /// Evaluation labels.
    pub eval_y: Vec<i64>,
}

impl TrainData {
    /// NumPy inputs `[N, ...]` (the model's input shape) and labels `[N]`; the evaluation
    /// is on the training inputs.
    pub fn from_npy(g: &Graph, inputs: &Path, labels: &Path) -> Result<TrainData> {
        let (n, x) = super::read_inputs(g, inputs)?;
        let classes: usize = g.out_dims()?.iter().product();
        let y = triad_layers::data::npy::read_labels(labels)?;
        if y.len() != n {
            return Err(Error::Usage(format!("{}: {} labels for {n} inputs", labels.display(), y.len())));
        }
        if let Some(bad) = y.iter().find(|&&l| l < 0 || l as usize >= classes) {
            return Err(Error::Usage(format!("{}: label {bad} outside 0..{classes}", labels.display())));
        }
        let name = inputs.display().to_string();
        Ok(TrainData { name, eval_name: "the training inputs".into(), eval_x: x.clone(), eval_y: y.clone(), x, y })
    }

    /// A dataset of the zoo's (MNIST bundled or from `dir`; CIFAR-10 from `dir`): the
    /// model must take one sample of it, `[C, H, W]` or flattened `[C·H·W]`, and give 10
    /// outputs. The evaluation is on the first `samples` test samples (default all).
    pub fn from_dataset(g: &Graph, shape: Shape, dir: Option<&Path>, samples: Option<usize>) -> Result<TrainData> {
        let (chw, data) = match (shape, dir) {
            (Shape::Mnist, _) => ([1, 28, 28], Data::mnist(dir)?),
            (Shape::Cifar10, Some(d)) => ([3, 32, 32], Data::cifar10(d)?),
            (Shape::Cifar10, None) => {
                return Err(Error::Usage("train --onnx --dataset cifar10 needs --data DIR (the binary files)".into()))
            }
            (other, _) => {
                return Err(Error::Usage(format!(
                    "train --onnx: {} has no data here; use mnist, cifar10 with --data, or --inputs and --labels",
                    other.as_str()
                )))
            }
        };
        let flat = [chw.iter().product::<usize>()];
        let outs = g.out_dims()?;
        if (g.input() != chw && g.input() != flat) || outs.iter().product::<usize>() != 10 {
            return Err(Error::Usage(format!(
                "{}: the model takes {:?} and gives {:?}; {} needs input {chw:?} (or {flat:?}) and 10 classes",
                g.name,
                g.input(),
                outs,
                data.name
            )));
        }
        let split = |s: &crate::data::Split, n: usize| {
            let (x, y) = s.batch(&(0..n).collect::<Vec<_>>());
            (x, y.into_iter().map(i64::from).collect::<Vec<_>>())
        };
        let (x, y) = split(&data.train, data.train.len());
        let n_eval = samples.unwrap_or(data.test.len()).min(data.test.len());
        let (eval_x, eval_y) = split(&data.test, n_eval);
        Ok(TrainData { name: data.name.clone(), x, y, eval_name: format!("{n_eval} test samples"), eval_x, eval_y })
    }
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

/// Private training of an imported ONNX model on the owner's data, three parties in this
/// process; the owner may write the trained model as an ONNX file (the same graph,
/// trained initializers).
pub fn train(
    model: &Path,
    im: &triad_onnx::Imported,
    data: &TrainData,
    save: Option<&Path>,
    opt: TrainOptions,
    backend: BackendKind,
) -> Result<OnnxTrainReport> {
    let g = training_graph(&im.graph);
    let per: Vec<usize> = g.input().to_vec();
    let per_len: usize = per.iter().product();
    let classes: usize = g.out_dims()?.iter().product();
    let n = data.y.len();
    if n == 0 {
        return Err(Error::Usage(format!("{}: no training samples", data.name)));
    }
    let onehot = |y: &[i64]| {
        let mut v = vec![0.0; y.len() * classes];
        for (i, &l) in y.iter().enumerate() {
            v[i * classes + l as usize] = 1.0;
        }
        v
    };
    let ys = onehot(&data.y);
    let fixed = super::fixed_config(opt.frac_bits)?;
    super::warn_ranges(im, &data.x, opt.frac_bits)?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let batch = opt.batch.clamp(1, n);
    let per_epoch = n.div_ceil(batch);
    let total = opt.steps.unwrap_or(per_epoch * opt.epochs).min(per_epoch * opt.epochs.max(1));
    let n_eval = data.eval_y.len();
    let (x, w) = (&data.x, &im.weights);
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
            let y = p.input(OWNER, owner.then(|| &ys[start * classes..(start + k) * classes]), &[k, classes])?;
            m.train_step(p, xs, &y, &opt.sgd)?;
        }
        m.train = false;
        let mut logits = Vec::new();
        for start in (0..n_eval).step_by(batch) {
            let k = batch.min(n_eval - start);
            let mut dims = vec![k];
            dims.extend(&per);
            let xs = owner.then(|| &data.eval_x[start * per_len..(start + k) * per_len]);
            let out = m.forward(p, p.input(OWNER, xs, &dims)?)?;
            logits.extend(p.open(OWNER, &out)?.unwrap_or_default());
        }
        // The trained weights are opened (to the owner only) when the owner asked for them.
        let state = if save.is_some() { m.open_weights(p, OWNER)? } else { None };
        Ok((logits, state))
    }))?;
    let secs = t.elapsed().as_secs_f64();
    let [(logits, state), _, _] = results;
    let preds = argmax_rows(&logits, classes);
    let right = preds.iter().zip(&data.eval_y).filter(|(p, l)| **p as i64 == **l).count();
    if let (Some(dst), Some(state)) = (save, state) {
        triad_onnx::write_trained(model, dst, im, &state).map_err(|e| Error::Usage(e.to_string()))?;
    }
    Ok(OnnxTrainReport {
        model: model.display().to_string(),
        data: data.name.clone(),
        samples: n,
        steps: total,
        secs,
        accuracy: right as f64 / n_eval.max(1) as f64,
        evaluated: data.eval_name.clone(),
        saved: save.map(|p| p.display().to_string()),
    })
}
