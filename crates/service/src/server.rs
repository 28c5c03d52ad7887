//! A server's compute loop: the three servers agree on every batch, then run it on
//! shares.
//!
//! **Agreement.** Party 0 is the leader. Each round it proposes a batch: requests for one
//! model, in the order it took them ([`Gate::next_batch`]: up to `max_batch` samples, or
//! whatever arrived within `max_wait` of the oldest), with the model's version and its
//! own verdict on each request; with nothing pending it proposes an empty batch every
//! `tick`. Parties 1 and 2 claim the proposed requests from their own gates (waiting up to
//! `arrival_wait` for a share that is still on its way), and send their verdicts to both
//! other parties. Every party then knows the same three verdicts, so all three run the
//! same requests in the same order, and answer the others with the same one-line reason.
//! A proposal or verdict also carries whether its sender is stopping (SIGTERM); after a
//! round in which any party stops, all three answer what is left and stop together.
//!
//! **A batch.** The accepted requests' shares are stacked into one `[N, ...]` input, the
//! model (built once per version from its stored shares, [`Model::from_tensors`]) runs
//! forward, and the output is re-randomised (a fresh zero sharing and a reshare: one
//! round) so that its three components are uniformly random given the output. Each
//! client gets its rows of this server's two components and nothing else.
//!
//! Control messages are JSON, each a length word and the bytes, over the parties' links;
//! they carry only public facts (client names, request ids, model ids and versions,
//! shapes, reasons).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use triad_layers::Model;
use triad_ring::tensor::Tensor;
use triad_ring::Device;
use triad_sharing::{AShare, Party};
use triad_transport::{PartyId, Peer};

use crate::error::{Result, ServiceError};
use crate::gate::{Gate, Pending};
use crate::wire::{words_to_bytes, Reply};

/// The longest control message a party accepts from a peer.
const MAX_CONTROL_BYTES: u64 = 16 << 20;

/// How a server batches and waits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The most samples in one batch (a larger request runs alone).
    pub max_batch: usize,
    /// How long the oldest request waits for others to join its batch.
    pub max_wait: Duration,
    /// How long a follower waits for a proposed request's shares to reach it.
    pub arrival_wait: Duration,
    /// How often the idle leader checks in with its peers (and so how soon a stop is seen).
    pub tick: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_batch: 64,
            max_wait: Duration::from_millis(5),
            arrival_wait: Duration::from_secs(2),
            tick: Duration::from_millis(250),
        }
    }
}

/// What a server did before it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServeSummary {
    /// Requests answered with an output.
    pub requests: u64,
    /// Samples classified.
    pub samples: u64,
    /// Batches run.
    pub batches: u64,
    /// Requests refused (by any party).
    pub refused: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Proposal {
    seq: u64,
    model: String,
    version: u64,
    items: Vec<(String, u64)>,
    verdicts: Vec<Option<String>>,
    stop: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Verdict {
    seq: u64,
    verdicts: Vec<Option<String>>,
    stop: bool,
}

/// The cost scope of the outputs' re-randomisation (one reshare of the batch's outputs).
pub const OUTPUT_SCOPE: &str = "output";

/// The cost scope of the control messages (public facts; the view-secrecy test leaves
/// them out of the views it tests for uniformity).
pub const CONTROL_SCOPE: &str = "control";

fn send_json<D: Device, T: Serialize>(p: &Party<D>, to: Peer, v: &T) -> Result<()> {
    let _s = p.net.scope(CONTROL_SCOPE);
    let bytes = serde_json::to_vec(v).map_err(|e| ServiceError::Protocol(e.to_string()))?;
    p.net.send_u64s(to, vec![bytes.len() as u64])?;
    p.net.send_bytes(to, bytes)?;
    Ok(())
}

fn recv_json<D: Device, T: for<'de> Deserialize<'de>>(p: &Party<D>, from: Peer) -> Result<T> {
    let _s = p.net.scope(CONTROL_SCOPE);
    let who = p.id.peer(from);
    let len = p.net.recv_u64s(from, 1)?[0];
    if len == 0 || len > MAX_CONTROL_BYTES {
        return Err(ServiceError::Protocol(format!("{who} sent a control message of {len} bytes")));
    }
    let bytes = p.net.recv_bytes(from, len as usize)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ServiceError::Protocol(format!("{who} sent a control message that is not understood: {e}")))
}

/// This server's verdict on a request: `None` to run it, else why not.
fn verdict(gate: &Gate, model: &str, version: u64, req: Option<&Pending>) -> Option<String> {
    let me = gate.me();
    let Some(r) = req else {
        return Some(format!("{me}: the request's shares did not reach it (did the client stop?)"));
    };
    if let Err(m) = &r.shares {
        return Some(format!("{me}: {m}"));
    }
    match gate.model(model) {
        Some(m) if m.info.version == version => None,
        Some(_) => Some(format!(
            "{me}: holds another version of model {model:?} (an upload did not reach every server); upload it again"
        )),
        None => Some(format!("{me}: does not hold model {model:?}")),
    }
}

/// Serves until a stop (this server's [`Gate::stop`] or a peer's), as party `p` of the
/// three servers. Returns what it did; a failed link or computation is an error (the
/// pending requests are answered with it first).
pub fn serve<D: Device>(p: &Party<D>, gate: &Gate, opt: &ServeOptions) -> Result<ServeSummary> {
    let mut models: HashMap<String, (u64, Model<Party<D>>)> = HashMap::new();
    let mut summary = ServeSummary::default();
    let leader = PartyId::ALL[0];
    let mut seq = 0u64;
    let r = (|| loop {
        seq += 1;
        let (model, version, items, mine, verdicts, stop) = if p.id == leader {
            let batch = gate.next_batch(opt.max_batch.max(1), opt.max_wait, opt.tick);
            let model = batch.first().map(|b| b.model.clone()).unwrap_or_default();
            let version = gate.model(&model).map_or(0, |m| m.info.version);
            let verdicts: Vec<Option<String>> = batch.iter().map(|b| verdict(gate, &model, version, Some(b))).collect();
            let prop = Proposal {
                seq,
                model: model.clone(),
                version,
                items: batch.iter().map(|b| (b.client.clone(), b.id)).collect(),
                verdicts: verdicts.clone(),
                stop: gate.stopping(),
            };
            for peer in Peer::BOTH {
                send_json(p, peer, &prop)?;
            }
            let mut all = vec![verdicts];
            let mut stop = prop.stop;
            for peer in Peer::BOTH {
                let v: Verdict = recv_json(p, peer)?;
                check_verdict(p, peer, &v, seq, prop.items.len())?;
                stop |= v.stop;
                all.push(v.verdicts);
            }
            let mine: Vec<Option<Pending>> = batch.into_iter().map(Some).collect();
            (model, version, prop.items, mine, all, stop)
        } else {
            let from = p.id.link_to(leader).ok_or_else(|| ServiceError::Protocol("no link to party 0".into()))?;
            let prop: Proposal = recv_json(p, from)?;
            if prop.seq != seq || prop.verdicts.len() != prop.items.len() {
                return Err(ServiceError::Protocol(format!("party 0 sent proposal {} out of order", prop.seq)));
            }
            let mine = gate.claim(&prop.items, Instant::now() + opt.arrival_wait);
            let verdicts: Vec<Option<String>> =
                mine.iter().map(|r| verdict(gate, &prop.model, prop.version, r.as_ref())).collect();
            let v = Verdict { seq, verdicts: verdicts.clone(), stop: gate.stopping() };
            for peer in Peer::BOTH {
                send_json(p, peer, &v)?;
            }
            let other = from.other();
            let o: Verdict = recv_json(p, other)?;
            check_verdict(p, other, &o, seq, prop.items.len())?;
            let stop = prop.stop || v.stop || o.stop;
            let all = in_party_order(p.id, prop.verdicts, verdicts, o.verdicts);
            (prop.model, prop.version, prop.items, mine, all, stop)
        };
        // The same decision at every party: run a request only if no party refuses it, and
        // the first refusing party's reason (verdicts are in party order) as its answer.
        let refusal: Vec<Option<String>> =
            (0..items.len()).map(|k| verdicts.iter().find_map(|v| v[k].clone())).collect();
        let mut run = Vec::new();
        for (req, why) in mine.into_iter().zip(&refusal) {
            match (req, why) {
                (Some(r), None) => run.push(r),
                (Some(r), Some(why)) => {
                    summary.refused += 1;
                    r.answer(Reply::Error { message: why.clone() }, Vec::new());
                }
                (None, _) => summary.refused += u64::from(why.is_some()),
            }
        }
        if !run.is_empty() {
            let stored =
                gate.model(&model).ok_or_else(|| ServiceError::Protocol(format!("model {model:?} vanished")))?;
            if models.get(&model).is_none_or(|(v, _)| *v != version) {
                models.remove(&model);
                let mut at = 0usize;
                let half = stored.words.len() / 2;
                let m = Model::from_tensors(&stored.graph, &mut |shape: &[usize]| {
                    let n: usize = shape.iter().product();
                    let own = stored.words.get(at..at + n).map(<[u64]>::to_vec);
                    let next = stored.words.get(half + at..half + at + n).map(<[u64]>::to_vec);
                    at += n;
                    let (Some(own), Some(next)) = (own, next) else {
                        return Err(triad_sharing::Error::Usage("a stored model is short of shares".into()));
                    };
                    AShare::new(
                        Tensor::from_vec(&p.dev, shape.to_vec(), own)?,
                        Tensor::from_vec(&p.dev, shape.to_vec(), next)?,
                    )
                })?;
                models.insert(model.clone(), (version, m));
            }
            let (_, m) = models.get_mut(&model).ok_or_else(|| ServiceError::Protocol("model cache".into()))?;
            match run_batch(p, m, &run) {
                Ok(()) => {
                    summary.batches += 1;
                    summary.requests += run.len() as u64;
                    summary.samples += run.iter().map(|r| r.samples() as u64).sum::<u64>();
                }
                Err(e) => {
                    for r in &run {
                        r.answer(Reply::Error { message: format!("{}: {e}", p.id) }, Vec::new());
                    }
                    return Err(e);
                }
            }
        }
        if p.id != leader {
            // Requests party 0 never proposed (their client reached only some servers).
            for r in gate.take_stale(Duration::from_secs(60)) {
                r.answer(
                    Reply::Error { message: format!("{}: party 0 never scheduled this request", p.id) },
                    Vec::new(),
                );
            }
        }
        if stop {
            return Ok(());
        }
    })();
    // Whatever is left is answered, so no client waits on a stopped server.
    let why = match &r {
        Ok(()) => format!("{}: the server is shutting down", p.id),
        Err(e) => format!("{}: the server failed: {e}", p.id),
    };
    for left in gate.take_stale(Duration::ZERO) {
        left.answer(Reply::Error { message: why.clone() }, Vec::new());
    }
    r.map(|()| summary)
}

type Verdicts = Vec<Option<String>>;

/// A follower's three verdict lists in party order (party 0's, 1's, 2's), from party 0's,
/// its own and the other follower's: so all three parties pick the same first reason.
fn in_party_order(me: PartyId, leader: Verdicts, own: Verdicts, other: Verdicts) -> Vec<Verdicts> {
    if me.index() == 1 {
        vec![leader, own, other]
    } else {
        vec![leader, other, own]
    }
}

fn check_verdict<D: Device>(p: &Party<D>, from: Peer, v: &Verdict, seq: u64, items: usize) -> Result<()> {
    if v.seq != seq || v.verdicts.len() != items {
        return Err(ServiceError::Protocol(format!("{} sent a verdict out of order", p.id.peer(from))));
    }
    Ok(())
}

/// Runs one agreed batch and answers its requests.
fn run_batch<D: Device>(p: &Party<D>, m: &mut Model<Party<D>>, run: &[Pending]) -> Result<()> {
    let per: Vec<usize> = m.graph.input().to_vec();
    let per_len: usize = per.iter().product();
    let total: usize = run.iter().map(Pending::samples).sum();
    let mut own = Vec::with_capacity(total * per_len);
    let mut next = Vec::with_capacity(total * per_len);
    for r in run {
        let w = r.shares.as_ref().map_err(|e| ServiceError::Protocol(e.clone()))?;
        let half = w.len() / 2;
        own.extend_from_slice(&w[..half]);
        next.extend_from_slice(&w[half..]);
    }
    let mut dims = vec![total];
    dims.extend(&per);
    let x = AShare::new(Tensor::from_vec(&p.dev, dims.clone(), own)?, Tensor::from_vec(&p.dev, dims, next)?)?;
    m.train = false;
    let y = m.forward(p, x)?;
    // Fresh components for the clients: y_i + α_i with a zero sharing α, then a reshare.
    let y = {
        let _s = p.net.scope(OUTPUT_SCOPE);
        let z = y.own.add(&p.zero_share(y.shape())?)?;
        p.reshare(z)?
    };
    let out_dims: Vec<usize> = y.shape().dims().to_vec();
    let per_out: usize = out_dims.iter().skip(1).product();
    let (own, next) = (y.own.to_vec()?, y.next.to_vec()?);
    let mut row = 0;
    for r in run {
        let k = r.samples();
        let span = row * per_out..(row + k) * per_out;
        let mut words = own[span.clone()].to_vec();
        words.extend_from_slice(&next[span]);
        let mut dims = vec![k];
        dims.extend(&out_dims[1..]);
        r.answer(Reply::Output { id: r.id, dims, frac_bits: p.fixed.frac_bits }, words_to_bytes(&words));
        row += k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_hold_the_verdicts_in_party_order() {
        let v = |s: &str| vec![Some(s.to_string())];
        let [_, p1, p2] = PartyId::ALL;
        // Party 1 hears party 2's verdict as "other"; party 2 hears party 1's.
        let at1 = in_party_order(p1, v("0"), v("1"), v("2"));
        let at2 = in_party_order(p2, v("0"), v("2"), v("1"));
        assert_eq!(at1, at2);
        assert_eq!(at1, vec![v("0"), v("1"), v("2")]);
    }
}
