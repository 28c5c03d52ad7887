//! Replicated secret sharing, simulated: all three parties' components in one place.
//!
//! [`Sim`] replays each protocol of `triad-sharing` message by message with explicit
//! arithmetic mod 2^64 on big integers. From the same PRG keys and the same sequence of
//! calls it produces the same components, bit for bit, as three real parties over real
//! links; the differential suite checks exactly that. Each protocol also states its
//! *ideal functionality* (what the reconstructed output must be) and its error bound.
//!
//! Conventions (as in the protocol crate): `x = x_0 + x_1 + x_2 mod 2^64`; party `i` holds
//! `(x_i, x_{i+1})`. Key `k_j` is known to parties `j-1` and `j`; party `i`'s "prev" key
//! is `k_i` and its "next" key is `k_{i+1}`. Every PRG draw takes the next stream id, the
//! same on all parties; `F(k, s)` is words `0..n` of ChaCha20 stream `(k, s)`.

use num_integer::Integer;

use crate::{lift, reduce};

/// One sharing: the three components `x_0, x_1, x_2` (party `i` holds `i` and `i+1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    /// `[x_0, x_1, x_2]`.
    pub comps: [Vec<u64>; 3],
}

impl Shared {
    /// Party `i`'s pair `(x_i, x_{i+1})`.
    pub fn party(&self, i: usize) -> (&[u64], &[u64]) {
        (&self.comps[i % 3], &self.comps[(i + 1) % 3])
    }
    /// The shared value `x_0 + x_1 + x_2 mod 2^64`.
    pub fn reconstruct(&self) -> Vec<u64> {
        (0..self.comps[0].len())
            .map(|e| reduce(&(lift(self.comps[0][e]) + lift(self.comps[1][e]) + lift(self.comps[2][e]))))
            .collect()
    }
    /// The XOR-shared value `x_0 ^ x_1 ^ x_2`.
    pub fn reconstruct_xor(&self) -> Vec<u64> {
        (0..self.comps[0].len()).map(|e| self.comps[0][e] ^ self.comps[1][e] ^ self.comps[2][e]).collect()
    }
}

fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| reduce(&(lift(x) + lift(y)))).collect()
}
fn sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(&x, &y)| reduce(&(lift(x) - lift(y)))).collect()
}
/// Arithmetic shift right of the two's-complement value, written on big integers:
/// `floor(signed(v) / 2^bits) mod 2^64`.
fn sar(a: &[u64], bits: u32) -> Vec<u64> {
    a.iter()
        .map(|&v| {
            // floor(signed(v) / 2^bits), rounding towards minus infinity
            reduce(&crate::signed(v).div_floor(&crate::pow2(bits)))
        })
        .collect()
}

/// A bilinear map of the ring on flat operands (elementwise product, matmul, conv...).
pub type Bilinear<'a> = dyn Fn(&[u64], &[u64]) -> Vec<u64> + 'a;

/// The simulator: the three pairwise keys, the stream counter and the fractional bits.
#[derive(Clone, Debug)]
pub struct Sim {
    keys: [[u8; 32]; 3],
    stream: u64,
    /// Fractional bits of fixed-point products.
    pub frac_bits: u32,
}

impl Sim {
    /// A simulator with keys `k_0, k_1, k_2` (`k_j` known to parties `j-1` and `j`).
    pub fn new(keys: [[u8; 32]; 3], frac_bits: u32) -> Self {
        Sim { keys, stream: 0, frac_bits }
    }
    /// The stream counter (equal to every real party's after the same calls).
    pub fn stream_position(&self) -> u64 {
        self.stream
    }
    fn next_stream(&mut self) -> u64 {
        let s = self.stream;
        self.stream += 1;
        s
    }
    /// `F(k_j, s)`, `n` words.
    fn f(&self, j: usize, s: u64, n: usize) -> Vec<u64> {
        crate::ring::prg_words(&self.keys[j % 3], s, 0, n)
    }

    /// `share_input`: the owner `o` draws `x_o = F(k_o)`, `x_{o+1} = F(k_{o+1})` and sends
    /// `x_{o+2} = x - x_o - x_{o+1}` to both others. Ideal: reconstructs to `x` exactly.
    pub fn share_input(&mut self, owner: usize, x: &[u64]) -> Shared {
        let s = self.next_stream();
        let n = x.len();
        let xo = self.f(owner, s, n);
        let xo1 = self.f(owner + 1, s, n);
        let last = sub(&sub(x, &xo), &xo1);
        let mut comps: [Vec<u64>; 3] = [vec![], vec![], vec![]];
        comps[owner % 3] = xo;
        comps[(owner + 1) % 3] = xo1;
        comps[(owner + 2) % 3] = last;
        Shared { comps }
    }

    /// A fresh zero sharing: `α_i = F(k_i) - F(k_{i+1})`.
    pub fn zero_share(&mut self, n: usize) -> [Vec<u64>; 3] {
        let s = self.next_stream();
        let f: Vec<Vec<u64>> = (0..3).map(|j| self.f(j, s, n)).collect();
        [sub(&f[0], &f[1]), sub(&f[1], &f[2]), sub(&f[2], &f[0])]
    }

    /// A fresh XOR sharing of zero: `β_i = F(k_i) ^ F(k_{i+1})`.
    pub fn zero_share_xor(&mut self, n: usize) -> [Vec<u64>; 3] {
        let s = self.next_stream();
        let f: Vec<Vec<u64>> = (0..3).map(|j| self.f(j, s, n)).collect();
        let x = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(p, q)| p ^ q).collect::<Vec<u64>>();
        [x(&f[0], &f[1]), x(&f[1], &f[2]), x(&f[2], &f[0])]
    }

    /// `random`: `(F(k_i), F(k_{i+1}))`, a sharing of an unknown uniform value.
    pub fn random(&mut self, n: usize) -> Shared {
        let s = self.next_stream();
        Shared { comps: [self.f(0, s, n), self.f(1, s, n), self.f(2, s, n)] }
    }

    /// The 3-out-of-3 parts `z_i = B(x_i, y_i + y_{i+1}) + B(x_{i+1}, y_i) + α_i` (the party
    /// sums `x`'s components instead when `x` is the smaller: the same ring element).
    fn product_parts(&mut self, b: &Bilinear<'_>, x: &Shared, y: &Shared) -> [Vec<u64>; 3] {
        let mut z: Vec<Vec<u64>> = (0..3)
            .map(|i| {
                let (xi, xn) = x.party(i);
                let (yi, yn) = y.party(i);
                add(&b(xi, &add(yi, yn)), &b(xn, yi))
            })
            .collect();
        let alpha = self.zero_share(z[0].len());
        for i in 0..3 {
            z[i] = add(&z[i], &alpha[i]);
        }
        [z[0].clone(), z[1].clone(), z[2].clone()]
    }

    /// `product`: local parts, then each party sends `z_i` to party `i-1`.
    /// Ideal: reconstructs to `B(x, y) mod 2^64` exactly.
    pub fn product(&mut self, b: &Bilinear<'_>, x: &Shared, y: &Shared) -> Shared {
        Shared { comps: self.product_parts(b, x, y) }
    }

    /// `truncate_parts`: from `a` (party 0) and `b` (party 1) with `a + b = t`:
    /// `s_0 = (a >> bits) + F(k_1)`, `s_1 = (b >> bits) - F(k_1) - F(k_2)`, `s_2 = F(k_2)`.
    fn truncate_parts(&mut self, a: &[u64], b: &[u64], bits: u32, unbiased: bool) -> Shared {
        let s = self.next_stream();
        let n = a.len();
        let r01 = self.f(1, s, n);
        let r12 = self.f(2, s, n);
        let mut s0 = add(&sar(a, bits), &r01);
        if unbiased {
            // `Rounding::Unbiased`: party 0 adds one unit.
            s0 = add(&s0, &vec![1; n]);
        }
        let s1 = sub(&sub(&sar(b, bits), &r01), &r12);
        Shared { comps: [s0, s1, r12] }
    }

    /// `product_trunc`: the parts `z`, then party 2 sends `z_2` to party 1 and
    /// [`truncate`](Self::truncate)'s resharing runs on `(z_0, z_1 + z_2)`.
    /// Ideal: within [`TRUNC_ERROR_UNITS`] of `floor(B(x, y) / 2^f)` (signed), except with
    /// probability at most [`large_error_probability`] of the exact product.
    pub fn product_trunc(&mut self, b: &Bilinear<'_>, x: &Shared, y: &Shared) -> Shared {
        self.product_trunc_with(b, x, y, false)
    }

    /// [`product_trunc`](Self::product_trunc) with `Rounding::Unbiased` when `unbiased`:
    /// party 0 adds one unit, so the result is `floor(B(x, y) / 2^f)` or one more, with
    /// expectation exactly `B(x, y) / 2^f`.
    pub fn product_trunc_with(&mut self, b: &Bilinear<'_>, x: &Shared, y: &Shared, unbiased: bool) -> Shared {
        let z = self.product_parts(b, x, y);
        let f = self.frac_bits;
        self.truncate_parts(&z[0], &add(&z[1], &z[2]), f, unbiased)
    }

    /// `truncate`: party 0 holds `x_0`, party 1 holds `x_1 + x_2`.
    /// Ideal: as [`product_trunc`](Self::product_trunc), of `x` itself.
    pub fn truncate(&mut self, x: &Shared, bits: u32) -> Shared {
        self.truncate_with(x, bits, false)
    }

    /// [`truncate`](Self::truncate), unbiased when `unbiased` (see `product_trunc_with`).
    pub fn truncate_with(&mut self, x: &Shared, bits: u32, unbiased: bool) -> Shared {
        self.truncate_parts(&x.comps[0], &add(&x.comps[1], &x.comps[2]), bits, unbiased)
    }

    /// Wrap-free truncation (`Rounding::WrapFree`) of `t = part_0 + part_1 + part_2`, party
    /// `i`'s additive part `part_i`. Third `r` of the elements runs with roles
    /// `Rj = party (j + r) mod 3` (role key `k_{Rj}` is key `(j + r) mod 3`), four streams
    /// per third taken in order. `R2` deals from `r = F(k_{R0}) + F(k_{R2}) - part_{R2} - 2^62`
    /// (its part and the public `2^62` folded into the mask; `r'` the low 63 bits of `r`, `m` its top bit):
    /// `T = m·2^(63-bits) - floor(r' / 2^bits)` and `E = (1 - 2m)·2^(63-bits)`, `R0`'s
    /// shares `T_0 = F(k_{R0})` and `E_0 = F(k_{R0}) & H` (the top `bits + 1` bits, so that
    /// `E_1` is a multiple of `2^(63-bits)` too), `R1`'s the rest. `R0` and `R1` open
    /// `c = part_{R0} + part_{R1} + F(k_{R0}) + F(k_{R2}) = t + 2^62 + r`;
    /// `u_0 = floor(c' / 2^bits) - 2^(62-bits) + T_0 + c_63·E_0`, `u_1 = T_1 + c_63·E_1`
    /// (`c'` the low 63 bits of `c`), then the 2-out-of-2 resharing
    /// `s_0 = u_0 + F(k_{R1})`, `s_1 = u_1 - F(k_{R1}) - F(k_{R2})`, `s_2 = F(k_{R2})`.
    /// Ideal: for `|signed(t)| < 2^62`, `floor(signed(t) / 2^bits)` or one more, always
    /// (no large error), with expectation exactly `signed(t) / 2^bits` over the dealer's `r`.
    fn truncate_wrap_free_parts(&mut self, parts: [&[u64]; 3], bits: u32) -> Shared {
        let streams: Vec<[u64; 4]> =
            (0..3).map(|_| [self.next_stream(), self.next_stream(), self.next_stream(), self.next_stream()]).collect();
        let n = parts[0].len();
        let (top, unit) = (crate::pow2(63), crate::pow2(63 - bits));
        let high = !0u64 << (63 - bits);
        let mut comps: [Vec<u64>; 3] = [vec![0; n], vec![0; n], vec![0; n]];
        for (r, &[s_r, s_t, s_e, s]) in streams.iter().enumerate() {
            let (lo, k) = (r * n / 3, (r + 1) * n / 3 - r * n / 3);
            let key = |j: usize| (j + r) % 3;
            let part = |j: usize| &parts[key(j)][lo..lo + k];
            let (a, b, z) = (part(0), part(1), part(2));
            let (r0, r1) = (self.f(key(0), s_r, k), self.f(key(2), s_r, k));
            let t0 = self.f(key(0), s_t, k);
            let e0: Vec<u64> = self.f(key(0), s_e, k).iter().map(|&v| v & high).collect();
            let (r01, r12) = (self.f(key(1), s, k), self.f(key(2), s, k));
            for t in 0..k {
                // The dealer, R2.
                let r = (lift(r0[t]) + lift(r1[t]) - lift(z[t]) - crate::pow2(62)).mod_floor(&crate::modulus());
                let (m, low) = r.div_mod_floor(&top);
                let tv = &m * &unit - low.div_floor(&crate::pow2(bits));
                let ev = (num_bigint::BigInt::from(1) - 2 * &m) * &unit;
                let (t1, e1) = (reduce(&(tv - lift(t0[t]))), reduce(&(ev - lift(e0[t]))));
                assert_eq!(e1 & !high, 0, "E_1 travels in its top bits + 1 bits");
                // The opening between R0 and R1.
                let c = lift(a[t]) + lift(r0[t]) + lift(b[t]) + lift(r1[t]);
                let (c_top, c_low) = c.mod_floor(&crate::modulus()).div_mod_floor(&top);
                let u0 = reduce(
                    &(c_low.div_floor(&crate::pow2(bits)) - crate::pow2(62 - bits)
                        + lift(t0[t])
                        + &c_top * lift(e0[t])),
                );
                let u1 = reduce(&(lift(t1) + &c_top * lift(e1)));
                // The 2-out-of-2 resharing, role component j to global component key(j).
                let role_comps =
                    [reduce(&(lift(u0) + lift(r01[t]))), reduce(&(lift(u1) - lift(r01[t]) - lift(r12[t]))), r12[t]];
                for (j, v) in role_comps.into_iter().enumerate() {
                    comps[key(j)][lo + t] = v;
                }
            }
        }
        Shared { comps }
    }

    /// [`product_trunc`](Self::product_trunc) with wrap-free truncation: the parts `z`,
    /// then [`truncate_wrap_free`](Self::truncate_wrap_free) of `z_0 + z_1 + z_2`, party 2's
    /// part folded into the dealt mask. Ideal: `floor(B(x, y) / 2^f)` or one more whenever
    /// `|B(x, y)| < 2^62`, with no large error.
    pub fn product_trunc_wrap_free(&mut self, b: &Bilinear<'_>, x: &Shared, y: &Shared) -> Shared {
        let z = self.product_parts(b, x, y);
        let f = self.frac_bits;
        self.truncate_wrap_free_parts([&z[0], &z[1], &z[2]], f)
    }

    /// Wrap-free truncation of a sharing: party `i`'s part is its component `x_i`.
    pub fn truncate_wrap_free(&mut self, x: &Shared, bits: u32) -> Shared {
        self.truncate_wrap_free_parts([&x.comps[0], &x.comps[1], &x.comps[2]], bits)
    }

    /// `and` on XOR sharings: `z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ β_i`.
    /// Ideal: reconstructs (XOR) to `x & y` exactly.
    pub fn and(&mut self, x: &Shared, y: &Shared) -> Shared {
        let n = x.comps[0].len();
        let beta = self.zero_share_xor(n);
        let comps: Vec<Vec<u64>> = (0..3)
            .map(|i| {
                let (xi, xn) = x.party(i);
                let (yi, yn) = y.party(i);
                (0..n).map(|e| (xi[e] & yi[e]) ^ (xi[e] & yn[e]) ^ (xn[e] & yi[e]) ^ beta[i][e]).collect()
            })
            .collect();
        Shared { comps: [comps[0].clone(), comps[1].clone(), comps[2].clone()] }
    }
}

/// Truncation error in units of the last place when the parts do not wrap: the result is
/// `floor(t / 2^bits)` or one less (`Floor`), or `floor(t / 2^bits)` or one more
/// (`Unbiased`).
pub const TRUNC_ERROR_UNITS: u64 = 1;

/// Probability that share truncation of a value `t` makes a large error (the parts wrap
/// around 2^63): at most `|t| / 2^64` for uniformly random parts.
pub fn large_error_probability(t: i64) -> f64 {
    t.unsigned_abs() as f64 / 2f64.powi(64)
}

/// The ideal truncation `floor(signed(t) / 2^bits)` as a ring element.
pub fn ideal_truncate(t: u64, bits: u32) -> u64 {
    sar(&[t], bits)[0]
}
