//! Communication per layer, pinned by snapshots so any change in communication is a
//! visible diff.
//!
//! Measured on the CPU device (real values): LeNet (ReLU, average pooling) for a forward
//! pass at the paper's inference batch (1) and one training step at batch 2 (costs of
//! matmuls, convolutions and comparisons grow linearly with the batch; rounds do not);
//! AlexNet and VGG-16 on CIFAR-10 for a forward pass at batch 1.
//!
//! Measured on the dry-run device ([`DryRunDevice`]: buffers hold only lengths, nothing is
//! computed): every model of the zoo. The protocols are data-oblivious (message sizes and
//! rounds depend on shapes only), so a dry run sends the same messages as a real one, and
//! costs the transport only: `dry_run_is_faithful` checks that a forward pass and a
//! training step cost exactly the same on both devices (every cost scope, both directions)
//! for LeNet with ReLU and average pooling, LeNet with tanh and max pooling and a small
//! network with batch norm and residual blocks, and the dry forward passes of the models
//! with a CPU snapshot must equal that snapshot. Snapshots: `dry_<model>_forward_batch1`
//! (inference mode; for models with batch norm the steady state, after the first pass has
//! folded the running statistics) and `dry_<model>_training_step_batch<N>` at the paper's
//! training batches (DESIGN.md: LeNet 128, AlexNet 128, VGG-16 32 on CIFAR-10 and 8 on Tiny
//! ImageNet). The ImageNet models and ResNet-50 on CIFAR-10 have no published training
//! batch: their training step is at batch 1.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::zoo::{alexnet, lenet, lenet5, resnet, vgg16, Dataset};
use triad_layers::{layer_cost_table, Activation, Backend, Chain, ConvSpec, Graph, Model, Op, PoolSpec, Pooling, Sgd};
use triad_ring::{CpuDevice, Device, DryRunDevice};
use triad_sharing::run_in_process_with_test_keys;
use triad_transport::{CostTable, LinkConfig, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn costs(batch: usize, train: bool) -> [CostTable; 3] {
    model_costs(&lenet(Activation::Relu, Pooling::Avg), batch, train)
}

/// Each party's cost table of a forward pass (or a training step) of `net` on the CPU,
/// with the initial weights of seed 1.
fn model_costs(net: &Graph, batch: usize, train: bool) -> [CostTable; 3] {
    let dims: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let x: Vec<f64> = (0..dims.iter().product::<usize>()).map(|i| (i % 17) as f64 / 17.0).collect();
    costs_on(CpuDevice, net, batch, train, &net.init_weights(1), &x)
}

/// Each party's cost table of a forward pass of `net` in inference mode (or a training step)
/// on `dev`, measured from synchronised clocks so the maximum of the parties' rounds is the
/// latency. A forward pass of a model with batch norm is measured in the steady state: after
/// a first pass, which folds the running statistics once.
fn costs_on<D: Device>(dev: D, net: &Graph, batch: usize, train: bool, w: &[Vec<f64>], x: &[f64]) -> [CostTable; 3] {
    let dims: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let classes = net.out_dims().unwrap()[0];
    let y = triad_layers::one_hot(&vec![3u8; batch], classes);
    let warm_up = !train && net.has_batchnorm();
    let link = LinkConfig { timeout: Duration::from_secs(60), ..LinkConfig::default() };
    run_in_process_with_test_keys(dev, &link, FixedConfig::default(), 9, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, net, P0, owner.then_some(w))?;
        m.train = train;
        if warm_up {
            let xs = p.input(P0, owner.then_some(x), &dims)?;
            m.forward(p, xs)?;
        }
        let xs = p.input(P0, owner.then_some(x), &dims)?;
        let ys = p.input(P0, owner.then_some(&y[..]), &[batch, classes])?;
        p.net.barrier()?;
        p.net.reset_costs();
        if train {
            m.train_step(p, xs, &ys, &Sgd::new(0.1))?;
        } else {
            m.forward(p, xs)?;
        }
        Ok(p.net.costs())
    })
    .unwrap()
}

/// Zero weights in the order of [`Graph::init_weights`] (`vec![0.0; n]` costs no page until
/// read): the dry run needs the owner to pass weights of the right sizes, never their values.
fn zero_weights(net: &Graph) -> Vec<Vec<f64>> {
    net.tensors().iter().map(|t| vec![0.0; t.shape.iter().product()]).collect()
}

/// [`costs_on`] on the dry-run device, zero weights and inputs.
fn dry_costs(net: &Graph, batch: usize, train: bool) -> [CostTable; 3] {
    let x = vec![0.0; batch * net.input().iter().product::<usize>()];
    costs_on(DryRunDevice, net, batch, train, &zero_weights(net), &x)
}

fn forward_table(net: &Graph, c: &[CostTable; 3]) -> String {
    layer_cost_table(net, c, "forward", &[])
}

fn training_table(net: &Graph, c: &[CostTable; 3]) -> String {
    format!("{}\n{}", layer_cost_table(net, c, "forward", &["loss", "sgd"]), layer_cost_table(net, c, "backward", &[]))
}

/// The body of a committed snapshot file (what follows its metadata header).
fn snapshot_body(file: &str) -> &str {
    file.splitn(3, "---\n").nth(2).unwrap()
}

const CPU_SNAPSHOTS: [(&str, &str); 3] = [
    ("lenet-relu-avg", include_str!("snapshots/layers_costs__lenet_forward_batch1.snap")),
    ("alexnet-cifar10-avg", include_str!("snapshots/layers_costs__alexnet-cifar10-avg_forward_batch1.snap")),
    ("vgg16-cifar10-avg", include_str!("snapshots/layers_costs__vgg16-cifar10-avg_forward_batch1.snap")),
];

/// Every model of the zoo with its training batch (the paper's where it has one, else 1).
fn zoo() -> Vec<(Graph, usize)> {
    let mut v = Vec::new();
    for a in [Activation::Relu, Activation::Tanh] {
        let p = if a == Activation::Relu { Pooling::Avg } else { Pooling::Max };
        v.push((lenet(a, p), 128));
        v.push((lenet5(a, p), 128));
    }
    v.push((alexnet(Dataset::Cifar10, Pooling::Avg), 128));
    v.push((alexnet(Dataset::TinyImageNet, Pooling::Avg), 128));
    v.push((alexnet(Dataset::ImageNet, Pooling::Avg), 1));
    v.push((vgg16(Dataset::Cifar10, Pooling::Avg), 32));
    v.push((vgg16(Dataset::TinyImageNet, Pooling::Avg), 8));
    v.push((vgg16(Dataset::ImageNet, Pooling::Avg), 1));
    v.push((resnet(50, Dataset::Cifar10, Pooling::Avg), 1));
    for depth in [50, 101, 152] {
        v.push((resnet(depth, Dataset::ImageNet, Pooling::Avg), 1));
    }
    v
}

#[test]
fn lenet_forward_cost_table() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let t = layer_cost_table(&net, &costs(1, false), "forward", &[]);
    println!("{t}");
    insta::assert_snapshot!("lenet_forward_batch1", t);
}

#[test]
fn lenet_training_step_cost_table() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let c = costs(2, true);
    let t = format!(
        "{}\n{}",
        layer_cost_table(&net, &c, "forward", &["loss", "sgd"]),
        layer_cost_table(&net, &c, "backward", &[])
    );
    println!("{t}");
    insta::assert_snapshot!("lenet_training_step_batch2", t);
}

#[test]
fn alexnet_and_vgg16_cifar10_forward_cost_tables() {
    for net in [alexnet(Dataset::Cifar10, Pooling::Avg), vgg16(Dataset::Cifar10, Pooling::Avg)] {
        let t = layer_cost_table(&net, &model_costs(&net, 1, false), "forward", &[]);
        println!("{t}");
        insta::assert_snapshot!(format!("{}_forward_batch1", net.name), t);
    }
}

/// A small network with every kind of layer the zoo's ResNets add: batch norm and residual
/// blocks (identity and projection shortcuts).
fn tiny_resnet() -> Graph {
    let conv = |in_c, out_c, k, stride, pad| Op::Conv(ConvSpec::square(in_c, out_c, k, stride, pad, false));
    let bn = |c| Op::BatchNorm { c };
    let mut c = Chain::new("tiny-resnet", &[3, 8, 8]);
    c.extend([conv(3, 4, 3, 1, 1), bn(4), Op::Relu]);
    c.residual(vec![conv(4, 4, 3, 1, 1), bn(4), Op::Relu, conv(4, 4, 3, 1, 1), bn(4)], vec![]);
    c.push(Op::Relu);
    c.residual(vec![conv(4, 8, 3, 2, 1), bn(8)], vec![conv(4, 8, 1, 2, 0), bn(8)]);
    c.extend([
        Op::Relu,
        Op::AvgPool(PoolSpec::square(4, 4, 0)),
        Op::Flatten,
        Op::Linear { inp: 8, out: 10, bias: true },
    ]);
    c.finish().unwrap()
}

#[test]
fn dry_run_is_faithful() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    // The whole cost tree (every scope, bytes both ways, rounds) of the CPU run and the dry
    // run agree, for inference and for training...
    let dry = dry_costs(&net, 1, false);
    assert_eq!(dry, costs(1, false));
    assert_eq!(dry_costs(&net, 2, true), costs(2, true));
    // ...and the dry table is the committed CPU snapshot.
    assert_eq!(forward_table(&net, &dry), snapshot_body(CPU_SNAPSHOTS[0].1));
    // The same for tanh and max pooling, and for batch norm (the inference pass after the
    // first, which folds) and residual blocks.
    for net in [lenet(Activation::Tanh, Pooling::Max), tiny_resnet()] {
        for (batch, train) in [(1, false), (2, true)] {
            assert_eq!(dry_costs(&net, batch, train), model_costs(&net, batch, train), "{} {train}", net.name);
        }
    }
    // The zero weights have the sizes of the real ones.
    let lens = |w: Vec<Vec<f64>>| w.iter().map(Vec::len).collect::<Vec<_>>();
    for net in [net, tiny_resnet()] {
        assert_eq!(lens(zero_weights(&net)), lens(net.init_weights(1)));
    }
}

#[test]
fn dry_zoo_forward_cost_tables() {
    for (net, _) in zoo() {
        let trainable = net.tensors().iter().filter(|t| t.trainable).map(|t| t.shape.iter().product::<usize>()).sum();
        assert_eq!(net.num_params(), trainable, "{}", net.name);
        assert_eq!(zero_weights(&net).len(), net.tensors().len(), "{}", net.name);
        let t = forward_table(&net, &dry_costs(&net, 1, false));
        println!("{t}");
        match CPU_SNAPSHOTS.iter().find(|(name, _)| *name == net.name) {
            // Pinned by the CPU run already: the dry run must agree with it.
            Some((_, snap)) => assert_eq!(t, snapshot_body(snap), "{}", net.name),
            None => insta::assert_snapshot!(format!("dry_{}_forward_batch1", net.name), t),
        }
    }
}

#[test]
fn dry_zoo_training_step_cost_tables() {
    for (net, batch) in zoo() {
        let t = training_table(&net, &dry_costs(&net, batch, true));
        println!("{t}");
        insta::assert_snapshot!(format!("dry_{}_training_step_batch{batch}", net.name), t);
    }
}
