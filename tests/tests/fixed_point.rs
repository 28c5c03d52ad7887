//! `triad-fixed` against the spec's exact (dyadic) ideals and error bounds.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use triad_fixed::{FixedConfig, FixedError, DEFAULT_FRAC_BITS, MAX_FRAC_BITS};
use triad_spec::fixed::{self as spec, EncodeError};
use triad_tests::strategies::ring_value;

const FRAC_BITS: [u32; 9] = [0, 1, 8, 16, 20, 24, 31, 32, 40];

fn frac() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(DEFAULT_FRAC_BITS),
        3 => proptest::sample::select(FRAC_BITS.to_vec()),
        1 => 0..=MAX_FRAC_BITS,
    ]
}

fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// A real in the encodable range of `f` (|x| < 2^(62-f)), spread over every magnitude from
/// well below one unit to the top of the range.
fn encodable(f: u32) -> impl Strategy<Value = f64> {
    let top = 62 - f as i32;
    prop_oneof![
        6 => (-1.0f64..1.0, -(f as i32) - 4..=top).prop_map(|(m, e)| m * pow2(e)),
        1 => (-1000i64..1000).prop_map(move |k| k as f64 * pow2(-(f as i32))),
        // exact ties: (k + 1/2) units, which round away from zero
        1 => (-1000i64..1000).prop_map(move |k| (k as f64 + 0.5) * pow2(-(f as i32))),
    ]
}

/// Any f64 at all: NaN, infinities, huge, tiny, subnormal.
fn any_real() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => proptest::sample::select(vec![
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, f64::MIN_POSITIVE,
            5e-324, -0.0, 0.0, 1e300, -1e300, 4398046511104.0, -4398046511104.0,
        ]),
        2 => (-1.0f64..1.0, -30i32..70).prop_map(|(m, e)| m * pow2(e)),
    ]
}

fn same_kind(got: &Result<u64, FixedError>, want: &Result<u64, EncodeError>) -> bool {
    match (got, want) {
        (Ok(a), Ok(b)) => a == b,
        (Err(FixedError::NotFinite { .. }), Err(EncodeError::NotFinite)) => true,
        (Err(FixedError::OutOfRange { .. }), Err(EncodeError::OutOfRange)) => true,
        (Err(FixedError::IntOutOfRange { .. }), Err(EncodeError::OutOfRange)) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(triad_tests::cases()))]

    /// Round trip within 2^-(f+1) over the whole encodable range, bit-equal to the spec.
    #[test]
    fn roundtrip_within_half_unit((f, x) in frac().prop_flat_map(|f| (Just(f), encodable(f)))) {
        let fx = FixedConfig::new(f).unwrap();
        let v = fx.encode(x).unwrap();
        prop_assert_eq!(Ok(v), spec::encode(x, f));
        let back = fx.decode(v);
        prop_assert_eq!(back.to_bits(), spec::decode(v, f).to_bits());
        prop_assert!(spec::roundtrip_ok(x, back, f), "x = {x:?}, back = {back:?}, f = {f}");
        prop_assert!((back - x).abs() <= fx.roundtrip_bound());
    }

    /// Every f64 (NaN, infinities, huge values included): same result or same error kind
    /// as the spec; errors name the value.
    #[test]
    fn encode_agrees_with_spec_everywhere(f in frac(), x in any_real()) {
        let fx = FixedConfig::new(f).unwrap();
        let got = fx.encode(x);
        prop_assert!(same_kind(&got, &spec::encode(x, f)), "x = {x:?}, f = {f}: {got:?}");
        if let Err(e) = got {
            let msg = e.to_string();
            prop_assert!(msg.contains(&format!("{x:?}")), "{msg}");
            prop_assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn decode_agrees_with_spec(f in frac(), v in ring_value()) {
        let fx = FixedConfig::new(f).unwrap();
        prop_assert_eq!(fx.decode(v).to_bits(), spec::decode(v, f).to_bits());
        prop_assert_eq!(fx.decode_slice(&[v, v]), vec![fx.decode(v); 2]);
    }

    #[test]
    fn encode_int_agrees_with_spec(f in frac(), n in prop_oneof![
        any::<i64>(),
        -5000i64..5000,
        (0u32..63, any::<bool>(), -2i64..=2).prop_map(|(b, neg, d)| {
            let m = (1i64 << b).saturating_add(d);
            if neg { -m } else { m }
        }),
    ]) {
        let fx = FixedConfig::new(f).unwrap();
        let got = fx.encode_int(n);
        prop_assert!(same_kind(&got, &spec::encode_int(n, f)), "n = {n}, f = {f}: {got:?}");
        if let Ok(v) = got {
            if n.unsigned_abs() < 1 << 53 {
                prop_assert_eq!(fx.encode(n as f64).unwrap(), v);
            }
            prop_assert_eq!(fx.decode(v), n as f64);
        }
    }

    /// Truncation is floor division by 2^f, errs by less than one unit, downward.
    #[test]
    fn truncate_agrees_with_spec(f in frac(), v in ring_value()) {
        let fx = FixedConfig::new(f).unwrap();
        let t = fx.truncate(v);
        prop_assert_eq!(t, spec::truncate(v, f));
        // v read with 2f fractional bits, truncated to f.
        prop_assert!(spec::truncation_ok(&spec::decode_exact(v, 2 * f), t, f));
    }

    /// Products of arbitrary ring elements: bit-equal to the ring's twin; when the double
    /// product fits, equal to the ideal and within one unit below the real product.
    #[test]
    fn mul_agrees_with_spec(f in frac(), x in ring_value(), y in ring_value()) {
        let fx = FixedConfig::new(f).unwrap();
        let z = fx.mul(x, y);
        prop_assert_eq!(z, spec::mul_ring(x, y, f));
        let fits = spec::product_fits(x, y);
        prop_assert_eq!(fx.mul_checked(x, y).is_ok(), fits);
        if fits {
            prop_assert_eq!(z, spec::mul(x, y, f));
            prop_assert!(spec::mul_ok(x, y, z, f));
        }
    }

    /// Products of encoded reals whose product fits: within the truncation bound.
    #[test]
    fn mul_of_reals_within_bound(
        f in proptest::sample::select(vec![8u32, 12, 16, 20, 24]),
        ma in -1.0f64..1.0,
        mb in -1.0f64..1.0,
    ) {
        // |a|, |b| < 2^(30-f), so |a·b| < 2^(60-2f): the product fits.
        let (a, b) = (ma * pow2(30 - f as i32), mb * pow2(30 - f as i32));
        let fx = FixedConfig::new(f).unwrap();
        let (x, y) = (fx.encode(a).unwrap(), fx.encode(b).unwrap());
        let z = fx.mul_checked(x, y).unwrap();
        prop_assert!(spec::mul_ok(x, y, z, f));
        let exact = fx.decode(x) * fx.decode(y);
        prop_assert!(exact - fx.decode(z) < fx.truncation_bound() * 1.000001 + exact.abs() * 1e-15);
    }

    /// Multiplication by a public constant: bit-equal to the spec, within
    /// 2^-f + |x|·2^-(f+1) of x·c when the product fits.
    #[test]
    fn mul_public_within_bound(
        f in proptest::sample::select(vec![0u32, 8, 16, 20, 24]),
        a in -1.0e4f64..1.0e4,
        c in prop_oneof![-100.0f64..100.0, -1.0f64..1.0, Just(0.5), Just(-1.0)],
    ) {
        let fx = FixedConfig::new(f).unwrap();
        let x = fx.encode(a).unwrap();
        let z = fx.mul_public(x, c).unwrap();
        prop_assert_eq!(Ok(z), spec::mul_public(x, c, f));
        if spec::product_fits(x, fx.encode(c).unwrap()) {
            prop_assert!(spec::mul_public_ok(x, c, z, f), "x = {a}, c = {c}, f = {f}");
        }
    }

    #[test]
    fn slices(f in frac(), xs in proptest::collection::vec(any_real(), 0..20)) {
        let fx = FixedConfig::new(f).unwrap();
        let each: Result<Vec<u64>, FixedError> = xs.iter().map(|&x| fx.encode(x)).collect();
        // Compared through Debug: an error naming NaN is not PartialEq-equal to itself.
        prop_assert_eq!(format!("{:?}", fx.encode_slice(&xs)), format!("{:?}", each));
        if let Ok(vs) = each {
            prop_assert_eq!(fx.decode_slice(&vs), vs.iter().map(|&v| fx.decode(v)).collect::<Vec<_>>());
        }
    }
}

/// Every error case at every tested `f`: NaN and infinities, the limit 2^(62-f) and
/// beyond, while the largest value below the limit encodes.
#[test]
fn error_cases_and_limits() {
    for f in FRAC_BITS {
        let fx = FixedConfig::new(f).unwrap();
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = fx.encode(x).unwrap_err();
            assert!(matches!(e, FixedError::NotFinite { .. }), "{e}");
            assert!(e.to_string().contains(&format!("{x:?}")), "{e}");
        }
        let limit = fx.max_abs();
        assert_eq!(limit, 2f64.powi(62 - f as i32));
        let below = f64::from_bits(limit.to_bits() - 1);
        let above = f64::from_bits(limit.to_bits() + 1);
        for s in [1.0, -1.0] {
            for x in [s * limit, s * above, s * 1e300, s * f64::MAX] {
                let e = fx.encode(x).unwrap_err();
                assert!(matches!(e, FixedError::OutOfRange { .. }), "{e}");
                let msg = e.to_string();
                assert!(msg.contains(&format!("{x:?}")) && msg.contains("2^62"), "{msg}");
                assert!(msg.contains(&format!("{limit:?}")), "{msg}");
                assert_eq!(spec::encode(x, f), Err(EncodeError::OutOfRange));
            }
            let v = fx.encode(s * below).unwrap();
            assert_eq!(Ok(v), spec::encode(s * below, f));
            assert_eq!(fx.decode(v), s * below);
        }
        // Integers: the largest below the limit encodes, the limit does not.
        let lim = 1i64 << (62 - f);
        assert!(fx.encode_int(lim - 1).is_ok() && fx.encode_int(1 - lim).is_ok());
        for n in [lim, -lim, i64::MAX, i64::MIN] {
            let e = fx.encode_int(n).unwrap_err();
            assert!(e.to_string().contains(&n.to_string()), "{e}");
        }
        // Tiny values round to zero or one unit; negative zero encodes as zero.
        assert_eq!(fx.encode(-0.0).unwrap(), 0);
        assert_eq!(fx.encode(5e-324).unwrap(), 0);
        assert_eq!(fx.encode(0.5 * fx.ulp()).unwrap(), 1);
        assert_eq!(fx.encode(-0.5 * fx.ulp()).unwrap(), u64::MAX);
        assert_eq!(fx.encode(0.49 * fx.ulp()).unwrap(), 0);
    }
}

#[test]
fn configuration() {
    assert_eq!(FixedConfig::default().frac_bits, 20);
    assert_eq!(FixedConfig::default().scale(), 1048576.0);
    // The paper's (CryptGPU's) 20 fractional bits; the spec re-exports this constant.
    assert_eq!(DEFAULT_FRAC_BITS, 20);
    assert!(FixedConfig::new(MAX_FRAC_BITS).is_ok());
    let e = FixedConfig::new(MAX_FRAC_BITS + 1).unwrap_err();
    assert!(matches!(e, FixedError::FracBits { .. }), "{e}");
    let bad = FixedConfig { frac_bits: 64 };
    assert!(bad.encode(1.0).is_err() && bad.encode_int(1).is_err() && bad.mul_public(0, 1.0).is_err());
    // Infallible methods never panic on a bad configuration.
    let _ = (bad.decode(u64::MAX), bad.truncate(u64::MAX), bad.mul(3, 5));
    // The product limit: |x*y| < 2^(63-2f).
    let fx = FixedConfig::default();
    let big = fx.encode(2f64.powf(11.5)).unwrap();
    assert!(fx.mul_checked(big, big).is_err());
    let e = fx.mul_checked(big, big).unwrap_err().to_string();
    assert!(e.contains("2^(63 - 2*20)"), "{e}");
}
