//! Layers and training (the `triad-layers` crate): the ideal functionality of every
//! fixed-point operation a layer performs, as an **enclosure**.
//!
//! A private layer's result is not one exact number: each truncation may add one unit.
//! So the specification of a layer on shares is an interval per element, `lo ≤ v ≤ hi`,
//! in units of the last place (`2^-f`), that contains every result the protocols may
//! produce from inputs inside their own intervals. The rules below are the ideal
//! functionalities of the operations the layers are written with (`triad-layers`'
//! `Backend` trait); composing them over a network, in the same order as the layer code,
//! gives an enclosure of the whole forward pass, backward pass and SGD step. The
//! differential test `tests/tests/layers_spec.rs` runs a small network that way (an
//! interval backend in `triad-tests` built from these rules) and checks that every opened
//! private value lies inside its enclosure.
//!
//! | operation (Backend) | protocol | ideal functionality |
//! |---|---|---|
//! | `input`, `constant` | share, public | `round(v·2^f)` exactly |
//! | `add`, `sub`, sums, reshapes, pooling sums | local | exact (interval arithmetic) |
//! | `product` (mul, matmul, conv, conv gradients) | product + wrap-free truncation | [`product`] |
//! | `scale` by a public real `c` | local product + wrap-free truncation | [`scale`] |
//! | `relu` | DReLU (exact) and a mask product | [`relu`] |
//! | `mask` by a 0/1 tensor | integer product, no truncation | [`mask`] |
//!
//! Wrap-free truncation of an integer `t` by `f` bits returns `floor(t / 2^f)` or one more
//! ([`truncate`]); it has no large error for `|t| < 2^62` (see [`crate::sharing`]).
//! Comparisons are exact, so ReLU's mask is exact wherever the input's interval does not
//! contain both signs; where it does, both outcomes are allowed.
//!
//! The approximations (`tanh`, `softmax`, `inv_sqrt`, `ln`) have their own enclosures in
//! [`crate::approx`]; this module covers the exact-arithmetic layers (convolution,
//! linear, average pooling, ReLU, flatten) and SGD, which is what a network of those
//! layers needs for forward, backward and the update.

/// An interval `[lo, hi]` of integers (fixed-point values in units of `2^-f`).
pub type Interval = (i128, i128);

/// Ideal wrap-free truncation of any `t ∈ [lo, hi]` by `bits`: the result lies in
/// `[floor(lo / 2^bits), floor(hi / 2^bits) + 1]`.
pub fn truncate(t: Interval, bits: u32) -> Interval {
    let d = 1i128 << bits;
    (t.0.div_euclid(d), t.1.div_euclid(d) + 1)
}

/// Ideal fixed-point product of interval operands, from the bilinear map's sums in
/// midpoint-radius form. With `C = lo + hi` and `R = hi - lo` per operand element (twice
/// the midpoint and twice the radius), each term `a·b` lies in
/// `ca·cb ± (|ca|·rb + ra·|cb| + ra·rb)`; summing, `B(a, b)` lies in
/// `[(S_c - S_r) / 4, (S_c + S_r) / 4]` where `S_c = B(Ca, Cb)` and
/// `S_r = B(|Ca|, Rb) + B(Ra, |Cb|) + B(Ra, Rb)`. Then [`truncate`] by `f`.
/// Precondition (of the protocol): `|B(a, b)| < 2^62` (`2^(62 - 2f)` in value).
pub fn product(s_c: i128, s_r: i128, f: u32) -> Interval {
    let four = 4i128;
    // floor((S_c - S_r) / 4) <= every possible exact sum (an integer >= (S_c - S_r) / 4)
    let lo = (s_c - s_r).div_euclid(four);
    let hi = (s_c + s_r).div_euclid(four);
    truncate((lo, hi), f)
}

/// Ideal `c·x` for a public real `c` encoded as the integer `e = round(c·2^f)`:
/// `e·x` is exact, then [`truncate`] by `f`.
pub fn scale(x: Interval, e: i128, f: u32) -> Interval {
    let (a, b) = (x.0 * e, x.1 * e);
    truncate((a.min(b), a.max(b)), f)
}

/// Ideal ReLU: `max(x, 0)` and the mask `[x ≥ 0]`, both exact given `x`; over an
/// interval, the mask is `[1, 1]` if `lo ≥ 0`, `[0, 0]` if `hi < 0`, else `[0, 1]`.
pub fn relu(x: Interval) -> (Interval, Interval) {
    ((x.0.max(0), x.1.max(0)), (i128::from(x.0 >= 0), i128::from(x.1 >= 0)))
}

/// Ideal `x ⊙ m` for a 0/1 mask `m` (exact: no truncation): `x` where `m = 1`, `0` where
/// `m = 0`, and the hull of both where the mask is undetermined.
pub fn mask(x: Interval, m: Interval) -> Interval {
    match m {
        (1, 1) => x,
        (0, 0) => (0, 0),
        _ => (x.0.min(0), x.1.max(0)),
    }
}

/// Sum of intervals (exact): `[Σ lo, Σ hi]`.
pub fn add(a: Interval, b: Interval) -> Interval {
    (a.0 + b.0, a.1 + b.1)
}

/// Difference of intervals (exact): `[a.lo - b.hi, a.hi - b.lo]`.
pub fn sub(a: Interval, b: Interval) -> Interval {
    (a.0 - b.1, a.1 - b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_enclosure_contains_floor_and_one_more() {
        for t in [-5i128, -1, 0, 1, 1023, 1024, 1025, -1024] {
            let (lo, hi) = truncate((t, t), 10);
            assert!(lo <= t.div_euclid(1024) && t.div_euclid(1024) < hi);
        }
    }

    #[test]
    fn product_enclosure_contains_every_product_of_members() {
        // a ∈ [-3, 5], b ∈ [2, 4], f = 0: every a·b in [-12, 20].
        let (ca, ra, cb, rb) = (2i128, 8i128, 6i128, 2i128);
        let s_c = ca * cb;
        let s_r = ca.abs() * rb + ra * cb.abs() + ra * rb;
        let (lo, hi) = product(s_c, s_r, 0);
        for a in -3..=5 {
            for b in 2..=4 {
                assert!(lo <= a * b && a * b < hi, "{a}·{b} outside [{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn relu_and_mask_cover_both_signs_when_undetermined() {
        assert_eq!(relu((-2, 3)), ((0, 3), (0, 1)));
        assert_eq!(relu((0, 3)), ((0, 3), (1, 1)));
        assert_eq!(mask((2, 5), (0, 1)), (0, 5));
        assert_eq!(mask((-4, -1), (0, 1)), (-4, 0));
    }
}
