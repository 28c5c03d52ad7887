//! Weights files in the safetensors format.
//!
//! - **Plaintext weights** (the model owner's): one `F64` (or, on input, `F32`) tensor per
//!   parameter, named `<layer>.<param>` as [`param_names`] lists them, e.g.
//!   `00_conv2d.weight`, `07_linear.bias`, `04_residual/body/01_batchnorm.gamma`.
//! - **Share checkpoints**, one file per party: see [`crate::checkpoint`].
//!
//! Both are written owner-only (mode 0600) through an unpredictable temporary name and
//! renamed into place ([`crate::files`]): an opened weights file is the owner's model, a
//! share file a third of a secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use triad_layers::Graph;

use crate::error::{read_err, write_err, Error, Result};
use crate::files;

/// Every parameter's and buffer's name and shape in state order (the order of
/// [`Graph::init_weights`] and [`Graph::tensors`]).
pub fn param_names(net: &Graph) -> Vec<(String, Vec<usize>)> {
    net.tensors().into_iter().map(|t| (t.name, t.shape)).collect()
}

/// A weights or checkpoint file's error. Its detail quotes the file (tensor names, the
/// `model` metadata, the safetensors parser's message, which quotes the header): control
/// characters there are escaped, so a crafted name cannot break the error's one line.
pub(crate) fn bad(path: &Path, detail: impl Into<String>) -> Error {
    let mut escaped = String::new();
    for c in detail.into().chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Error::Weights { path: PathBuf::from(path), detail: escaped }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_err(path, e))
}

pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))
}

/// Serialises `tensors` with `meta` and writes them as a private file
/// ([`files::write_private`]: mode 0600, an unpredictable temporary name, renamed over the
/// target, so an interrupted write never leaves half a file where a checkpoint was).
pub(crate) fn write(
    path: &Path,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(n, dt, s, d)| TensorView::new(*dt, s.clone(), d).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| write_err(path, e))?;
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| write_err(path, e))?;
    files::write_private(path, &bytes)
}

/// Reads plaintext weights for `net` from a safetensors file, checking that every
/// parameter and buffer is there with its shape and nothing else is. A mismatch lists
/// every missing, misshapen and unexpected tensor at once. A file triad wrote for another
/// model (its `model` metadata) is refused in one line, even where names and shapes
/// happen to fit; [`load_plain_forced`] loads it anyway.
pub fn load_plain(path: &Path, net: &Graph) -> Result<Vec<Vec<f64>>> {
    load_plain_checked(path, net, false)
}

/// [`load_plain`] without the model-name check (`--force-weights`): every tensor name
/// and shape must still fit.
pub fn load_plain_forced(path: &Path, net: &Graph) -> Result<Vec<Vec<f64>>> {
    load_plain_checked(path, net, true)
}

fn load_plain_checked(path: &Path, net: &Graph, force: bool) -> Result<Vec<Vec<f64>>> {
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
    let meta = SafeTensors::read_metadata(&bytes).ok().and_then(|(_, m)| m.metadata().clone());
    let saved_for = meta.as_ref().and_then(|m| m.get("model")).filter(|m| **m != net.name).cloned();
    let expected = param_names(net);
    let mut out = Vec::with_capacity(expected.len());
    let mut problems = Vec::new();
    for (name, shape) in &expected {
        let Ok(t) = st.tensor(name) else {
            problems.push(format!("missing {name} {shape:?}"));
            continue;
        };
        if t.shape() != shape.as_slice() {
            problems.push(format!("{name} has shape {:?}, the model needs {shape:?}", t.shape()));
            continue;
        }
        out.push(floats(path, name, &t)?);
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&str> = st.names().into_iter().filter(|n| !known.contains(n)).collect();
    extra.sort_unstable();
    problems.extend(extra.iter().map(|n| format!("unexpected {n}")));
    if !problems.is_empty() {
        let other = saved_for.map(|m| format!(" (it was saved for model {m})")).unwrap_or_default();
        return Err(bad(path, format!("does not fit model {}: {}{other}", net.name, problems.join("; "))));
    }
    if let (Some(saved), false) = (saved_for, force) {
        return Err(bad(
            path,
            format!(
                "was saved for model {saved}, not {} (--force-weights loads it anyway: every tensor fits)",
                net.name
            ),
        ));
    }
    Ok(out)
}

/// A plaintext tensor's values as `f64` (from `F64` or `F32`), all finite.
fn floats(path: &Path, name: &str, t: &TensorView<'_>) -> Result<Vec<f64>> {
    let v: Vec<f64> = match t.dtype() {
        Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
        Dtype::F32 => {
            t.data().chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))).collect()
        }
        other => return Err(bad(path, format!("tensor {name} is {other:?}; plaintext weights must be F32 or F64"))),
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(bad(path, format!("tensor {name} has a non-finite value at element {i}")));
    }
    Ok(v)
}

/// Writes plaintext weights (in parameter order) as `F64` tensors.
pub fn save_plain(path: &Path, net: &Graph, weights: &[Vec<f64>]) -> Result<()> {
    let names = param_names(net);
    if names.len() != weights.len() {
        return Err(Error::Usage(format!("{} weights for {} parameters", weights.len(), names.len())));
    }
    let tensors = names
        .into_iter()
        .zip(weights)
        .map(|((n, s), w)| (n, Dtype::F64, s, w.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let meta =
        HashMap::from([("format".to_string(), "triad-plain-v1".to_string()), ("model".into(), net.name.clone())]);
    write(path, tensors, meta)
}
