//! Weights files in the safetensors format.
//!
//! - **Plaintext weights** (the model owner's): one `F64` (or, on input, `F32`) tensor per
//!   parameter, named `<layer>.<param>` as [`param_names`] lists them, e.g.
//!   `00_conv2d.weight`, `07_linear.bias`, `04_residual/body/01_batchnorm.gamma`.
//! - **Share checkpoints** (one file per party, `party-<N>.safetensors`): for each
//!   parameter the party's two replicated components as `U64` tensors `<name>.own` and
//!   `<name>.next`, the momentum buffer as `<name>.velocity.own` / `.next` once it exists,
//!   batch-norm running statistics as `<layer>.running_mean.own` and so on, and metadata
//!   `format = triad-shares-v1`, `model`, `party`, `step`, `frac_bits`. A share file alone
//!   reveals nothing; the three files of one step together are the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use triad_layers::{layer_name, Layer, LayerSpec, Model, Net};
use triad_ring::{Device, Tensor};
use triad_sharing::{AShare, Party};

use crate::error::{read_err, write_err, Error, Result};

/// The checkpoint format tag.
pub const SHARES_FORMAT: &str = "triad-shares-v1";

fn own_names(spec: &LayerSpec) -> (&'static [&'static str], &'static [&'static str]) {
    match spec {
        LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. } => (&["weight", "bias"], &[]),
        LayerSpec::BatchNorm { .. } => (&["gamma", "beta"], &["running_mean", "running_var"]),
        _ => (&[], &[]),
    }
}

/// Every parameter's name and shape in parameter order (the order of
/// [`Net::init_weights`] and [`Model::params`]).
pub fn param_names(net: &Net) -> Vec<(String, Vec<usize>)> {
    fn walk(prefix: &str, layers: &[LayerSpec], out: &mut Vec<(String, Vec<usize>)>) {
        for (i, l) in layers.iter().enumerate() {
            let name = format!("{prefix}{}", layer_name(i, l));
            let (names, _) = own_names(l);
            for (s, n) in l.param_shapes().into_iter().zip(names) {
                out.push((format!("{name}.{n}"), s));
            }
            if let LayerSpec::Residual { body, shortcut } = l {
                walk(&format!("{name}/body/"), body, out);
                walk(&format!("{name}/shortcut/"), shortcut, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", &net.layers, &mut out);
    out
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

fn write(path: &Path, tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, meta: HashMap<String, String>) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(n, dt, s, d)| TensorView::new(*dt, s.clone(), d).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| write_err(path, e))?;
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| write_err(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    }
    // Written beside the target, then renamed over it: an interrupted write never leaves a
    // half file where a checkpoint was (`--resume ck --checkpoint ck`).
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| write_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(path, e))
}

/// Reads plaintext weights for `net` from a safetensors file, checking that every
/// parameter is there with its shape and nothing else is. The error names the first
/// tensor that does not fit.
pub fn load_plain(path: &Path, net: &Net) -> Result<Vec<Vec<f64>>> {
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
    let expected = param_names(net);
    let mut out = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let t = st.tensor(name).map_err(|_| {
            bad(path, format!("does not fit model {}: tensor {name} (shape {shape:?}) is missing", net.name))
        })?;
        if t.shape() != shape.as_slice() {
            return Err(bad(
                path,
                format!(
                    "does not fit model {}: tensor {name} has shape {:?}, the model needs {shape:?}",
                    net.name,
                    t.shape()
                ),
            ));
        }
        let v: Vec<f64> = match t.dtype() {
            Dtype::F64 => {
                t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
            }
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
            other => {
                return Err(bad(path, format!("tensor {name} is {other:?}; plaintext weights must be F32 or F64")))
            }
        };
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(bad(path, format!("tensor {name} has a non-finite value at element {i}")));
        }
        out.push(v);
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&str> = st.names().into_iter().filter(|n| !known.contains(n)).collect();
    extra.sort_unstable();
    if let Some(n) = extra.first() {
        return Err(bad(path, format!("does not fit model {}: it has no parameter {n}", net.name)));
    }
    Ok(out)
}

/// Writes plaintext weights (in parameter order) as `F64` tensors.
pub fn save_plain(path: &Path, net: &Net, weights: &[Vec<f64>]) -> Result<()> {
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

fn slots<'a, D: Device>(prefix: &str, layers: &'a mut [Layer<Party<D>>], out: &mut Vec<(String, Slot<'a, D>)>) {
    for l in layers.iter_mut() {
        let name = format!("{prefix}{}", l.name);
        let (pnames, bnames) = own_names(&l.spec);
        for (p, n) in l.params.iter_mut().zip(pnames) {
            let dims = p.value.shape().dims().to_vec();
            out.push((format!("{name}.{n}"), Slot::Req(&mut p.value)));
            out.push((format!("{name}.{n}.velocity"), Slot::Opt(&mut p.velocity, dims)));
        }
        for (b, n) in l.buffers.iter_mut().zip(bnames) {
            out.push((format!("{name}.{n}"), Slot::Req(b)));
        }
        let child = format!("{name}/");
        slots(&child, &mut l.body, out);
        slots(&child, &mut l.shortcut, out);
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
}

/// Writes this party's shares of the model's state to `dir/party-<N>.safetensors`.
pub fn save_shares<D: Device>(dir: &Path, p: &Party<D>, model: &mut Model<Party<D>>, step: u64) -> Result<PathBuf> {
    let path = share_path(dir, p.index());
    let mut list = Vec::new();
    slots("", &mut model.layers, &mut list);
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
        ("model".into(), model.net.name.clone()),
        ("party".into(), p.index().to_string()),
        ("step".into(), step.to_string()),
        ("frac_bits".into(), p.fixed.frac_bits.to_string()),
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
    if get("format")? != SHARES_FORMAT {
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
    };
    if meta.party != party {
        return Err(bad(&path, format!("holds the shares of party {}, not of party {party}", meta.party)));
    }
    Ok(meta)
}

/// Replaces the model's state by this party's shares from `dir`, after checking the
/// model name, fractional bits and every tensor's shape. Returns the checkpoint's step.
pub fn load_shares<D: Device>(dir: &Path, p: &Party<D>, model: &mut Model<Party<D>>) -> Result<u64> {
    let meta = read_share_meta(dir, p.index())?;
    let path = share_path(dir, p.index());
    if meta.model != model.net.name {
        return Err(bad(&path, format!("holds model {}, not {}", meta.model, model.net.name)));
    }
    if meta.frac_bits != p.fixed.frac_bits {
        return Err(bad(&path, format!("uses {} fractional bits, not {}", meta.frac_bits, p.fixed.frac_bits)));
    }
    let bytes = read(&path)?;
    let st = parse(&path, &bytes)?;
    let mut list = Vec::new();
    slots("", &mut model.layers, &mut list);
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
        return Err(bad(&path, format!("has tensors model {} does not know", model.net.name)));
    }
    Ok(meta.step)
}
