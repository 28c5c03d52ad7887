//! View secrecy: what each party receives tells it nothing.
//!
//! Each case runs a private computation twice, on two very different secrets (all-zero
//! images with label 0, against real digits scaled so that a white pixel is the largest
//! value of the documented range `±2^(61-2f)` (the overflow guard's and the owner's
//! plaintext check's), with other labels), with the same test keys (so each party's own randomness is the same in both
//! runs), recording every message each party receives (test-only feature
//! `triad-transport/recording`). For each party, each view passes the uniformity tests of
//! [`triad_tests::views`] (bit balance, byte chi-square; on the whole view, per scope and
//! per large message) and the two views cannot be told apart by the same tests; each
//! threshold is one a correct run exceeds with probability below `10^-6`.
//!
//! The cases cover the protocol set: LeNet inference (products, convolutions,
//! wrap-free truncations, ReLU's comparison circuit and bit injection, max pooling), one
//! LeNet training step (the softmax with its exponential and reciprocal, max pooling's
//! backward, the SGD update), and a training step of a small network with batch norm
//! (the inverse square root), and share truncation (ABY3's, kept by name for measurement:
//! `truncate_share`, `product_trunc_share` of an elementwise and a matrix product), which
//! no layer uses. Nothing is opened inside a recorded run. A planted leak
//! (party 0 opens the first convolution's output and forwards it to party 1, as a
//! protocol that forgot a mask would) must be caught, so the test can fail.
#![allow(clippy::unwrap_used)]

use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, ConvSpec, Graph, Model, Op, Pooling, Sgd};
use triad_ring::{CpuDevice, Shape};
use triad_sharing::{Party, Product};
use triad_tests::views::View;
use triad_transport::{PartyId, Peer, Received};

const P0: PartyId = PartyId::ALL[0];
const BATCH: usize = 4;
const SEED: u64 = 31;

/// The top of the documented range, `2^(61-2f) - 1` (`Guard::for_frac_bits`).
fn top() -> f64 {
    let g = triad_layers::Guard::for_frac_bits(FixedConfig::default().frac_bits).unwrap();
    2f64.powi(g.log2_bound as i32) - 1.0
}

/// The two secrets: (images, one-hot labels). The digits' pixels are in `[0, 1]`: a white
/// pixel becomes [`top`].
fn secrets() -> [(Vec<f64>, Vec<f64>); 2] {
    let m = Mnist::bundled().unwrap();
    let zeros = (vec![0.0; BATCH * 784], one_hot(&[0; BATCH], 10));
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for i in 0..BATCH {
        x.extend(m.train.image_f64(i).into_iter().map(|v| v * top()));
        labels.push((m.train.labels[i] % 9) + 1);
    }
    [zeros, (x, one_hot(&labels, 10))]
}

/// What to run on the recorded parties.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    Inference,
    Training,
    /// Inference, with party 0 forwarding the first convolution's output to party 1.
    PlantedLeak,
    /// Share truncation of the images by `f` bits, then the elementwise square and a
    /// matrix product by a random sharing, each with share truncation.
    ShareTruncation,
}

/// Runs `case` of `net` on `secret`; returns each party's recorded view.
fn views(net: &Graph, case: Case, secret: &(Vec<f64>, Vec<f64>)) -> [Vec<Received>; 3] {
    let w = net.init_weights(5);
    let mut dims = vec![BATCH];
    dims.extend(net.input());
    triad_tests::parties::in_process(SEED, |p| {
        let owner = p.id == P0;
        p.net.start_recording();
        // (Share truncation needs no model: its view is the images' sharing and the
        // truncations alone.)
        let mut model = match case {
            Case::ShareTruncation => None,
            _ => Some(Model::new(p, net, P0, owner.then_some(&w[..]))?),
        };
        let x = p.input(P0, owner.then_some(&secret.0[..]), &dims)?;
        if case == Case::PlantedLeak {
            leak_first_conv(p, net, &w, &x)?;
        }
        match (case, model.as_mut()) {
            (Case::Inference | Case::PlantedLeak, Some(model)) => {
                model.forward(p, x)?;
            }
            (Case::ShareTruncation, _) => {
                let f = p.fixed.frac_bits;
                let t = p.truncate_share(&x, f)?;
                p.product_trunc_share(Product::Elementwise, &x, &t)?;
                let per = x.numel() / BATCH;
                let rows = x.reshape(vec![BATCH, per])?;
                let r = p.random(&Shape::new([rows.shape().dims()[1], 16]))?;
                p.product_trunc_share(Product::Matmul { a_trans: false, b_trans: false }, &rows, &r)?;
            }
            (Case::Training, Some(model)) => {
                let y = p.input(P0, owner.then_some(&secret.1[..]), &[BATCH, 10])?;
                let opt = Sgd { lr: 0.05, momentum: 0.9, weight_decay: 5e-4 };
                model.train_step(p, x, &y, &opt)?;
            }
            (_, None) => unreachable!("every case but share truncation builds the model"),
        }
        Ok(p.net.stop_recording())
    })
    .unwrap()
}

/// The planted leak: the first layer alone, its output opened to party 0, who sends it
/// to party 1 as fixed-point words.
fn leak_first_conv(
    p: &Party<CpuDevice>,
    net: &Graph,
    w: &[Vec<f64>],
    x: &<Party<CpuDevice> as Backend>::T,
) -> triad_sharing::Result<()> {
    let first = Graph::chain("leak", net.input(), vec![net.nodes[1].op.clone()])?;
    let mut m = Model::new(p, &first, P0, (p.id == P0).then(|| &w[..first.tensors().len()]))?;
    let h = m.forward(p, p.copy(x)?)?;
    let opened = p.open(P0, &h)?;
    let n = h.shape().numel();
    match p.id.index() {
        0 => {
            let words = opened.unwrap_or_default().iter().map(|v| (v * 1048576.0).round() as i64 as u64).collect();
            p.net.send_u64s(Peer::Next, words)?;
        }
        1 => {
            p.net.recv_u64s(Peer::Prev, n)?;
        }
        _ => {}
    }
    Ok(())
}

/// Every party's two views are uniform and alike; `Err` with the first failure.
fn check(net: &Graph, case: Case) -> Result<(), String> {
    let [a, b] = secrets();
    let (va, vb) = (views(net, case, &a), views(net, case, &b));
    for i in 0..3 {
        let (x, y) = (View::new(&va[i]), View::new(&vb[i]));
        println!(
            "party {i}: {} messages, {} bytes per run; bit |z| {:.2} and {:.2}, byte chi-square {:.0} and {:.0}; between runs |z| {:.2}, chi-square {:.0}",
            x.messages,
            x.all.total_bytes(),
            x.all.bit_z().0,
            y.all.bit_z().0,
            x.all.byte_chi_square(),
            y.all.byte_chi_square(),
            x.all.bit_z_between(&y.all).0,
            x.all.byte_chi_square_between(&y.all),
        );
        x.check_uniform(&format!("party {i}, zero images"))?;
        y.check_uniform(&format!("party {i}, real digits"))?;
        x.check_alike(&y, &format!("party {i}"))?;
    }
    Ok(())
}

fn lenet_max() -> Graph {
    lenet(Activation::Relu, Pooling::Max)
}

/// conv → batch norm → ReLU → average pooling → linear, on 28×28 digits.
fn batchnorm_net() -> Graph {
    Graph::chain(
        "bn-net",
        &[1, 28, 28],
        vec![
            Op::Conv(ConvSpec::square(1, 4, 5, 2, 0, true)),
            Op::BatchNorm { c: 4 },
            Op::Relu,
            Op::AvgPool(triad_layers::PoolSpec::square(4, 4, 0)),
            Op::Flatten,
            Op::Linear { inp: 36, out: 10, bias: true },
        ],
    )
    .unwrap()
}

#[test]
fn secrecy_of_every_view_in_lenet_inference() {
    check(&lenet_max(), Case::Inference).unwrap();
}

#[test]
fn secrecy_of_every_view_in_a_lenet_training_step() {
    check(&lenet_max(), Case::Training).unwrap();
}

#[test]
fn secrecy_of_every_view_in_a_batchnorm_training_step() {
    check(&batchnorm_net(), Case::Training).unwrap();
}

#[test]
fn secrecy_of_every_view_in_share_truncation() {
    check(&lenet_max(), Case::ShareTruncation).unwrap();
}

#[test]
fn secrecy_test_catches_a_planted_leak() {
    let e = check(&lenet_max(), Case::PlantedLeak).unwrap_err();
    println!("caught: {e}");
    assert!(e.starts_with("party 1"), "the leak reached party 1, not: {e}");
}
