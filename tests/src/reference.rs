//! The PyTorch reference fixtures of `tests/fixtures/layers/` (written by
//! `tools/layer-ref/make.py`): reading them, for `tests/layers_reference.rs` (every op) and
//! `tests/training_reference.rs` (LeNet SGD steps).
#![allow(clippy::unwrap_used)]

use serde_json::Value;

/// A fixture file of `tests/fixtures/layers/`, parsed.
pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layers").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A JSON array of non-negative integers.
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// The non-negative integer `v[k]`.
pub fn field(v: &Value, k: &str) -> usize {
    v[k].as_u64().unwrap() as usize
}

/// The largest absolute difference of two equally long slices.
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
