//! The command line's ONNX subcommands: `train --onnx`, `infer --onnx`, `party ...
//! --onnx | --onnx-from-owner`, and `inspect`.

use crate::cli::{to_json, DatasetArg, InspectArgs, JobArgs, PartyArgs};
use crate::error::{Error, Result};
use crate::models::Shape;
use crate::report;

/// `triad inspect`.
pub(crate) fn inspect(a: &InspectArgs) -> Result<()> {
    if !(a.input_bound.is_finite() && a.input_bound >= 0.0) {
        return Err(Error::Usage(format!("--input-bound {}: a magnitude, finite and not negative", a.input_bound)));
    }
    super::fixed_config(a.frac_bits)?;
    let (g, weights, source, from) = match (&a.onnx, a.model) {
        (Some(p), _) => {
            let im = super::import(p)?;
            (im.graph, im.weights, format!("ONNX model {}", p.display()), "the ONNX file's")
        }
        (None, Some(m)) => {
            let g = m.net(a.dataset.unwrap_or(m.default_dataset())).map_err(Error::Usage)?;
            let w = g.init_weights(42);
            let name = g.name.clone();
            (g, w, format!("zoo model {name}"), "initial, seed 42")
        }
        (None, None) => return Err(Error::Usage("inspect needs --onnx FILE or --model NAME".into())),
    };
    let m = super::Inspected {
        graph: &g,
        weights: &weights,
        weights_from: from,
        input_bound: a.input_bound,
        frac_bits: a.frac_bits,
    };
    print!("{}", super::inspect(&m, &source, a.train_batch.max(1))?);
    Ok(())
}

/// The owner's training data of `train --onnx`: `--inputs` and `--labels`, or a dataset.
fn onnx_train_data(a: &JobArgs, g: &triad_layers::Graph) -> Result<super::train::TrainData> {
    use super::train::TrainData;
    match (&a.inputs, &a.labels) {
        (Some(inputs), Some(labels)) => TrainData::from_npy(g, inputs, labels),
        (None, None) if a.random => {
            Err(Error::Usage("train --onnx: --random is for zoo models; give --inputs and --labels".into()))
        }
        (None, None) => {
            let shape = match a.dataset {
                None | Some(DatasetArg::Mnist) => Shape::Mnist,
                Some(DatasetArg::Cifar10) => Shape::Cifar10,
                Some(_) => {
                    return Err(Error::Usage(
                        "train --onnx: --dataset mnist or cifar10 (with --data), or --inputs and --labels".into(),
                    ))
                }
            };
            TrainData::from_dataset(g, shape, a.data.as_deref(), a.samples)
        }
        _ => Err(Error::Usage("train --onnx FILE: --inputs X.npy and --labels Y.npy go together".into())),
    }
}

/// The zoo's options that an ONNX job does not take: each is refused in one line naming
/// it, before any party starts, rather than silently ignored. Training refuses all five;
/// inference the two it would otherwise read.
fn refuse_zoo_options(a: &JobArgs, train: bool) -> Result<()> {
    let weights = "the initial weights are the ONNX file's initializers";
    let checkpoints = "checkpoints of ONNX training are not supported (train in one run)";
    let refused = [
        ("--weights", a.weights.is_some(), weights, true),
        ("--resume", a.resume.is_some(), checkpoints, true),
        ("--checkpoint", a.checkpoint.is_some(), checkpoints, train),
        ("--checkpoint-every", a.checkpoint_every.is_some(), checkpoints, train),
        ("--twin", a.twin, "the plaintext twin is not supported for ONNX models", train),
    ];
    match refused.into_iter().find(|&(_, given, _, applies)| given && applies) {
        Some((flag, _, why, _)) => {
            let job = if train { "train" } else { "infer" };
            Err(Error::Usage(format!("{job} --onnx: {flag} is for zoo models only: {why}")))
        }
        None => Ok(()),
    }
}

fn onnx_train_options(a: &JobArgs) -> Result<super::train::TrainOptions> {
    crate::cli::check_sgd_constants(a.lr, a.momentum, a.weight_decay, a.frac_bits)?;
    Ok(super::train::TrainOptions {
        batch: a.batch.unwrap_or(32),
        epochs: a.epochs,
        steps: a.steps,
        sgd: triad_layers::Sgd { lr: a.lr, momentum: a.momentum, weight_decay: a.weight_decay },
        frac_bits: a.frac_bits,
        guard: a.guard,
    })
}

fn print_onnx_training(r: &super::train::OnnxTrainReport) {
    println!(
        "trained {} privately on {}: {} steps on {} samples in {:.2} s; accuracy on {} {:.2}%",
        r.model,
        r.data,
        r.steps,
        r.samples,
        r.secs,
        r.evaluated,
        100.0 * r.accuracy
    );
    if let Some(s) = &r.saved {
        println!("saved     {s} (the same graph, trained initializers; opened to party 0 only)");
    }
}

/// `triad train --onnx`.
pub(crate) fn train(a: &JobArgs) -> Result<()> {
    let Some(model) = &a.onnx else { return Err(Error::Usage("train --onnx FILE".into())) };
    refuse_zoo_options(a, true)?;
    let im = super::import(model)?;
    let data = onnx_train_data(a, &im.graph)?;
    let save = a.save_weights.as_deref();
    let r = super::train::train(model, &im, &data, save, onnx_train_options(a)?, a.out.backend)?;
    if a.out.json {
        println!("{}", to_json(&r)?);
    } else {
        print_onnx_training(&r);
    }
    Ok(())
}

fn party_train(pa: &PartyArgs, a: &JobArgs, expect: Option<&str>) -> Result<()> {
    use super::train::{train_as_party, OwnerJob};
    refuse_zoo_options(a, true)?;
    let session = pa.session()?;
    let loaded = match &a.onnx {
        Some(model) => {
            let im = super::import(model)?;
            let data = onnx_train_data(a, &im.graph)?;
            Some((model, im, data))
        }
        None => None,
    };
    let owner = loaded.as_ref().map(|(model, im, data)| OwnerJob {
        model: model.as_path(),
        im,
        data,
        save: a.save_weights.as_deref(),
    });
    let r = train_as_party(owner, expect, session, onnx_train_options(a)?, a.out.backend)?;
    if a.out.json {
        println!("{}", to_json(&r)?);
    } else {
        println!("mode      {}", r.mode);
        println!("graph     {} (sha256 {})", r.graph, r.graph_sha256);
        println!("traffic   {} bytes sent by party {}, {} rounds, {:.2} s", r.bytes_sent, r.party, r.rounds, r.secs);
        if let Some(o) = &r.owner {
            print_onnx_training(o);
        } else {
            println!("trained   {} private steps (shares only; the outputs went to party 0)", r.steps);
        }
    }
    Ok(())
}

/// `triad party ... infer|train --onnx | --onnx-from-owner`.
pub(crate) fn party(pa: &PartyArgs, a: &JobArgs, train: bool) -> Result<()> {
    use super::parties::{self, Source};
    let expect = a.expect_graph.as_deref().map(parties::parse_digest).transpose()?;
    if train {
        return party_train(pa, a, expect.as_deref());
    }
    refuse_zoo_options(a, false)?;
    let source = match (&a.onnx, &a.inputs) {
        (Some(model), Some(inputs)) => Source::Owner { model, inputs, output: a.output.as_deref(), batch: a.batch },
        (Some(_), None) => {
            return Err(Error::Usage("infer --onnx FILE needs --inputs X.npy (the owner's inputs)".into()))
        }
        (None, _) => Source::FromOwner { expect: expect.as_deref() },
    };
    let session = pa.session()?;
    let r = parties::infer_as_party(source, session, a.frac_bits, a.guard, a.out.backend)?;
    if a.out.json {
        println!("{}", to_json(&r)?);
    } else {
        print!("{}", parties::render(&r));
    }
    Ok(())
}

/// `triad infer --onnx`.
pub(crate) fn infer(command: &str, a: &JobArgs) -> Result<()> {
    let (Some(model), Some(inputs)) = (&a.onnx, &a.inputs) else {
        return Err(Error::Usage("infer --onnx FILE needs --inputs X.npy (the owner's inputs)".into()));
    };
    refuse_zoo_options(a, false)?;
    let im = super::import(model)?;
    if !a.out.json {
        let what = format!("private inference of {}, three parties in this process", model.display());
        println!("{}", report::header(command, &what));
    }
    let r = super::infer(model, &im, inputs, a.output.as_deref(), a.batch, a.frac_bits, a.guard, a.out.backend)?;
    if a.out.json {
        println!("{}", to_json(&r)?);
    } else {
        print!("{}", super::render(&r));
    }
    Ok(())
}
