//! Diagnostic: repeats a private LeNet forward pass at batch 128 on real digits under fresh
//! keys and counts samples whose logits leave the float64 twin's by more than 1 (a share
//! truncation's large error), at the given fractional bits.
//!
//! `cargo run --release -p triad-layers --example wrap_probe -- [trials] [frac_bits]`

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{Activation, Backend, Model, Plain, Pooling};
use triad_ring::CpuDevice;
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let trials = args.first().copied().unwrap_or(10);
    let fixed = FixedConfig::new(args.get(1).copied().unwrap_or(20))?;
    let m = Mnist::bundled()?;
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w = net.init_weights(42);
    let n = 128;
    let x: Vec<f64> = (0..n).flat_map(|i| m.train.image_f64(i)).collect();
    let dims = [n, 1, 28, 28];
    let mut twin = Model::new(&Plain, &net, P0, Some(&w))?;
    let t = Plain.open(P0, &twin.forward(&Plain, Plain.input(P0, Some(&x), &dims)?)?)?.ok_or("twin")?;
    let mut bad_total = 0;
    for trial in 0..trials {
        let link = LinkConfig { timeout: Duration::from_secs(600), ..LinkConfig::default() };
        let out = run_in_process(CpuDevice, &link, fixed, |p| {
            let owner = p.id == P0;
            let mut model = Model::new(p, &net, P0, owner.then_some(&w[..]))?;
            let xs = p.input(P0, owner.then_some(&x[..]), &dims)?;
            let logits = model.forward(p, xs)?;
            p.open(P0, &logits)
        })?;
        let private = out[0].clone().ok_or("logits")?;
        let bad: Vec<usize> =
            (0..n).filter(|&i| (0..10).any(|j| (private[i * 10 + j] - t[i * 10 + j]).abs() > 1.0)).collect();
        let gap = private.iter().zip(&t).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("trial {trial}: {} samples off by more than 1 (max gap {gap:.3e})", bad.len());
        bad_total += bad.len();
    }
    println!("{bad_total} bad samples in {trials} forward passes of {n} at f = {}", fixed.frac_bits);
    Ok(())
}
