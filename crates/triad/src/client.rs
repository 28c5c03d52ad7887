//! `triad client`: a client of `triad serve` from the command line (the Python package's
//! `triad.Client` does the same from Python): upload a model as shares, allow or refuse
//! other clients, classify NumPy inputs, and a load test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;
use triad_layers::{Model, PTensor, Plain};
use triad_service::{Client, ClientConfig};

use crate::error::{Error, Result};
use crate::job::OWNER;

/// Options of `client`.
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// The client file (from `triad keygen --client NAME --servers parties.toml`, or
    /// `--hosts ... --clients ...`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: ClientAction,
}

/// What a client does.
#[derive(Clone, Debug, Subcommand)]
pub enum ClientAction {
    /// Upload an ONNX model as shares (no server sees a weight).
    Upload {
        /// The ONNX file.
        model: PathBuf,
        /// The model's id (default: the file's stem).
        #[arg(long)]
        id: Option<String>,
        /// Fixed-point fractional bits (the servers' --frac-bits).
        #[arg(long, default_value_t = 20)]
        frac_bits: u32,
    },
    /// Let another enrolled client use your model.
    Allow {
        /// The model's id.
        id: String,
        /// The client's enrolled name.
        client: String,
    },
    /// Withdraw another client's permission.
    Refuse {
        /// The model's id.
        id: String,
        /// The client's enrolled name.
        client: String,
    },
    /// Classify NumPy inputs privately: they are secret-shared to the servers and the
    /// outputs reconstructed here.
    Infer {
        /// The model's id.
        id: String,
        /// The inputs (`.npy`, samples first).
        #[arg(long, value_name = "FILE")]
        inputs: PathBuf,
        /// Write the outputs here (`.npy`).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A load test: parallel clients send requests for a while; throughput, latency
    /// percentiles, and every answer checked against the plaintext twin of the ONNX file.
    Load {
        /// The model's id (uploaded from `--onnx` first when this client sees none).
        id: String,
        /// The ONNX file: uploaded, and the plaintext twin every answer is checked against.
        #[arg(long, value_name = "FILE")]
        onnx: PathBuf,
        /// Parallel clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Samples per request.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// How long to send requests.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The largest difference from the twin allowed.
        #[arg(long, default_value_t = 1e-2)]
        tolerance: f64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn connect(config: &Path) -> Result<Client> {
    Client::connect(&ClientConfig::load(config)?).map_err(Error::from)
}

/// Runs `triad client`.
pub fn run(a: &ClientArgs) -> Result<()> {
    match &a.action {
        ClientAction::Upload { model, id, frac_bits } => {
            let info = upload(&a.config, model, id.as_deref(), *frac_bits)?;
            println!(
                "uploaded {:?}: {} ({} parameters, input {:?}, output {:?}, graph sha256 {})",
                info.model, info.graph, info.params, info.input, info.output, info.graph_sha256
            );
            Ok(())
        }
        ClientAction::Allow { id, client } => {
            connect(&a.config)?.allow(id, client)?;
            println!("{client} may now use {id:?}");
            Ok(())
        }
        ClientAction::Refuse { id, client } => {
            connect(&a.config)?.refuse(id, client)?;
            println!("{client} may no longer use {id:?}");
            Ok(())
        }
        ClientAction::Infer { id, inputs, output } => {
            let (shape, x) = triad_layers::data::npy::read_f64(inputs)?;
            let (dims, y) = connect(&a.config)?.infer(id, &shape, &x)?;
            let per: usize = dims.iter().skip(1).product();
            let preds = triad_layers::argmax_rows(&y, per.max(1));
            if let Some(path) = output {
                triad_layers::data::npy::write_f64(path, &dims, &y)?;
            }
            println!("predictions {preds:?}");
            Ok(())
        }
        ClientAction::Load { id, onnx, clients, batch, seconds, tolerance, json } => {
            let r = load(&a.config, id, onnx, *clients, *batch, *seconds, *tolerance)?;
            if *json {
                println!("{}", crate::cli::to_json(&r)?);
            } else {
                println!(
                    "{} clients, batch {}, {:.1} s: {} requests ({:.1} requests/s, {:.1} samples/s); latency ms \
                     p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}; every answer within {:e} of the twin (max {:.2e})",
                    r.clients,
                    r.batch,
                    r.seconds,
                    r.requests,
                    r.requests_per_sec,
                    r.samples_per_sec,
                    r.p50_ms,
                    r.p90_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.tolerance,
                    r.max_error
                );
            }
            Ok(())
        }
    }
}

/// Imports `model` and uploads it as shares under `id` (default: the file's stem).
pub fn upload(config: &Path, model: &Path, id: Option<&str>, frac_bits: u32) -> Result<triad_service::ModelInfo> {
    let im = crate::onnx::import(model)?;
    let id = match id {
        Some(id) => id.to_string(),
        None => model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
    };
    connect(config)?.upload(&id, &im.graph, &im.weights, frac_bits).map_err(Error::from)
}

/// What a load test measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Parallel clients.
    pub clients: usize,
    /// Samples per request.
    pub batch: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Requests answered.
    pub requests: usize,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Samples per second.
    pub samples_per_sec: f64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The tolerance against the twin.
    pub tolerance: f64,
    /// The largest difference from the twin seen.
    pub max_error: f64,
}

/// The load test of `triad client load`.
pub fn load(
    config: &Path,
    id: &str,
    onnx: &Path,
    clients: usize,
    batch: usize,
    seconds: f64,
    tolerance: f64,
) -> Result<LoadReport> {
    if clients == 0 || batch == 0 || seconds.is_nan() || seconds <= 0.0 {
        return Err(Error::Usage("--clients, --batch and --seconds must be positive".into()));
    }
    let im = crate::onnx::import(onnx)?;
    // The served model must be this file's graph; upload it if this client may not see
    // one under `id` yet.
    let mut first = connect(config)?;
    let info = match first.describe(id) {
        Ok(info) => info,
        // Not visible to this client: upload it, unless another client owns that id
        // (then the reason it is not visible is the error).
        Err(unseen) => match first.upload(id, &im.graph, &im.weights, 20) {
            Ok(info) => info,
            Err(e) if e.to_string().contains("belongs to another client") => return Err(unseen.into()),
            Err(e) => return Err(e.into()),
        },
    };
    // One connection per client while measuring: the servers batch at once when every
    // open connection has a request waiting.
    drop(first);
    let digest = crate::onnx::parties::PublicGraph::of(&im.graph)?.sha256;
    if info.graph_sha256 != digest {
        return Err(Error::Mismatch(format!(
            "model {id:?} on the servers has graph sha256 {}, not {digest} of {}",
            info.graph_sha256,
            onnx.display()
        )));
    }
    // A few input batches and the twin's outputs for them.
    let per: Vec<usize> = im.graph.input().to_vec();
    let per_len: usize = per.iter().product();
    let mut dims = vec![batch];
    dims.extend(&per);
    let mut twin = Model::new(&Plain, &im.graph, OWNER, Some(&im.weights))?;
    twin.train = false;
    let mut cases = Vec::new();
    let mut rng = triad_layers::SplitMix(0x10ad);
    for _ in 0..8 {
        let x: Vec<f64> = (0..batch * per_len).map(|_| rng.unit() * 2.0 - 1.0).collect();
        let y = twin.forward(&Plain, PTensor::new(dims.clone(), x.clone())?)?.data;
        cases.push((x, y));
    }
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let results: Vec<Result<(Vec<f64>, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (cases, dims) = (&cases, &dims);
                s.spawn(move || -> Result<(Vec<f64>, f64)> {
                    let mut cl = connect(config)?;
                    let mut lat = Vec::new();
                    let mut worst = 0f64;
                    let mut k = c;
                    while Instant::now() < until {
                        let (x, want) = &cases[k % cases.len()];
                        let t = Instant::now();
                        let (_, y) = cl.infer(id, dims, x)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                        worst = worst.max(err);
                        if y.len() != want.len() || err > tolerance {
                            return Err(Error::Mismatch(format!(
                                "client {c}: an answer differs from the plaintext twin by {err:.3e} (tolerance {tolerance:e})"
                            )));
                        }
                        k += clients;
                    }
                    Ok((lat, worst))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Usage("a client panicked".into()))))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut max_error = 0f64;
    for r in results {
        let (l, e) = r?;
        lat.extend(l);
        max_error = max_error.max(e);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Ok(LoadReport {
        clients,
        batch,
        seconds: secs,
        requests: lat.len(),
        requests_per_sec: lat.len() as f64 / secs,
        samples_per_sec: (lat.len() * batch) as f64 / secs,
        p50_ms: pct(0.5),
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        tolerance,
        max_error,
    })
}
