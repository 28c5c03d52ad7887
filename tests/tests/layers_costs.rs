//! Communication per layer: LeNet (ReLU, average pooling) for a forward pass at the paper's
//! inference batch (1) and one training step at batch 2 (costs of matmuls, convolutions and
//! comparisons grow linearly with the batch; rounds do not); AlexNet and VGG-16 on CIFAR-10
//! for a forward pass at batch 1. Snapshots make any change in communication a visible diff.
#![allow(clippy::unwrap_used)]

use triad_layers::zoo::{alexnet, lenet, vgg16, Dataset};
use triad_layers::{layer_cost_table, Activation, Backend, Model, Net, Pooling, Sgd};
use triad_transport::{CostTable, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn costs(batch: usize, train: bool) -> [CostTable; 3] {
    model_costs(&lenet(Activation::Relu, Pooling::Avg), batch, train)
}

/// Each party's cost table of a forward pass (or a training step) of `net`, measured from
/// synchronised clocks so the maximum of the parties' rounds is the latency.
fn model_costs(net: &Net, batch: usize, train: bool) -> [CostTable; 3] {
    let w = net.init_weights(1);
    let dims: Vec<usize> = std::iter::once(batch).chain(net.input.iter().copied()).collect();
    let x: Vec<f64> = (0..dims.iter().product::<usize>()).map(|i| (i % 17) as f64 / 17.0).collect();
    let classes = net.out_dims().unwrap()[0];
    let y = triad_layers::one_hot(&vec![3u8; batch], classes);
    triad_tests::parties::in_process(9, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, net, P0, owner.then_some(&w[..]))?;
        m.train = train;
        let xs = p.input(P0, owner.then_some(&x[..]), &dims)?;
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
