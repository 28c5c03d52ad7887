//! A client's side of the sharing: splitting its plaintext into the three servers'
//! replicated shares, and reconstructing an output from what the servers return.
//!
//! `x = x_0 + x_1 + x_2` over `Z_{2^64}`, with `x_0` and `x_1` drawn from a ChaCha
//! stream under a fresh key from the OS random source and `x_2 = x - x_0 - x_1`; server
//! `i` receives `(x_i, x_{i+1})` (the replicated sharing of the paper, §3), so any one
//! server sees two uniformly random words per value and nothing of `x`.

use triad_fixed::FixedConfig;
use triad_ring::prg::{fill_words, PrgKey};

use crate::error::{Result, ServiceError};

/// The three additive components of the fixed-point encoding of `x`.
pub fn split(fixed: &FixedConfig, x: &[f64]) -> Result<[Vec<u64>; 3]> {
    let enc = fixed.encode_slice(x).map_err(|e| ServiceError::Usage(format!("an input value: {e}")))?;
    split_words(&enc)
}

/// The three additive components of ring words.
fn split_words(x: &[u64]) -> Result<[Vec<u64>; 3]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| ServiceError::Usage(format!("no randomness from the OS for the shares: {e}")))?;
    let key = PrgKey::from_bytes(key);
    let mut x0 = vec![0u64; x.len()];
    let mut x1 = vec![0u64; x.len()];
    fill_words(&key, 0, 0, &mut x0);
    fill_words(&key, 1, 0, &mut x1);
    let x2 = x.iter().zip(&x0).zip(&x1).map(|((v, a), b)| v.wrapping_sub(*a).wrapping_sub(*b)).collect();
    Ok([x0, x1, x2])
}

/// What server `i` receives: its first components (`x_i`) then its second ones
/// (`x_{i+1}`), concatenated.
pub fn for_server(parts: &[Vec<u64>; 3], i: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(parts[i % 3].len() * 2);
    out.extend_from_slice(&parts[i % 3]);
    out.extend_from_slice(&parts[(i + 1) % 3]);
    out
}

/// The ring words of an output from the three servers' bodies (server `i`: `y_i` then
/// `y_{i+1}`, each `n` words). Every component arrives from two servers; they must agree,
/// else the servers are faulty and nothing is returned.
pub fn reconstruct(bodies: [&[u64]; 3], n: usize) -> Result<Vec<u64>> {
    for (i, b) in bodies.iter().enumerate() {
        if b.len() != 2 * n {
            return Err(ServiceError::Protocol(format!("party {i} returned {} output words, not {}", b.len(), 2 * n)));
        }
    }
    for i in 0..3 {
        let j = (i + 1) % 3;
        // Server i's second component is y_{i+1}, server j's first.
        if bodies[i][n..] != bodies[j][..n] {
            return Err(ServiceError::Protocol(format!(
                "the output shares of party {i} and party {j} disagree: a server is faulty; no output"
            )));
        }
    }
    Ok((0..n).map(|k| bodies[0][k].wrapping_add(bodies[1][k]).wrapping_add(bodies[2][k])).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn split_then_reconstruct_is_the_identity_and_each_server_sees_noise() {
        let fixed = FixedConfig::new(20).unwrap();
        let x = [1.5, -2.25, 0.0, 1000.0];
        let parts = split(&fixed, &x).unwrap();
        let bodies: Vec<Vec<u64>> = (0..3).map(|i| for_server(&parts, i)).collect();
        let y = reconstruct([&bodies[0], &bodies[1], &bodies[2]], x.len()).unwrap();
        assert_eq!(fixed.decode_slice(&y), x);
        // No server's words include the encoding of a value.
        let enc = fixed.encode_slice(&x).unwrap();
        for b in &bodies {
            assert!(enc.iter().all(|e| !b.contains(e)));
        }
        // Two splits of the same input differ.
        assert_ne!(split(&fixed, &x).unwrap()[0], parts[0]);
        // A faulty server is caught.
        let mut bad = bodies[1].clone();
        bad[0] ^= 1;
        let e = reconstruct([&bodies[0], &bad, &bodies[2]], x.len()).unwrap_err().to_string();
        assert!(e.contains("party 0 and party 1 disagree"), "{e}");
        // Out of range is the owner's error, before anything is sent.
        assert!(split(&fixed, &[f64::NAN]).unwrap_err().to_string().contains("an input value"));
    }
}
