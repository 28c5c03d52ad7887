//! `triad._triad.Client`: a client of the service (`triad serve`), the base class of
//! `triad.Client` (python/triad/service.py adds `infer` on NumPy arrays).
//!
//! The Rust [`Client`] holds one TLS connection to each of the three servers and runs one
//! request at a time; it lives in a [`Mutex`] so that the Python object can be shared
//! between threads (calls on one client wait for each other; open one client per thread
//! for requests in parallel, which the servers batch). Every network call runs with the
//! GIL released. After a socket or protocol failure the connections may be mid-message,
//! so the client refuses further calls and says to open a new one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use triad_service::{Client, ClientConfig, ModelInfo, ServiceError};

use crate::{words, TriadError};

/// The fractional bits of an upload's shares unless the caller names others.
const DEFAULT_FRAC_BITS: u32 = 20;

/// The most range warnings an upload prints (`triad.inspect` lists every one).
const MAX_RANGE_LINES: usize = 10;

enum State {
    Open(Client),
    Closed,
    /// A call failed on the wire; the message says how.
    Broken(String),
}

/// A client of the three servers of `triad serve` (use `triad.Client`).
#[pyclass(subclass, module = "triad._triad", name = "Client")]
pub struct PyClient {
    config: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for PyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyClient").field("config", &self.config).finish_non_exhaustive()
    }
}

/// `s` on one line (a message that reaches Python must not span lines).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `e` may have left a connection mid-message (the client is then unusable).
fn breaks(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Io { .. } | ServiceError::Protocol(_) | ServiceError::Transport(_))
}

fn info_dict<'py>(py: Python<'py>, info: &ModelInfo) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(info).map_err(|e| TriadError::new_err(format!("model info: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

fn frac_bits(v: Option<i64>) -> PyResult<u32> {
    match v {
        None => Ok(DEFAULT_FRAC_BITS),
        Some(b) => u32::try_from(b).map_err(|_| TriadError::new_err(format!("frac_bits {b}: a count, not negative"))),
    }
}

/// The model id an upload of `path` takes by default: the file's stem.
fn stem(path: &Path) -> PyResult<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .ok_or_else(|| TriadError::new_err(format!("{}: no model id in the file name; pass model_id", path.display())))
}

impl PyClient {
    /// Runs the request `f` on the open client with the GIL released; a failure is
    /// `TriadError` with its one line, and one that may have left a connection
    /// mid-message closes the client.
    fn request<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Client) -> Result<T, ServiceError> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut st = self
                .state
                .lock()
                .map_err(|_| "this triad.Client failed in an earlier call (a panic); open a new one".to_string())?;
            match &mut *st {
                State::Open(c) => f(c).map_err(|e| {
                    let msg = one_line(&e.to_string());
                    if breaks(&e) {
                        *st = State::Broken(msg.clone());
                    }
                    msg
                }),
                State::Closed => Err("this triad.Client is closed".to_string()),
                State::Broken(m) => {
                    Err(format!("this triad.Client's connections failed in an earlier call ({m}); open a new one"))
                }
            }
        })
        .map_err(TriadError::new_err)
    }
}

#[pymethods]
impl PyClient {
    /// Reads the client file `config` (TOML: this client's certificate and key, and the
    /// three servers' addresses and certificate fingerprints; `triad keygen --client`
    /// writes one) and connects to the three servers over TLS.
    #[new]
    #[pyo3(signature = (config))]
    fn new(py: Python<'_>, config: PathBuf) -> PyResult<Self> {
        let client = py
            .detach(|| ClientConfig::load(&config).and_then(|cfg| Client::connect(&cfg)))
            .map_err(|e| TriadError::new_err(one_line(&e.to_string())))?;
        Ok(PyClient { config, state: Mutex::new(State::Open(client)) })
    }

    /// Uploads the ONNX model at `path` as secret shares under the id `model_id` (by
    /// default the file's stem): the public graph goes to every server and each server
    /// gets only its two components of every weight. This client becomes the model's
    /// owner (only it may `allow` and `refuse` other clients; uploading the same id again
    /// replaces the model). Nodes whose values may leave the fixed-point range for inputs
    /// bounded by `input_bound` in magnitude are printed on stderr as warnings. Returns
    /// the model's public facts as the servers hold them (`describe`).
    #[pyo3(signature = (path, model_id = None, *, frac_bits = None, input_bound = 1.0))]
    fn upload_model<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        model_id: Option<String>,
        frac_bits: Option<i64>,
        input_bound: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bits = self::frac_bits(frac_bits)?;
        let id = match model_id {
            Some(id) => id,
            None => stem(&path)?,
        };
        if !(input_bound.is_finite() && input_bound >= 0.0) {
            return Err(TriadError::new_err(format!(
                "input_bound {input_bound}: a magnitude, finite and not negative"
            )));
        }
        let im = py.detach(|| triad::onnx::import(&path)).map_err(|e| TriadError::new_err(e.one_line()))?;
        let warnings = py
            .detach(|| triad::onnx::range::check(&im.graph, &im.weights, input_bound, bits))
            .map_err(|e| TriadError::new_err(e.one_line()))?;
        for w in warnings.iter().take(MAX_RANGE_LINES) {
            eprintln!("{} (inputs bounded by {input_bound})", w.line());
        }
        if warnings.len() > MAX_RANGE_LINES {
            let more = warnings.len() - MAX_RANGE_LINES;
            eprintln!("warning: {more} more nodes may leave the fixed-point range (triad.inspect lists every one)");
        }
        let info = self.request(py, |c| c.upload(&id, &im.graph, &im.weights, bits))?;
        info_dict(py, &info)
    }

    /// Lets the enrolled client named `client` run inference on `model_id` (the model's
    /// owner only).
    #[pyo3(signature = (model_id, client))]
    fn allow(&self, py: Python<'_>, model_id: &str, client: &str) -> PyResult<()> {
        self.request(py, |c| c.allow(model_id, client))
    }

    /// Withdraws the permission of `client` on `model_id` (the model's owner only).
    #[pyo3(signature = (model_id, client))]
    fn refuse(&self, py: Python<'_>, model_id: &str, client: &str) -> PyResult<()> {
        self.request(py, |c| c.refuse(model_id, client))
    }

    /// The public facts of `model_id` as the three servers hold it (they must agree):
    /// `model`, `version`, `owner`, `graph`, `graph_sha256`, `params`, `input` and
    /// `output` (one sample's shapes) and `frac_bits`.
    #[pyo3(signature = (model_id))]
    fn describe<'py>(&self, py: Python<'py>, model_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let info = self.request(py, |c| c.describe(model_id))?;
        info_dict(py, &info)
    }

    /// Private inference on the bytes of a C-contiguous native-endian float64 array of
    /// shape `shape` (use `triad.Client.infer`): returns the outputs' bytes (float64) and
    /// their shape.
    #[pyo3(signature = (model_id, x, shape))]
    fn _infer<'py>(
        &self,
        py: Python<'py>,
        model_id: &str,
        x: &[u8],
        shape: Vec<usize>,
    ) -> PyResult<(Bound<'py, PyByteArray>, Vec<usize>)> {
        let x = words("x", x, f64::from_ne_bytes)?;
        let (dims, y) = self.request(py, |c| c.infer(model_id, &shape, &x))?;
        let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_ne_bytes()).collect();
        Ok((PyByteArray::new(py, &bytes), dims))
    }

    /// Closes the connections to the servers (waiting for a call in progress on another
    /// thread); later calls raise `TriadError`. Closing twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let old = py.detach(|| match self.state.lock() {
            Ok(mut st) => std::mem::replace(&mut *st, State::Closed),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), State::Closed),
        });
        drop(old);
        Ok(())
    }

    /// Whether the client is closed (by `close`, or by a failure on the wire).
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.state.lock().map(|st| !matches!(*st, State::Open(_))).unwrap_or(true))
    }

    /// The client file this client was opened with.
    #[getter]
    fn config(&self) -> PathBuf {
        self.config.clone()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { "closed" } else { "open" };
        format!("triad.Client({:?}, {state})", self.config.display().to_string())
    }
}
