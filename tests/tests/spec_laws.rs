//! Laws the spec's own definitions must satisfy, checked independently of any device:
//! gradients are adjoints (`<conv(x, w), g> = <x, grad_input(g, w)> = <w, grad_weight(x, g)>`
//! in the ring), pooling adjoints likewise, window sums are sums of windows, packing
//! round-trips, and the PRG's words are its blocks' bytes.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use triad_spec::ring::{self as spec, BinOp};
use triad_spec::{lift, reduce, BigInt};
use triad_tests::strategies::{conv_params, mask, pool_params, ring_value, ring_values};

/// Elements of a pooling layer's input.
fn ni_of(p: &spec::Pool2d) -> usize {
    spec::numel(&p.input_dims())
}

/// `<a, b>` in Z_{2^64}.
fn dot(a: &[u64], b: &[u64]) -> u64 {
    assert_eq!(a.len(), b.len());
    reduce(&a.iter().zip(b).map(|(&x, &y)| lift(x) * lift(y)).sum::<BigInt>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(triad_tests::cases()))]

    #[test]
    fn conv_gradients_are_adjoints((p, x, w, g) in conv_params().prop_flat_map(|p| {
        let (ni, nw, no) = (spec::numel(&p.input_dims()), spec::numel(&p.weight_dims()), spec::numel(&p.output_dims()));
        (Just(p), ring_values(ni), ring_values(nw), ring_values(no))
    })) {
        let y = spec::conv2d(&x, &w, &p);
        let lhs = dot(&y, &g);
        prop_assert_eq!(lhs, dot(&x, &spec::conv2d_grad_input(&g, &w, &p)));
        prop_assert_eq!(lhs, dot(&w, &spec::conv2d_grad_weight(&x, &g, &p)));
    }

    #[test]
    fn pooling_adjoints((p, x, g, gw, pad) in pool_params().prop_flat_map(|p| {
        let (ni, no, nw) = (spec::numel(&p.input_dims()), spec::numel(&p.output_dims()), spec::numel(&p.windows_dims()));
        (Just(p), ring_values(ni), ring_values(no), ring_values(nw), ring_value())
    })) {
        prop_assert_eq!(dot(&spec::pool_sum(&x, &p), &g), dot(&x, &spec::pool_sum_backward(&g, &p)));
        // pool_windows with pad 0 is linear; its adjoint is pool_windows_backward.
        prop_assert_eq!(dot(&spec::pool_windows(&x, &p, 0), &gw), dot(&x, &spec::pool_windows_backward(&gw, &p)));
        // Window sums are the sums of the windows (padding 0).
        let kk = p.kh * p.kw;
        let win = spec::pool_windows(&x, &p, 0);
        let (sums, _) = spec::sum_axis(&win, &[win.len() / kk.max(1), kk], 1);
        prop_assert_eq!(sums, spec::pool_sum(&x, &p));
        // Padded positions hold `pad`, the others the input: windows with padding `pad` are
        // the windows with padding 0 plus `pad` exactly where a tap falls outside (where the
        // windows of an all-ones input hold 0).
        let padded = spec::pool_windows(&x, &p, pad);
        let inside = spec::pool_windows(&vec![1; ni_of(&p)], &p, 0);
        // The zip below stops at the shortest: the three must have one entry per tap.
        prop_assert_eq!(padded.len(), win.len());
        prop_assert_eq!(inside.len(), win.len());
        prop_assert_eq!(win.len(), spec::numel(&p.windows_dims()));
        for (i, ((&got, &w0), &at)) in padded.iter().zip(&win).zip(&inside).enumerate() {
            let want = if at == 1 { w0 } else { pad };
            prop_assert_eq!(got, want, "window entry {}", i);
        }
        // Any padding puts the first window's first tap outside.
        if (p.pad_h > 0 || p.pad_w > 0) && !padded.is_empty() {
            prop_assert_eq!(padded[0], pad);
            prop_assert_eq!(inside[0], 0);
        }
    }

    #[test]
    fn packing_round_trips(a in proptest::collection::vec(ring_value(), 0..200), m in mask()) {
        let p = spec::pack_bits(&a, m);
        prop_assert_eq!(p.len(), (a.len() * m.count_ones() as usize).div_ceil(64));
        prop_assert_eq!(spec::unpack_bits(&p, a.len(), m), spec::binary_scalar(BinOp::And, &a, m));
    }

    #[test]
    fn prg_words_are_block_bytes(key in any::<[u8; 32]>(), stream in any::<u64>(), block in 0u64..(1 << 61)) {
        let b = spec::chacha::block(&key, block, stream);
        let w = spec::prg_words(&key, stream, block * 8, 8);
        for j in 0..8 {
            prop_assert_eq!(w[j].to_le_bytes().to_vec(), b[8 * j..8 * j + 8].to_vec());
        }
    }

    #[test]
    fn ring_laws(a in ring_value(), b in ring_value(), s in 0u32..64) {
        use triad_spec::ring::UnOp;
        prop_assert_eq!(BinOp::Sub.apply(a, b), BinOp::Add.apply(a, UnOp::Neg.apply(b)));
        prop_assert_eq!(UnOp::Shl(s).apply(a), BinOp::Mul.apply(a, 1u64 << s));
        prop_assert_eq!(BinOp::Xor.apply(a, b), BinOp::Sub.apply(BinOp::Or.apply(a, b), BinOp::And.apply(a, b)));
        prop_assert_eq!(UnOp::Not.apply(a), BinOp::Sub.apply(u64::MAX, a));
        // Arithmetic and logical shifts agree on non-negative values.
        if a < 1 << 63 {
            prop_assert_eq!(UnOp::ShrArith(s).apply(a), UnOp::ShrLogical(s).apply(a));
        }
    }
}
