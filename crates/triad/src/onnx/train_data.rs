//! The owner's training data of `triad train --onnx`: NumPy inputs and labels, or a
//! dataset of the zoo's (the bundled MNIST digits, MNIST IDX files or CIFAR-10 binary
//! files with `--data`), checked against the model's input and output shapes.

use std::path::Path;

use triad_layers::Graph;

use crate::data::Data;
use crate::error::{Error, Result};
use crate::models::Shape;

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
        let y = triad_layers::data::npy::read_labels(labels)?;
        TrainData::labelled(g, inputs.display().to_string(), n, x, &labels.display().to_string(), y)
    }

    /// Inputs `x` of shape `[N, ...]` (the model's input shape, row-major) and labels `y`
    /// (`N` classes), given in memory; errors name them `x` and `labels`. The evaluation
    /// is on the training inputs.
    pub fn from_values(g: &Graph, shape: &[usize], x: Vec<f64>, y: Vec<i64>) -> Result<TrainData> {
        let n = super::check_inputs(g, "x", shape, &x)?;
        TrainData::labelled(g, "x".into(), n, x, "labels", y)
    }

    /// `n` checked inputs `x` named `name`, with their labels `y` (named `labels`) checked.
    fn labelled(g: &Graph, name: String, n: usize, x: Vec<f64>, labels: &str, y: Vec<i64>) -> Result<TrainData> {
        let classes: usize = g.out_dims()?.iter().product();
        if y.len() != n {
            return Err(Error::Usage(format!("{labels}: {} labels for {n} inputs", y.len())));
        }
        if let Some(bad) = y.iter().find(|&&l| l < 0 || l as usize >= classes) {
            return Err(Error::Usage(format!("{labels}: label {bad} outside 0..{classes}")));
        }
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
