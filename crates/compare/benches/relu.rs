//! ReLU on 10^5 and 10^6 elements, three parties in process: time, rounds and bytes sent
//! per element per party, as a markdown table.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_transport::{LinkConfig, PartyId};

fn main() {
    let link = LinkConfig { timeout: Duration::from_secs(120), ..LinkConfig::default() };
    println!("| elements | time (ms) | rounds | bytes / element / party (max) |");
    println!("|---:|---:|---:|---:|");
    for n in [100_000usize, 1_000_000] {
        let shape = Shape::new([n]);
        let res = triad_sharing::run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), 1, |p| {
            let owner = PartyId::ALL[0];
            let x = if p.id == owner {
                let v: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2).collect();
                Some(Tensor::from_vec(&p.dev, shape.clone(), v)?)
            } else {
                None
            };
            let xs = p.share_input(owner, x.as_ref(), &shape)?;
            p.net.reset_costs();
            let t = Instant::now();
            let r = triad_compare::relu(p, &xs)?;
            let el = t.elapsed();
            drop(r);
            Ok((el, p.net.costs().total()))
        })
        .unwrap();
        let time = res.iter().map(|r| r.0).max().unwrap();
        let rounds = res.iter().map(|r| r.1.rounds).max().unwrap();
        let bytes = res.iter().map(|r| r.1.bytes_sent).max().unwrap() as f64 / n as f64;
        println!("| {n} | {:.1} | {rounds} | {bytes:.2} |", time.as_secs_f64() * 1e3);
    }
}
