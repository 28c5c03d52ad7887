//! What the three parties settle at the start of a job, before any share is made.
//!
//! 1. **The job** ([`agree_job`]): party 0 sends `[digest, n_train, n_test, save_weights]`,
//!    the digest of its public job parameters and the public sizes of its data splits.
//!    Parties 1 and 2 compare the digest with their own and check every number against
//!    what the job can need ([`check_announcement`]) before anything is sized from it: a
//!    split of at most [`MAX_SAMPLES`], exactly the sizes of the random splits when the
//!    inputs are random, a training split that holds one batch, a flag that is 0 or 1.
//!    The batch indices of each step are the owner's business: parties 1 and 2 never
//!    compute them (they need only the batch size and the number of steps, both from
//!    their own job), so no shuffle is ever sized by party 0's word.
//! 2. **The run** ([`agree_fresh_id`]): a fresh training job gets a run identifier no
//!    single party chooses: each party draws 16 bytes from the operating system's random
//!    source and sends them to both others, and the id is the first 16 bytes of
//!    SHA-256(`"triad run id"`, r₀, r₁, r₂) in party order. All three send before they
//!    receive; a party that waits for the others' bytes could hash many contributions of
//!    its own and pick among the outputs, but cannot make the id a value of its choosing,
//!    and as long as one party's bytes are random the id is fresh. Every start or resume of a
//!    training run also agrees such an id for itself, the *attempt*; each party stores
//!    both in its checkpoints ([`crate::checkpoint`]).
//! 3. **The checkpoints**, on `--resume`: see [`crate::resume`].

use std::fmt;

use triad_ring::Device;
use triad_sharing::Party;
use triad_transport::{Fingerprint, Peer};

use crate::error::{Error, Result};
use crate::job::{JobSpec, OWNER};

/// The most samples a split may have.
pub const MAX_SAMPLES: u64 = 1 << 32;

/// The public sizes party 0 announced, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Samples of the training split.
    pub n_train: usize,
    /// Samples of the test split.
    pub n_test: usize,
    /// Whether the final weights are opened to party 0 (`--save-weights` on party 0).
    pub save_weights: bool,
}

/// A training run's (or one attempt's) identifier, agreed by the three parties
/// ([`agree_fresh_id`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(pub [u8; 16]);

impl RunId {
    /// The 32 hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<RunId> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let digit = |b: u8| (b as char).to_digit(16);
            *o = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(RunId(out))
    }

    /// Its two halves as words, for the wire.
    pub(crate) fn words(&self) -> [u64; 2] {
        let [a, b] = [&self.0[..8], &self.0[8..]].map(|h| {
            let mut w = [0u8; 8];
            w.copy_from_slice(h);
            u64::from_le_bytes(w)
        });
        [a, b]
    }

    /// The inverse of [`RunId::words`].
    pub(crate) fn from_words(a: u64, b: u64) -> RunId {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        RunId(out)
    }
}

impl fmt::Display for RunId {
    /// The first 8 hex digits and an ellipsis: enough to tell runs apart in a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.hex()[..8])
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// FNV-1a, 64 bits: a digest of public text (the job line, a model name).
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Checks what party 0 announced (`[digest, n_train, n_test, save_weights]`) against the
/// job `job` whose digest is `digest`. Every bound a received number is held to is here.
pub fn check_announcement(job: &JobSpec, digest: u64, msg: &[u64]) -> Result<Sizes> {
    let &[their_digest, n_train, n_test, save] = msg else {
        return Err(announced("words in its first message", msg.len() as u64, "4"));
    };
    if their_digest != digest {
        return Err(Error::Mismatch(DIFFERENT_JOB.into()));
    }
    for (what, n) in [("training samples", n_train), ("test samples", n_test)] {
        if n > MAX_SAMPLES {
            return Err(announced(what, n, &format!("at most {MAX_SAMPLES}")));
        }
    }
    if let Some((train, test)) = job.random_sizes() {
        if n_train != train as u64 {
            return Err(announced("training samples", n_train, &format!("exactly {train} (random inputs)")));
        }
        if n_test != test as u64 {
            return Err(announced("test samples", n_test, &format!("exactly {test} (random inputs)")));
        }
    }
    if job.train && n_train < job.batch as u64 {
        return Err(announced("training samples", n_train, &format!("at least one batch of {}", job.batch)));
    }
    if save > 1 {
        return Err(announced("save-weights flag", save, "0 or 1"));
    }
    let size = |what: &'static str, n: u64| {
        usize::try_from(n).map_err(|_| announced(what, n, "a count this machine can address"))
    };
    Ok(Sizes {
        n_train: size("training samples", n_train)?,
        n_test: size("test samples", n_test)?,
        save_weights: save == 1,
    })
}

/// Why a party's digest differs from party 0's (after the party's name).
const DIFFERENT_JOB: &str = "was started with a different job than party 0 (model, dataset, batch, epochs, steps, lr, momentum, frac bits, seed, samples and --resume must agree)";

fn announced(what: &'static str, value: u64, expected: &str) -> Error {
    Error::Announced { what, value, expected: expected.to_string() }
}

/// Step 1 of the module docs. Party 0 passes the sizes of its splits (`owner_sizes`); the
/// others return the checked announcement or the first thing wrong with it.
pub fn agree_job<D: Device>(p: &Party<D>, job: &JobSpec, owner_sizes: Option<(usize, usize)>) -> Result<Sizes> {
    let digest = fnv1a(&job.public_line());
    let _s = p.net.scope("setup");
    if p.id == OWNER {
        let (n_train, n_test) = owner_sizes.ok_or_else(|| Error::Usage("party 0 needs the data and weights".into()))?;
        let msg = vec![digest, n_train as u64, n_test as u64, u64::from(job.save_weights.is_some())];
        for peer in Peer::BOTH {
            p.net.send_u64s(peer, msg.clone())?;
        }
        Ok(Sizes { n_train, n_test, save_weights: job.save_weights.is_some() })
    } else {
        let from = p.id.link_to(OWNER).ok_or_else(|| Error::Usage("no link to party 0".into()))?;
        let msg = p.net.recv_u64s(from, 4)?;
        check_announcement(job, digest, &msg).map_err(|e| match e {
            Error::Mismatch(why) => Error::Mismatch(format!("{} {why}", p.id)),
            other => other,
        })
    }
}

/// Step 2 of the module docs: a fresh identifier to which all three contribute. One
/// round, 16 bytes to each neighbour.
pub fn agree_fresh_id<D: Device>(p: &Party<D>) -> Result<RunId> {
    let mut mine = [0u8; 16];
    getrandom::fill(&mut mine).map_err(|e| Error::Usage(format!("no randomness for the run id: {e}")))?;
    let _s = p.net.scope("setup");
    for peer in Peer::BOTH {
        p.net.send_bytes(peer, mine.to_vec())?;
    }
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    parts[p.index()] = mine.to_vec();
    for peer in Peer::BOTH {
        parts[p.net.peer_id(peer).index()] = p.net.recv_bytes(peer, 16)?;
    }
    Ok(run_id_of(&parts))
}

/// The run id of the three contributions in party order.
fn run_id_of(parts: &[Vec<u8>; 3]) -> RunId {
    let mut input = b"triad run id".to_vec();
    for part in parts {
        input.extend_from_slice(part);
    }
    let h = Fingerprint::of(&input).0;
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    RunId(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::models::{ModelName, Shape};

    fn job(train: bool, random: bool) -> JobSpec {
        JobSpec {
            train,
            model: ModelName::Lenet,
            dataset: Shape::Mnist,
            random,
            data: None,
            batch: 4,
            epochs: 1,
            steps: Some(2),
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            frac_bits: 20,
            guard: false,
            seed: 42,
            samples: Some(3),
            eval_batch: 2,
            weights: None,
            force_weights: false,
            save_weights: None,
            checkpoint: None,
            checkpoint_every: None,
            resume: None,
            twin: false,
        }
    }

    fn err(job: &JobSpec, msg: &[u64]) -> String {
        let d = fnv1a(&job.public_line());
        check_announcement(job, d, msg).unwrap_err().to_string()
    }

    #[test]
    fn an_honest_announcement_passes() {
        let j = job(true, false);
        let d = fnv1a(&j.public_line());
        let s = check_announcement(&j, d, &[d, 8000, 2000, 1]).unwrap();
        assert_eq!(s, Sizes { n_train: 8000, n_test: 2000, save_weights: true });
        let j = job(true, true);
        let d = fnv1a(&j.public_line());
        check_announcement(&j, d, &[d, crate::data::RANDOM_TRAIN as u64, 3, 0]).unwrap();
    }

    #[test]
    fn forged_announcements_are_refused_before_anything_is_sized() {
        let j = job(true, false);
        let d = fnv1a(&j.public_line());
        assert!(err(&j, &[d ^ 1, 8, 2, 0]).contains("different job"));
        assert!(err(&j, &[d, 8, 2]).contains("words in its first message = 3"));
        let e = err(&j, &[d, u64::MAX, 2, 0]);
        assert!(e.contains("party 0 announced") && e.contains("training samples") && e.contains("at most"), "{e}");
        let e = err(&j, &[d, 8, (1 << 32) + 1, 0]);
        assert!(e.contains("test samples") && e.contains("at most"), "{e}");
        let e = err(&j, &[d, 3, 2, 0]);
        assert!(e.contains("training samples = 3") && e.contains("one batch of 4"), "{e}");
        let e = err(&j, &[d, 8, 2, 7]);
        assert!(e.contains("save-weights flag") && e.contains("0 or 1"), "{e}");
        // Random inputs: every party knows the sizes, so they must match exactly.
        let r = job(true, true);
        let dr = fnv1a(&r.public_line());
        let e = err(&r, &[dr, 1 << 31, 3, 0]);
        assert!(e.contains("exactly 10000"), "{e}");
        let e = err(&r, &[dr, crate::data::RANDOM_TRAIN as u64, 4, 0]);
        assert!(e.contains("test samples = 4") && e.contains("exactly 3"), "{e}");
        // Inference needs no training batch.
        let i = job(false, false);
        let di = fnv1a(&i.public_line());
        check_announcement(&i, di, &[di, 0, 2, 0]).unwrap();
    }

    #[test]
    fn run_ids_depend_on_every_party_in_order() {
        let parts = [vec![1u8; 16], vec![2u8; 16], vec![3u8; 16]];
        let id = run_id_of(&parts);
        assert_eq!(RunId::parse(&id.hex()), Some(id));
        let mut other = parts.clone();
        other[2][0] ^= 1;
        assert_ne!(run_id_of(&other), id);
        let swapped = [parts[1].clone(), parts[0].clone(), parts[2].clone()];
        assert_ne!(run_id_of(&swapped), id);
        assert_eq!(RunId::from_words(id.words()[0], id.words()[1]), id);
        assert_eq!(RunId::parse("xyz"), None);
    }
}
