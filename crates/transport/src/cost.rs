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
    /// Communication rounds (see the crate docs for the rule).
    pub rounds: u64,
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.bytes_sent += o.bytes_sent;
        self.bytes_recv += o.bytes_recv;
        self.messages_sent += o.messages_sent;
        self.messages_recv += o.messages_recv;
        self.rounds += o.rounds;
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
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Scope names, outermost first.
    stack: Vec<String>,
    /// `stack` joined with '/'.
    path: String,
    table: BTreeMap<String, Cost>,
    /// True after a send, false after a receive: a send while false opens a round.
    in_round: bool,
}

impl Meter {
    fn current(&mut self) -> &mut Cost {
        self.table.entry(self.path.clone()).or_default()
    }

    pub(crate) fn on_send(&mut self, bytes: u64) {
        let open_round = !self.in_round;
        self.in_round = true;
        let c = self.current();
        c.bytes_sent += bytes;
        c.messages_sent += 1;
        if open_round {
            c.rounds += 1;
        }
    }

    pub(crate) fn on_recv(&mut self, bytes: u64) {
        self.in_round = false;
        let c = self.current();
        c.bytes_recv += bytes;
        c.messages_recv += 1;
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

    fn rebuild_path(&mut self) {
        self.path = self.stack.join("/");
    }

    pub(crate) fn table(&self) -> CostTable {
        CostTable::from_scopes(self.table.clone())
    }

    pub(crate) fn reset(&mut self) {
        self.table.clear();
        self.in_round = false;
    }
}
