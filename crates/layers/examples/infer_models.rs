//! Private inference at batch 1 for every model of the zoo, on random inputs of its
//! dataset's shape (the paper's timing setting), three parties in one process on the CPU.
//! Prints, per model: the time of the private forward pass, the bytes each party sent, the
//! rounds (latency, as causal depth), and — where the plaintext twin is run — the largest
//! difference between the private logits (opened to the model owner) and the twin's.
//!
//! ```text
//! cargo run --release -p triad-layers --example infer_models -- [filter] [--twin | --no-twin]
//! ```
//! `filter` keeps models whose name contains it. The twin (naive float64 loops) runs by
//! default for the MNIST and CIFAR-10 models only; `--twin` forces it everywhere.

use std::time::{Duration, Instant};

use triad_fixed::FixedConfig;
use triad_layers::zoo::{alexnet, lenet, resnet, vgg16, Dataset};
use triad_layers::{Activation, Backend, Graph, Model, Plain, Pooling, SplitMix};
use triad_ring::CpuDevice;
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn models() -> Vec<(Graph, Dataset)> {
    let mut v = vec![(lenet(Activation::Relu, Pooling::Avg), Dataset::Mnist)];
    for d in [Dataset::Cifar10, Dataset::TinyImageNet, Dataset::ImageNet] {
        v.push((alexnet(d, Pooling::Avg), d));
        v.push((vgg16(d, Pooling::Avg), d));
    }
    for depth in [50, 101, 152] {
        v.push((resnet(depth, Dataset::ImageNet, Pooling::Avg), Dataset::ImageNet));
    }
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default();
    let force_twin = args.iter().any(|a| a == "--twin");
    let no_twin = args.iter().any(|a| a == "--no-twin");
    println!(
        "| model | input | private forward (s) | MB sent per party (0 / 1 / 2) | rounds | max |private - twin| logit |"
    );
    println!("|---|---|---:|---|---:|---:|");
    for (net, d) in models() {
        if !net.name.contains(&filter) {
            continue;
        }
        let dims: Vec<usize> = std::iter::once(1).chain(net.input().iter().copied()).collect();
        let numel: usize = dims.iter().product();
        let mut rng = SplitMix(9);
        let x: Vec<f64> = (0..numel).map(|_| rng.unit()).collect();
        let w = net.init_weights(3);
        let link = LinkConfig { timeout: Duration::from_secs(3600), ..LinkConfig::default() };
        let out = run_in_process(CpuDevice, &link, FixedConfig::default(), |p| {
            let owner = p.id == P0;
            let mut model = Model::new(p, &net, P0, owner.then_some(&w[..]))?;
            model.train = false;
            let xs = p.input(P0, owner.then_some(&x[..]), &dims)?;
            p.net.barrier()?;
            p.net.reset_costs();
            let t = Instant::now();
            let logits = model.forward(p, xs)?;
            let secs = t.elapsed().as_secs_f64();
            let cost = p.net.costs().total();
            let opened = p.open(P0, &logits)?;
            Ok((secs, cost, opened))
        })?;
        let secs = out.iter().map(|o| o.0).fold(0.0, f64::max);
        let mb: Vec<String> = out.iter().map(|o| format!("{:.1}", o.1.bytes_sent as f64 / 1e6)).collect();
        let rounds = out.iter().map(|o| o.1.rounds).max().unwrap_or(0);
        let private = out[0].2.clone().ok_or("party 0 got no logits")?;
        let twin = force_twin || (!no_twin && matches!(d, Dataset::Mnist | Dataset::Cifar10));
        let diff = if twin {
            let mut m = Model::new(&Plain, &net, P0, Some(&w))?;
            m.train = false;
            let logits = m.forward(&Plain, Plain.input(P0, Some(&x), &dims)?)?;
            let t = Plain.open(P0, &logits)?.ok_or("twin logits")?;
            let d = private.iter().zip(&t).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            format!("{d:.2e}")
        } else {
            "(not run)".to_string()
        };
        println!(
            "| {} | {} | {secs:.2} | {} | {rounds} | {diff} |",
            net.name,
            net.input().iter().map(|v| v.to_string()).collect::<Vec<_>>().join("x"),
            mb.join(" / ")
        );
    }
    Ok(())
}
