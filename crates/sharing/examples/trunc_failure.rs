//! Measures how often ABY3 share truncation makes a large error, and that wrap-free
//! truncation (`Rounding::WrapFree`) makes none, through the real protocols (three parties
//! in process, keys from the OS).
//!
//! `cargo run --release -p triad-sharing --example trunc_failure -- [total] [batch]`
//! (defaults: 10^8 truncations in batches of 2^20).
//!
//! For each magnitude class `2^k` it shares values uniform in `(-2^k, 2^k)`, truncates by
//! f = 20 bits, opens the result (a measurement harness: nothing here is secret) and
//! counts results off by more than one unit from `x >> 20`. The theory says a large error
//! happens with probability about `|x| / 2^64` (the two parts of the 2-out-of-2 sharing
//! wrap), i.e. `2^(k-1) / 2^64` on average for this distribution; wrap-free truncation is
//! exact up to one unit for every `|x| < 2^62`.

use std::time::Instant;

use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape, Tensor};
use triad_sharing::{run_in_process, Result, Rounding};
use triad_transport::{LinkConfig, PartyId};

fn main() -> Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(100_000_000);
    let batch = args.get(1).copied().unwrap_or(1 << 20) as usize;
    let fixed = FixedConfig::default();
    let f = fixed.frac_bits;
    println!(
        "| magnitude |x| < | truncations | large errors | measured rate | predicted rate | wrap-free large errors |"
    );
    println!("|---|---|---|---|---|---|");
    for k in [30u32, 40, 44, 48, 56, 61] {
        let start = Instant::now();
        let batches = total.div_ceil(batch as u64);
        let link = LinkConfig::default();
        let [(errors, wf_errors), _, _] = run_in_process(CpuDevice, &link, fixed, |p| {
            let shape = Shape::new([batch]);
            let (mut errors, mut wf_errors) = (0u64, 0u64);
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(k);
            for _ in 0..batches {
                // Party 0 owns the inputs: a cheap xorshift source is enough here.
                let xs: Vec<u64> = (0..batch)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let m = (state >> (64 - k - 1)) as i64 - (1i64 << k);
                        m as u64
                    })
                    .collect();
                let plain = Tensor::from_vec(&p.dev, shape.clone(), xs.clone())?;
                let owner = PartyId::ALL[0];
                let x = p.share_input(owner, (p.id == owner).then_some(&plain), &shape)?;
                let t = p.truncate_share(&x, f)?;
                let opened = p.reveal_all(&t)?.to_vec()?;
                let wf = p.truncate_with(&x, f, Rounding::WrapFree)?;
                let wf_opened = p.reveal_all(&wf)?.to_vec()?;
                for ((o, w), x) in opened.iter().zip(&wf_opened).zip(&xs) {
                    let want = (*x as i64) >> f;
                    errors += u64::from((*o as i64).wrapping_sub(want).unsigned_abs() > 1);
                    wf_errors += u64::from((*w as i64).wrapping_sub(want).unsigned_abs() > 1);
                }
            }
            Ok((errors, wf_errors))
        })?;
        let n = batches * batch as u64;
        let predicted = 2f64.powi(k as i32 - 1) / 2f64.powi(64);
        println!("| 2^{k} | {n} | {errors} | {:.2e} | {:.2e} | {wf_errors} |", errors as f64 / n as f64, predicted);
        eprintln!("  (2^{k}: {:.1} s)", start.elapsed().as_secs_f64());
    }
    Ok(())
}
