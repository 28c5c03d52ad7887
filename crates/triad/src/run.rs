//! Running a job: three parties in this process, or one party of three processes over
//! mutual TLS.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;
use triad_fixed::FixedConfig;
use triad_layers::Graph;
use triad_ring::Device;
use triad_sharing::{run_in_process, Party};
use triad_transport::{connect_tls, LinkConfig, PartiesConfig, PartyId, TlsIdentity};

use crate::error::{Error, Result};
use crate::job::{run_party, JobSpec, PartyResult, OWNER};
use crate::progress::Progress;

/// Where the parties' shares live and their arithmetic runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The CPU device.
    Cpu,
    /// The CUDA device 0 (needs an NVIDIA driver at run time).
    Cuda,
}

impl BackendKind {
    /// `cpu` or `cuda`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// Calls `$body` with `$dev` bound to the device of `$kind`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_device {
    ($kind:expr, $dev:ident => $body:expr) => {
        match $kind {
            $crate::run::BackendKind::Cpu => {
                let $dev = triad_ring::CpuDevice;
                $body
            }
            $crate::run::BackendKind::Cuda => {
                let $dev = triad_cuda::CudaDevice::new(0).map_err(|e| $crate::error::Error::Cuda(e.to_string()))?;
                $body
            }
        }
    };
}

/// A finished job: the command, the job, and what each party reported.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// The network's name.
    pub model: String,
    /// Its trainable parameters.
    pub params: usize,
    /// The backend.
    pub backend: BackendKind,
    /// The job.
    pub job: JobSpec,
    /// Three parties in one process, or this party of three processes.
    pub mode: String,
    /// Wall time of the whole run in seconds (data loading and setup included).
    pub wall_secs: f64,
    /// Each party's result (one entry when run as one party of three processes).
    pub parties: Vec<PartyResult>,
    /// Peak resident memory of this process in bytes: all three parties in one process,
    /// or this party's own process ([`crate::memory`]; `None` where unknown).
    pub peak_rss_bytes: Option<u64>,
}

fn fixed(job: &JobSpec) -> Result<FixedConfig> {
    fixed_config(job.frac_bits)
}

/// Sets this party process's thread budget before anything computes: `--threads N`, else
/// `RAYON_NUM_THREADS` if set, else a third of the cores when every party's address in the
/// parties file is a loopback address (three parties on this machine, which would
/// otherwise start three full pools), else every core. Silent: stderr is for errors,
/// one line each.
/// Measured on 2 cores (BENCHMARKS.md): a LeNet training step of three processes takes
/// 2.68 s with one thread per party against 2.71 s with two each (medians of three,
/// interleaved); the gain grows with the oversubscription. The party's protocol then runs
/// on a thread of that pool (`CpuDevice::in_pool`), so that with one thread the device's
/// loops run inline: 1.47–1.55 s a step against 1.54–1.60 s when every loop was handed to
/// the pool's thread and back (six runs each, interleaved, 2026-12-07).
pub(crate) fn set_thread_budget(threads: Option<usize>, config: &Path) -> Result<()> {
    if threads == Some(0) {
        return Err(Error::Usage("--threads must be positive".into()));
    }
    if threads.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let co_located = PartiesConfig::load(config).is_ok_and(|cfg| cfg.parties.iter().all(|p| is_loopback(&p.address)));
    let n = match threads {
        Some(n) => n,
        None if co_located => (cores / 3).max(1),
        None => return Ok(()),
    };
    triad_ring::CpuDevice::set_threads(n).map_err(|e| Error::Usage(format!("--threads {n}: {e}")))
}

/// Whether `address` (`host:port`) names this machine's loopback.
fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The most fractional bits a job may use: a product of two fixed-point values must stay
/// below `2^(62 - 2f)` before its truncation, which leaves values up to 16 at `f = 29`
/// and nothing usable beyond.
pub const MAX_JOB_FRAC_BITS: u32 = 29;

/// The fixed-point encoding of `--frac-bits f`, checked against the products it must
/// survive: refused beyond [`MAX_JOB_FRAC_BITS`]; above 24 a warning on stderr saying
/// how small the products' range is (`2^(62-2f)`: 4096 at `f = 25`).
pub(crate) fn fixed_config(f: u32) -> Result<FixedConfig> {
    if f > MAX_JOB_FRAC_BITS {
        return Err(Error::Usage(format!(
            "--frac-bits {f}: a product of two values must stay below 2^(62 - 2f) = 2^{} before its truncation, which leaves no usable range; use at most {MAX_JOB_FRAC_BITS} (20 is the default)",
            62i64 - 2 * i64::from(f)
        )));
    }
    if f > 24 {
        eprintln!(
            "triad: warning: --frac-bits {f}: every product must stay below 2^{} = {} in value before its truncation",
            62 - 2 * f,
            1u64 << (62 - 2 * f)
        );
    }
    FixedConfig::new(f).map_err(|e| Error::Usage(format!("--frac-bits {f}: {e}")))
}

/// Runs `job` with three parties in this process.
pub fn run_local(command: &str, job: &JobSpec, backend: BackendKind, progress: Progress) -> Result<Report> {
    let t = Instant::now();
    let net = job.net()?;
    let fixed = fixed(job)?;
    let owner = job.owner_inputs(&net)?;
    let link = LinkConfig { timeout: Duration::from_secs(24 * 3600), ..LinkConfig::default() };
    let results = with_device!(backend, dev => run_in_process(dev, &link, fixed, |p| {
        let is_owner = p.id == OWNER;
        let prog = if is_owner { progress } else { Progress::hidden() };
        run_party(p, job, &net, is_owner.then_some(&owner), prog).map_err(into_protocol)
    }).map_err(from_protocol)?);
    Ok(report(command, job, &net, backend, "three parties in one process".into(), t, results.into_iter().collect()))
}

/// This party's side of a three-process session: its id, the parties file (with the
/// timeout as overridden) and its TLS identity, loaded before any peer is contacted.
pub struct Session {
    /// This party.
    pub me: PartyId,
    /// The parties file.
    pub cfg: PartiesConfig,
    ident: TlsIdentity,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identity holds the private key: not shown.
        f.debug_struct("Session").field("me", &self.me).field("session", &self.cfg.session).finish_non_exhaustive()
    }
}

impl Session {
    /// Loads `config` for party `id`; `timeout_ms` overrides the file's timeout.
    pub fn load(id: u8, config: &Path, timeout_ms: Option<u64>) -> Result<Session> {
        let me = PartyId::new(id).ok_or_else(|| Error::Usage(format!("--id {id}: a party id is 0, 1 or 2")))?;
        let mut cfg = PartiesConfig::load(config)?;
        if let Some(ms) = timeout_ms {
            if ms == 0 {
                return Err(Error::Usage("--timeout-ms must be positive".into()));
            }
            cfg.timeout = Duration::from_millis(ms);
        }
        let ident = TlsIdentity::load(&cfg, me)?;
        Ok(Session { me, cfg, ident })
    }

    /// Runs over a modelled network ([`NetModel`](triad_transport::NetModel); `triad party
    /// --rtt-ms --gbps`), or as fast as the links go (`None`).
    pub fn with_net(mut self, net: Option<triad_transport::NetModel>) -> Session {
        self.cfg.net = net;
        self
    }

    /// How the report names this run.
    pub fn mode(&self) -> String {
        format!("party {} of three processes (mutual TLS, session {})", self.me.index(), self.cfg.session)
    }

    /// Connects to the other two parties, sets up the shared randomness and runs `job` as
    /// this party; if `job` fails, the peers are told why before this party stops.
    pub fn run<D: Device, T>(self, dev: D, fixed: FixedConfig, job: impl FnOnce(&Party<D>) -> Result<T>) -> Result<T> {
        let links = connect_tls(&self.cfg, self.me, self.ident)?;
        let p = Party::setup(dev, links, fixed)?;
        let r = job(&p);
        if let Err(e) = &r {
            p.net.abort_with(&e.for_peers());
        }
        r
    }
}

/// Runs `job` as the party of `session`, one of three processes.
pub fn run_party_process(
    command: &str,
    job: &JobSpec,
    backend: BackendKind,
    session: Session,
    progress: Progress,
) -> Result<Report> {
    let t = Instant::now();
    let net = job.net()?;
    let fixed = fixed(job)?;
    let me = session.me;
    // The owner loads its data and weights before connecting, so a bad file fails fast.
    let owner = if me == OWNER { Some(job.owner_inputs(&net)?) } else { None };
    let prog = if me == OWNER { progress } else { Progress::hidden() };
    let mode = session.mode();
    let result =
        with_device!(backend, dev => session.run(dev, fixed, |p| run_party(p, job, &net, owner.as_ref(), prog))?);
    Ok(report(command, job, &net, backend, mode, t, vec![result]))
}

/// The report of a finished job.
fn report(
    command: &str,
    job: &JobSpec,
    net: &Graph,
    backend: BackendKind,
    mode: String,
    start: Instant,
    parties: Vec<PartyResult>,
) -> Report {
    Report {
        command: command.to_string(),
        model: net.name.clone(),
        params: net.num_params(),
        backend,
        job: job.clone(),
        mode,
        wall_secs: start.elapsed().as_secs_f64(),
        parties,
        peak_rss_bytes: crate::memory::peak_rss_bytes(),
    }
}

/// Errors of the in-process closure must be protocol errors; ours travel as `Usage`
/// with a marker and come back unchanged in text.
pub(crate) fn into_protocol(e: Error) -> triad_sharing::Error {
    match e {
        Error::Protocol(p) => p,
        other => triad_sharing::Error::Usage(other.one_line()),
    }
}

pub(crate) fn from_protocol(e: triad_sharing::Error) -> Error {
    match e {
        triad_sharing::Error::Usage(s) => Error::Usage(s),
        other => Error::Protocol(other),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses_are_this_machine() {
        for a in ["127.0.0.1:7000", "127.1.2.3:1", "localhost:7000", "[::1]:7000"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["10.0.0.1:7000", "a.example:7000", "[2001:db8::1]:7000", "0.0.0.0:7000"] {
            assert!(!is_loopback(a), "{a}");
        }
    }
}
