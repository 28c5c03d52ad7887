//! The data a job reads: the bundled MNIST digits (or an IDX directory), CIFAR-10 from its
//! standard binary files, or random inputs of any of the paper's dataset shapes.
//!
//! Only the data owner (party 0) loads data; the other parties learn the public sizes of
//! the splits from it at the start of the job.

use std::path::{Path, PathBuf};

use triad_layers::data::Mnist;
use triad_layers::SplitMix;

use crate::error::{read_err, Error, Result};
use crate::models::Shape;

/// Where the samples of a split come from.
#[derive(Clone, Debug)]
enum Source {
    /// `u8` pixels (scaled to `[0, 1]`) and labels.
    Pixels { pixels: Vec<u8>, labels: Vec<u8> },
    /// Uniform inputs in `[0, 1)` and uniform labels from a public seed, made on demand.
    Random { seed: u64, len: usize },
}

/// One split: samples of `sample_len` values each, with labels in `0..classes`.
#[derive(Clone, Debug)]
pub struct Split {
    source: Source,
    /// Values per sample (`C·H·W`).
    pub sample_len: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Pixels { labels, .. } => labels.len(),
            Source::Random { len, .. } => *len,
        }
    }
    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The inputs (row after row) and labels of the samples `idx`.
    pub fn batch(&self, idx: &[usize]) -> (Vec<f64>, Vec<u8>) {
        let mut x = Vec::with_capacity(idx.len() * self.sample_len);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            match &self.source {
                Source::Pixels { pixels, labels } => {
                    let px = pixels.get(i * self.sample_len..(i + 1) * self.sample_len).unwrap_or(&[]);
                    x.extend(px.iter().map(|&p| f64::from(p) / 255.0));
                    y.push(labels.get(i).copied().unwrap_or(0));
                }
                Source::Random { seed, .. } => {
                    let mut rng = SplitMix(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    x.extend((0..self.sample_len).map(|_| rng.unit()));
                    y.push((rng.next_u64() % self.classes as u64) as u8);
                }
            }
        }
        (x, y)
    }
}

/// A dataset: training and test splits of one shape.
#[derive(Clone, Debug)]
pub struct Data {
    /// What it is, for reports (`mnist (bundled)`, `cifar10 (random)`).
    pub name: String,
    /// Whether the inputs are random (accuracy is then meaningless).
    pub random: bool,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
}

/// Sizes of the random splits.
pub const RANDOM_TRAIN: usize = 10_000;

impl Data {
    /// Random inputs of `shape`: a training split of [`RANDOM_TRAIN`] and a test split of
    /// `test` samples, from a public seed.
    pub fn random(shape: Shape, seed: u64, test: usize) -> Data {
        let d = shape.zoo();
        let sample_len = d.input().iter().product();
        let split = |seed, len| Split { source: Source::Random { seed, len }, sample_len, classes: d.classes() };
        Data {
            name: format!("{} (random)", shape.as_str()),
            random: true,
            train: split(seed ^ 0x5eed_0001, RANDOM_TRAIN),
            test: split(seed ^ 0x5eed_0002, test),
        }
    }

    /// MNIST from an IDX directory, or the bundled 10,000 digits when `dir` is `None`.
    pub fn mnist(dir: Option<&Path>) -> Result<Data> {
        let (m, name) = match dir {
            Some(d) => (Mnist::load(d)?, format!("mnist ({})", d.display())),
            None => (Mnist::bundled()?, "mnist (bundled, 8000 train / 2000 test)".to_string()),
        };
        // The models take 1x28x28 digits (the loader has checked that the labels are
        // digits and that both splits have one size): say so before any party connects.
        if (m.train.rows, m.train.cols) != (28, 28) {
            return Err(Error::Dataset {
                path: PathBuf::from(dir.unwrap_or(Path::new("(bundled)"))),
                detail: format!("images are {}x{}, MNIST's are 28x28", m.train.rows, m.train.cols),
            });
        }
        let split = |s: triad_layers::data::ImageSet| Split {
            sample_len: s.rows * s.cols,
            classes: 10,
            source: Source::Pixels { pixels: s.pixels, labels: s.labels },
        };
        Ok(Data { name, random: false, train: split(m.train), test: split(m.test) })
    }

    /// CIFAR-10 from its binary distribution: `dir` holds `data_batch_1.bin` ..
    /// `data_batch_5.bin` (training; those present are used) and `test_batch.bin`, each
    /// record one label byte and 3072 pixel bytes (channel-major 3x32x32).
    pub fn cifar10(dir: &Path) -> Result<Data> {
        if !dir.is_dir() {
            return Err(read_err(dir, "not a directory (expected the CIFAR-10 binary files)"));
        }
        let mut train = (Vec::new(), Vec::new());
        let mut found = 0;
        for i in 1..=5 {
            let p = dir.join(format!("data_batch_{i}.bin"));
            if p.exists() {
                read_cifar_file(&p, &mut train.0, &mut train.1)?;
                found += 1;
            }
        }
        let test_path = dir.join("test_batch.bin");
        let mut test = (Vec::new(), Vec::new());
        read_cifar_file(&test_path, &mut test.0, &mut test.1)?;
        if found == 0 {
            return Err(read_err(&dir.join("data_batch_1.bin"), "no CIFAR-10 training file (data_batch_*.bin)"));
        }
        let split = |(pixels, labels): (Vec<u8>, Vec<u8>)| Split {
            sample_len: 3072,
            classes: 10,
            source: Source::Pixels { pixels, labels },
        };
        Ok(Data { name: format!("cifar10 ({})", dir.display()), random: false, train: split(train), test: split(test) })
    }
}

/// Appends the records of one CIFAR-10 binary file.
fn read_cifar_file(path: &Path, pixels: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
    const REC: usize = 1 + 3072;
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let bad = |detail: String| Error::Dataset { path: PathBuf::from(path), detail };
    if bytes.is_empty() || bytes.len() % REC != 0 {
        return Err(bad(format!(
            "{} bytes is not a whole number of CIFAR-10 records (1 label byte + 3072 pixel bytes each)",
            bytes.len()
        )));
    }
    for (i, rec) in bytes.chunks_exact(REC).enumerate() {
        let label = rec[0];
        if label > 9 {
            return Err(bad(format!("record {i} has label {label}; CIFAR-10 labels are 0 to 9")));
        }
        labels.push(label);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// A public shuffle of `0..n` from `seed` (Fisher–Yates with splitmix64).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix(seed);
    for i in (1..n).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}
