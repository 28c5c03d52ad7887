//! Weights files in the safetensors format.
//!
//! - **Plaintext weights** (the model owner's): one `F64` (or, on input, `F32`) tensor per
//!   parameter, named `<layer>.<param>` as [`param_names`] lists them, e.g.
//!   `00_conv2d.weight`, `07_linear.bias`, `04_residual/body/01_batchnorm.gamma`.
//! - **Share checkpoints** (one file per party, `party-<N>.safetensors`): for each
//!   parameter the party's two replicated components as `U64` tensors `<name>.own` and
//!   `<name>.next`, the momentum buffer as `<name>.velocity.own` / `.next` once it exists,
//!   batch-norm running statistics as `<layer>.running_mean.own` and so on, and metadata
//!   `format = triad-shares-v2`, `model`, `party`, `step`, `frac_bits` and `run_id` (the
//!   32 hex digits of the run identifier the three parties agreed at the start of the
//!   training run, [`crate::start`]). A share file alone reveals nothing; the three files
//!   of one step together are the model.
//!
//! Both kinds are written owner-only (mode 0600) through an unpredictable temporary name
//! and renamed into place ([`crate::files`]): a share file is a third of a secret, an
//! opened weights file the owner's model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use triad_layers::{Graph, Layer, Model};
use triad_ring::{Device, Tensor};
use triad_sharing::{AShare, Party};

use crate::error::{read_err, write_err, Error, Result};
use crate::files;
use crate::start::RunId;

/// The checkpoint format tag.
pub const SHARES_FORMAT: &str = "triad-shares-v2";

/// Every parameter's and buffer's name and shape in state order (the order of
/// [`Graph::init_weights`] and [`Graph::tensors`]).
pub fn param_names(net: &Graph) -> Vec<(String, Vec<usize>)> {
    net.tensors().into_iter().map(|t| (t.name, t.shape)).collect()
}

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::Weights { path: PathBuf::from(path), detail: detail.into() }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_err(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))
}

/// Serialises `tensors` with `meta` and writes them as a private file
/// ([`files::write_private`]: mode 0600, an unpredictable temporary name, renamed over the
/// target, so an interrupted write never leaves half a file where a checkpoint was).
fn write(path: &Path, tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, meta: HashMap<String, String>) -> Result<()> {
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
/// every missing, misshapen and unexpected tensor at once.
pub fn load_plain(path: &Path, net: &Graph) -> Result<Vec<Vec<f64>>> {
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
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
        return Err(bad(path, format!("does not fit model {}: {}", net.name, problems.join("; "))));
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

/// A party's share file in a checkpoint directory.
pub fn share_path(dir: &Path, party: usize) -> PathBuf {
    dir.join(format!("party-{party}.safetensors"))
}

/// One named share slot of a model's state.
enum Slot<'a, D: Device> {
    /// A required tensor (parameter value, batch-norm statistic).
    Req(&'a mut AShare<D>),
    /// An optional tensor (momentum buffer) with the shape it must have.
    Opt(&'a mut Option<AShare<D>>, Vec<usize>),
}

fn slots<'a, D: Device>(net: &Graph, layers: &'a mut [Layer<Party<D>>], out: &mut Vec<(String, Slot<'a, D>)>) {
    for (n, l) in net.nodes.iter().zip(layers.iter_mut()) {
        let mut names = n.tensors.iter();
        for (p, name) in l.params.iter_mut().zip(names.by_ref()) {
            let dims = p.value.shape().dims().to_vec();
            out.push((name.clone(), Slot::Req(&mut p.value)));
            out.push((format!("{name}.velocity"), Slot::Opt(&mut p.velocity, dims)));
        }
        for (b, name) in l.buffers.iter_mut().zip(names) {
            out.push((name.clone(), Slot::Req(b)));
        }
    }
}

/// What a share checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// The model's name.
    pub model: String,
    /// The party that wrote it.
    pub party: usize,
    /// Training steps done.
    pub step: u64,
    /// Fractional bits of the fixed-point encoding.
    pub frac_bits: u32,
    /// The training run it belongs to.
    pub run: RunId,
    /// Whether it holds momentum state (any `<name>.velocity.own` tensor): read from the
    /// tensors themselves, not from a claim in the metadata.
    pub momentum: bool,
}

/// Writes this party's shares of the model's state, at `step` of run `run`, to
/// `dir/party-<N>.safetensors`.
pub fn save_shares<D: Device>(
    dir: &Path,
    p: &Party<D>,
    model: &mut Model<Party<D>>,
    step: u64,
    run: RunId,
) -> Result<PathBuf> {
    let path = share_path(dir, p.index());
    let mut list = Vec::new();
    slots(&model.graph, &mut model.layers, &mut list);
    let mut tensors = Vec::new();
    for (name, slot) in list {
        let s = match slot {
            Slot::Req(s) => Some(&*s),
            Slot::Opt(o, _) => o.as_ref(),
        };
        let Some(s) = s else { continue };
        for (part, t) in [("own", &s.own), ("next", &s.next)] {
            let data = t.to_vec().map_err(|e| write_err(&path, e))?;
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("{name}.{part}"), Dtype::U64, t.dims().to_vec(), bytes));
        }
    }
    let meta = HashMap::from([
        ("format".to_string(), SHARES_FORMAT.to_string()),
        ("model".into(), model.graph.name.clone()),
        ("party".into(), p.index().to_string()),
        ("step".into(), step.to_string()),
        ("frac_bits".into(), p.fixed.frac_bits.to_string()),
        ("run_id".into(), run.hex()),
    ]);
    write(&path, tensors, meta)?;
    Ok(path)
}

/// Reads the metadata of party `party`'s share file in `dir`, checking that it is a share
/// checkpoint of this party.
pub fn read_share_meta(dir: &Path, party: usize) -> Result<CheckpointMeta> {
    let path = share_path(dir, party);
    let bytes = read(&path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(&path, format!("not a safetensors file: {e}")))?;
    let m = meta.metadata().clone().unwrap_or_default();
    let get =
        |k: &str| m.get(k).cloned().ok_or_else(|| bad(&path, format!("not a triad share checkpoint (no {k:?} entry)")));
    let format = get("format")?;
    if format == "triad-shares-v1" {
        return Err(bad(&path, "is a triad-shares-v1 checkpoint, written before runs had an identifier; resume needs triad-shares-v2 (start the run again)"));
    }
    if format != SHARES_FORMAT {
        return Err(bad(&path, format!("not a triad share checkpoint (format is not {SHARES_FORMAT})")));
    }
    let num =
        |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| bad(&path, format!("metadata {k} is not a number"))) };
    let too_big = |k: &str| bad(&path, format!("metadata {k} is out of range"));
    let meta = CheckpointMeta {
        model: get("model")?,
        party: usize::try_from(num("party")?).map_err(|_| too_big("party"))?,
        step: num("step")?,
        frac_bits: u32::try_from(num("frac_bits")?).map_err(|_| too_big("frac_bits"))?,
        run: RunId::parse(&get("run_id")?).ok_or_else(|| bad(&path, "metadata run_id is not 32 hex digits"))?,
        momentum: meta.tensors().keys().any(|n| n.ends_with(".velocity.own")),
    };
    if meta.party != party {
        return Err(bad(&path, format!("holds the shares of party {}, not of party {party}", meta.party)));
    }
    Ok(meta)
}

/// [`read_share_meta`], then checks that the checkpoint holds `model` with `frac_bits`
/// fractional bits.
pub fn read_share_meta_of(dir: &Path, party: usize, model: &str, frac_bits: u32) -> Result<CheckpointMeta> {
    let meta = read_share_meta(dir, party)?;
    let path = share_path(dir, party);
    if meta.model != model {
        return Err(bad(&path, format!("holds model {}, not {model}", meta.model)));
    }
    if meta.frac_bits != frac_bits {
        return Err(bad(&path, format!("uses {} fractional bits, not {frac_bits}", meta.frac_bits)));
    }
    Ok(meta)
}

/// Replaces the model's state by this party's shares from `dir`, after checking the
/// model name, fractional bits and every tensor's shape. Returns the checkpoint's step.
pub fn load_shares<D: Device>(dir: &Path, p: &Party<D>, model: &mut Model<Party<D>>) -> Result<u64> {
    let meta = read_share_meta_of(dir, p.index(), &model.graph.name, p.fixed.frac_bits)?;
    let path = share_path(dir, p.index());
    let bytes = read(&path)?;
    let st = parse(&path, &bytes)?;
    let mut list = Vec::new();
    slots(&model.graph, &mut model.layers, &mut list);
    let mut used = 0;
    for (name, slot) in list {
        let want: Vec<usize> = match &slot {
            Slot::Req(s) => s.shape().dims().to_vec(),
            Slot::Opt(_, dims) => dims.clone(),
        };
        let mut parts = Vec::new();
        for part in ["own", "next"] {
            let tname = format!("{name}.{part}");
            let t = match st.tensor(&tname) {
                Ok(t) => t,
                Err(_) => match slot {
                    Slot::Opt(..) => break,
                    Slot::Req(_) => return Err(bad(&path, format!("tensor {tname} is missing"))),
                },
            };
            if t.dtype() != Dtype::U64 {
                return Err(bad(&path, format!("tensor {tname} is {:?}, shares are U64", t.dtype())));
            }
            if t.shape() != want.as_slice() {
                return Err(bad(&path, format!("tensor {tname} has shape {:?}, the model needs {want:?}", t.shape())));
            }
            let v: Vec<u64> =
                t.data().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
            let tensor = Tensor::from_vec(&p.dev, t.shape().to_vec(), v).map_err(|e| bad(&path, e.to_string()))?;
            parts.push(tensor);
            used += 1;
        }
        if parts.len() == 2 {
            let next = parts.pop();
            let own = parts.pop();
            if let (Some(own), Some(next)) = (own, next) {
                let share = AShare::new(own, next)?;
                match slot {
                    Slot::Req(s) => *s = share,
                    Slot::Opt(o, _) => *o = Some(share),
                }
            }
        } else if !parts.is_empty() {
            return Err(bad(&path, format!("tensor {name} has only one of its two components")));
        }
    }
    if used != st.names().len() {
        return Err(bad(&path, format!("has tensors model {} does not know", model.graph.name)));
    }
    Ok(meta.step)
}
