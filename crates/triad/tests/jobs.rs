//! In-process jobs of the `triad` binary: inference, training, safetensors weights in and
//! out, and `bench` (checkpoints and resume: `checkpoints.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

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
