#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Instant;
use triad_ring::cpu::conv;
use triad_ring::Conv2dParams;
fn fill(len: usize, seed: u64) -> Vec<u64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s ^ (s >> 29)
        })
        .collect()
}
fn t(name: &str, mut f: impl FnMut()) {
    f();
    let mut v: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name}: {:.2} ms", v[4]);
}
fn main() {
    for (n, p) in [
        ("conv1x2", Conv2dParams::square(128, 2, 28, 20, 5, 1, 0)),
        ("conv2x2", Conv2dParams::square(128, 40, 12, 50, 5, 1, 0)),
        ("conv1", Conv2dParams::square(128, 1, 28, 20, 5, 1, 0)),
        ("conv2", Conv2dParams::square(128, 20, 12, 50, 5, 1, 0)),
    ] {
        let x = fill(p.input_shape().numel(), 1);
        let w = fill(p.weight_shape().numel(), 2);
        let g = fill(p.output_shape().numel(), 3);
        t(&format!("{n} fwd"), || {
            black_box(conv::forward(&x, &w, &p));
        });
        t(&format!("{n} gin"), || {
            black_box(conv::grad_input(&g, &w, &p));
        });
        t(&format!("{n} gw"), || {
            black_box(conv::grad_weight(&x, &g, &p));
        });
    }
}
