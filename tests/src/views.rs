//! What a party sees, tested for uniformity: the statistics of the view-secrecy tests
//! (`tests/secrecy_views.rs`).
//!
//! A party's **view** is every message it received (recorded by the test-only
//! `triad-transport/recording` feature), in order, with the cost scope each arrived in.
//! In every protocol of triad a received word is a value masked by randomness the
//! receiver does not hold (a reshare, a masked opening, a dealt share), so the view must
//! look uniform, and two views of runs on very different secrets must look alike. Three
//! tests, each at a threshold a correct run exceeds with probability below `10^-6`:
//!
//! - **bit balance**: for each of the 64 bit positions of a word, the number of ones
//!   among `n` words is Binomial(n, 1/2); the largest `|z|` over the 64 positions must stay
//!   below [`BIT_Z`] (`P(|N(0,1)| > 5.7) = 1.2e-8`, times 64 positions: `7.7e-7`);
//! - **byte chi-square**: the 256 byte values' counts against uniform, 255 degrees of
//!   freedom, below [`chi_square_limit`] (`10^-6` upper tail, Wilson–Hilferty);
//! - **two views alike**: the same two statistics as two-sample tests between the views of
//!   two runs (two-proportion `z` per bit position, chi-square of homogeneity of the
//!   byte counts).
//!
//! They are applied to the whole view, to each scope's messages, and to each single
//! message of at least [`MIN_WORDS`] words, so that one leaking message is not diluted by
//! megabytes of correct ones. The tests see each message alone, not combined with the
//! receiver's own shares: a leak that sends a correctly distributed share component to
//! the wrong party is invisible to them (the differential suites check each protocol's
//! messages against the spec instead); a value sent in the clear, or masked with
//! randomness the receiver holds, is not.

use std::collections::BTreeMap;

use triad_transport::Received;

/// Largest bit-balance `|z|` a uniform view reaches with probability below `10^-6`.
pub const BIT_Z: f64 = 5.7;

/// Messages (and scopes) shorter than this many 64-bit words are tested only as part of
/// the whole view.
pub const MIN_WORDS: usize = 512;

/// The one-sided `10^-6` quantile of the standard normal.
const Z_1E6: f64 = 4.753;

/// The chi-square value with `k` degrees of freedom exceeded with probability `10^-6`
/// (Wilson–Hilferty; 377 for `k = 255`).
pub fn chi_square_limit(k: f64) -> f64 {
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a + Z_1E6 * a.sqrt()).powi(3)
}

/// Bit and byte counts of a stream of bytes (bit `j` of a message's word `i` counts at
/// position `j`; a message is read as little-endian 64-bit words from its first byte).
#[derive(Clone, Debug)]
pub struct Counts {
    /// Words counted at each of the 64 bit positions.
    pub words: [u64; 64],
    /// Ones at each bit position.
    pub ones: [u64; 64],
    /// Occurrences of each byte value.
    pub bytes: [u64; 256],
}

impl Default for Counts {
    fn default() -> Counts {
        Counts { words: [0; 64], ones: [0; 64], bytes: [0; 256] }
    }
}

impl Counts {
    /// Adds one message.
    pub fn add(&mut self, msg: &[u8]) {
        for (i, &b) in msg.iter().enumerate() {
            self.bytes[b as usize] += 1;
            let base = (i % 8) * 8;
            for j in 0..8 {
                self.words[base + j] += 1;
                self.ones[base + j] += u64::from((b >> j) & 1);
            }
        }
    }

    /// All bytes counted.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// The largest bit-balance `|z|` over the positions, and its position.
    pub fn bit_z(&self) -> (f64, usize) {
        let mut worst = (0.0, 0);
        for j in 0..64 {
            let n = self.words[j] as f64;
            if n == 0.0 {
                continue;
            }
            let z = ((self.ones[j] as f64 - n / 2.0) / (n / 4.0).sqrt()).abs();
            if z > worst.0 {
                worst = (z, j);
            }
        }
        worst
    }

    /// The byte chi-square against uniform (255 degrees of freedom).
    pub fn byte_chi_square(&self) -> f64 {
        let n = self.total_bytes() as f64;
        let e = n / 256.0;
        self.bytes.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
    }

    /// The largest two-proportion `|z|` between two streams' bit positions.
    pub fn bit_z_between(&self, o: &Counts) -> (f64, usize) {
        let mut worst = (0.0, 0);
        for j in 0..64 {
            let (na, nb) = (self.words[j] as f64, o.words[j] as f64);
            if na == 0.0 || nb == 0.0 {
                continue;
            }
            let (pa, pb) = (self.ones[j] as f64 / na, o.ones[j] as f64 / nb);
            let p = (self.ones[j] + o.ones[j]) as f64 / (na + nb);
            let se = (p * (1.0 - p) * (1.0 / na + 1.0 / nb)).sqrt();
            let z = if se > 0.0 { ((pa - pb) / se).abs() } else { 0.0 };
            if z > worst.0 {
                worst = (z, j);
            }
        }
        worst
    }

    /// The chi-square of homogeneity of two streams' byte counts (255 degrees of freedom).
    pub fn byte_chi_square_between(&self, o: &Counts) -> f64 {
        let (na, nb) = (self.total_bytes() as f64, o.total_bytes() as f64);
        let (ka, kb) = ((nb / na).sqrt(), (na / nb).sqrt());
        (0..256)
            .map(|k| {
                let (a, b) = (self.bytes[k] as f64, o.bytes[k] as f64);
                if a + b == 0.0 {
                    0.0
                } else {
                    (a * ka - b * kb).powi(2) / (a + b)
                }
            })
            .sum()
    }

    /// `Err` naming the statistic when this stream does not look uniform.
    pub fn check_uniform(&self, what: &str) -> Result<(), String> {
        let (z, j) = self.bit_z();
        if z > BIT_Z {
            return Err(format!("{what}: bit {j} is unbalanced (|z| = {z:.1} > {BIT_Z})"));
        }
        let c = self.byte_chi_square();
        let limit = chi_square_limit(255.0);
        if c > limit {
            return Err(format!("{what}: byte chi-square {c:.0} > {limit:.0}"));
        }
        Ok(())
    }

    /// `Err` naming the statistic when the two streams can be told apart.
    pub fn check_alike(&self, o: &Counts, what: &str) -> Result<(), String> {
        let (z, j) = self.bit_z_between(o);
        if z > BIT_Z {
            return Err(format!("{what}: bit {j} differs between the two runs (|z| = {z:.1} > {BIT_Z})"));
        }
        let c = self.byte_chi_square_between(o);
        let limit = chi_square_limit(255.0);
        if c > limit {
            return Err(format!("{what}: byte counts differ between the two runs (chi-square {c:.0} > {limit:.0})"));
        }
        Ok(())
    }
}

/// A party's view, counted as a whole, per scope and per message.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Every message.
    pub all: Counts,
    /// Per cost scope (its path).
    pub scopes: BTreeMap<String, Counts>,
    /// Messages of at least [`MIN_WORDS`] words: (index, scope, counts).
    pub large: Vec<(usize, String, Counts)>,
    /// Messages received.
    pub messages: usize,
}

impl View {
    /// Counts the recorded messages.
    pub fn new(received: &[Received]) -> View {
        let mut v = View { messages: received.len(), ..View::default() };
        for (i, m) in received.iter().enumerate() {
            v.all.add(&m.bytes);
            v.scopes.entry(m.scope.clone()).or_default().add(&m.bytes);
            if m.bytes.len() >= MIN_WORDS * 8 {
                let mut c = Counts::default();
                c.add(&m.bytes);
                v.large.push((i, m.scope.clone(), c));
            }
        }
        v
    }

    /// Every test of uniformity; the first failure names the scope or message.
    pub fn check_uniform(&self, who: &str) -> Result<(), String> {
        self.all.check_uniform(&format!("{who}, whole view ({} bytes)", self.all.total_bytes()))?;
        for (s, c) in self.scopes.iter().filter(|(_, c)| c.total_bytes() >= (MIN_WORDS * 8) as u64) {
            c.check_uniform(&format!("{who}, scope '{s}'"))?;
        }
        for (i, s, c) in &self.large {
            c.check_uniform(&format!("{who}, message {i} in scope '{s}' ({} bytes)", c.total_bytes()))?;
        }
        Ok(())
    }

    /// The two-run tests on the whole view and on each scope both views have.
    pub fn check_alike(&self, o: &View, who: &str) -> Result<(), String> {
        if self.all.total_bytes() != o.all.total_bytes() || self.messages != o.messages {
            return Err(format!(
                "{who}: the two runs received {} and {} bytes in {} and {} messages",
                self.all.total_bytes(),
                o.all.total_bytes(),
                self.messages,
                o.messages
            ));
        }
        self.all.check_alike(&o.all, &format!("{who}, whole view"))?;
        for (s, c) in self.scopes.iter().filter(|(_, c)| c.total_bytes() >= (MIN_WORDS * 8) as u64) {
            if let Some(d) = o.scopes.get(s) {
                c.check_alike(d, &format!("{who}, scope '{s}'"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitmix(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn random_words_pass_and_small_values_fail() {
        let mut s = 7;
        let random: Vec<u8> = (0..4096).flat_map(|_| splitmix(&mut s).to_le_bytes()).collect();
        let mut c = Counts::default();
        c.add(&random);
        assert!(c.check_uniform("random").is_ok());
        // Fixed-point values below 2^30 (a tensor sent in the clear).
        let clear: Vec<u8> =
            (0..4096).flat_map(|_| ((splitmix(&mut s) >> 34) as i64 - (1 << 29)).to_le_bytes()).collect();
        let mut d = Counts::default();
        d.add(&clear);
        assert!(d.check_uniform("clear").is_err());
        assert!(c.check_alike(&d, "two").is_err());
        let mut e = Counts::default();
        e.add(&(0..4096).flat_map(|_| splitmix(&mut s).to_le_bytes()).collect::<Vec<u8>>());
        assert!(c.check_alike(&e, "two random").is_ok());
    }

    #[test]
    fn the_chi_square_limit_is_the_upper_millionth() {
        // Tabulated: chi-square(255) at 1 - 1e-6 is about 377.
        assert!((chi_square_limit(255.0) - 377.0).abs() < 3.0, "{}", chi_square_limit(255.0));
    }
}
