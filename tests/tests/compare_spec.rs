//! The comparison protocols against the simulator (`triad_spec::compare`): from the same
//! test keys and the same calls, the three real parties hold the simulator's components
//! bit for bit (masked AND, MSB and its narrow form, bit injection with rotated roles, ReLU).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_compare as cmp;
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, test_keys, AShare, BShare, Party};
use triad_spec::compare as spec;
use triad_spec::sharing::{Shared, Sim};
use triad_tests::SplitMix;
use triad_transport::{LinkConfig, PartyId};

const SEED: u64 = 21;

type P = Party<CpuDevice>;
type Parts = (Vec<u64>, Vec<u64>);

fn run<R: Send>(f: impl Fn(&P) -> triad_sharing::Result<R> + Sync) -> [R; 3] {
    let link = LinkConfig { timeout: Duration::from_secs(30), ..LinkConfig::default() };
    run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), SEED, f).unwrap()
}

fn sim() -> Sim {
    let keys = PartyId::ALL.map(|id| *test_keys(SEED, id).prev.as_bytes());
    Sim::new(keys, FixedConfig::default().frac_bits)
}

fn parts(own: &Tensor<CpuDevice>, next: &Tensor<CpuDevice>) -> Parts {
    (own.to_vec().unwrap(), next.to_vec().unwrap())
}
fn ap(s: &AShare<CpuDevice>) -> Parts {
    parts(&s.own, &s.next)
}
fn bp(s: &BShare<CpuDevice>) -> Parts {
    parts(&s.own, &s.next)
}

/// The real parties' components as a simulator sharing (checking replication).
fn shared(p: [Parts; 3]) -> Shared {
    for i in 0..3 {
        assert_eq!(p[i].1, p[(i + 1) % 3].0, "party {i}'s next is not party {}'s own", (i + 1) % 3);
    }
    let [a, b, c] = p;
    Shared { comps: [a.0, b.0, c.0] }
}

fn share(p: &P, x: &[u64]) -> AShare<CpuDevice> {
    let shape = Shape::new([x.len()]);
    let owner = PartyId::ALL[0];
    let t = (p.id == owner).then(|| Tensor::from_vec(&p.dev, shape.clone(), x.to_vec()).unwrap());
    p.share_input(owner, t.as_ref(), &shape).unwrap()
}

fn values(n: usize) -> Vec<u64> {
    let mut g = SplitMix(n as u64);
    (0..n).map(|k| if k % 3 == 0 { g.next_u64() % 5 } else { g.next_u64() }).collect()
}

#[test]
fn msb_matches_the_simulator_bit_for_bit() {
    // Up to 16 groups of 64 elements, the last partial: thirds of 0 to 5 groups.
    for n in [1, 2, 7, 100, 200, 1000] {
        let x = values(n);
        let out = run(|p| {
            let a = share(p, &x);
            Ok(bp(&cmp::msb(p, &a)?))
        });
        let mut s = sim();
        let a = s.share_input(0, &x);
        let want = spec::sim_msb(&mut s, &a);
        let got = shared(out);
        assert_eq!(got, want, "n = {n}");
        let bits = want.reconstruct_xor();
        assert!(bits.iter().zip(&x).all(|(&b, &v)| b == spec::msb(v)));
    }
}

#[test]
fn msb_within_matches_the_simulator_bit_for_bit() {
    for bits in [2u32, 3, 33, 42, 48, 63] {
        for n in [1, 7, 100, 193, 1000] {
            let x = values(n);
            let out = run(|p| {
                let a = share(p, &x);
                Ok((bp(&cmp::msb_within(p, &a, bits)?), p.stream_position()))
            });
            let mut s = sim();
            let a = s.share_input(0, &x);
            let want = spec::sim_msb_within(&mut s, &a, bits);
            let [o0, o1, o2] = out;
            assert_eq!(o0.1, s.stream_position(), "stream positions agree ({bits} bits)");
            assert_eq!(shared([o0.0, o1.0, o2.0]), want, "{bits} bits, n = {n}");
            let got = want.reconstruct_xor();
            assert!(got.iter().zip(&x).all(|(&b, &v)| b == spec::msb_within(v, bits)));
        }
    }
}

#[test]
fn inject_matches_the_simulator_bit_for_bit() {
    for n in [1, 2, 3, 5, 100] {
        for lane in [0u32, 63] {
            let out = run(|p| {
                let r = p.random(&Shape::new([n]))?;
                let b = BShare { own: r.own, next: r.next };
                Ok((bp(&b), ap(&cmp::inject_bit(p, &b, lane)?)))
            });
            let mut s = sim();
            let b = s.random(n);
            let want = spec::sim_inject(&mut s, &b, lane);
            let [o0, o1, o2] = out;
            assert_eq!(shared([o0.0, o1.0, o2.0]), b);
            assert_eq!(shared([o0.1, o1.1, o2.1]), want, "n = {n}, lane {lane}");
            let bits = b.reconstruct_xor();
            assert!(want.reconstruct().iter().zip(&bits).all(|(&a, &v)| a == (v >> lane) & 1));
        }
    }
}

#[test]
fn relu_matches_the_simulator_bit_for_bit() {
    for n in [1, 4, 99] {
        let x = values(n);
        let out = run(|p| {
            let a = share(p, &x);
            let r = cmp::relu(p, &a)?;
            Ok((ap(&r.out), ap(&r.mask), p.stream_position()))
        });
        let mut s = sim();
        let a = s.share_input(0, &x);
        let (y, mask) = spec::sim_relu(&mut s, &a);
        let [o0, o1, o2] = out;
        assert_eq!(o0.2, s.stream_position(), "stream positions agree");
        assert_eq!(shared([o0.1, o1.1, o2.1]), mask, "mask, n = {n}");
        assert_eq!(shared([o0.0, o1.0, o2.0]), y, "relu, n = {n}");
        assert!(y.reconstruct().iter().zip(&x).all(|(&r, &v)| r == spec::relu(v)));
    }
}

#[test]
fn relu_within_matches_the_simulator_bit_for_bit() {
    let bits = cmp::activation_sign_bits(FixedConfig::default().frac_bits);
    assert_eq!(bits, 48);
    for n in [1, 99] {
        let x = values(n);
        let out = run(|p| {
            let a = share(p, &x);
            let r = cmp::relu_within(p, &a, bits)?;
            Ok((ap(&r.out), ap(&r.mask)))
        });
        let mut s = sim();
        let a = s.share_input(0, &x);
        let (y, mask) = spec::sim_relu_within(&mut s, &a, bits);
        let [o0, o1, o2] = out;
        assert_eq!(shared([o0.1, o1.1, o2.1]), mask, "mask, n = {n}");
        assert_eq!(shared([o0.0, o1.0, o2.0]), y, "relu, n = {n}");
        assert!(y.reconstruct().iter().zip(&x).all(|(&r, &v)| r == spec::relu_within(v, bits)));
    }
}
