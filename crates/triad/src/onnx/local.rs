//! The ONNX jobs as a library, on values in memory: three parties in this process, as
//! `triad infer --onnx`, `triad train --onnx --inputs --labels` and `triad inspect --onnx`
//! run them (the same functions underneath), for callers that hold their inputs as arrays
//! rather than NumPy files: the Python package's local mode (`triad.local`).
//!
//! Errors are the command line's: one [`Error`](crate::Error) whose
//! [`one_line`](crate::Error::one_line) is what `triad` prints after `error: `; the
//! in-memory inputs are named `x` and `labels` in them. Keys are agreed from the OS random
//! source at every call, as in the command.

use std::path::Path;

pub use super::train::{OnnxTrainReport, TrainOptions};
pub use super::OnnxReport;
pub use crate::run::BackendKind;
pub use triad_layers::Sgd;

use super::train::TrainData;
use crate::error::{Error, Result};

/// Options of [`infer`] (the command's defaults by [`Default`]).
#[derive(Clone, Copy, Debug)]
pub struct InferOptions {
    /// Samples per private forward pass (default 64, at most the samples).
    pub batch: Option<usize>,
    /// Fractional bits of the fixed-point encoding (20).
    pub frac_bits: u32,
    /// The overflow guard (`--guard`, off).
    pub guard: bool,
    /// The device (CPU).
    pub backend: BackendKind,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { batch: None, frac_bits: 20, guard: false, backend: BackendKind::Cpu }
    }
}

/// What [`infer`] gives the owner: the opened outputs and the report.
#[derive(Clone, Debug)]
pub struct Inferred {
    /// The outputs, row-major `[samples, outputs]`.
    pub outputs: Vec<f64>,
    /// Their shape.
    pub shape: [usize; 2],
    /// What `infer --onnx --json` prints.
    pub report: OnnxReport,
}

/// The backend of a name: `cpu` or `cuda`.
pub fn backend(name: &str) -> Result<BackendKind> {
    match name {
        "cpu" => Ok(BackendKind::Cpu),
        "cuda" => Ok(BackendKind::Cuda),
        other => Err(Error::Usage(format!("backend {other:?}: cpu or cuda"))),
    }
}

/// Private inference of the ONNX file `model` on the owner's inputs `x` of shape `shape`
/// (`[N, ...]`, the model's input shape, row-major): party 0 secret-shares the inputs and
/// the weights, the three parties (threads of this process) compute, and the outputs are
/// opened to party 0 only and returned (`triad infer --onnx`).
pub fn infer(model: &Path, shape: &[usize], x: &[f64], opt: &InferOptions) -> Result<Inferred> {
    let im = super::import(model)?;
    let n = super::check_inputs(&im.graph, "x", shape, x)?;
    let (outputs, report) = super::infer_values(model, &im, n, x, opt.batch, opt.frac_bits, opt.guard, opt.backend)?;
    let shape = [n, outputs.len() / n];
    Ok(Inferred { outputs, shape, report })
}

/// Private training of the ONNX file `model` on the owner's inputs `x` of shape `shape`
/// and class labels `labels` (one per sample), three parties in this process; the report
/// gives the private model's accuracy on the training inputs, and with `save` the owner
/// writes the trained model there as an ONNX file (mode 0600) (`triad train --onnx
/// --inputs --labels [--save-weights]`).
pub fn train(
    model: &Path,
    shape: &[usize],
    x: Vec<f64>,
    labels: Vec<i64>,
    save: Option<&Path>,
    opt: TrainOptions,
    backend: BackendKind,
) -> Result<OnnxTrainReport> {
    crate::cli::check_sgd_constants(opt.sgd.lr, opt.sgd.momentum, opt.sgd.weight_decay, opt.frac_bits)?;
    let im = super::import(model)?;
    let data = TrainData::from_values(&im.graph, shape, x, labels)?;
    super::train::train(model, &im, &data, save, opt, backend)
}

/// What `triad inspect --onnx model` prints: every node and tensor, the graph's digest,
/// the fixed-point range check for inputs bounded by `input_bound`, and the dry run's
/// bytes and rounds of a forward pass and of a training step of batch `train_batch`.
pub fn inspect(model: &Path, input_bound: f64, frac_bits: u32, train_batch: usize) -> Result<String> {
    if !(input_bound.is_finite() && input_bound >= 0.0) {
        return Err(Error::Usage(format!("input bound {input_bound}: a magnitude, finite and not negative")));
    }
    super::fixed_config(frac_bits)?;
    let im = super::import(model)?;
    let m = super::Inspected {
        graph: &im.graph,
        weights: &im.weights,
        weights_from: "the ONNX file's",
        input_bound,
        frac_bits,
    };
    super::inspect(&m, &format!("ONNX model {}", model.display()), train_batch.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(name)
    }

    fn mlp_inputs() -> (Vec<usize>, Vec<f64>) {
        let (shape, x) = triad_layers::data::npy::read_f64(&fixture("mlp.input.npy")).expect("fixture");
        (shape, x)
    }

    /// In memory as from a file: the outputs agree with onnxruntime's, and the report is
    /// the command's.
    #[test]
    fn infer_in_memory_agrees_with_onnxruntime() {
        let (shape, x) = mlp_inputs();
        let r = infer(&fixture("mlp_ts.onnx"), &shape, &x, &InferOptions::default()).expect("infer");
        let (oshape, ort) = triad_layers::data::npy::read_f64(&fixture("mlp_ts.ort.npy")).expect("fixture");
        assert_eq!(r.shape.to_vec(), oshape);
        let worst = r.outputs.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-3, "{worst}");
        assert_eq!(r.report.samples, shape[0]);
        assert!(r.report.output.is_none() && r.report.bytes.iter().all(|&b| b > 0));
    }

    /// A wrong shape or a bad file is the command's one line, naming `x` or the file.
    #[test]
    fn errors_are_one_line() {
        let (shape, x) = mlp_inputs();
        let bad = [shape[0], 1, x.len() / shape[0]];
        let e = infer(&fixture("mlp_ts.onnx"), &bad, &x, &InferOptions::default()).expect_err("shape");
        assert!(e.one_line().starts_with("x: inputs of shape"), "{}", e.one_line());
        let e = infer(&fixture("mlp_ts.onnx"), &shape, &x[1..], &InferOptions::default()).expect_err("length");
        assert!(e.one_line().starts_with("x: "), "{}", e.one_line());
        let e = infer(&fixture("garbage.onnx"), &shape, &x, &InferOptions::default()).expect_err("garbage");
        assert!(e.one_line().contains("garbage.onnx") && !e.one_line().contains('\n'), "{}", e.one_line());
        let opt = TrainOptions {
            batch: 4,
            epochs: 1,
            steps: Some(1),
            sgd: Sgd { lr: 0.1, momentum: 0.0, weight_decay: 0.0 },
            frac_bits: 20,
            guard: false,
        };
        let e = train(&fixture("mlp_ts.onnx"), &shape, x.clone(), vec![0; 3], None, opt, BackendKind::Cpu)
            .expect_err("labels");
        assert!(e.one_line().starts_with("labels: 3 labels for 4 inputs"), "{}", e.one_line());
        assert!(backend("tpu").is_err());
        assert!(inspect(&fixture("mlp_ts.onnx"), 1.0, 20, 4).expect("inspect").contains("graph sha256"));
    }
}
