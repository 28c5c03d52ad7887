//! Communication cost counters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Add, AddAssign};

/// Costs of one scope (or a total). Bytes are payload bytes only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cost {
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_recv: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_recv: u64,
    /// Communication rounds: how much this party's causal-depth clock advanced while the
    /// scope was innermost (see "Cost accounting" in the crate docs). Summed over all
    /// scopes this is the depth of the deepest message chain the party took part in since
    /// the last reset; the latency of a computation started from a synchronised point is
    /// the maximum of the three parties' totals.
    pub rounds: u64,
}

/// Saturating: a peer claiming an absurd depth must not make the sums overflow.
impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.bytes_sent = self.bytes_sent.saturating_add(o.bytes_sent);
        self.bytes_recv = self.bytes_recv.saturating_add(o.bytes_recv);
        self.messages_sent = self.messages_sent.saturating_add(o.messages_sent);
        self.messages_recv = self.messages_recv.saturating_add(o.messages_recv);
        self.rounds = self.rounds.saturating_add(o.rounds);
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(mut self, o: Cost) -> Cost {
        self += o;
        self
    }
}

/// One party's costs by scope path.
///
/// Each entry holds the costs incurred while that path was the *innermost* scope
/// (exclusive costs); [`CostTable::subtree`] sums a scope with everything nested in it.
/// The unscoped costs are under the empty path `""`. Entries are kept in path order, and
/// [`CostTable::render`] (also `Display`) is deterministic, for snapshot tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostTable {
    /// Exclusive costs by scope path (`"lenet/conv1"`; `""` for unscoped).
    pub scopes: BTreeMap<String, Cost>,
    /// The sum over all scopes.
    pub total: Cost,
}

impl CostTable {
    pub(crate) fn from_scopes(scopes: BTreeMap<String, Cost>) -> CostTable {
        let total = scopes.values().fold(Cost::default(), |a, &c| a + c);
        CostTable { scopes, total }
    }

    /// The sum over all scopes.
    pub fn total(&self) -> Cost {
        self.total
    }

    /// Exclusive costs of exactly this path (zero if absent).
    pub fn get(&self, path: &str) -> Cost {
        self.scopes.get(path).copied().unwrap_or_default()
    }

    /// Costs of `path` and every scope nested inside it (`""` gives the total).
    pub fn subtree(&self, path: &str) -> Cost {
        if path.is_empty() {
            return self.total;
        }
        self.scopes
            .iter()
            .filter(|(k, _)| k.as_str() == path || (k.starts_with(path) && k.as_bytes().get(path.len()) == Some(&b'/')))
            .fold(Cost::default(), |a, (_, &c)| a + c)
    }

    /// A fixed-width text table, one line per scope then a total line.
    pub fn render(&self) -> String {
        let label = |k: &str| {
            if k.is_empty() {
                "(unscoped)".to_string()
            } else {
                k.to_string()
            }
        };
        let width = self.scopes.keys().map(|k| label(k).chars().count()).chain([5]).max().unwrap_or(5);
        let mut out = String::new();
        let line = |out: &mut String, name: &str, c: &Cost| {
            out.push_str(&format!(
                "{name:<width$}  {:>14}  {:>14}  {:>9}  {:>9}  {:>7}\n",
                c.bytes_sent, c.bytes_recv, c.messages_sent, c.messages_recv, c.rounds
            ));
        };
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:>14}  {:>9}  {:>9}  {:>7}\n",
            "scope", "bytes_sent", "bytes_recv", "msgs_sent", "msgs_recv", "rounds"
        ));
        for (k, c) in &self.scopes {
            line(&mut out, &label(k), c);
        }
        line(&mut out, "total", &self.total);
        out
    }
}

impl fmt::Display for CostTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// The live counters of one party.
///
/// Rounds are counted with a Lamport-style clock over messages: every data message
/// carries a depth, one more than the deepest message its sender had received when it
/// sent it. The clock is the deepest depth this party has sent or received; rounds are
/// the clock's increase, attributed to the scope innermost when it happened.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Scope names, outermost first.
    stack: Vec<String>,
    /// `stack` joined with '/'.
    path: String,
    table: BTreeMap<String, Cost>,
    /// `K`: the largest depth of any message received so far (0 at start).
    received: u64,
    /// `C`: the largest depth sent or received so far. Never reset.
    clock: u64,
}

impl Meter {
    fn current(&mut self) -> &mut Cost {
        self.table.entry(self.path.clone()).or_default()
    }

    /// Advance the clock to at least `depth`; the increase is this step's rounds.
    fn advance(&mut self, depth: u64) -> u64 {
        let before = self.clock;
        self.clock = self.clock.max(depth);
        self.clock - before
    }

    /// Count a send of `bytes` payload bytes; returns the depth the message carries.
    pub(crate) fn on_send(&mut self, bytes: u64) -> u64 {
        let depth = self.received.saturating_add(1);
        let rounds = self.advance(depth);
        let c = self.current();
        c.bytes_sent = c.bytes_sent.saturating_add(bytes);
        c.messages_sent = c.messages_sent.saturating_add(1);
        c.rounds = c.rounds.saturating_add(rounds);
        depth
    }

    /// Count a receive of `bytes` payload bytes in a message of depth `depth`.
    pub(crate) fn on_recv(&mut self, bytes: u64, depth: u64) {
        self.received = self.received.max(depth);
        let rounds = self.advance(depth);
        let c = self.current();
        c.bytes_recv = c.bytes_recv.saturating_add(bytes);
        c.messages_recv = c.messages_recv.saturating_add(1);
        c.rounds = c.rounds.saturating_add(rounds);
    }

    /// Enter a scope; returns the depth to restore on exit.
    pub(crate) fn push(&mut self, name: &str) -> usize {
        let depth = self.stack.len();
        self.stack.push(name.to_string());
        self.rebuild_path();
        depth
    }

    /// Leave scopes until `depth` remain.
    pub(crate) fn pop_to(&mut self, depth: usize) {
        if depth < self.stack.len() {
            self.stack.truncate(depth);
            self.rebuild_path();
        }
    }

    /// The current scope path (`lenet/conv1/relu`).
    #[cfg(feature = "recording")]
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn rebuild_path(&mut self) {
        self.path = self.stack.join("/");
    }

    pub(crate) fn table(&self) -> CostTable {
        CostTable::from_scopes(self.table.clone())
    }

    /// Zero the tables. The clock keeps running, so depths stay comparable across parties.
    pub(crate) fn reset(&mut self) {
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_counts_causal_depth() {
        let mut m = Meter::default();
        // Two sends with nothing received: both depth 1, one round.
        assert_eq!(m.on_send(8), 1);
        assert_eq!(m.on_send(8), 1);
        assert_eq!(m.table().total.rounds, 1);
        // A shallower message adds nothing; a deeper one moves the clock up to it.
        m.on_recv(8, 1);
        assert_eq!(m.table().total.rounds, 1);
        m.on_recv(8, 4);
        assert_eq!(m.table().total.rounds, 4);
        assert_eq!(m.on_send(0), 5);
        // Reset zeroes the table but keeps the clock.
        m.reset();
        assert_eq!(m.table().total, Cost::default());
        assert_eq!(m.on_send(0), 5);
        assert_eq!(m.table().total.rounds, 0);
        m.on_recv(0, 5);
        assert_eq!(m.on_send(0), 6);
        assert_eq!(m.table().total.rounds, 1);
    }

    #[test]
    fn absurd_depths_saturate() {
        let mut m = Meter::default();
        m.on_recv(0, u64::MAX);
        assert_eq!(m.on_send(0), u64::MAX);
        m.on_recv(0, u64::MAX);
        let _g = m.push("s");
        m.on_send(1);
        let t = m.table();
        assert_eq!(t.total.rounds, u64::MAX);
    }
}
