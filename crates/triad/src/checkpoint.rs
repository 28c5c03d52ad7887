//! Share checkpoints: one file per party, `DIR/party-<N>.safetensors`.
//!
//! For each parameter the party's two replicated components as `U64` tensors
//! `<name>.own` and `<name>.next`, the momentum buffer as `<name>.velocity.own` / `.next`
//! once it exists, batch-norm running statistics as `<layer>.running_mean.own` and so on,
//! and metadata `format = triad-shares-v2`, `model`, `party`, `step`, `frac_bits`,
//! `run_id` (the run identifier the three parties agreed when the training run started,
//! [`crate::start`]) and `attempt_id` (the identifier of this start or resume of the run).
//! A share file alone reveals nothing; the three files of one step of one attempt
//! together are the model. Files are written mode 0600 through an unpredictable temporary
//! name and renamed into place ([`crate::files`]).
//!
//! Each save first keeps the file it replaces as `party-<N>.previous.safetensors` (a hard
//! link, so no copy). A kill can catch one party's checkpoint a step ahead of the
//! others' (it finished writing first); on `--resume` the three then fall back to the
//! latest step they all hold ([`crate::resume::agree_checkpoints`]). Shares of one step
//! from two attempts do not combine, which is why the attempt is compared too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use triad_layers::{Graph, Layer, Model};
use triad_ring::{Device, Tensor};
use triad_sharing::{AShare, Party};

use crate::error::{write_err, Result};
use crate::files;
use crate::start::RunId;
use crate::weights::{bad, parse, read, write};

/// The checkpoint format tag.
pub const SHARES_FORMAT: &str = "triad-shares-v2";

/// A party's share file in a checkpoint directory.
pub fn share_path(dir: &Path, party: usize) -> PathBuf {
    dir.join(format!("party-{party}.safetensors"))
}

/// The share file a party's last save replaced.
pub fn previous_path(dir: &Path, party: usize) -> PathBuf {
    dir.join(format!("party-{party}.previous.safetensors"))
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
    /// The start or resume of that run that wrote it.
    pub attempt: RunId,
    /// Whether it holds momentum state (any `<name>.velocity.own` tensor): read from the
    /// tensors themselves, not from a claim in the metadata.
    pub momentum: bool,
}

/// Which run and which start or resume of it a checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The run, agreed when it first started.
    pub run: RunId,
    /// This start or resume of it, agreed when it began.
    pub attempt: RunId,
}

/// Writes this party's shares of the model's state, at `step` of `lineage`, to
/// `dir/party-<N>.safetensors`, keeping the file it replaces as the previous one.
pub fn save_shares<D: Device>(
    dir: &Path,
    p: &Party<D>,
    model: &mut Model<Party<D>>,
    step: u64,
    lineage: Lineage,
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
        ("run_id".into(), lineage.run.hex()),
        ("attempt_id".into(), lineage.attempt.hex()),
    ]);
    if path.exists() {
        files::keep_previous(&path, &previous_path(dir, p.index()))?;
    }
    write(&path, tensors, meta)?;
    Ok(path)
}

/// Reads the metadata of party `party`'s share file in `dir`, checking that it is a share
/// checkpoint of this party.
pub fn read_share_meta(dir: &Path, party: usize) -> Result<CheckpointMeta> {
    read_meta(&share_path(dir, party), party)
}

/// Reads the metadata of the share file `path`, checking that it is a share checkpoint
/// of party `party`.
pub fn read_meta(path: &Path, party: usize) -> Result<CheckpointMeta> {
    let bytes = read(path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let m = meta.metadata().clone().unwrap_or_default();
    let get =
        |k: &str| m.get(k).cloned().ok_or_else(|| bad(path, format!("not a triad share checkpoint (no {k:?} entry)")));
    let format = get("format")?;
    if format == "triad-shares-v1" {
        return Err(bad(path, "is a triad-shares-v1 checkpoint, written before runs had an identifier; resume needs triad-shares-v2 (start the run again)"));
    }
    if format != SHARES_FORMAT {
        return Err(bad(path, format!("not a triad share checkpoint (format is not {SHARES_FORMAT})")));
    }
    let num =
        |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| bad(path, format!("metadata {k} is not a number"))) };
    let too_big = |k: &str| bad(path, format!("metadata {k} is out of range"));
    let id = |k: &str| RunId::parse(&get(k)?).ok_or_else(|| bad(path, format!("metadata {k} is not 32 hex digits")));
    let meta = CheckpointMeta {
        model: get("model")?,
        party: usize::try_from(num("party")?).map_err(|_| too_big("party"))?,
        step: num("step")?,
        frac_bits: u32::try_from(num("frac_bits")?).map_err(|_| too_big("frac_bits"))?,
        run: id("run_id")?,
        attempt: id("attempt_id")?,
        momentum: meta.tensors().keys().any(|n| n.ends_with(".velocity.own")),
    };
    if meta.party != party {
        return Err(bad(path, format!("holds the shares of party {}, not of party {party}", meta.party)));
    }
    Ok(meta)
}

/// Checks that the checkpoint `path` (of metadata `meta`) holds `model` with `frac_bits`
/// fractional bits.
fn check_fits(path: &Path, meta: &CheckpointMeta, model: &str, frac_bits: u32) -> Result<()> {
    if meta.model != model {
        return Err(bad(path, format!("holds model {}, not {model}", meta.model)));
    }
    if meta.frac_bits != frac_bits {
        return Err(bad(path, format!("uses {} fractional bits, not {frac_bits}", meta.frac_bits)));
    }
    Ok(())
}

/// The checkpoints of party `party` in `dir` that fit `model` with `frac_bits`
/// fractional bits: the latest (which must exist and fit), then the previous one if it is
/// there and readable (it is only a fallback, so a damaged one is left out).
pub fn checkpoints_of(dir: &Path, party: usize, model: &str, frac_bits: u32) -> Result<Vec<(PathBuf, CheckpointMeta)>> {
    let fits = |path: &Path| -> Result<CheckpointMeta> {
        let meta = read_meta(path, party)?;
        check_fits(path, &meta, model, frac_bits)?;
        Ok(meta)
    };
    let latest = share_path(dir, party);
    let mut out = vec![(latest.clone(), fits(&latest)?)];
    let previous = previous_path(dir, party);
    if let Ok(meta) = fits(&previous) {
        out.push((previous, meta));
    }
    Ok(out)
}

/// Replaces the model's state by this party's shares from the share file `path`, after
/// checking the model name, fractional bits and every tensor's shape. Returns the
/// checkpoint's step.
pub fn load_shares<D: Device>(path: &Path, p: &Party<D>, model: &mut Model<Party<D>>) -> Result<u64> {
    let meta = read_meta(path, p.index())?;
    check_fits(path, &meta, &model.graph.name, p.fixed.frac_bits)?;
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
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
                    Slot::Req(_) => return Err(bad(path, format!("tensor {tname} is missing"))),
                },
            };
            if t.dtype() != Dtype::U64 {
                return Err(bad(path, format!("tensor {tname} is {:?}, shares are U64", t.dtype())));
            }
            if t.shape() != want.as_slice() {
                return Err(bad(path, format!("tensor {tname} has shape {:?}, the model needs {want:?}", t.shape())));
            }
            let v: Vec<u64> =
                t.data().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
            let tensor = Tensor::from_vec(&p.dev, t.shape().to_vec(), v).map_err(|e| bad(path, e.to_string()))?;
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
            return Err(bad(path, format!("tensor {name} has only one of its two components")));
        }
    }
    if used != st.names().len() {
        return Err(bad(path, format!("has tensors model {} does not know", model.graph.name)));
    }
    Ok(meta.step)
}
