//! An ONNX job as each party runs it, in one process or as one of three processes: party
//! 0 (the model owner) announces the public graph, then the parties run it on the
//! owner's secret-shared weights and inputs.
//!
//! The announcement: party 0 sends both others a header of `u64` words (the announcement
//! version, the job kind, the graph's length in bytes, the sample count, the batch size
//! and the fractional bits), then the graph's bytes ([`triad_layers::graph_wire`]: the
//! architecture only; no weight and no input travels in the clear). Parties 1 and 2 check
//! every header word against a bound before they receive the graph, check its SHA-256
//! against `--expect-graph` when given, and decode it with the checked decoder; a party
//! that refuses tells the others why and stops.

use std::path::Path;
use std::time::Instant;

use triad_layers::{argmax_rows, graph_wire, Backend, Graph, Model};
use triad_ring::Device;
use triad_sharing::Party;
use triad_transport::{CostTable, Fingerprint, Peer, TransportError};

use crate::error::{Error, Result};
use crate::job::OWNER;
use crate::run::{BackendKind, Session};

/// The version word that starts an announcement.
const ANNOUNCE_V1: u64 = 0x7472_6961_6401;
/// The longest graph the owner may send, in bytes.
pub const MAX_GRAPH_BYTES: u64 = 64 << 20;
/// The most samples the owner may announce.
const MAX_SAMPLES: u64 = 1 << 32;
/// The most elements of one batch of one activation.
const MAX_BATCH_ELEMENTS: usize = 1 << 31;

/// The kind of an announced job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Private inference.
    Infer = 0,
    /// Private training (then inference on evaluation samples).
    Train = 1,
}

/// The SHA-256 of a graph's encoding, 64 lower-case hex digits: what `--expect-graph` pins.
pub fn digest_hex(bytes: &[u8]) -> String {
    Fingerprint::of(bytes).0.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `--expect-graph`: 64 hex digits, optionally after `sha256:`.
pub fn parse_digest(s: &str) -> Result<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "--expect-graph {s:?}: a graph digest is 64 hex digits (triad inspect prints it)"
        )));
    }
    Ok(hex)
}

/// The public graph as it travels: its bytes and their digest.
#[derive(Clone, Debug)]
pub struct PublicGraph {
    /// The graph.
    pub graph: Graph,
    /// Its encoding.
    pub bytes: Vec<u8>,
    /// [`digest_hex`] of the encoding.
    pub sha256: String,
}

impl PublicGraph {
    /// The owner's graph, checked to be one that the other parties will accept.
    pub fn of(graph: &Graph) -> Result<PublicGraph> {
        let bytes = graph_wire::encode(graph)
            .ok_or_else(|| Error::Usage(format!("graph {}: a size does not fit the graph encoding", graph.name)))?;
        match graph_wire::decode(&bytes) {
            Ok(back) if back == *graph => {}
            Ok(_) => return Err(Error::Usage(format!("graph {}: does not survive its encoding", graph.name))),
            Err(e) => {
                return Err(Error::Usage(format!("graph {}: the other parties would refuse it: {e}", graph.name)))
            }
        }
        Ok(PublicGraph { graph: graph.clone(), sha256: digest_hex(&bytes), bytes })
    }

    /// One line for the operator: name, nodes, parameters, shapes and digest.
    pub fn summary(&self) -> String {
        let outs = self.graph.out_dims().unwrap_or_default();
        format!(
            "graph {}: {} nodes, {} parameters, input {:?}, output {:?}, sha256 {}",
            self.graph.name,
            self.graph.nodes.len().saturating_sub(1),
            self.graph.num_params(),
            self.graph.input(),
            outs,
            self.sha256
        )
    }
}

/// What party 0 brings to an ONNX job.
#[derive(Clone, Copy, Debug)]
pub struct OwnerModel<'a> {
    /// The graph and its encoding.
    pub graph: &'a PublicGraph,
    /// The weights in state order.
    pub weights: &'a [Vec<f64>],
    /// The inputs, `n` samples row-major.
    pub x: &'a [f64],
    /// Samples.
    pub n: usize,
    /// Batch size.
    pub batch: usize,
}

/// What every party knows after the announcement.
#[derive(Clone, Debug)]
pub struct Announced {
    /// The graph (party 0's own; decoded on parties 1 and 2).
    pub graph: PublicGraph,
    /// Samples.
    pub n: usize,
    /// Batch size.
    pub batch: usize,
    /// The overflow guard (`--guard`), which all three must have chosen alike.
    pub guard: bool,
}

/// The guard of `--guard` at `p`'s fractional bits, or `None` when off.
pub(crate) fn guard_of<D: Device>(p: &Party<D>, on: bool) -> Result<Option<triad_layers::Guard>> {
    if !on {
        return Ok(None);
    }
    triad_layers::Guard::for_frac_bits(p.fixed.frac_bits).map(Some).ok_or_else(|| {
        Error::Usage(format!(
            "--guard: {} fractional bits leave no value range to guard (at most 30)",
            p.fixed.frac_bits
        ))
    })
}

/// A refusal: the peers are told `reason`, and it is this party's error.
fn refuse<D: Device>(p: &Party<D>, reason: String) -> Error {
    p.net.abort_with(&reason);
    Error::Mismatch(reason)
}

/// Party 0 announces the job; parties 1 and 2 receive and check it (see the module docs).
/// `expect`: the digest a party pins (`--expect-graph`); `log`: print the received
/// graph's summary line to stderr; `guard`: this party's `--guard` (all three must agree).
pub fn announce<D: Device>(
    p: &Party<D>,
    kind: JobKind,
    owner: Option<&OwnerModel>,
    expect: Option<&str>,
    log: bool,
    guard: bool,
) -> Result<Announced> {
    let _s = p.net.scope("setup");
    let frac_bits = u64::from(p.fixed.frac_bits);
    if p.id == OWNER {
        let o = owner.ok_or_else(|| Error::Usage("party 0 needs the model and the inputs".into()))?;
        let header = vec![
            ANNOUNCE_V1,
            kind as u64,
            o.graph.bytes.len() as u64,
            o.n as u64,
            o.batch as u64,
            frac_bits,
            u64::from(guard),
        ];
        for peer in Peer::BOTH {
            p.net.send_u64s(peer, header.clone())?;
            p.net.send_bytes(peer, o.graph.bytes.clone())?;
        }
        return Ok(Announced { graph: o.graph.clone(), n: o.n, batch: o.batch, guard });
    }
    let from = p.id.link_to(OWNER).ok_or_else(|| Error::Usage("no link to party 0".into()))?;
    let me = p.id;
    let h = p.net.recv_u64s(from, 7).map_err(|e| match e {
        // Party 0 sent something else: most likely it runs a zoo job.
        TransportError::Malformed { .. } => {
            refuse(p, format!("{me}: party 0 did not announce an ONNX job (was it started with --onnx?): {e}"))
        }
        other => Error::Transport(other),
    })?;
    if h[0] != ANNOUNCE_V1 {
        return Err(refuse(p, format!("{me}: party 0 did not announce an ONNX job (was it started with --onnx?)")));
    }
    if h[1] != kind as u64 {
        return Err(refuse(p, format!("{me}: party 0 announced another kind of job (train or infer must agree)")));
    }
    if h[5] != frac_bits {
        return Err(refuse(p, format!("{me}: party 0 uses {} fractional bits, this party {frac_bits}", h[5])));
    }
    if h[6] != u64::from(guard) {
        let on = |b: bool| if b { "with" } else { "without" };
        return Err(refuse(p, format!("{me}: party 0 runs {} --guard, this party {}", on(h[6] == 1), on(guard))));
    }
    if h[2] == 0 || h[2] > MAX_GRAPH_BYTES {
        return Err(refuse(
            p,
            format!("{me}: party 0 announced a graph of {} bytes (at most {MAX_GRAPH_BYTES})", h[2]),
        ));
    }
    if h[3] == 0 || h[3] > MAX_SAMPLES || h[4] == 0 || h[4] > h[3] {
        return Err(refuse(p, format!("{me}: party 0 announced {} samples in batches of {}", h[3], h[4])));
    }
    let bytes = p.net.recv_bytes(from, h[2] as usize)?;
    let sha256 = digest_hex(&bytes);
    if let Some(want) = expect {
        if sha256 != want {
            return Err(refuse(
                p,
                format!("{me}: party 0's graph has sha256 {sha256}, not the {want} of --expect-graph"),
            ));
        }
    }
    let graph = graph_wire::decode(&bytes).map_err(|e| refuse(p, format!("{me}: party 0's graph: {e}")))?;
    let (n, batch) = (h[3] as usize, h[4] as usize);
    let widest = graph.node_dims()?.iter().map(|d| d.iter().product::<usize>()).max().unwrap_or(0);
    if widest.saturating_mul(batch) > MAX_BATCH_ELEMENTS {
        return Err(refuse(p, format!("{me}: a batch of {batch} is too large for party 0's graph")));
    }
    let graph = PublicGraph { graph, bytes, sha256 };
    if log {
        eprintln!("{me}: the model comes from party 0: {}", graph.summary());
    }
    Ok(Announced { graph, n, batch, guard })
}

/// One party's result of private inference.
#[derive(Clone, Debug)]
pub struct InferOutcome {
    /// The announced job.
    pub job: Announced,
    /// The opened outputs, `[n, outputs]` (party 0 only).
    pub logits: Option<Vec<f64>>,
    /// This party's communication during inference (the announcement excluded).
    pub costs: CostTable,
    /// Wall time of the private inference.
    pub secs: f64,
}

/// Private inference of an ONNX job as party `p`: the announcement, the owner's weights
/// and inputs secret-shared batch by batch, the outputs opened to party 0 only.
pub fn infer<D: Device>(
    p: &Party<D>,
    owner: Option<&OwnerModel>,
    expect: Option<&str>,
    log: bool,
    guard: bool,
) -> Result<InferOutcome> {
    let job = announce(p, JobKind::Infer, owner, expect, log, guard)?;
    let g = &job.graph.graph;
    let mut m = Model::new(p, g, OWNER, owner.map(|o| o.weights))?;
    m.train = false;
    m.guard = guard_of(p, guard)?;
    p.net.barrier()?;
    p.net.reset_costs();
    let t = Instant::now();
    let logits = infer_batches(p, &mut m, owner.map(|o| o.x), job.n, job.batch)?;
    let secs = t.elapsed().as_secs_f64();
    Ok(InferOutcome { job, logits, costs: p.net.costs(), secs })
}

/// Private inference of `n` samples in batches of `batch`: party 0 shares each batch of
/// `x` (row-major, `n` samples of the model's input), every party runs the forward pass,
/// and the outputs are opened to party 0 only (`Some` there, `None` elsewhere).
pub(crate) fn infer_batches<D: Device>(
    p: &Party<D>,
    m: &mut Model<Party<D>>,
    x: Option<&[f64]>,
    n: usize,
    batch: usize,
) -> Result<Option<Vec<f64>>> {
    let per: Vec<usize> = m.graph.input().to_vec();
    let per_len: usize = per.iter().product();
    let mut logits = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let k = batch.min(n - start);
        let mut dims = vec![k];
        dims.extend(&per);
        let xs = x.map(|x| &x[start * per_len..(start + k) * per_len]);
        let y = m.forward(p, p.input(OWNER, xs, &dims)?)?;
        if let Some(v) = p.open(OWNER, &y)? {
            logits.extend(v);
        }
    }
    Ok((p.id == OWNER).then_some(logits))
}

/// Where a party's ONNX job comes from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Party 0: its model, its inputs, and where it writes the opened outputs.
    Owner {
        /// The ONNX file.
        model: &'a Path,
        /// The inputs (NumPy).
        inputs: &'a Path,
        /// The outputs (NumPy), if wanted.
        output: Option<&'a Path>,
        /// Batch size (default 64).
        batch: Option<usize>,
    },
    /// Parties 1 and 2: the graph party 0 announces, pinned to a digest if given.
    FromOwner {
        /// `--expect-graph`, as [`parse_digest`] gives it.
        expect: Option<&'a str>,
    },
}

/// The error of a party started with the wrong side of an ONNX job.
pub fn who_names_the_model(me: triad_transport::PartyId) -> String {
    if me == OWNER {
        "party 0 names the model: --onnx FILE (and its data)".into()
    } else {
        format!("{me} does not name the model: only party 0 does; run parties 1 and 2 with --onnx-from-owner")
    }
}

/// What one party of three processes reports after private inference of an ONNX model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartyReport {
    /// 0, 1 or 2.
    pub party: usize,
    /// How it ran.
    pub mode: String,
    /// The model file (party 0 only).
    pub model: Option<String>,
    /// The graph's name.
    pub graph: String,
    /// Its nodes.
    pub nodes: usize,
    /// Its trainable parameters.
    pub params: usize,
    /// The SHA-256 of its encoding.
    pub graph_sha256: String,
    /// Samples classified.
    pub samples: usize,
    /// Wall time of the private inference in seconds.
    pub secs: f64,
    /// Bytes this party sent during the inference.
    pub bytes_sent: u64,
    /// Its communication rounds.
    pub rounds: u64,
    /// The predicted class of every sample (party 0 only).
    pub predictions: Option<Vec<usize>>,
    /// Where the opened outputs were written (party 0 only).
    pub output: Option<String>,
}

/// `triad party --id N --config FILE infer --onnx ... | --onnx-from-owner`: private
/// inference of an ONNX model as one of three processes over mutual TLS.
pub fn infer_as_party(
    source: Source,
    session: Session,
    frac_bits: u32,
    guard: bool,
    backend: BackendKind,
) -> Result<PartyReport> {
    let fixed = super::fixed_config(frac_bits)?;
    let me = session.me;
    // The owner imports its model and reads its inputs before connecting, so a bad file
    // fails fast, and the others never see it.
    let (loaded, expect) = match source {
        Source::Owner { model, inputs, batch, .. } if me == OWNER => {
            let im = super::import(model)?;
            let public = PublicGraph::of(&im.graph)?;
            let (n, x) = super::read_inputs(&im.graph, inputs)?;
            super::warn_ranges(&im, &x, frac_bits, n, false)?;
            let batch = batch.unwrap_or(64).clamp(1, n);
            (Some((im, public, x, n, batch)), None)
        }
        Source::FromOwner { expect } if me != OWNER => (None, expect),
        _ => return Err(Error::Usage(who_names_the_model(me))),
    };
    let owner = loaded.as_ref().map(|(im, public, x, n, batch)| OwnerModel {
        graph: public,
        weights: &im.weights,
        x,
        n: *n,
        batch: *batch,
    });
    if let Some(o) = &owner {
        eprintln!("{me}: sending the public graph to parties 1 and 2: {}", o.graph.summary());
    }
    let mode = session.mode();
    let out = crate::with_device!(backend, dev => session.run(dev, fixed, |p| infer(p, owner.as_ref(), expect, true, guard))?);
    let g = &out.job.graph;
    let mut report = PartyReport {
        party: me.index(),
        mode,
        model: None,
        graph: g.graph.name.clone(),
        nodes: g.graph.nodes.len().saturating_sub(1),
        params: g.graph.num_params(),
        graph_sha256: g.sha256.clone(),
        samples: out.job.n,
        secs: out.secs,
        bytes_sent: out.costs.total().bytes_sent,
        rounds: out.costs.total().rounds,
        predictions: None,
        output: None,
    };
    if let (Source::Owner { model, output, .. }, Some(logits)) = (source, &out.logits) {
        let outs: usize = g.graph.out_dims()?.iter().product();
        if let Some(path) = output {
            triad_layers::data::npy::write_f64(path, &[out.job.n, outs], logits)?;
        }
        report.model = Some(model.display().to_string());
        report.predictions = Some(argmax_rows(logits, outs.max(1)));
        report.output = output.map(|p| p.display().to_string());
    }
    Ok(report)
}

/// The human-readable lines of a [`PartyReport`].
pub fn render(r: &PartyReport) -> String {
    let mut s = format!("mode      {}\n", r.mode);
    if let Some(m) = &r.model {
        s.push_str(&format!("model     {m}\n"));
    }
    s.push_str(&format!(
        "graph     {} ({} nodes, {} parameters, sha256 {})\nsamples   {} classified privately in {:.3} s\ntraffic   {} bytes sent by party {}, {} rounds\n",
        r.graph, r.nodes, r.params, r.graph_sha256, r.samples, r.secs, r.bytes_sent, r.party, r.rounds
    ));
    if let Some(p) = &r.predictions {
        let shown: Vec<String> = p.iter().take(20).map(usize::to_string).collect();
        let more = if p.len() > 20 { " ..." } else { "" };
        s.push_str(&format!("classes   {}{more}\n", shown.join(" ")));
    }
    if let Some(o) = &r.output {
        s.push_str(&format!("output    {o} (the outputs, opened to party 0 only)\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;
    use triad_fixed::FixedConfig;
    use triad_transport::LinkConfig;

    /// Party 0 sends `header` and `graph`; what party 1's announcement says of it (its
    /// refusal aborts the session, whose error then carries it).
    fn party1_hears(header: Vec<u64>, graph: Vec<u8>) -> String {
        let link = LinkConfig { timeout: Duration::from_secs(20), ..LinkConfig::default() };
        let run = triad_sharing::run_in_process(triad_ring::CpuDevice, &link, FixedConfig::default(), |p| {
            if p.id == OWNER {
                for peer in Peer::BOTH {
                    p.net.send_u64s(peer, header.clone())?;
                    p.net.send_bytes(peer, graph.clone())?;
                }
                return Ok(String::new());
            }
            Ok(match announce(p, JobKind::Infer, None, None, false, false) {
                Ok(a) => format!("ok {}", a.graph.sha256),
                Err(e) => e.one_line(),
            })
        });
        match run {
            Ok([_, one, _]) => one,
            Err(e) => e.to_string(),
        }
    }

    /// Every word of party 0's announcement is checked before it is used: an oversized or
    /// garbage graph, absurd counts, another version or another kind of job is a refusal
    /// naming what is wrong, never a panic or an allocation of the announced size.
    #[test]
    fn a_bad_announcement_is_refused_in_one_line() {
        let g = triad_layers::zoo::lenet(triad_layers::Activation::Relu, triad_layers::Pooling::Avg);
        let bytes = graph_wire::encode(&g).unwrap();
        let len = bytes.len() as u64;
        let good = |n: u64, batch: u64| vec![ANNOUNCE_V1, 0, len, n, batch, 20, 0];
        assert!(party1_hears(good(4, 2), bytes.clone()).starts_with("ok "));
        let cases: [(Vec<u64>, Vec<u8>, &str); 8] = [
            (vec![ANNOUNCE_V1 + 1, 0, len, 4, 2, 20, 0], bytes.clone(), "did not announce an ONNX job"),
            (vec![ANNOUNCE_V1, 1, len, 4, 2, 20, 0], bytes.clone(), "another kind of job"),
            (vec![ANNOUNCE_V1, 0, len, 4, 2, 16, 0], bytes.clone(), "16 fractional bits"),
            (vec![ANNOUNCE_V1, 0, len, 4, 2, 20, 1], bytes.clone(), "party 0 runs with --guard, this party without"),
            (vec![ANNOUNCE_V1, 0, MAX_GRAPH_BYTES + 1, 4, 2, 20, 0], bytes.clone(), "a graph of 67108865 bytes"),
            (good(4, 5), bytes.clone(), "4 samples in batches of 5"),
            (good(1 << 40, 1), bytes.clone(), "1099511627776 samples"),
            (vec![ANNOUNCE_V1, 0, 7, 4, 2, 20, 0], b"garbage".to_vec(), "party 0's graph: not a valid graph"),
        ];
        for (header, graph, needle) in cases {
            let said = party1_hears(header, graph);
            assert!(said.contains(needle), "{said:?} does not say {needle:?}");
            assert!(!said.contains('\n'));
        }
    }
}
