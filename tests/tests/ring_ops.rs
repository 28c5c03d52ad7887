//! The device suite stamped over the CPU device.

triad_tests::device_suite!(cpu, triad_ring::CpuDevice::new());

#[test]
fn check_names_are_distinct() {
    let mut names = triad_tests::device_suite::check_names();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a check is listed twice");
}

/// The value checks of `triad_tests::fused_checks` (run over the CUDA device by
/// `cuda_device.rs`) hold for the CPU device: its overrides against their defaults and
/// themselves, at the lengths the CUDA kernels' groups and blocks make interesting.
#[test]
fn fused_checks_hold_on_the_cpu() {
    for (_, check) in triad_tests::fused_checks::value_checks::<triad_ring::CpuDevice>() {
        check(&triad_ring::CpuDevice);
    }
}

/// Bad arguments to the fused methods give the CPU device the errors its default
/// definitions give (`triad_tests::fused_checks::argument_errors`, as for the CUDA device):
/// operands of other lengths, bits outside 1..=62, short addend buffers.
#[test]
fn fused_argument_errors_on_the_cpu() {
    triad_tests::fused_checks::argument_errors(&triad_ring::CpuDevice);
}

/// The CPU device's fused methods (`place`, `and_part`, `and_part_packed`, `add_prg`, `mul_part`, the truncation's `truncate_deal` and
/// `truncate_open`, the bit injection's `inject_offer`, `inject_pick`
/// and `inject_receive`, `into_host`) against their default implementations
/// (`triad_ring::device::fused`, written with the unfused methods, which the dry-run device
/// uses, and the CUDA device for the methods without kernels of its own), bit for bit on random inputs, over lengths that span several parallel
/// chunks; and the profiling wrapper forwards them unchanged.
mod fused {
    use proptest::prelude::*;
    use triad_ring::cpu::CHUNK;
    use triad_ring::device::fused;
    use triad_ring::{Addend, BitRange, CpuDevice, Device, DryBuffer, DryRunDevice, Placed, PrgKey, PrgTerm, Profiled};
    use triad_tests::ok;

    fn words(seed: u64, n: usize) -> Vec<u64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            })
            .collect()
    }

    fn len() -> impl Strategy<Value = usize> {
        prop_oneof![0..130usize, Just(CHUNK - 1), Just(2 * CHUNK + 17)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn place_equals_the_default(
            n in len(),
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 4),
            from in any::<prop::sample::Index>(),
        ) {
            // Two pieces at sorted, non-overlapping places (possibly empty, possibly
            // touching), read from two sources at some offset.
            let dev = CpuDevice::new();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(n + 1)).collect();
            at.sort_unstable();
            let (a, b) = (words(seed, n + 9), words(seed ^ 1, n));
            let off = from.index(10);
            let pieces = [
                Placed { at: at[0], src: &a, from: off, count: at[1] - at[0] },
                Placed { at: at[2], src: &b, from: 0, count: at[3] - at[2] },
            ];
            let want = ok(fused::place(&dev, n, &pieces))?;
            prop_assert_eq!(&ok(dev.place(n, &pieces))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).place(n, &pieces))?, &want);
            // A piece that does not fit is an error, on either path.
            let past = [Placed { at: n, src: &b, from: 0, count: 1 }];
            prop_assert!(dev.place(n, &past).is_err());
            prop_assert!(fused::place(&dev, n, &past).is_err());
            let dry = DryBuffer::new(n);
            let dry_pieces = [Placed { at: 0, src: &dry, from: 0, count: n }];
            prop_assert_eq!(ok(DryRunDevice::new().place(n, &dry_pieces))?.len(), n);
        }

        #[test]
        fn and_part_equals_the_default(
            n in len(),
            seed in any::<u64>(),
            y_shl in prop_oneof![Just(0u32), 0u32..64],
            mask in prop_oneof![Just(u64::MAX), any::<u64>()],
        ) {
            let dev = CpuDevice::new();
            let v: Vec<Vec<u64>> = (0..6u64).map(|k| words(seed ^ k.wrapping_mul(0x1234_5678_9ABC_DEF1), n)).collect();
            let (x, y, r) = ([&v[0], &v[1]], [&v[2], &v[3]], [&v[4], &v[5]]);
            let want = ok(fused::and_part(&dev, x, y, y_shl, r, mask))?;
            prop_assert_eq!(&ok(dev.and_part(x, y, y_shl, r, mask))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).and_part(x, y, y_shl, r, mask))?, &want);
            prop_assert_eq!(&ok(dev.into_host(v[0].clone()))?, &ok(dev.to_host(&v[0]))?);
            let d = DryBuffer::new(n);
            prop_assert_eq!(ok(DryRunDevice::new().and_part([&d, &d], [&d, &d], y_shl, [&d, &d], mask))?.len(), n);
        }

        #[test]
        fn and_part_packed_equals_the_default(
            n in len(),
            seed in any::<u64>(),
            keys in any::<([u8; 32], [u8; 32])>(),
            stream in any::<u64>(),
            y_shl in prop_oneof![Just(0u32), 0u32..64],
            mask in prop_oneof![Just(u64::MAX), Just(0), Just(0xFFFF << 48), Just(0x7FFF_FFFE << 32), any::<u64>()],
        ) {
            // Full, empty, contiguous and scattered masks (the packing's two paths).
            let dev = CpuDevice::new();
            let v: Vec<Vec<u64>> = (0..4u64).map(|k| words(seed ^ k.wrapping_mul(0x1234_5678_9ABC_DEF1), n)).collect();
            let (x, y) = ([&v[0], &v[1]], [&v[2], &v[3]]);
            let (k0, k1) = (PrgKey::from_bytes(keys.0), PrgKey::from_bytes(keys.1));
            let want = ok(fused::and_part_packed(&dev, x, y, y_shl, [&k0, &k1], stream, mask))?;
            prop_assert_eq!(&ok(dev.and_part_packed(x, y, y_shl, [&k0, &k1], stream, mask))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).and_part_packed(x, y, y_shl, [&k0, &k1], stream, mask))?, &want);
            let d = DryBuffer::new(n);
            let dry = ok(DryRunDevice::new().and_part_packed([&d, &d], [&d, &d], y_shl, [&k0, &k1], stream, mask))?;
            prop_assert_eq!(dry.len(), (n * mask.count_ones() as usize).div_ceil(64));
        }

        #[test]
        fn inject_methods_equal_the_defaults(
            n in len(),
            seed in any::<u64>(),
            key in any::<[u8; 32]>(),
            streams in any::<(u64, u64)>(),
            bit in prop_oneof![Just(0u32), 0u32..64],
            cut in any::<prop::sample::Index>(),
            both in any::<bool>(),
        ) {
            // A range of `count` words from `from` of sources longer than it, its bit taken
            // from one word or from two XOR-ed; offers read from the middle of a message.
            let dev = CpuDevice::new();
            let (from, count) = (cut.index(10), n);
            let (a, b) = (words(seed, from + count + 3), words(!seed, from + count + 3));
            let bits = BitRange { src: &a, also: both.then_some(&b), bit, from, count };
            let key = PrgKey::from_bytes(key);
            let r = words(seed ^ 7, count + 2);
            let want = ok(fused::inject_offer(&dev, bits, &key, streams.1))?;
            prop_assert_eq!(&ok(dev.inject_offer(bits, &key, streams.1))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).inject_offer(bits, &key, streams.1))?, &want);
            let want = ok(fused::inject_pick(&dev, bits, &key, streams.0, &r))?;
            prop_assert_eq!(&ok(dev.inject_pick(bits, &key, streams.0, &r))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).inject_pick(bits, &key, streams.0, &r))?, &want);
            let (m, v) = (words(seed ^ 2, 2 * count + 5), words(seed ^ 4, count));
            let (u, c) = ((&m, 3), (&m, m.len() - count));
            let want = ok(fused::inject_receive(&dev, bits, u, c, &v))?;
            prop_assert_eq!(&ok(dev.inject_receive(bits, u, c, &v))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).inject_receive(bits, u, c, &v))?, &want);
            // A range past its source, a bit past 63, a short output component or a
            // correction past the message: an error on either path.
            let past = BitRange { from: from + 4, ..bits };
            prop_assert!(dev.inject_pick(past, &key, 0, &r).is_err());
            prop_assert!(fused::inject_pick(&dev, past, &key, 0, &r).is_err());
            let wide = BitRange { bit: 64, ..bits };
            prop_assert!(dev.inject_offer(wide, &key, 1).is_err());
            prop_assert!(fused::inject_offer(&dev, wide, &key, 1).is_err());
            if count > 0 {
                let short = words(seed, count - 1);
                prop_assert!(dev.inject_pick(bits, &key, 1, &short).is_err());
                prop_assert!(fused::inject_pick(&dev, bits, &key, 1, &short).is_err());
                prop_assert!(dev.inject_receive(bits, u, c, &short).is_err());
                prop_assert!(fused::inject_receive(&dev, bits, u, c, &short).is_err());
            }
            let late = (&m, m.len() - count + 1);
            prop_assert!(dev.inject_receive(bits, u, late, &v).is_err());
            prop_assert!(fused::inject_receive(&dev, bits, u, late, &v).is_err());
            let d = DryBuffer::new(from + count);
            let dry = BitRange { src: &d, also: None, bit, from, count };
            let dr = DryBuffer::new(count);
            prop_assert_eq!(ok(DryRunDevice::new().inject_offer(dry, &key, 1))?.len(), count);
            prop_assert_eq!(ok(DryRunDevice::new().inject_pick(dry, &key, 1, &dr))?.len(), count);
            prop_assert_eq!(ok(DryRunDevice::new().inject_receive(dry, (&dr, 0), (&dr, 0), &dr))?.len(), count);
        }

        #[test]
        fn truncation_methods_equal_the_defaults(
            n in len(),
            seed in any::<u64>(),
            keys in any::<([u8; 32], [u8; 32])>(),
            streams in any::<(u64, u64, u64)>(),
            bits in prop_oneof![Just(20u32), 1u32..=62],
            negate in any::<(bool, bool)>(),
            low in any::<bool>(),
        ) {
            let dev = CpuDevice::new();
            let (k0, k1) = (PrgKey::from_bytes(keys.0), PrgKey::from_bytes(keys.1));
            let term = |key, stream, negate| PrgTerm { key, stream, negate };
            let (a, b, c) = (words(seed, n), words(!seed, n), words(seed ^ 5, n));
            let r = [term(&k0, streams.0, false), term(&k1, streams.0, false)];
            let (t, e) = (term(&k0, streams.1, negate.0), term(&k0, streams.2, negate.1));
            let want = ok(fused::truncate_deal(&dev, &a, bits, r, t, e))?;
            prop_assert_eq!(&ok(dev.truncate_deal(&a, bits, r, t, e))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).truncate_deal(&a, bits, r, t, e))?, &want);
            // An opener's step with a drawn or a received `e`, and drawn and received addends.
            for e in [Addend::Prg(t), Addend::Buf(&c), Addend::Less(&c)] {
                let plus =
                    [Addend::Buf(&b), Addend::Prg(r[1]), Addend::Prg(term(&k1, streams.2, true)), Addend::Less(&a)];
                let want = ok(fused::truncate_open(&dev, [&a, &b], bits, low, e, &plus))?;
                prop_assert_eq!(&ok(dev.truncate_open([&a, &b], bits, low, e, &plus))?, &want);
                prop_assert_eq!(&ok(Profiled(dev).truncate_open([&a, &b], bits, low, e, &plus))?, &want);
            }
            // Bits outside 1..=62, or a buffer of another length: an error on either path.
            prop_assert!(dev.truncate_deal(&a, 63, r, t, e).is_err());
            prop_assert!(fused::truncate_open(&dev, [&a, &b], 0, low, Addend::Buf(&c), &[]).is_err());
            if n > 0 {
                let short = words(seed, n - 1);
                prop_assert!(dev.truncate_open([&a, &b], bits, low, Addend::Buf(&short), &[]).is_err());
                prop_assert!(fused::truncate_open(&dev, [&a, &b], bits, low, Addend::Buf(&short), &[]).is_err());
            }
            let d = DryBuffer::new(n);
            let (dt, de) = ok(DryRunDevice::new().truncate_deal(&d, bits, r, t, e))?;
            prop_assert_eq!((dt.len(), de.len()), (n, n));
        }

        #[test]
        fn mul_part_equals_the_default(
            n in len(),
            seed in any::<u64>(),
            keys in any::<([u8; 32], [u8; 32])>(),
            stream in any::<u64>(),
        ) {
            let dev = CpuDevice::new();
            let v: Vec<Vec<u64>> = (0..4u64).map(|k| words(seed ^ k.wrapping_mul(0x0F1E_2D3C_4B5A_6978), n)).collect();
            let (k0, k1) = (PrgKey::from_bytes(keys.0), PrgKey::from_bytes(keys.1));
            let terms = [PrgTerm { key: &k0, stream, negate: false }, PrgTerm { key: &k1, stream, negate: true }];
            let (x, y) = ([&v[0], &v[1]], [&v[2], &v[3]]);
            let want = ok(fused::mul_part(&dev, x, y, &terms))?;
            prop_assert_eq!(&ok(dev.mul_part(x, y, &terms))?, &want);
            prop_assert_eq!(&ok(Profiled(dev).mul_part(x, y, &terms))?, &want);
            // Operands of different lengths: an error on either path.
            let long = words(seed, n + 1);
            prop_assert!(dev.mul_part([&v[0], &long], y, &terms).is_err());
            prop_assert!(fused::mul_part(&dev, [&v[0], &long], y, &terms).is_err());
        }

        #[test]
        fn add_prg_equals_the_default(
            n in len(),
            seed in any::<u64>(),
            keys in any::<([u8; 32], [u8; 32])>(),
            streams in any::<(u64, u64)>(),
            negate in any::<(bool, bool)>(),
            terms in 0usize..=2,
        ) {
            let dev = CpuDevice::new();
            let (k0, k1) = (PrgKey::from_bytes(keys.0), PrgKey::from_bytes(keys.1));
            let all = [
                PrgTerm { key: &k0, stream: streams.0, negate: negate.0 },
                PrgTerm { key: &k1, stream: streams.1, negate: negate.1 },
            ];
            let terms = &all[..terms];
            let a = words(seed, n);
            let mut want = a.clone();
            ok(fused::add_prg(&dev, &mut want, terms))?;
            let mut got = a.clone();
            ok(dev.add_prg(&mut got, terms))?;
            prop_assert_eq!(&got, &want);
            let mut got = a.clone();
            ok(Profiled(dev).add_prg(&mut got, terms))?;
            prop_assert_eq!(&got, &want);
            // The zero sharing's form: F(k, s) - F(k, s) adds nothing.
            let mut got = a.clone();
            let same = [PrgTerm { negate: false, ..all[0] }, PrgTerm { negate: true, ..all[0] }];
            ok(dev.add_prg(&mut got, &same))?;
            prop_assert_eq!(&got, &a);
            let mut d = DryBuffer::new(n);
            ok(DryRunDevice::new().add_prg(&mut d, terms))?;
            prop_assert_eq!(d.len(), n);
        }
    }
}
