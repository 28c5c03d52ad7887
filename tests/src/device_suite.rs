//! The device suite: every `Device` method, directly and through `Tensor`, against
//! `triad_spec::ring`.
//!
//! Each check is `pub fn name<D: Device>(dev: &D)`; it panics (with proptest's minimal
//! failing input) on the first disagreement. [`device_suite!`](crate::device_suite!)
//! stamps one `#[test]` per check for a device; [`all`] runs every check in one call.
//! Results must agree with the spec bit for bit.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use triad_ring::{Device, PrgKey, RingError, StridedLayout, Tensor};
use triad_spec::ring::{self as spec, BinOp, UnOp};

use crate::convert;
use crate::strategies::{
    conv_params, dim, dims, mask, pool_params, raw_conv_params, raw_pool_params, ring_value, ring_values, tensor,
};
use crate::{cases, check, check_n, ok, SplitMix};

type R = Result<(), TestCaseError>;

/// A check's name and the check.
pub type Check<D> = (&'static str, fn(&D));

/// Every check with its name, in the order [`all`] runs them. The macro's list of stamped
/// tests must name the same checks in the same order: each stamped module has a test
/// `stamps_every_check` comparing the two.
pub fn checks<D: Device>() -> Vec<Check<D>> {
    vec![
        ("memory", memory::<D>),
        ("unary", unary::<D>),
        ("unary_all_shifts", unary_all_shifts::<D>),
        ("binary", binary::<D>),
        ("pack_bits", pack_bits::<D>),
        ("pack_bits_large", pack_bits_large::<D>),
        ("sum_axis", sum_axis::<D>),
        ("sum_axis_large", sum_axis_large::<D>),
        ("gather_scatter", gather_scatter::<D>),
        ("gather_large", gather_large::<D>),
        ("layout", layout::<D>),
        ("matmul", matmul::<D>),
        ("matmul_large", matmul_large::<D>),
        ("conv2d", conv2d::<D>),
        ("pooling", pooling::<D>),
        ("pooling_large", pooling_large::<D>),
        ("prg", prg::<D>),
        ("prg_large", prg_large::<D>),
        ("shape_errors", shape_errors::<D>),
        ("param_errors", param_errors::<D>),
    ]
}

/// The checks' names, in order.
pub fn check_names() -> Vec<&'static str> {
    checks::<triad_ring::CpuDevice>().into_iter().map(|(name, _)| name).collect()
}

/// Runs every check on `dev`.
pub fn all<D: Device>(dev: &D) {
    for (_, check) in checks::<D>() {
        check(dev);
    }
}

/// Stamps the device suite over one device: one `#[test]` per check, in a module, and the
/// test `stamps_every_check`.
///
/// `device_suite!(name, expr)` builds the device with `expr`;
/// `device_suite!(name, optional expr)` takes an `Option<D>` for a GPU that may be absent:
/// its checks are `#[ignore]`d, so a plain `cargo test` counts them as ignored rather than
/// passed; `tools/cuda-emu/test` and `tools/gpu-check` run them with `--include-ignored`
/// (and `TRIAD_REQUIRE_GPU=1`, where a missing device fails instead of printing a skip line).
/// On `None` a check returns at once and prints nothing: the expression prints the test's
/// one skip line, as [`gpu::cuda`](crate::gpu::cuda) does.
#[macro_export]
macro_rules! device_suite {
    ($name:ident, optional $make:expr) => {
        $crate::device_suite!(@module $name, ignored, {
            match $make {
                Some(dev) => dev,
                // The expression printed the one skip line (`triad_tests::gpu::cuda` does).
                None => return,
            }
        });
    };
    ($name:ident, $make:expr) => {
        $crate::device_suite!(@module $name, run, { $make });
    };
    (@module $name:ident, $mode:ident, $make:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::device_suite!(@tests $mode, $make;
                memory, unary, unary_all_shifts, binary, pack_bits, pack_bits_large, sum_axis,
                sum_axis_large, gather_scatter, gather_large, layout, matmul, matmul_large, conv2d, pooling, pooling_large, prg, prg_large,
                shape_errors, param_errors);
        }
    };
    (@tests run, $make:block; $($check:ident),* $(,)?) => {
        $crate::device_suite!(@stamped $($check),*);
        $(
            #[test]
            fn $check() {
                let dev = $make;
                $crate::device_suite::$check(&dev);
            }
        )*
    };
    (@tests ignored, $make:block; $($check:ident),* $(,)?) => {
        $crate::device_suite!(@stamped $($check),*);
        $(
            #[test]
            #[ignore = "needs a CUDA driver (a GPU or tools/cuda-emu): run tools/cuda-emu/test"]
            fn $check() {
                let dev = $make;
                $crate::device_suite::$check(&dev);
            }
        )*
    };
    (@stamped $($check:ident),*) => {
        #[test]
        fn stamps_every_check() {
            let stamped: Vec<&str> = vec![$(stringify!($check)),*];
            assert_eq!(stamped, $crate::device_suite::check_names(), "the macro's list and `checks` differ");
        }
    };
}

fn tensor_of<D: Device>(dev: &D, dims: &[usize], data: Vec<u64>) -> Result<Tensor<D>, TestCaseError> {
    ok(Tensor::from_vec(dev, dims.to_vec(), data))
}

fn host<D: Device>(t: &Tensor<D>) -> Result<Vec<u64>, TestCaseError> {
    ok(t.to_vec())
}

// ---- memory ----------------------------------------------------------------------------------

/// `fill`, `from_host`, `from_host_vec`, `to_host`, `copy`, `len` and the `Tensor`
/// constructors; copies are independent of their source.
pub fn memory<D: Device>(dev: &D) {
    check("memory", (proptest::collection::vec(ring_value(), 0..100usize), ring_value()), |(data, v)| -> R {
        let n = data.len();
        let f = ok(dev.fill(n, v))?;
        prop_assert_eq!(dev.len(&f), n);
        prop_assert_eq!(ok(dev.to_host(&f))?, vec![v; n]);
        let a = ok(dev.from_host(&data))?;
        prop_assert_eq!(dev.len(&a), n);
        prop_assert_eq!(ok(dev.to_host(&a))?, data.clone());
        let b = ok(dev.from_host_vec(data.clone()))?;
        prop_assert_eq!(ok(dev.to_host(&b))?, data.clone());
        let mut c = ok(dev.copy(&a))?;
        prop_assert_eq!(ok(dev.to_host(&c))?, data.clone());
        ok(dev.binary_assign(triad_ring::BinaryOp::Xor, &mut c, &f))?;
        prop_assert_eq!(ok(dev.to_host(&a))?, data.clone(), "a copy aliases its source");

        let t = tensor_of(dev, &[n], data.clone())?;
        prop_assert_eq!(t.numel(), n);
        prop_assert_eq!(t.dims(), &[n][..]);
        prop_assert_eq!(host(&t)?, data.clone());
        let t2 = ok(t.try_clone())?;
        let t3 = ok(t2.reshape([1, n, 1]))?;
        prop_assert_eq!(t3.dims(), &[1, n, 1][..]);
        prop_assert_eq!(host(&t3)?, data.clone());
        let fb = ok(Tensor::from_buffer(dev, [n], ok(dev.from_host(&data))?))?;
        prop_assert_eq!(host(&fb)?, data.clone());
        prop_assert_eq!(host(&ok(Tensor::zeros(dev, [n, 2]))?)?, vec![0; 2 * n]);
        prop_assert_eq!(host(&ok(Tensor::full(dev, [2, n], v))?)?, vec![v; 2 * n]);
        let scalar = ok(Tensor::full(dev, Vec::<usize>::new(), v))?;
        prop_assert_eq!(host(&scalar)?, vec![v]);
        Ok(())
    });
}

// ---- elementwise -----------------------------------------------------------------------------

fn un_ops(s: u32) -> [UnOp; 5] {
    [UnOp::Neg, UnOp::Not, UnOp::Shl(s), UnOp::ShrLogical(s), UnOp::ShrArith(s)]
}

/// Every unary op, with random shifts in `0..64`, through the device and `Tensor`.
pub fn unary<D: Device>(dev: &D) {
    check("unary", (tensor(0..=3, 6), 0u32..64), |((d, data), s)| -> R {
        let buf = ok(dev.from_host(&data))?;
        let t = tensor_of(dev, &d, data.clone())?;
        for op in un_ops(s) {
            let want = spec::unary(op, &data);
            let got = ok(dev.to_host(&ok(dev.unary(convert::unary_op(op), &buf))?))?;
            prop_assert_eq!(&got, &want, "device {:?}", op);
            let tu = ok(t.unary(convert::unary_op(op)))?;
            prop_assert_eq!(tu.dims(), &d[..]);
            prop_assert_eq!(host(&tu)?, want.clone(), "tensor {:?}", op);
            let named = match op {
                UnOp::Neg => t.neg(),
                UnOp::Not => t.not(),
                UnOp::Shl(s) => t.shl(s),
                UnOp::ShrLogical(s) => t.shr(s),
                UnOp::ShrArith(s) => t.sar(s),
            };
            prop_assert_eq!(host(&ok(named)?)?, want, "named {:?}", op);
        }
        Ok(())
    });
}

/// Every shift amount `0..64` of every shift op on the edge values (deterministic).
pub fn unary_all_shifts<D: Device>(dev: &D) {
    let mut data = crate::strategies::EDGE_VALUES.to_vec();
    data.extend(SplitMix(1).words(20));
    let run = || -> R {
        let buf = ok(dev.from_host(&data))?;
        for s in 0..64 {
            for op in [UnOp::Shl(s), UnOp::ShrLogical(s), UnOp::ShrArith(s)] {
                let got = ok(dev.to_host(&ok(dev.unary(convert::unary_op(op), &buf))?))?;
                prop_assert_eq!(got, spec::unary(op, &data), "{:?}", op);
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        panic!("unary_all_shifts: {e}");
    }
}

/// Every binary op: device `binary`, `binary_assign`, `binary_scalar`; `Tensor` ops,
/// named ops, in-place ops and scalar ops.
pub fn binary<D: Device>(dev: &D) {
    let strat = dims(0..=3, 6).prop_flat_map(|d| {
        let n = d.iter().product();
        (Just(d), ring_values(n), ring_values(n), ring_value())
    });
    check("binary", strat, |(d, a, b, s)| -> R {
        let (ab, bb) = (ok(dev.from_host(&a))?, ok(dev.from_host(&b))?);
        let (ta, tb) = (tensor_of(dev, &d, a.clone())?, tensor_of(dev, &d, b.clone())?);
        for op in BinOp::ALL {
            let rop = convert::binary_op(op);
            let want = spec::binary(op, &a, &b);
            prop_assert_eq!(ok(dev.to_host(&ok(dev.binary(rop, &ab, &bb))?))?, want.clone(), "device {:?}", op);
            let mut c = ok(dev.copy(&ab))?;
            ok(dev.binary_assign(rop, &mut c, &bb))?;
            prop_assert_eq!(ok(dev.to_host(&c))?, want.clone(), "device assign {:?}", op);
            let ws = spec::binary_scalar(op, &a, s);
            prop_assert_eq!(
                ok(dev.to_host(&ok(dev.binary_scalar(rop, &ab, s))?))?,
                ws.clone(),
                "device scalar {:?}",
                op
            );

            let tr = ok(ta.binary(rop, &tb))?;
            prop_assert_eq!(tr.dims(), &d[..]);
            prop_assert_eq!(host(&tr)?, want.clone(), "tensor {:?}", op);
            let named = match op {
                BinOp::Add => ta.add(&tb),
                BinOp::Sub => ta.sub(&tb),
                BinOp::Mul => ta.mul(&tb),
                BinOp::Xor => ta.xor(&tb),
                BinOp::And => ta.and(&tb),
                BinOp::Or => ta.or(&tb),
            };
            prop_assert_eq!(host(&ok(named)?)?, want.clone(), "named {:?}", op);
            let mut tc = ok(ta.try_clone())?;
            ok(tc.binary_assign(rop, &tb))?;
            prop_assert_eq!(host(&tc)?, want.clone(), "tensor assign {:?}", op);
            let mut tn = ok(ta.try_clone())?;
            let named_assign = match op {
                BinOp::Add => Some(tn.add_assign(&tb)),
                BinOp::Sub => Some(tn.sub_assign(&tb)),
                BinOp::Xor => Some(tn.xor_assign(&tb)),
                _ => None,
            };
            if let Some(r) = named_assign {
                ok(r)?;
                prop_assert_eq!(host(&tn)?, want.clone(), "named assign {:?}", op);
            }
            prop_assert_eq!(host(&ok(ta.scalar(rop, s))?)?, ws, "tensor scalar {:?}", op);
        }
        Ok(())
    });
}

// ---- bits --------------------------------------------------------------------------------------

fn check_pack<D: Device>(dev: &D, data: &[u64], m: u64, stream: &[u64]) -> R {
    let k = m.count_ones() as usize;
    let buf = ok(dev.from_host(data))?;
    let want = spec::pack_bits(data, m);
    let packed = ok(dev.pack_bits(&buf, m))?;
    prop_assert_eq!(dev.len(&packed), (data.len() * k).div_ceil(64));
    prop_assert_eq!(ok(dev.to_host(&packed))?, want.clone(), "pack mask {:#x}", m);
    let back = ok(dev.to_host(&ok(dev.unpack_bits(&packed, data.len(), m))?))?;
    prop_assert_eq!(&back, &spec::binary_scalar(BinOp::And, data, m), "unpack(pack) mask {:#x}", m);
    prop_assert_eq!(&back, &spec::unpack_bits(&want, data.len(), m));
    // Unpacking an arbitrary stream: unused high bits of the last word are ignored.
    let sb = ok(dev.from_host(stream))?;
    let got = ok(dev.to_host(&ok(dev.unpack_bits(&sb, data.len(), m))?))?;
    prop_assert_eq!(got, spec::unpack_bits(stream, data.len(), m), "unpack stream mask {:#x}", m);
    Ok(())
}

/// `pack_bits` / `unpack_bits` with random masks (empty, full, contiguous, scattered) on
/// random lengths, through the device and `Tensor`.
pub fn pack_bits<D: Device>(dev: &D) {
    let strat = (0usize..300, mask()).prop_flat_map(|(n, m)| {
        let words = (n * m.count_ones() as usize).div_ceil(64);
        (ring_values(n), Just(m), proptest::collection::vec(any::<u64>(), words), 1usize..4)
    });
    check("pack_bits", strat, |(data, m, stream, rows)| -> R {
        check_pack(dev, &data, m, &stream)?;
        // Through Tensor, with a 2-D shape when the length allows.
        let n = data.len();
        let shape = if n % rows == 0 { vec![rows, n / rows] } else { vec![n] };
        let t = tensor_of(dev, &shape, data.clone())?;
        let p = ok(t.pack_bits(m))?;
        prop_assert_eq!(p.dims(), &[(n * m.count_ones() as usize).div_ceil(64)][..]);
        prop_assert_eq!(host(&p)?, spec::pack_bits(&data, m));
        let u = ok(p.unpack_bits(shape.clone(), m))?;
        prop_assert_eq!(u.dims(), &shape[..]);
        prop_assert_eq!(host(&u)?, spec::binary_scalar(BinOp::And, &data, m));
        Ok(())
    });
}

/// Packing across the CPU device's parallel chunk boundary (64 · 256 elements) and
/// ragged tails, for a few masks (deterministic).
pub fn pack_bits_large<D: Device>(dev: &D) {
    let mut g = SplitMix(2);
    let run = |g: &mut SplitMix| -> R {
        for (n, m) in [
            (64 * 256 + 77, u64::MAX),
            (64 * 256 * 2 + 1, 0x00ff_ff00_0000_0000),
            (64 * 256 + 64, 0x8000_0000_0000_0001),
            (64 * 256 - 3, 0x5555_0000_aaaa_0f0f),
        ] {
            let data = g.words(n);
            let words = (n * m.count_ones() as usize).div_ceil(64);
            let stream = g.words(words);
            check_pack(dev, &data, m, &stream)?;
        }
        Ok(())
    };
    if let Err(e) = run(&mut g) {
        panic!("pack_bits_large: {e}");
    }
}

// ---- layout and reductions ---------------------------------------------------------------------

/// `sum_axis` on every axis of random shapes, through `Tensor` and the device.
pub fn sum_axis<D: Device>(dev: &D) {
    let strat = tensor(1..=4, 5).prop_flat_map(|(d, a)| {
        let r = d.len();
        (Just(d), Just(a), 0..r)
    });
    check("sum_axis", strat, |(d, a, axis)| -> R {
        let (want, wd) = spec::sum_axis(&a, &d, axis);
        let t = ok(tensor_of(dev, &d, a.clone())?.sum_axis(axis))?;
        prop_assert_eq!(t.dims(), &wd[..]);
        prop_assert_eq!(host(&t)?, want.clone());
        let outer: usize = d[..axis].iter().product();
        let inner: usize = d[axis + 1..].iter().product();
        let buf = ok(dev.from_host(&a))?;
        prop_assert_eq!(ok(dev.to_host(&ok(dev.sum_axis(&buf, outer, d[axis], inner))?))?, want);
        Ok(())
    });
}

/// `sum_axis` over many output rows (more than one parallel block of a CPU device): a
/// bias gradient's sum over the pixels (`inner` 1) and over a few columns.
pub fn sum_axis_large<D: Device>(dev: &D) {
    let mut g = SplitMix(3);
    for (outer, axis, inner) in [(2560, 576, 1), (5001, 7, 1), (2000, 7, 3), (3, 40_000, 1), (1, 128, 500)] {
        let a = g.words(outer * axis * inner);
        let want: Vec<u64> = (0..outer * inner)
            .map(|x| {
                let (o, i) = (x / inner, x % inner);
                (0..axis).fold(0u64, |s, j| s.wrapping_add(a[(o * axis + j) * inner + i]))
            })
            .collect();
        let got = dev.from_host(&a).and_then(|b| dev.sum_axis(&b, outer, axis, inner)).and_then(|b| dev.to_host(&b));
        match got {
            Ok(got) => assert!(got == want, "sum_axis_large: {outer}x{axis}x{inner} differs"),
            Err(e) => panic!("sum_axis_large: {outer}x{axis}x{inner}: {e}"),
        }
    }
}

/// Gathers over many short rows (several parallel blocks of a CPU device): a per-channel
/// bias broadcast over 24x24 images, and a transpose.
pub fn gather_large<D: Device>(dev: &D) {
    let mut g = SplitMix(5);
    let bias = g.words(20);
    let views = [
        (bias.clone(), StridedLayout { dims: vec![64, 20, 24, 24], strides: vec![0, 1, 0, 0], offset: 0 }),
        (g.words(300 * 7), StridedLayout { dims: vec![7, 300], strides: vec![1, 7], offset: 0 }),
    ];
    for (src, view) in views {
        let want: Vec<u64> = (0..view.numel())
            .map(|mut i| {
                let mut at = view.offset;
                for d in (0..view.dims.len()).rev() {
                    at += (i % view.dims[d]) * view.strides[d];
                    i /= view.dims[d];
                }
                src[at]
            })
            .collect();
        let got = dev.from_host(&src).and_then(|b| dev.gather_strided(&b, &view)).and_then(|b| dev.to_host(&b));
        match got {
            Ok(got) => assert!(got == want, "gather_large: {view:?} differs"),
            Err(e) => panic!("gather_large: {view:?}: {e}"),
        }
    }
}

/// A view `(dims, strides, offset)` with every index inside a buffer of `extent + extra`.
fn view_strategy(injective: bool) -> BoxedStrategy<(StridedLayout, usize)> {
    dims(0..=3, 4)
        .prop_flat_map(move |d| {
            let r = d.len();
            let strides = if injective {
                // Row-major strides of a padded box, then axes shuffled: never aliases.
                (proptest::collection::vec(0usize..3, r), Just((0..r).collect::<Vec<_>>()).prop_shuffle())
                    .prop_map({
                        let d = d.clone();
                        move |(padding, order)| {
                            let boxed: Vec<usize> = d.iter().zip(&padding).map(|(x, p)| x + p).collect();
                            let mut s = vec![0usize; r];
                            let mut acc = 1;
                            for &ax in order.iter().rev() {
                                s[ax] = acc;
                                acc *= boxed[ax].max(1);
                            }
                            s
                        }
                    })
                    .boxed()
            } else {
                proptest::collection::vec(0usize..6, r).boxed()
            };
            (Just(d), strides, 0usize..8, 0usize..5)
        })
        .prop_map(|(dims, strides, offset, extra)| (StridedLayout { dims, strides, offset }, extra))
        .boxed()
}

/// `gather_strided` on arbitrary views (zero strides included) and `scatter_strided` on
/// non-aliasing views, directly on the device, plus `Tensor::gather`.
pub fn gather_scatter<D: Device>(dev: &D) {
    let strat = (view_strategy(false), view_strategy(true)).prop_flat_map(|((gv, ge), (sv, se))| {
        let (gl, sl) = (gv.extent().unwrap_or(0).max(gv.offset) + ge, sv.extent().unwrap_or(0).max(sv.offset) + se);
        let sn = sv.numel();
        (Just(gv), ring_values(gl), Just(sv), ring_values(sl), ring_values(sn))
    });
    check("gather_scatter", strat, |(gv, ga, sv, sdst, ssrc)| -> R {
        let want = spec::gather_strided(&ga, &gv.dims, &gv.strides, gv.offset);
        let buf = ok(dev.from_host(&ga))?;
        prop_assert_eq!(ok(dev.to_host(&ok(dev.gather_strided(&buf, &gv))?))?, want.clone(), "gather {:?}", gv);
        let n = ga.len();
        let t = ok(tensor_of(dev, &[n], ga.clone())?.gather(&gv))?;
        prop_assert_eq!(t.dims(), &gv.dims[..]);
        prop_assert_eq!(host(&t)?, want);

        let want = spec::scatter_strided(&sdst, &ssrc, &sv.dims, &sv.strides, sv.offset);
        let mut dst = ok(dev.from_host(&sdst))?;
        ok(dev.scatter_strided(&mut dst, &ok(dev.from_host(&ssrc))?, &sv))?;
        prop_assert_eq!(ok(dev.to_host(&dst))?, want, "scatter {:?}", sv);
        Ok(())
    });
}

/// `permute`, `transpose`, `slice`, `concat`, `broadcast_to` and `reshape` through
/// `Tensor`, against the spec's index-map definitions.
pub fn layout<D: Device>(dev: &D) {
    // permute / transpose / reshape
    let strat = tensor(0..=4, 4).prop_flat_map(|(d, a)| {
        let r = d.len();
        (Just(d), Just(a), Just((0..r).collect::<Vec<_>>()).prop_shuffle())
    });
    check("layout/permute", strat, |(d, a, perm)| -> R {
        let t = tensor_of(dev, &d, a.clone())?;
        let (want, wd) = spec::permute(&a, &d, &perm);
        let p = ok(t.permute(&perm))?;
        prop_assert_eq!(p.dims(), &wd[..]);
        prop_assert_eq!(host(&p)?, want);
        if d.len() == 2 {
            let (want, _) = spec::permute(&a, &d, &[1, 0]);
            prop_assert_eq!(host(&ok(t.transpose())?)?, want);
        }
        let flat = ok(ok(t.try_clone())?.reshape([a.len()]))?;
        prop_assert_eq!(host(&flat)?, a);
        Ok(())
    });

    // slice
    let strat = tensor(1..=4, 5).prop_flat_map(|(d, a)| {
        let r = d.len();
        (Just(d), Just(a), 0..r).prop_flat_map(|(d, a, axis)| {
            let len = d[axis];
            (Just(d), Just(a), Just(axis), 0..=len)
                .prop_flat_map(move |(d, a, axis, start)| (Just(d), Just(a), Just(axis), Just(start), start..=len))
        })
    });
    check("layout/slice", strat, |(d, a, axis, start, end)| -> R {
        let (want, wd) = spec::slice(&a, &d, axis, start, end);
        let s = ok(tensor_of(dev, &d, a)?.slice(axis, start..end))?;
        prop_assert_eq!(s.dims(), &wd[..]);
        prop_assert_eq!(host(&s)?, want);
        Ok(())
    });

    // concat
    let strat = (dims(1..=3, 3), 1usize..=4).prop_flat_map(|(base, parts)| {
        let r = base.len();
        (Just(base), 0..r, proptest::collection::vec(dim(3), parts)).prop_flat_map(|(base, axis, lens)| {
            let parts: Vec<_> = lens
                .iter()
                .map(|&l| {
                    let mut d = base.clone();
                    d[axis] = l;
                    let n = d.iter().product();
                    (Just(d), ring_values(n))
                })
                .collect();
            (Just(axis), parts)
        })
    });
    check("layout/concat", strat, |(axis, parts)| -> R {
        let spec_parts: Vec<(&[u64], &[usize])> = parts.iter().map(|(d, a)| (&a[..], &d[..])).collect();
        let (want, wd) = spec::concat(&spec_parts, axis);
        let ts = parts.iter().map(|(d, a)| tensor_of(dev, d, a.clone())).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Tensor<D>> = ts.iter().collect();
        let c = ok(Tensor::concat(&refs, axis))?;
        prop_assert_eq!(c.dims(), &wd[..]);
        prop_assert_eq!(host(&c)?, want);
        Ok(())
    });

    // broadcast
    let strat = (
        dims(0..=3, 3),
        proptest::collection::vec(any::<bool>(), 3),
        dims(0..=2, 3),
        proptest::collection::vec(0usize..4, 3),
    )
        .prop_flat_map(|(src, ones, lead, grow)| {
            let src: Vec<usize> = src.iter().zip(&ones).map(|(&s, &o)| if o { 1 } else { s }).collect();
            let mut dst = lead;
            dst.extend(src.iter().zip(&grow).map(|(&s, &g)| if s == 1 { g } else { s }));
            let n = src.iter().product();
            (Just(src), Just(dst), ring_values(n))
        });
    check("layout/broadcast", strat, |(src, dst, a)| -> R {
        let want = spec::broadcast(&a, &src, &dst);
        prop_assert!(want.is_some());
        let b = ok(tensor_of(dev, &src, a)?.broadcast_to(dst.clone()))?;
        prop_assert_eq!(b.dims(), &dst[..]);
        prop_assert_eq!(Some(host(&b)?), want);
        Ok(())
    });
}

// ---- linear algebra ------------------------------------------------------------------------------

fn matmul_case<D: Device>(dev: &D, s: &spec::Matmul, a: &[u64], b: &[u64]) -> R {
    let want = spec::matmul(a, b, s);
    let got = ok(dev.matmul(&ok(dev.from_host(a))?, &ok(dev.from_host(b))?, &convert::matmul(s)))?;
    prop_assert_eq!(ok(dev.to_host(&got))?, want.clone(), "device {:?}", s);
    if s.batch == 1 {
        let ad = if s.a_trans { [s.k, s.m] } else { [s.m, s.k] };
        let bd = if s.b_trans { [s.n, s.k] } else { [s.k, s.n] };
        let (ta, tb) = (tensor_of(dev, &ad, a.to_vec())?, tensor_of(dev, &bd, b.to_vec())?);
        let c = ok(ta.matmul_t(&tb, s.a_trans, s.b_trans))?;
        prop_assert_eq!(c.dims(), &[s.m, s.n][..]);
        prop_assert_eq!(host(&c)?, want.clone(), "tensor {:?}", s);
        if !s.a_trans && !s.b_trans {
            prop_assert_eq!(host(&ok(ta.matmul(&tb))?)?, want);
        }
    }
    Ok(())
}

/// Matrix products of every transpose combination, batch 0..=3 on the device and batch 1
/// through `Tensor`, sizes 0..=9.
pub fn matmul<D: Device>(dev: &D) {
    let strat = (prop_oneof![1 => Just(1usize), 1 => 0..=3usize], dim(9), dim(9), dim(9), any::<bool>(), any::<bool>())
        .prop_flat_map(|(batch, m, k, n, a_trans, b_trans)| {
            let s = spec::Matmul { batch, m, k, n, a_trans, b_trans };
            (Just(s), ring_values(batch * m * k), ring_values(batch * k * n))
        });
    check("matmul", strat, |(s, a, b)| -> R { matmul_case(dev, &s, &a, &b) });
}

/// Larger products that cross blocking boundaries of a tiled GEMM (deterministic).
pub fn matmul_large<D: Device>(dev: &D) {
    let mut g = SplitMix(3);
    let run = |g: &mut SplitMix| -> R {
        for (batch, m, k, n) in [(1, 33, 65, 17), (1, 1, 257, 3), (2, 9, 7, 70), (1, 64, 64, 64), (1, 70, 1, 5)] {
            for (a_trans, b_trans) in [(false, false), (true, false), (false, true), (true, true)] {
                let s = spec::Matmul { batch, m, k, n, a_trans, b_trans };
                let (a, b) = (g.words(batch * m * k), g.words(batch * k * n));
                matmul_case(dev, &s, &a, &b)?;
            }
        }
        Ok(())
    };
    if let Err(e) = run(&mut g) {
        panic!("matmul_large: {e}");
    }
}

/// Convolution forward and both gradients with random strides, paddings, groups and
/// batch, through `Tensor` and the device.
pub fn conv2d<D: Device>(dev: &D) {
    let strat = conv_params().prop_flat_map(|p| {
        let (ni, nw, no) = (spec::numel(&p.input_dims()), spec::numel(&p.weight_dims()), spec::numel(&p.output_dims()));
        (Just(p), ring_values(ni), ring_values(nw), ring_values(no))
    });
    check("conv2d", strat, |(p, x, w, g)| -> R {
        let rp = convert::conv(&p);
        let (tx, tw, tg) = (
            tensor_of(dev, &p.input_dims(), x.clone())?,
            tensor_of(dev, &p.weight_dims(), w.clone())?,
            tensor_of(dev, &p.output_dims(), g.clone())?,
        );
        let want = spec::conv2d(&x, &w, &p);
        let y = ok(tx.conv2d(&tw, &rp))?;
        prop_assert_eq!(y.dims(), &p.output_dims()[..]);
        prop_assert_eq!(host(&y)?, want.clone(), "forward {:?}", p);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.conv2d(tx.buffer(), tw.buffer(), &rp))?))?, want, "device forward");

        let want = spec::conv2d_grad_input(&g, &w, &p);
        let dx = ok(tg.conv2d_grad_input(&tw, &rp))?;
        prop_assert_eq!(dx.dims(), &p.input_dims()[..]);
        prop_assert_eq!(host(&dx)?, want.clone(), "grad input {:?}", p);
        prop_assert_eq!(
            ok(dev.to_host(&ok(dev.conv2d_grad_input(tg.buffer(), tw.buffer(), &rp))?))?,
            want,
            "device grad input"
        );

        let want = spec::conv2d_grad_weight(&x, &g, &p);
        let dw = ok(tx.conv2d_grad_weight(&tg, &rp))?;
        prop_assert_eq!(dw.dims(), &p.weight_dims()[..]);
        prop_assert_eq!(host(&dw)?, want.clone(), "grad weight {:?}", p);
        prop_assert_eq!(
            ok(dev.to_host(&ok(dev.conv2d_grad_weight(tx.buffer(), tg.buffer(), &rp))?))?,
            want,
            "device grad weight"
        );
        Ok(())
    });
}

/// Pooling: window sums, windows (with a random pad value) and both adjoints.
pub fn pooling<D: Device>(dev: &D) {
    let strat = (pool_params(), ring_value()).prop_flat_map(|(p, pad)| {
        let (ni, no, nw) =
            (spec::numel(&p.input_dims()), spec::numel(&p.output_dims()), spec::numel(&p.windows_dims()));
        (Just(p), Just(pad), ring_values(ni), ring_values(no), ring_values(nw))
    });
    check("pooling", strat, |(p, pad, x, g, gw)| -> R {
        let rp = convert::pool(&p);
        let tx = tensor_of(dev, &p.input_dims(), x.clone())?;
        let tg = tensor_of(dev, &p.output_dims(), g.clone())?;
        let tgw = tensor_of(dev, &p.windows_dims(), gw.clone())?;

        let want = spec::pool_sum(&x, &p);
        let s = ok(tx.pool_sum(&rp))?;
        prop_assert_eq!(s.dims(), &p.output_dims()[..]);
        prop_assert_eq!(host(&s)?, want.clone(), "sum {:?}", p);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.pool_sum(tx.buffer(), &rp))?))?, want);

        let want = spec::pool_sum_backward(&g, &p);
        let b = ok(tg.pool_sum_backward(&rp))?;
        prop_assert_eq!(b.dims(), &p.input_dims()[..]);
        prop_assert_eq!(host(&b)?, want.clone(), "sum backward {:?}", p);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.pool_sum_backward(tg.buffer(), &rp))?))?, want);

        let want = spec::pool_windows(&x, &p, pad);
        let w = ok(tx.pool_windows(&rp, pad))?;
        prop_assert_eq!(w.dims(), &p.windows_dims()[..]);
        prop_assert_eq!(host(&w)?, want.clone(), "windows {:?}", p);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.pool_windows(tx.buffer(), &rp, pad))?))?, want);

        let want = spec::pool_windows_backward(&gw, &p);
        let wb = ok(tgw.pool_windows_backward(&rp))?;
        prop_assert_eq!(wb.dims(), &p.input_dims()[..]);
        prop_assert_eq!(host(&wb)?, want.clone(), "windows backward {:?}", p);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.pool_windows_backward(tgw.buffer(), &rp))?))?, want);
        Ok(())
    });
}

/// Window sums and their adjoint over many planes (several parallel blocks of a CPU device),
/// against the specification: LeNet's 2x2 average pooling and a padded, strided 3x3.
pub fn pooling_large<D: Device>(dev: &D) {
    let mut g = SplitMix(4);
    let shapes = [(40, 20, 24, 24, 2, 2, 0), (300, 2, 7, 9, 3, 2, 1)];
    for (batch, channels, in_h, in_w, k, stride, pad) in shapes {
        let p = spec::Pool2d {
            batch,
            channels,
            in_h,
            in_w,
            kh: k,
            kw: k,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
        };
        let rp = convert::pool(&p);
        let (x, gr) = (g.words(spec::numel(&p.input_dims())), g.words(spec::numel(&p.output_dims())));
        let sum = dev.from_host(&x).and_then(|b| dev.pool_sum(&b, &rp)).and_then(|b| dev.to_host(&b));
        let back = dev.from_host(&gr).and_then(|b| dev.pool_sum_backward(&b, &rp)).and_then(|b| dev.to_host(&b));
        match (sum, back) {
            (Ok(sum), Ok(back)) => {
                assert!(sum == spec::pool_sum(&x, &p), "pooling_large: sum {p:?}");
                assert!(back == spec::pool_sum_backward(&gr, &p), "pooling_large: sum backward {p:?}");
            }
            (Err(e), _) | (_, Err(e)) => panic!("pooling_large: {p:?}: {e}"),
        }
    }
}

// ---- randomness ----------------------------------------------------------------------------------

/// `prg_fill` and `Tensor::prg` at random keys, streams, offsets (wrapping near 2^64
/// included) and lengths.
pub fn prg<D: Device>(dev: &D) {
    let offset = prop_oneof![
        2 => 0u64..40,
        1 => any::<u64>(),
        1 => (0u64..40).prop_map(|d| u64::MAX - d),
    ];
    let strat = (any::<[u8; 32]>(), any::<u64>(), offset, 0usize..100);
    check("prg", strat, |(key, stream, offset, len)| -> R {
        let want = spec::prg_words(&key, stream, offset, len);
        let k = PrgKey::from_bytes(key);
        prop_assert_eq!(ok(dev.to_host(&ok(dev.prg_fill(&k, stream, offset, len))?))?, want.clone());
        let t = ok(Tensor::prg(dev, [1, len], &k, stream, offset))?;
        prop_assert_eq!(t.dims(), &[1, len][..]);
        prop_assert_eq!(host(&t)?, want);
        Ok(())
    });
}

/// A long PRG fill crossing the CPU device's parallel chunk boundary from an unaligned
/// offset (deterministic).
pub fn prg_large<D: Device>(dev: &D) {
    let key = PrgKey::from_bytes([0xa5; 32]);
    for (offset, len) in [(3u64, 8 * 2048 * 2 + 11), (8 * 2048 - 1, 9)] {
        let want = spec::prg_words(&[0xa5; 32], 42, offset, len);
        let got = dev.prg_fill(&key, 42, offset, len).and_then(|b| dev.to_host(&b));
        assert_eq!(got, Ok(want), "prg_large offset {offset} len {len}");
    }
}

// ---- errors --------------------------------------------------------------------------------------

fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, RingError>, pred: impl Fn(&RingError) -> bool) {
    match r {
        Err(e) if pred(&e) => {}
        Err(e) => panic!("{what}: unexpected error kind {e:?}"),
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
    }
}

fn is_shape(e: &RingError) -> bool {
    matches!(e, RingError::ShapeMismatch { .. })
}
fn is_len(e: &RingError) -> bool {
    matches!(e, RingError::Length { .. })
}
fn is_params(e: &RingError) -> bool {
    matches!(e, RingError::Params { .. })
}
fn is_rank(e: &RingError) -> bool {
    matches!(e, RingError::Rank { .. })
}
fn is_axis(e: &RingError) -> bool {
    matches!(e, RingError::Axis { .. })
}

/// Invalid shapes and arguments give the right `RingError`, never a panic.
pub fn shape_errors<D: Device>(dev: &D) {
    let t = |d: &[usize]| {
        let n: usize = d.iter().product();
        Tensor::from_vec(dev, d.to_vec(), (0..n as u64).collect()).unwrap_or_else(|e| panic!("{e}"))
    };
    let (a23, a32, a234) = (t(&[2, 3]), t(&[3, 2]), t(&[2, 3, 4]));
    expect_err("from_vec length", Tensor::from_vec(dev, [2, 2], vec![1, 2, 3]), is_len);
    expect_err(
        "from_buffer length",
        dev.fill(3, 0).map_err(RingError::from).and_then(|b| Tensor::from_buffer(dev, [4], b)),
        is_len,
    );
    expect_err("mismatched add", a23.add(&a32), is_shape);
    expect_err("mismatched xor", a23.binary(triad_ring::BinaryOp::Xor, &a234), is_shape);
    let mut m = a23.try_clone().unwrap_or_else(|e| panic!("{e}"));
    expect_err("mismatched add_assign", m.add_assign(&a32).map(|_| 0), is_shape);
    expect_err("reshape wrong size", a23.try_clone().and_then(|x| x.reshape([5])), is_len);
    expect_err("shl 64", a23.shl(64), is_params);
    expect_err("shr 64", a23.shr(64), is_params);
    expect_err("sar 200", a23.sar(200), is_params);
    expect_err("unpack wrong stream length", a23.unpack_bits([100], u64::MAX), is_len);
    expect_err("sum_axis past rank", a23.sum_axis(2), is_axis);
    expect_err("sum_axis of a scalar", t(&[]).sum_axis(0), is_axis);
    expect_err("permute duplicate", a234.permute(&[0, 0, 1]), is_params);
    expect_err("permute short", a234.permute(&[1, 0]), is_params);
    expect_err("permute out of range", a234.permute(&[0, 1, 3]), is_params);
    expect_err("transpose rank 3", a234.transpose(), is_rank);
    expect_err("slice past end", a23.slice(1, 2..4), is_params);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2..1;
    expect_err("slice backwards", a23.slice(1, backwards), is_params);
    expect_err("slice axis", a23.slice(2, 0..1), is_axis);
    expect_err("concat nothing", Tensor::<D>::concat(&[], 0), is_params);
    expect_err("concat mismatched", Tensor::concat(&[&a23, &a32], 0), is_shape);
    expect_err("concat rank", Tensor::concat(&[&a23, &a234], 0), is_shape);
    expect_err("concat axis", Tensor::concat(&[&a23, &a23], 2), is_axis);
    expect_err("broadcast incompatible", a23.broadcast_to([2, 4]), is_shape);
    expect_err("broadcast to lower rank", a234.broadcast_to([3, 4]), is_shape);
    let view = |dims: Vec<usize>, strides: Vec<usize>, offset| StridedLayout { dims, strides, offset };
    expect_err("gather past end", a23.gather(&view(vec![2, 3], vec![3, 1], 1)), is_params);
    expect_err("gather dims/strides", a23.gather(&view(vec![2, 3], vec![3], 0)), is_params);
    expect_err("matmul rank", a234.matmul(&a23), is_rank);
    expect_err("matmul inner", a23.matmul(&a23), is_shape);
    expect_err("matmul_t inner", a23.matmul_t(&a32, true, false), is_shape);

    // Convolution and pooling: wrong operand shapes with valid parameters.
    let p = triad_ring::Conv2dParams::square(1, 2, 4, 2, 3, 1, 1);
    let (x, w, g) = (t(&[1, 2, 4, 4]), t(&[2, 2, 3, 3]), t(&[1, 2, 4, 4]));
    expect_err("conv input shape", a234.conv2d(&w, &p), is_shape);
    expect_err("conv weight shape", x.conv2d(&a234, &p), is_shape);
    expect_err("conv grad_input shape", a234.conv2d_grad_input(&w, &p), is_shape);
    expect_err("conv grad_weight shape", x.conv2d_grad_weight(&a234, &p), is_shape);
    assert!(x.conv2d(&w, &p).is_ok() && g.conv2d_grad_input(&w, &p).is_ok() && x.conv2d_grad_weight(&g, &p).is_ok());
    let q = triad_ring::Pool2dParams::square(1, 2, 4, 2, 2, 0);
    expect_err("pool input shape", a234.pool_sum(&q), is_shape);
    expect_err("pool grad shape", a234.pool_sum_backward(&q), is_shape);
    expect_err("pool windows shape", a234.pool_windows(&q, 0), is_shape);
    expect_err("pool windows grad shape", a234.pool_windows_backward(&q), is_shape);
    assert!(x.pool_sum(&q).is_ok());
}

/// Random (mostly invalid) convolution and pooling parameters: `Tensor` returns
/// `RingError::Params` exactly when the spec's `is_valid` says no, and never panics.
pub fn param_errors<D: Device>(dev: &D) {
    check_n("param_errors/conv", cases() * 4, raw_conv_params(), |p| -> R {
        let rp = convert::conv(&p);
        let zeros = |d: &[usize]| ok(Tensor::zeros(dev, d.to_vec()));
        let (x, w, g) = if p.is_valid() {
            (zeros(&p.input_dims())?, zeros(&p.weight_dims())?, zeros(&p.output_dims())?)
        } else {
            (zeros(&[0])?, zeros(&[0])?, zeros(&[0])?)
        };
        let results = [
            x.conv2d(&w, &rp).map(|_| ()),
            g.conv2d_grad_input(&w, &rp).map(|_| ()),
            x.conv2d_grad_weight(&g, &rp).map(|_| ()),
        ];
        for r in results {
            match r {
                Ok(()) => prop_assert!(p.is_valid(), "accepted invalid {:?}", p),
                Err(e) => prop_assert!(!p.is_valid() && is_params(&e), "{:?} on {:?}", e, p),
            }
        }
        Ok(())
    });
    check_n("param_errors/pool", cases() * 4, (raw_pool_params(), ring_value()), |(p, pad)| -> R {
        let rp = convert::pool(&p);
        let zeros = |d: &[usize]| ok(Tensor::zeros(dev, d.to_vec()));
        let (x, g, gw) = if p.is_valid() {
            (zeros(&p.input_dims())?, zeros(&p.output_dims())?, zeros(&p.windows_dims())?)
        } else {
            (zeros(&[0])?, zeros(&[0])?, zeros(&[0])?)
        };
        let results = [
            x.pool_sum(&rp).map(|_| ()),
            g.pool_sum_backward(&rp).map(|_| ()),
            x.pool_windows(&rp, pad).map(|_| ()),
            gw.pool_windows_backward(&rp).map(|_| ()),
        ];
        for r in results {
            match r {
                Ok(()) => prop_assert!(p.is_valid(), "accepted invalid {:?}", p),
                Err(e) => prop_assert!(!p.is_valid() && is_params(&e), "{:?} on {:?}", e, p),
            }
        }
        Ok(())
    });
}
