//! `triad serve`: one of the three long-running servers of private inference as a
//! service ([`triad_service`]).
//!
//! The server joins its two peers over the parties' mutual-TLS links, accepts enrolled
//! clients at its `client_address` (the parties file's `[[client]]` entries), and serves
//! until SIGTERM or SIGINT: then it takes no new request, finishes the batch in hand,
//! stops together with its peers, answers whatever is still waiting with "shutting down",
//! and exits 0 with a summary line.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use triad_service::{serve, Gate, ServeOptions};
use triad_transport::service_acceptor;

use crate::error::{Error, Result};
use crate::run::{BackendKind, Session};

/// Options of `serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// This server's id: 0 (which sequences the batches), 1 or 2.
    #[arg(long)]
    pub id: u8,
    /// The parties file, with this server's `client_address` and the enrolled clients.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The most samples in one batch (a larger request runs alone). Servers 1 and 2
    /// follow server 0's batches.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// How long a request waits for others to join its batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Fixed-point fractional bits of the shares (uploads must use the same).
    #[arg(long, default_value_t = 20)]
    pub frac_bits: u32,
    /// Override the file's idle timeout for the links between servers.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Threads this server computes with (default: all cores, or a third of them when the
    /// parties file puts all three on this machine's loopback).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where the shares live and their arithmetic runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
}

/// Runs `triad serve` until it is stopped.
pub fn run(a: &ServeArgs) -> Result<()> {
    crate::run::set_thread_budget(a.threads, &a.config)?;
    if a.max_batch == 0 {
        return Err(Error::Usage("--max-batch must be positive".into()));
    }
    let fixed = crate::run::fixed_config(a.frac_bits)?;
    let session = Session::load(a.id, &a.config, a.timeout_ms)?;
    let me = session.me;
    let address = session.cfg.party(me).client_address.clone().ok_or_else(|| {
        Error::Usage(format!(
            "{}: {me} has no client_address: add client_address = \"host:port\" to its [[party]] entry",
            a.config.display()
        ))
    })?;
    let tls = service_acceptor(&session.cfg, me)?;
    let listener = TcpListener::bind(&address)
        .map_err(|e| Error::Usage(format!("{me}: cannot listen for clients at {address}: {e}")))?;
    let clients = session.cfg.clients.clone();
    let enrolled = clients.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let gate = Gate::start(listener, tls, clients, me, a.frac_bits, triad_service::wire::DEFAULT_MAX_BODY_BYTES)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, gate.stop_flag())
            .map_err(|e| Error::Usage(format!("{me}: cannot handle signal {signal}: {e}")))?;
    }
    let opt = ServeOptions {
        max_batch: a.max_batch,
        max_wait: Duration::from_millis(a.max_wait_ms),
        ..ServeOptions::default()
    };
    let summary = crate::with_device!(a.backend, dev => session.run(dev, fixed, |p| {
        eprintln!("{me}: serving clients at {address} (enrolled: {enrolled}); stop with SIGTERM");
        serve(p, &gate, &opt).map_err(Error::from)
    })?);
    eprintln!(
        "{me}: stopped; inference requests answered: {}, samples: {}, batches: {}, requests refused: {}",
        summary.requests, summary.samples, summary.batches, summary.refused
    );
    Ok(())
}
