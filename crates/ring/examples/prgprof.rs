use std::time::Instant;
use triad_ring::prg::{fill_words, PrgKey};
fn main() {
    let key = PrgKey::from_bytes([7u8; 32]);
    for len in [1usize << 14, 1 << 22] {
        let mut out = vec![0u64; len];
        fill_words(&key, 1, 0, &mut out);
        let reps = (1usize << 26) / len;
        let t = Instant::now();
        for i in 0..reps {
            fill_words(&key, 1, (i * len) as u64, &mut out);
        }
        let s = t.elapsed().as_secs_f64();
        println!("prg len {len}: {:.2} GB/s single thread", (reps * len * 8) as f64 / s / 1e9);
        let t = Instant::now();
        for i in 0..reps {
            out.fill(i as u64);
            std::hint::black_box(&out);
        }
        let s = t.elapsed().as_secs_f64();
        println!("fill len {len}: {:.2} GB/s single thread", (reps * len * 8) as f64 / s / 1e9);
    }
}
