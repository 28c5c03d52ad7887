//! In-process jobs of the `triad` binary: inference, training, safetensors weights in and
//! out, and `bench` (checkpoints and resume: `checkpoints.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashMap;

/// `triad train --steps S --batch B --samples N <extra> --json -q`, parsed.
fn train_json(steps: &str, batch: &str, samples: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["train", "--steps", steps, "--batch", batch, "--samples", samples];
    args.extend_from_slice(extra);
    args.extend(["--json", "-q"]);
    json(&triad(&args))
}

#[test]
fn bench_help_lists_the_papers_models() {
    let out = triad(&["bench", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for m in
        ["LeNet", "AlexNet", "VGG-16", "ResNet-50", "ResNet-101", "ResNet-152", "CIFAR-10", "Tiny ImageNet", "ImageNet"]
    {
        assert!(help.contains(m), "bench --help does not list {m}:\n{help}");
    }
}

#[test]
fn infer_reports_accuracy_and_costs_as_json() {
    let v = json(&triad(&["infer", "--model", "lenet", "--samples", "5", "--json", "-q"]));
    let o = &v["parties"][0]["owner"];
    assert_eq!(o["predictions"].as_array().unwrap().len(), 5);
    assert!(o["accuracy"].as_f64().is_some());
    for i in 0..3 {
        assert!(v["parties"][i]["infer"]["cost"]["bytes_sent"].as_u64().unwrap() > 0);
        assert!(v["parties"][i]["owner"].is_null() == (i != 0));
    }
}

#[test]
fn infer_on_random_inputs_of_a_paper_shape() {
    let v = json(&triad(&["infer", "--model", "alexnet", "--dataset", "cifar10", "--random", "--json", "-q"]));
    let o = &v["parties"][0]["owner"];
    assert_eq!(o["predictions"].as_array().unwrap().len(), 1);
    assert!(o["accuracy"].is_null(), "no accuracy on random inputs");
}

#[test]
fn human_table_has_accuracy_time_and_communication() {
    let out = triad(&["train", "--steps", "1", "--batch", "4", "--samples", "4", "--twin", "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in ["command: triad train", "accuracy", "plaintext twin", "party 0", "rounds", "wall time"] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
}

/// The run id a share checkpoint records.
fn run_id_of(dir: &std::path::Path, party: usize) -> String {
    triad::checkpoint::read_share_meta(dir, party).unwrap().run.hex()
}

/// `train --steps S --batch 4 --samples 0 --checkpoint DIR <extra>`: one short run.
fn train_to(dir: &std::path::Path, steps: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--checkpoint", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    train_json(steps, "4", "0", &args)
}

#[test]
fn checkpoints_mixed_from_two_runs_are_refused_in_one_line() {
    let dir = tempdir("ckpt-mixed");
    let (a, b, mixed) = (dir.join("a"), dir.join("b"), dir.join("mixed"));
    train_to(&a, "1", &[]);
    train_to(&b, "1", &[]);
    let (run_a, run_b) = (run_id_of(&a, 0), run_id_of(&b, 0));
    assert_ne!(run_a, run_b, "two runs agree two run ids");
    for i in 0..3 {
        assert_eq!(run_id_of(&a, i), run_a, "all three parties store one run id");
    }
    std::fs::create_dir_all(&mixed).unwrap();
    for (i, src) in [&a, &a, &b].iter().enumerate() {
        let f = format!("party-{i}.safetensors");
        std::fs::copy(src.join(&f), mixed.join(&f)).unwrap();
    }
    let out = resume_from(&mixed);
    let line =
        format!("party 2's checkpoint is from run {}…, parties 0 and 1's is from run {}…", &run_b[..8], &run_a[..8]);
    assert_one_error_line(&out, &line);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites a share file keeping the tensors `keep` accepts and the metadata as `edit`
/// leaves it; returns how many tensors were dropped.
fn rewrite(
    path: &std::path::Path,
    keep: impl Fn(&str) -> bool,
    edit: impl FnOnce(&mut HashMap<String, String>),
) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    edit(&mut meta);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st.tensors().into_iter().filter(|(n, _)| keep(n)).collect();
    let dropped = st.len() - kept.len();
    std::fs::write(path, safetensors::serialize(kept, Some(meta)).unwrap()).unwrap();
    dropped
}

/// `train --steps 2 --batch 4 --samples 0 --resume DIR -q`.
fn resume_from(dir: &std::path::Path) -> std::process::Output {
    triad(&["train", "--steps", "2", "--batch", "4", "--samples", "0", "--resume", dir.to_str().unwrap(), "-q"])
}

#[test]
fn a_checkpoint_without_its_momentum_state_is_refused() {
    let dir = tempdir("ckpt-momentum");
    let ck = dir.join("ck");
    train_to(&ck, "1", &[]);
    // Party 1's file loses its momentum buffers (everything else, metadata included, kept).
    let dropped = rewrite(&ck.join("party-1.safetensors"), |n| !n.contains(".velocity."), |_| {});
    assert!(dropped > 0, "the checkpoint had momentum state to strip");
    let out = resume_from(&ck);
    assert_one_error_line(&out, "party 1's checkpoint holds no momentum state, parties 0 and 2's holds momentum state");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_from_before_run_ids_is_refused_with_its_format() {
    let dir = tempdir("ckpt-v1");
    let ck = dir.join("ck");
    train_to(&ck, "1", &[]);
    rewrite(
        &ck.join("party-0.safetensors"),
        |_| true,
        |m| {
            m.insert("format".into(), "triad-shares-v1".into());
            m.remove("run_id");
        },
    );
    assert_one_error_line(&resume_from(&ck), "is a triad-shares-v1 checkpoint, written before runs had an identifier");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn checkpoints_and_opened_weights_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("ckpt-modes");
    let (ck, w) = (dir.join("ck"), dir.join("w.safetensors"));
    train_to(&ck, "2", &["--save-weights", w.to_str().unwrap(), "--checkpoint-every", "1"]);
    let mut files: Vec<_> = (0..3)
        .flat_map(|i| [triad::checkpoint::share_path(&ck, i), triad::checkpoint::previous_path(&ck, i)])
        .collect();
    files.push(w);
    for f in &files {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{} has mode {:o}", f.display(), mode & 0o777);
    }
    // Nothing but the three latest and three previous share files is left behind.
    let names: Vec<_> = std::fs::read_dir(&ck).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_writes_use_different_temporary_names() {
    let target = std::env::temp_dir().join("party-0.safetensors");
    let names: std::collections::HashSet<_> = (0..8).map(|_| triad::files::temp_path(&target).unwrap()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    for n in &names {
        assert_eq!(n.parent(), target.parent(), "the temporary file is beside its target (one file system)");
        assert_ne!(n.file_name().unwrap(), "party-0.safetensors.partial");
    }
}

/// A kill that caught party 1 before its step-3 save (the others saved theirs): the three
/// resume from step 2, parties 0 and 2 from their previous files.
#[test]
fn a_party_a_step_behind_makes_the_others_fall_back_to_their_previous_checkpoint() {
    let dir = tempdir("ckpt-skew");
    let ck = dir.join("ck");
    let ck_s = ck.to_str().unwrap();
    train_to(&ck, "3", &["--checkpoint-every", "1"]);
    let before = triad::checkpoint::read_share_meta(&ck, 0).unwrap();
    std::fs::rename(triad::checkpoint::previous_path(&ck, 1), triad::checkpoint::share_path(&ck, 1)).unwrap();
    assert_eq!(triad::checkpoint::read_share_meta(&ck, 1).unwrap().step, 2);
    let out = triad(&[
        "train",
        "--steps",
        "5",
        "--batch",
        "4",
        "--samples",
        "0",
        "--resume",
        ck_s,
        "--checkpoint",
        ck_s,
        "--json",
        "-q",
    ]);
    let v = json(&out);
    assert_eq!(v["parties"][0]["train"]["count"], 3, "steps 3, 4 and 5");
    let err = String::from_utf8_lossy(&out.stderr);
    for i in [0, 2] {
        assert!(err.contains(&format!("party {i} resumes from its previous checkpoint (step 2)")), "{err}");
    }
    for i in 0..3 {
        let m = triad::checkpoint::read_share_meta(&ck, i).unwrap();
        assert_eq!((m.step, m.run), (5, before.run), "party {i}");
        assert_ne!(m.attempt, before.attempt, "a resume is a new attempt");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An interrupted run leaves its last checkpoint and, at worst, a stray temporary file;
/// the resumed run continues from the checkpoint's step under the same run id.
#[test]
fn a_resumed_run_continues_the_same_run() {
    let dir = tempdir("ckpt-continue");
    let ck = dir.join("ck");
    let ck_s = ck.to_str().unwrap();
    train_to(&ck, "3", &["--checkpoint-every", "1"]);
    let run = run_id_of(&ck, 0);
    // As if the run had been killed while writing step 4's file.
    std::fs::write(ck.join(".party-0.safetensors.00c0ffee00c0ffee.tmp"), b"half a file").unwrap();
    let v = train_json("5", "4", "0", &["--resume", ck_s, "--checkpoint", ck_s]);
    assert_eq!(v["parties"][0]["train"]["count"], 2, "steps 4 and 5 only");
    for i in 0..3 {
        let m = triad::checkpoint::read_share_meta(&ck, i).unwrap();
        assert_eq!((m.step, m.run.hex(), m.momentum), (5, run.clone(), true), "party {i}");
    }
    // A checkpoint past the job's schedule is refused, not silently skipped.
    let out = triad(&["train", "--steps", "4", "--batch", "4", "--samples", "0", "--resume", ck_s, "-q"]);
    assert_one_error_line(&out, "the checkpoint is at step 5, past the 4 steps of this job");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weights_out_and_back_in_give_the_same_predictions() {
    let dir = tempdir("weights");
    let w = dir.join("w.safetensors");
    let w_s = w.to_str().unwrap();
    let v = train_json("1", "4", "4", &["--save-weights", w_s]);
    let trained = &v["parties"][0]["owner"];
    let net = triad::models::ModelName::Lenet.net(triad::models::Shape::Mnist).unwrap();
    let loaded = triad::weights::load_plain(&w, &net).unwrap();
    assert_eq!(loaded.len(), 4 * 2);
    let v = json(&triad(&["infer", "--weights", w_s, "--samples", "4", "--json", "-q"]));
    let inferred = &v["parties"][0]["owner"];
    assert_eq!(trained["predictions"], inferred["predictions"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A weights file triad saved for one model is refused for another in one line, even
/// where every tensor fits (LeNet with average pooling and with max pooling have the same
/// tensors), unless `--force-weights`; a file for a model with other tensors is refused
/// even then, listing what does not fit and whose file it is.
#[test]
fn weights_saved_for_another_model_are_refused_unless_forced() {
    let dir = tempdir("weights-model");
    let w = dir.join("w.safetensors");
    let w_s = w.to_str().unwrap();
    train_json("1", "4", "0", &["--save-weights", w_s]);
    let infer = |extra: &[&str]| {
        let mut a = vec!["infer", "--model", "lenet-maxpool", "--weights", w_s, "--samples", "2", "-q"];
        a.extend_from_slice(extra);
        triad(&a)
    };
    assert_one_error_line(
        &infer(&[]),
        "was saved for model lenet-relu-avg, not lenet-relu-max (--force-weights loads it anyway: every tensor fits)",
    );
    stdout_ok(&infer(&["--force-weights"]));
    let o = triad(&[
        "infer",
        "--model",
        "alexnet",
        "--dataset",
        "cifar10",
        "--random",
        "--weights",
        w_s,
        "--force-weights",
        "-q",
    ]);
    assert_one_error_line(&o, "does not fit model");
    assert_one_error_line(&o, "(it was saved for model lenet-relu-avg)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// CIFAR-10 from its binary files: a small directory in the standard format (one label
/// byte and 3072 pixel bytes per record) is read, trained on and classified; a file that
/// is not a whole number of records is refused with one line.
#[test]
fn cifar10_binary_files_are_read_trained_on_and_classified() {
    let dir = tempdir("cifar");
    let record = |label: u8, seed: u8| {
        let mut r = vec![label];
        r.extend((0..3072u32).map(|i| (i as u8).wrapping_mul(seed)));
        r
    };
    let train: Vec<u8> = (0..4u8).flat_map(|i| record(i, 3 + i)).collect();
    let test: Vec<u8> = [7u8, 2, 9].iter().flat_map(|&l| record(l, l + 1)).collect();
    std::fs::write(dir.join("data_batch_1.bin"), &train).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &test).unwrap();
    let d = dir.to_str().unwrap();
    let v = train_json("1", "2", "3", &["--model", "alexnet", "--dataset", "cifar10", "--data", d]);
    let o = &v["parties"][0]["owner"];
    assert_eq!(o["predictions"].as_array().unwrap().len(), 3);
    assert!(o["accuracy"].as_f64().is_some(), "real labels give an accuracy: {o}");
    // A truncated file: one clear line, non-zero exit.
    std::fs::write(dir.join("test_batch.bin"), &test[..5000]).unwrap();
    let out = triad(&["infer", "--model", "alexnet", "--dataset", "cifar10", "--data", d, "-q"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("test_batch.bin") && err.contains("not a whole number"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bench --dry-run` counts bytes and rounds on the dry-run device, and they equal a real
/// run's (protocols are data-oblivious); it reports no times.
#[test]
fn bench_dry_run_counts_what_a_real_run_sends() {
    let real = json(&triad(&["bench", "--models", "lenet", "--json"]));
    let dry = json(&triad(&["bench", "--models", "lenet", "--dry-run", "--json"]));
    let (r, d) = (&real[0]["rows"], &dry[0]["rows"]);
    assert_eq!(r.as_array().unwrap().len(), d.as_array().unwrap().len());
    for (a, b) in r.as_array().unwrap().iter().zip(d.as_array().unwrap()) {
        assert_eq!(a["bytes"], b["bytes"], "{}", a["layer"]);
        assert_eq!(a["rounds"], b["rounds"], "{}", a["layer"]);
        assert!(b["secs"].is_null());
    }
    assert_eq!(dry[0]["dry_run"], true);
}
