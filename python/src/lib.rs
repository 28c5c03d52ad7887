//! `triad._triad`: the extension module of the triad Python package.
//!
//! A thin layer over [`triad::onnx::local`]: arrays arrive as the bytes of a C-contiguous
//! native-endian float64 (inputs) or int64 (labels) array with their shape, outputs leave
//! as a `bytearray` with theirs, and reports as the JSON the command prints with `--json`.
//! The Python wrapper (`triad/__init__.py`, `triad/local.py`) converts from and to NumPy,
//! so this crate needs no numpy crate. Every failure is `triad.TriadError` with the one
//! line the command prints after `error: `. The jobs run with the GIL released.
//!
//! [`service::PyClient`] is the base of `triad.Client`, a client of the three servers of
//! `triad serve` ([`triad_service::Client`]).

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use triad::onnx::local;

mod service;

create_exception!(
    triad,
    TriadError,
    PyException,
    "A triad job failed: the message is the one line the `triad` command prints after `error: ` (a bad file, an unsupported operator, inputs of the wrong shape, ...)."
);

fn err(e: triad::Error) -> PyErr {
    TriadError::new_err(e.one_line())
}

/// Native-endian 8-byte words of `b` (the bytes of a contiguous float64 or int64 array).
fn words<T>(what: &str, b: &[u8], from: fn([u8; 8]) -> T) -> PyResult<Vec<T>> {
    if !b.len().is_multiple_of(8) {
        return Err(TriadError::new_err(format!("{what}: {} bytes, not a whole number of 8-byte values", b.len())));
    }
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            from(w)
        })
        .collect())
}

fn json_err(e: serde_json::Error) -> PyErr {
    TriadError::new_err(format!("report: {e}"))
}

/// Private inference (`triad infer --onnx`), three parties in this process: returns the
/// outputs' bytes (float64), their shape `(N, outputs)`, and the report as JSON.
#[pyfunction]
#[pyo3(signature = (model, x, shape, batch, frac_bits, guard, backend))]
fn infer<'py>(
    py: Python<'py>,
    model: PathBuf,
    x: &[u8],
    shape: Vec<usize>,
    batch: Option<usize>,
    frac_bits: u32,
    guard: bool,
    backend: &str,
) -> PyResult<(Bound<'py, PyByteArray>, (usize, usize), String)> {
    let x = words("x", x, f64::from_ne_bytes)?;
    let opt = local::InferOptions { batch, frac_bits, guard, backend: local::backend(backend).map_err(err)? };
    let r = py.detach(|| local::infer(&model, &shape, &x, &opt)).map_err(err)?;
    let bytes: Vec<u8> = r.outputs.iter().flat_map(|v| v.to_ne_bytes()).collect();
    Ok((PyByteArray::new(py, &bytes), (r.shape[0], r.shape[1]), serde_json::to_string(&r.report).map_err(json_err)?))
}

/// Private training (`triad train --onnx --inputs --labels [--save-weights]`), three
/// parties in this process: returns the report as JSON.
#[pyfunction]
#[pyo3(signature = (model, x, shape, labels, epochs, steps, batch, lr, momentum, weight_decay, save, frac_bits, guard, backend))]
fn train(
    py: Python<'_>,
    model: PathBuf,
    x: &[u8],
    shape: Vec<usize>,
    labels: &[u8],
    epochs: usize,
    steps: Option<usize>,
    batch: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    save: Option<PathBuf>,
    frac_bits: u32,
    guard: bool,
    backend: &str,
) -> PyResult<String> {
    let x = words("x", x, f64::from_ne_bytes)?;
    let labels = words("labels", labels, i64::from_ne_bytes)?;
    let backend = local::backend(backend).map_err(err)?;
    let sgd = local::Sgd { lr, momentum, weight_decay };
    let opt = local::TrainOptions { batch, epochs, steps, sgd, frac_bits, guard };
    let r = py.detach(|| local::train(&model, &shape, x, labels, save.as_deref(), opt, backend)).map_err(err)?;
    serde_json::to_string(&r).map_err(json_err)
}

/// What `triad inspect --onnx` prints.
#[pyfunction]
#[pyo3(signature = (model, input_bound, frac_bits, train_batch))]
fn inspect(py: Python<'_>, model: PathBuf, input_bound: f64, frac_bits: u32, train_batch: usize) -> PyResult<String> {
    py.detach(|| local::inspect(&model, input_bound, frac_bits, train_batch)).map_err(err)
}

/// The extension module of the triad package (use `triad`, not this module).
#[pymodule]
fn _triad(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TriadError", m.py().get_type::<TriadError>())?;
    m.add_function(wrap_pyfunction!(infer, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_class::<service::PyClient>()?;
    Ok(())
}
