//! `--resume`: the three parties agree which checkpoint each loads, or stop with one line.
//!
//! Each party reads the metadata of its latest share file and, if there is one, of the
//! previous one ([`checkpoint::checkpoints_of`]), checks them against its own job (model,
//! fractional bits), and sends both others what they say: run id, attempt id, step,
//! whether momentum state is present, model and fractional bits. All three then run the
//! same choice on the same data (`choose`): the latest step of which every party holds
//! a checkpoint with one and the same state. Normally that is the latest file on all
//! three; after a kill that caught one party's save a step ahead of the others', it is
//! the previous file on that party. If no step is common, all three stop with the same
//! line naming the party whose latest checkpoint differs, e.g.
//! `party 2's checkpoint is from run 3fa1c2d4…, parties 0 and 1's is from run 9c07e5b1…`.

use std::path::PathBuf;

use triad_ring::Device;
use triad_sharing::Party;
use triad_transport::Peer;

use crate::checkpoint::CheckpointMeta;
use crate::error::{Error, Result};
use crate::start::{fnv1a, RunId};

/// What of a checkpoint the three parties compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    run: RunId,
    attempt: RunId,
    step: u64,
    momentum: bool,
    model: u64,
    frac_bits: u64,
}

/// Words per checkpoint on the wire: a presence flag and the state.
const SLOT_WORDS: usize = 9;

impl State {
    fn of(m: &CheckpointMeta) -> State {
        State {
            run: m.run,
            attempt: m.attempt,
            step: m.step,
            momentum: m.momentum,
            model: fnv1a(&m.model),
            frac_bits: u64::from(m.frac_bits),
        }
    }

    /// The latest and the previous checkpoint (or a zero slot) as words.
    fn encode(states: &[State]) -> Vec<u64> {
        let mut w = Vec::with_capacity(2 * SLOT_WORDS);
        for k in 0..2 {
            match states.get(k) {
                Some(s) => {
                    let [r0, r1] = s.run.words();
                    let [a0, a1] = s.attempt.words();
                    w.extend([1, r0, r1, a0, a1, s.step, u64::from(s.momentum), s.model, s.frac_bits]);
                }
                None => w.extend([0; SLOT_WORDS]),
            }
        }
        w
    }

    /// The inverse of [`State::encode`]; `None` if a flag is neither 0 nor 1 or the
    /// latest checkpoint is absent.
    fn decode(w: &[u64]) -> Option<Vec<State>> {
        let mut out = Vec::new();
        for slot in w.chunks_exact(SLOT_WORDS) {
            let &[present, r0, r1, a0, a1, step, momentum, model, frac_bits] = slot else { return None };
            match (present, momentum) {
                (0, _) => continue,
                (1, 0 | 1) => out.push(State {
                    run: RunId::from_words(r0, r1),
                    attempt: RunId::from_words(a0, a1),
                    step,
                    momentum: momentum == 1,
                    model,
                    frac_bits,
                }),
                _ => return None,
            }
        }
        (w.len() == 2 * SLOT_WORDS && w[0] == 1).then_some(out)
    }
}

/// Exchanges the states of this party's checkpoints `mine` (from
/// [`checkpoints_of`](crate::checkpoint::checkpoints_of), read before the session's first
/// message) and returns the file this party resumes from and its metadata (the module
/// docs).
pub fn agree_checkpoints<D: Device>(
    p: &Party<D>,
    mut mine: Vec<(PathBuf, CheckpointMeta)>,
) -> Result<(PathBuf, CheckpointMeta)> {
    let states: Vec<State> = mine.iter().map(|(_, m)| State::of(m)).collect();
    let _s = p.net.scope("setup");
    for peer in Peer::BOTH {
        p.net.send_u64s(peer, State::encode(&states))?;
    }
    let mut all = [states.clone(), states.clone(), states];
    for peer in Peer::BOTH {
        let from = p.net.peer_id(peer);
        let w = p.net.recv_u64s(peer, 2 * SLOT_WORDS)?;
        all[from.index()] =
            State::decode(&w).ok_or_else(|| Error::Mismatch(format!("{from} sent a malformed checkpoint state")))?;
    }
    let Some(pick) = choose(&all) else {
        let latest = [all[0][0], all[1][0], all[2][0]];
        let line = disagreement(&latest).unwrap_or_else(|| "the three checkpoints differ".into());
        return Err(Error::Mismatch(line));
    };
    let k = pick[p.index()];
    if k > 0 {
        eprintln!(
            "triad: {} resumes from its previous checkpoint (step {}): its latest, of step {}, is ahead of the other parties'",
            p.id, all[p.index()][k].step, all[p.index()][0].step
        );
    }
    Ok(mine.swap_remove(k))
}

/// For each party, the index of the checkpoint to resume from: the latest step of which
/// all three hold a checkpoint with one state. `None` if there is none.
fn choose(all: &[Vec<State>; 3]) -> Option<[usize; 3]> {
    let mut best: Option<(u64, [usize; 3])> = None;
    for (a, s) in all[0].iter().enumerate() {
        let b = all[1].iter().position(|x| x == s);
        let c = all[2].iter().position(|x| x == s);
        if let (Some(b), Some(c)) = (b, c) {
            if best.is_none_or(|(step, _)| s.step > step) {
                best = Some((s.step, [a, b, c]));
            }
        }
    }
    best.map(|(_, pick)| pick)
}

/// The first field in which the three checkpoint states differ, as one line, or `None`.
fn disagreement(s: &[State; 3]) -> Option<String> {
    let field = |what: &dyn Fn(&State) -> String| -> Option<String> {
        let v: Vec<String> = s.iter().map(what).collect();
        if v[0] == v[1] && v[1] == v[2] {
            return None;
        }
        // The odd one out against the other two, or all three apart.
        for odd in 0..3 {
            let (a, b) = ((odd + 1) % 3, (odd + 2) % 3);
            let (a, b) = (a.min(b), a.max(b));
            if v[a] == v[b] {
                return Some(format!(
                    "party {odd}'s checkpoint {}, parties {a} and {b}'s {}; resume from checkpoints of one run and one step",
                    v[odd], v[a]
                ));
            }
        }
        Some(format!(
            "the three checkpoints differ: party 0's {}, party 1's {}, party 2's {}; resume from checkpoints of one run and one step",
            v[0], v[1], v[2]
        ))
    };
    field(&|x| format!("is from run {}", x.run))
        .or_else(|| field(&|x| format!("is at step {}", x.step)))
        .or_else(|| field(&|x| format!("is from attempt {} (another start or resume of the run)", x.attempt)))
        .or_else(|| {
            field(&|x| if x.momentum { "holds momentum state".into() } else { "holds no momentum state".into() })
        })
        .or_else(|| field(&|x| format!("holds model #{:016x}", x.model)))
        .or_else(|| field(&|x| format!("uses {} fractional bits", x.frac_bits)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn st(run: u8, attempt: u8, step: u64) -> State {
        State { run: RunId([run; 16]), attempt: RunId([attempt; 16]), step, momentum: true, model: 1, frac_bits: 20 }
    }

    #[test]
    fn disagreeing_checkpoints_are_named_in_one_line() {
        let a = st(0x9c, 1, 4);
        assert_eq!(disagreement(&[a; 3]), None);
        let b = st(0x3f, 1, 4);
        let line = disagreement(&[a, a, b]).unwrap();
        assert_eq!(
            line,
            "party 2's checkpoint is from run 3f3f3f3f…, parties 0 and 1's is from run 9c9c9c9c…; resume from checkpoints of one run and one step"
        );
        let line = disagreement(&[a, State { momentum: false, ..a }, a]).unwrap();
        assert!(
            line.starts_with("party 1's checkpoint holds no momentum state, parties 0 and 2's holds momentum"),
            "{line}"
        );
        let line = disagreement(&[State { step: 2, ..a }, a, a]).unwrap();
        assert!(line.starts_with("party 0's checkpoint is at step 2, parties 1 and 2's is at step 4"), "{line}");
        let line = disagreement(&[a, st(0x9c, 2, 4), a]).unwrap();
        assert!(line.starts_with("party 1's checkpoint is from attempt 02020202…"), "{line}");
        let c = st(0x11, 1, 4);
        assert!(disagreement(&[a, b, c]).unwrap().starts_with("the three checkpoints differ"));
    }

    #[test]
    fn the_latest_common_step_is_chosen() {
        let (s4, s5) = (st(7, 1, 4), st(7, 1, 5));
        // All at step 5 (previous 4): the latest files.
        assert_eq!(choose(&[vec![s5, s4], vec![s5, s4], vec![s5, s4]]), Some([0, 0, 0]));
        // Party 1 was killed before its step-5 save: the others fall back to step 4.
        assert_eq!(choose(&[vec![s5, s4], vec![s4, st(7, 1, 3)], vec![s5, s4]]), Some([1, 0, 1]));
        // Step 5 of another attempt does not combine with step 5 of this one.
        let other = st(7, 2, 5);
        assert_eq!(choose(&[vec![s5, s4], vec![other, s4], vec![s5, s4]]), Some([1, 1, 1]));
        // Nothing in common.
        assert_eq!(choose(&[vec![s5], vec![st(8, 1, 5)], vec![s5]]), None);
    }

    #[test]
    fn states_survive_the_wire_and_forged_ones_are_refused() {
        let (s4, s5) = (st(7, 1, 4), st(7, 1, 5));
        assert_eq!(State::decode(&State::encode(&[s5, s4])), Some(vec![s5, s4]));
        assert_eq!(State::decode(&State::encode(&[s5])), Some(vec![s5]));
        let mut w = State::encode(&[s5]);
        w[0] = 2;
        assert_eq!(State::decode(&w), None, "a presence flag of 2");
        let mut w = State::encode(&[s5]);
        w[6] = 9;
        assert_eq!(State::decode(&w), None, "a momentum flag of 9");
        assert_eq!(State::decode(&[0; 2 * SLOT_WORDS]), None, "no latest checkpoint");
    }
}
