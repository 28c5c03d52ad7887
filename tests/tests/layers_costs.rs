//! Communication per layer of LeNet (ReLU, average pooling): a forward pass at the
//! paper's inference batch (1) and one training step at batch 2 (costs of matmuls,
//! convolutions and comparisons grow linearly with the batch; rounds do not). Snapshots
//! make any change in communication a visible diff.
#![allow(clippy::unwrap_used)]

use triad_layers::zoo::lenet;
use triad_layers::{layer_cost_table, Activation, Backend, Model, Pooling, Sgd};
use triad_transport::{CostTable, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn costs(batch: usize, train: bool) -> [CostTable; 3] {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w = net.init_weights(1);
    let x: Vec<f64> = (0..batch * 784).map(|i| (i % 17) as f64 / 17.0).collect();
    let y = triad_layers::one_hot(&vec![3u8; batch], 10);
    triad_tests::parties::in_process(9, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, &net, P0, owner.then_some(&w[..]))?;
        let xs = p.input(P0, owner.then_some(&x[..]), &[batch, 1, 28, 28])?;
        let ys = p.input(P0, owner.then_some(&y[..]), &[batch, 10])?;
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
