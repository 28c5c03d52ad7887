#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};
use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Shape};
use triad_sharing::Product;
use triad_transport::LinkConfig;
fn main() {
    let link = LinkConfig { timeout: Duration::from_secs(120), ..LinkConfig::default() };
    let n = 1_000_000;
    let shape = Shape::new([n]);
    let r = triad_sharing::run_in_process_with_test_keys(CpuDevice, &link, FixedConfig::default(), 1, |p| {
        let x = p.random(&shape)?;
        let t = Instant::now();
        let b = triad_compare::msb(p, &x)?;
        let t1 = t.elapsed();
        let t = Instant::now();
        let a = triad_compare::inject_bit(p, &b, 0)?;
        let t2 = t.elapsed();
        let t = Instant::now();
        let _ = p.product(Product::Elementwise, &x, &a)?;
        let t3 = t.elapsed();
        let t = Instant::now();
        let bx = triad_sharing::BShare { own: x.own.try_clone()?, next: x.next.try_clone()? };
        let _ = triad_compare::and_packed(p, &bx, &bx, 0x2AAA_AAAA_AAAA_AAA8)?;
        let t4 = t.elapsed();
        let t = Instant::now();
        let _ = triad_compare::and_packed(p, &bx, &bx, !(1 << 63))?;
        let t5 = t.elapsed();
        Ok((t1, t2, t3, t4, t5))
    })
    .unwrap();
    println!("{r:?}");
}
