//! Trains LeNet (ReLU, average pooling) privately on the bundled MNIST digits (8,000
//! train, 2,000 test), next to its plaintext twin from the same initial weights on the
//! same batch order, and prints both test accuracies after every epoch.
//!
//! Images, labels and weights are secret-shared by party 0; at the end of each epoch the
//! weights are opened to party 0 (the model owner) for the test evaluation, which runs in
//! plaintext there.
//!
//! ```text
//! cargo run --release -p triad-layers --example train_lenet -- [epochs] [batch] [lr] [max_steps] [momentum] [frac_bits]
//! ```
//! Defaults: 1 epoch, batch 128, lr 0.1, every step (max_steps limits the steps per epoch
//! for a quick look), momentum 0, 20 fractional bits. `TRIAD_TWIN_ONLY=1` trains only the plaintext twin (to
//! choose hyperparameters quickly).

use std::time::{Duration, Instant};

use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{argmax_rows, one_hot, Activation, Backend, Graph, Model, Plain, Pooling, Sgd};
use triad_ring::CpuDevice;
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

const P0: PartyId = PartyId::ALL[0];

fn images(set: &triad_layers::data::ImageSet, idx: &[usize]) -> Vec<f64> {
    idx.iter().flat_map(|&i| set.image_f64(i)).collect()
}

fn accuracy(net: &Graph, w: &[Vec<f64>], m: &Mnist) -> Result<f64, triad_sharing::Error> {
    let b = Plain;
    let mut model = Model::new(&b, net, P0, Some(w))?;
    model.train = false;
    let mut right = 0;
    let n = m.test.len();
    for start in (0..n).step_by(250) {
        let idx: Vec<usize> = (start..(start + 250).min(n)).collect();
        let x = b.input(P0, Some(&images(&m.test, &idx)), &[idx.len(), 1, 28, 28])?;
        let pred = argmax_rows(&model.forward(&b, x)?.data, 10);
        right += idx.iter().zip(pred).filter(|(&i, p)| m.test.labels[i] as usize == *p).count();
    }
    Ok(right as f64 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (epochs, batch, lr) = (arg(1, 1.0) as usize, arg(2, 128.0) as usize, arg(3, 0.1));
    let mnist = Mnist::bundled()?;
    let steps = (mnist.train.len() / batch).min(arg(4, f64::MAX) as usize);
    let net = lenet(Activation::Relu, Pooling::Avg);
    let w0 = net.init_weights(42);
    let opt = Sgd { momentum: arg(5, 0.0), ..Sgd::new(lr) };
    let twin_only = std::env::var_os("TRIAD_TWIN_ONLY").is_some();
    let fixed = FixedConfig::new(arg(6, 20.0) as u32)?;
    // A fixed, public batch order (a shuffle by a public seed).
    let mut order: Vec<usize> = (0..mnist.train.len()).collect();
    let mut rng = triad_layers::SplitMix(7);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    println!(
        "LeNet (ReLU, avg pool), {steps} steps of batch {batch} per epoch, lr {lr}, momentum {}, {} fractional bits",
        opt.momentum, fixed.frac_bits
    );
    // The twin first: all epochs, keeping its weights after each.
    let mut twin = Model::new(&Plain, &net, P0, Some(&w0))?;
    let mut twin_acc = Vec::new();
    let t = Instant::now();
    for _ in 0..epochs {
        for s in 0..steps {
            let idx = &order[s * batch..(s + 1) * batch];
            let labels: Vec<u8> = idx.iter().map(|&i| mnist.train.labels[i]).collect();
            let x = Plain.input(P0, Some(&images(&mnist.train, idx)), &[batch, 1, 28, 28])?;
            let y = Plain.input(P0, Some(&one_hot(&labels, 10)), &[batch, 10])?;
            twin.train_step(&Plain, x, &y, &opt)?;
        }
        let w_twin = twin.open_weights(&Plain, P0)?.ok_or("twin weights")?;
        twin_acc.push(accuracy(&net, &w_twin, &mnist)?);
    }
    let t_twin = t.elapsed();
    if twin_only {
        for (e, a) in twin_acc.iter().enumerate() {
            println!("epoch {}: twin {:.2}%", e + 1, 100.0 * a);
        }
        println!("twin: {t_twin:.0?}");
        return Ok(());
    }
    // The private model: one three-party session for every epoch (the momentum carries over,
    // as the twin's does). After each epoch the weights are opened to the model owner, party
    // 0, which evaluates them on the test set in plaintext.
    let link = LinkConfig { timeout: Duration::from_secs(600), ..LinkConfig::default() };
    let t = Instant::now();
    run_in_process(CpuDevice, &link, fixed, |p| {
        let owner = p.id == P0;
        let mut m = Model::new(p, &net, P0, owner.then_some(&w0[..]))?;
        for epoch in 1..=epochs {
            for s in 0..steps {
                let idx = &order[s * batch..(s + 1) * batch];
                let labels: Vec<u8> = idx.iter().map(|&i| mnist.train.labels[i]).collect();
                let xd = owner.then(|| images(&mnist.train, idx));
                let yd = owner.then(|| one_hot(&labels, 10));
                let x = p.input(P0, xd.as_deref(), &[batch, 1, 28, 28])?;
                let y = p.input(P0, yd.as_deref(), &[batch, 10])?;
                m.train_step(p, x, &y, &opt)?;
                if owner && (s + 1) % 10 == 0 {
                    eprintln!("  epoch {epoch}: private step {}/{steps}", s + 1);
                }
            }
            if let Some(w) = m.open_weights(p, P0)? {
                let acc = accuracy(&net, &w, &mnist)?;
                println!(
                    "epoch {epoch}: private test accuracy {:.2}%  twin {:.2}%  (private {:.0?} so far, twin {t_twin:.0?} for all epochs)",
                    100.0 * acc,
                    100.0 * twin_acc[epoch - 1],
                    t.elapsed()
                );
            }
        }
        Ok(())
    })?;
    Ok(())
}
