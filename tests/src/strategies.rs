//! Proptest strategies shared by the suites.

use proptest::prelude::*;
use triad_spec::ring::{Conv2d, Pool2d};

/// Ring values that matter most, drawn often.
pub const EDGE_VALUES: [u64; 12] =
    [0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, (1 << 63) + 1, 1 << 32, u32::MAX as u64, 1 << 62];

/// A ring element: uniform half the time, else an edge value or a small magnitude of
/// either sign.
pub fn ring_value() -> BoxedStrategy<u64> {
    prop_oneof![
        4 => any::<u64>(),
        2 => proptest::sample::select(EDGE_VALUES.to_vec()),
        1 => 0u64..1024,
        1 => (0u64..1024).prop_map(u64::wrapping_neg),
    ]
    .boxed()
}

/// `len` ring elements.
pub fn ring_values(len: usize) -> BoxedStrategy<Vec<u64>> {
    proptest::collection::vec(ring_value(), len).boxed()
}

/// A dimension in `0..=max` (`max >= 2`), with 0 and 1 drawn often.
pub fn dim(max: usize) -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(0usize), 2 => Just(1usize), 5 => 2..=max.max(2)].boxed()
}

/// A dimension in `1..=max`, with 1 drawn often.
pub fn pos_dim(max: usize) -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(1usize), 3 => 1..=max.max(1)].boxed()
}

/// A shape of rank in `ranks`, each dimension from [`dim`].
pub fn dims(ranks: std::ops::RangeInclusive<usize>, max: usize) -> BoxedStrategy<Vec<usize>> {
    ranks.prop_flat_map(move |r| proptest::collection::vec(dim(max), r)).boxed()
}

/// A shape with matching data.
pub fn tensor(ranks: std::ops::RangeInclusive<usize>, max: usize) -> BoxedStrategy<(Vec<usize>, Vec<u64>)> {
    dims(ranks, max)
        .prop_flat_map(|d| {
            let n = d.iter().product();
            (Just(d), ring_values(n))
        })
        .boxed()
}

/// A bit mask: empty, full, a contiguous run, a single bit, sparse, or arbitrary.
pub fn mask() -> BoxedStrategy<u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(u64::MAX),
        2 => (0u32..64, 1u32..=64).prop_map(|(lo, k)| {
            let k = k.min(64 - lo);
            let run = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
            run << lo
        }),
        1 => (0u32..64).prop_map(|b| 1u64 << b),
        1 => (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| a & b & c),
        2 => any::<u64>(),
    ]
    .boxed()
}

/// Valid convolution parameters, small enough for the spec's direct loops: 1..=3 groups
/// of 0..=3 channels in and out, batch 0..=3, kernels 1..=4, strides 1..=3, padding 0..=2,
/// inputs from the smallest the kernel allows to 5 more.
pub fn conv_params() -> BoxedStrategy<Conv2d> {
    let chans = prop_oneof![1 => Just(0usize), 6 => 1..=3usize];
    (
        (1..=3usize, chans.clone(), chans, dim(3)),
        (1..=4usize, 1..=4usize, 1..=3usize, 1..=3usize),
        (0..=2usize, 0..=2usize, 0..=5usize, 0..=5usize),
    )
        .prop_map(|((groups, cg, ocg, batch), (kh, kw, stride_h, stride_w), (pad_h, pad_w, eh, ew))| Conv2d {
            batch,
            in_c: groups * cg,
            in_h: kh.saturating_sub(2 * pad_h) + eh,
            in_w: kw.saturating_sub(2 * pad_w) + ew,
            out_c: groups * ocg,
            kh,
            kw,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            groups,
        })
        .boxed()
}

/// Valid pooling parameters: windows 1..=4, strides 1..=3, padding below the window,
/// batch 0..=2, channels 0..=3.
pub fn pool_params() -> BoxedStrategy<Pool2d> {
    (
        (dim(2), dim(3), 1..=4usize, 1..=4usize),
        (1..=3usize, 1..=3usize, 0..=3usize, 0..=3usize),
        (0..=5usize, 0..=5usize),
    )
        .prop_map(|((batch, channels, kh, kw), (stride_h, stride_w, ph, pw), (eh, ew))| {
            let (pad_h, pad_w) = (ph.min(kh - 1), pw.min(kw - 1));
            Pool2d {
                batch,
                channels,
                in_h: kh.saturating_sub(2 * pad_h) + eh,
                in_w: kw.saturating_sub(2 * pad_w) + ew,
                kh,
                kw,
                stride_h,
                stride_w,
                pad_h,
                pad_w,
            }
        })
        .boxed()
}

/// Raw convolution parameters in `0..=4` each (mostly invalid), for error tests.
pub fn raw_conv_params() -> BoxedStrategy<Conv2d> {
    (
        (0..=4usize, 0..=4usize, 0..=4usize, 0..=4usize),
        (0..=4usize, 0..=4usize, 0..=4usize, 0..=2usize),
        (0..=2usize, 0..=2usize, 0..=2usize, 0..=3usize),
    )
        .prop_map(|((batch, in_c, in_h, in_w), (out_c, kh, kw, stride_h), (stride_w, pad_h, pad_w, groups))| Conv2d {
            batch,
            in_c,
            in_h,
            in_w,
            out_c,
            kh,
            kw,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            groups,
        })
        .boxed()
}

/// Raw pooling parameters in small ranges (often invalid), for error tests.
pub fn raw_pool_params() -> BoxedStrategy<Pool2d> {
    (
        (0..=2usize, 0..=2usize, 0..=4usize, 0..=4usize),
        (0..=4usize, 0..=4usize, 0..=2usize, 0..=2usize),
        (0..=3usize, 0..=3usize),
    )
        .prop_map(|((batch, channels, in_h, in_w), (kh, kw, stride_h, stride_w), (pad_h, pad_w))| Pool2d {
            batch,
            channels,
            in_h,
            in_w,
            kh,
            kw,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
        })
        .boxed()
}
