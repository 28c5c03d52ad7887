//! # triad-data: datasets
//!
//! - [`idx`]: a strict parser for the IDX format of the MNIST distribution (gzip or raw).
//! - [`npy`]: NumPy `.npy` files, read (v1 to v3, C order, little-endian floats and
//!   integers) and written (`<f8`, `<f4`, `<i8`): a model owner's inputs and outputs.
//! - [`Mnist`]: the four MNIST files of a directory, checked against each other.
//! - [`bundled_mnist_dir`]: the 10,000 real digits shipped in `datasets/mnist-10k`
//!   (8,000 train, 2,000 test), so a fresh clone trains without a download.
//!
//! Every malformed input is a typed [`DataError`] naming the file and the fault.

pub mod idx;
pub mod npy;

use std::path::{Path, PathBuf};

pub use idx::{IdxArray, IdxError};
pub use npy::{NpyArray, NpyError};

/// Errors loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid IDX.
    #[error("{path}: {source}")]
    Idx {
        /// The file.
        path: PathBuf,
        /// The fault.
        source: IdxError,
    },
    /// A file is not a `.npy` file triad reads.
    #[error("{path}: {source}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// The fault.
        source: NpyError,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Files disagree with each other or with the dataset's shape.
    #[error("{path}: {detail}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// One split of an image-classification dataset: `count` images of `rows x cols` u8
/// pixels (row-major, image after image) and their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, `count * rows * cols` bytes.
    pub pixels: Vec<u8>,
    /// Labels, one per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }
    /// Image `i` as floats in [0, 1].
    pub fn image_f64(&self, i: usize) -> Vec<f64> {
        self.image(i).iter().map(|&p| f64::from(p) / 255.0).collect()
    }
}

/// MNIST: a training and a test split of 28x28 digits labelled 0..=9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// Training split.
    pub train: ImageSet,
    /// Test split.
    pub test: ImageSet,
}

/// The directory of the digits shipped with triad (`datasets/mnist-10k`), or the
/// directory named by the environment variable `TRIAD_MNIST_DIR`.
pub fn bundled_mnist_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRIAD_MNIST_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-10k")
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(name)
    }
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<ImageSet, DataError> {
    let ip = find(dir, images);
    let lp = find(dir, labels);
    let img = idx::parse(&read(&ip)?).map_err(|source| DataError::Idx { path: ip.clone(), source })?;
    let lab = idx::parse(&read(&lp)?).map_err(|source| DataError::Idx { path: lp.clone(), source })?;
    if img.dims.len() != 3 {
        return Err(DataError::Inconsistent {
            path: ip,
            detail: format!("images need 3 dimensions, found {:?}", img.dims),
        });
    }
    if lab.dims.len() != 1 {
        return Err(DataError::Inconsistent {
            path: lp,
            detail: format!("labels need 1 dimension, found {:?}", lab.dims),
        });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::Inconsistent {
            path: lp,
            detail: format!("{} labels for {} images", lab.dims[0], img.dims[0]),
        });
    }
    if let Some(bad) = lab.data.iter().find(|&&l| l > 9) {
        return Err(DataError::Inconsistent { path: lp, detail: format!("label {bad} is not a digit") });
    }
    Ok(ImageSet { pixels: img.data, labels: lab.data, rows: img.dims[1], cols: img.dims[2] })
}

impl Mnist {
    /// Loads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
    /// and `t10k-labels-idx1-ubyte` (each optionally `.gz`) from `dir`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let train = load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
        let test = load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
        if (train.rows, train.cols) != (test.rows, test.cols) {
            return Err(DataError::Inconsistent {
                path: dir.to_path_buf(),
                detail: "train and test images differ in size".into(),
            });
        }
        Ok(Mnist { train, test })
    }
    /// The digits shipped with triad.
    pub fn bundled() -> Result<Self, DataError> {
        Self::load(&bundled_mnist_dir())
    }
}
