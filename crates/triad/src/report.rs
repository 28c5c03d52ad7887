//! Human-readable output: the result table of a job.

use std::fmt::Write as _;

use crate::job::{PartyResult, Phase};
use crate::run::Report;

/// Bytes with a decimal unit (`1.23 GB`).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

fn pct(a: Option<f64>) -> String {
    a.map_or_else(|| "n/a".to_string(), |a| format!("{:.2}%", 100.0 * a))
}

/// The header printed before a job starts.
pub fn header(command: &str, what: &str) -> String {
    format!("triad {what}\n  command: {command}\n")
}

fn comm_row(s: &mut String, label: &str, parties: &[PartyResult], get: impl Fn(&PartyResult) -> Option<&Phase>) {
    let phases: Vec<Option<&Phase>> = parties.iter().map(&get).collect();
    if phases.iter().all(Option::is_none) {
        return;
    }
    let _ = write!(s, "  {label:<11}");
    for ph in &phases {
        let _ = write!(s, "  {:>12}", ph.map_or("-".to_string(), |p| bytes(p.cost.bytes_sent)));
    }
    let rounds = phases.iter().flatten().map(|p| p.cost.rounds).max().unwrap_or(0);
    let _ = writeln!(s, "  {rounds:>8}");
}

/// The result table of a train or infer job.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let j = &r.job;
    let owner = r.parties.iter().find_map(|p| p.owner.as_ref());
    let _ = writeln!(
        s,
        "model        {} ({} parameters), {} backend, {} fractional bits",
        r.model,
        r.params,
        r.backend.as_str(),
        j.frac_bits
    );
    if let Some(o) = owner {
        let _ = writeln!(s, "data         {}", o.data);
    }
    let _ = writeln!(s, "parties      {}", r.mode);
    let first = r.parties.first();
    if let Some(t) = first.and_then(|p| p.train.as_ref()) {
        let _ = writeln!(
            s,
            "training     {} private steps of batch {} (lr {}, momentum {}) in {:.1} s ({:.2} s per step)",
            t.count,
            j.batch,
            j.lr,
            j.momentum,
            t.secs,
            t.secs / t.count.max(1) as f64
        );
    }
    if let Some(i) = first.and_then(|p| p.infer.as_ref()) {
        let _ = writeln!(
            s,
            "inference    {} test samples privately (batches of {}, logits opened to party 0 only) in {:.1} s",
            i.count, j.eval_batch, i.secs
        );
    }
    if let Some(o) = owner {
        match &o.twin {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "accuracy     private {}   plaintext twin {}  (twin: same initial weights and batches, {:.1} s)",
                    pct(o.accuracy),
                    pct(t.accuracy),
                    t.secs
                );
            }
            None if o.accuracy.is_some() => {
                let _ = writeln!(s, "accuracy     private {}", pct(o.accuracy));
            }
            None => {}
        }
        if !o.predictions.is_empty() {
            let _ = writeln!(s, "checksum     sum of opened logits {:.6}", o.logits_sum);
        }
        if let Some(p) = &o.saved_weights {
            let _ = writeln!(s, "weights      opened to party 0, written to {}", p.display());
        }
    }
    for p in &r.parties {
        if let Some(c) = &p.checkpoint {
            let _ = writeln!(s, "checkpoint   party {} wrote its shares to {}", p.party, c.display());
        }
    }
    let _ = writeln!(s, "\ncommunication (bytes sent by each party; rounds: latency as causal depth)");
    let _ = write!(s, "  {:<11}", "phase");
    for p in &r.parties {
        let _ = write!(s, "  {:>12}", format!("party {}", p.party));
    }
    let _ = writeln!(s, "  {:>8}", "rounds");
    comm_row(&mut s, "training", &r.parties, |p| p.train.as_ref());
    comm_row(&mut s, "inference", &r.parties, |p| p.infer.as_ref());
    let _ = writeln!(s, "\nwall time    {:.1} s (setup, data and twin included)", r.wall_secs);
    if let Some(m) = r.peak_rss_bytes {
        let whose = if r.parties.len() == 1 { "this party's process" } else { "the three parties' process" };
        let _ = writeln!(s, "memory       peak resident {} ({whose})", bytes(m));
    }
    s
}
