//! Diagnostic: trains LeNet privately and its twin from the same weights on the same
//! batches, opening the private weights to the owner after every step and printing the
//! largest gap per parameter tensor, to find where and when they part.
//!
//! `cargo run --release -p triad-layers --example track_twin -- [steps] [lr] [momentum] [frac_bits]`

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{one_hot, Activation, Backend, Model, Plain, Pooling, Sgd};
use triad_ring::CpuDevice;
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, d: f64| args.get(i).copied().unwrap_or(d);
    let (steps, lr, momentum) = (arg(0, 62.0) as usize, arg(1, 0.05), arg(2, 0.9));
    let fixed = FixedConfig::new(arg(3, 20.0) as u32)?;
    let batch = 128;
    let m = Mnist::bundled()?;
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w0 = net.init_weights(42);
    let opt = Sgd { momentum, ..Sgd::new(lr) };
    let data = |s: usize| {
        let idx: Vec<usize> = (s * batch..(s + 1) * batch).map(|i| i % m.train.len()).collect();
        let x: Vec<f64> = idx.iter().flat_map(|&i| m.train.image_f64(i)).collect();
        let labels: Vec<u8> = idx.iter().map(|&i| m.train.labels[i]).collect();
        (x, one_hot(&labels, 10))
    };
    let mut twin = Model::new(&Plain, &net, P0, Some(&w0))?;
    let mut twin_w = Vec::new();
    for s in 0..steps {
        let (x, y) = data(s);
        let xs = Plain.input(P0, Some(&x), &[batch, 1, 28, 28])?;
        let ys = Plain.input(P0, Some(&y), &[batch, 10])?;
        twin.train_step(&Plain, xs, &ys, &opt)?;
        twin_w.push(twin.open_weights(&Plain, P0)?.ok_or("twin")?);
    }
    let link = LinkConfig { timeout: Duration::from_secs(600), ..LinkConfig::default() };
    run_in_process(CpuDevice, &link, fixed, |p| {
        let owner = p.id == P0;
        let mut model = Model::new(p, &net, P0, owner.then_some(&w0[..]))?;
        for s in 0..steps {
            let (x, y) = data(s);
            let xs = p.input(P0, owner.then_some(&x[..]), &[batch, 1, 28, 28])?;
            let ys = p.input(P0, owner.then_some(&y[..]), &[batch, 10])?;
            model.train_step(p, xs, &ys, &opt)?;
            if let Some(w) = model.open_weights(p, P0)? {
                let gaps: Vec<String> = w
                    .iter()
                    .zip(&twin_w[s])
                    .map(|(a, b)| format!("{:.1e}", a.iter().zip(b).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max)))
                    .collect();
                println!("step {s}: max |private - twin| per tensor: {}", gaps.join(" "));
            }
        }
        Ok(())
    })?;
    Ok(())
}
