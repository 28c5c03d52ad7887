//! `triad infer --onnx` and `triad inspect` on the PyTorch fixtures of
//! `tests/fixtures/onnx/` (made by `tools/onnx-fixtures/make.py`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use triad_layers::data::npy;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(name).display().to_string()
}

/// The residual CNN from both exporters: the outputs file is `[N, classes]` float64 and
/// within 1e-3 of onnxruntime's (`tests/tests/onnx_import.rs` states the bound); `--json`
/// gives every sample's prediction.
#[test]
fn infer_onnx_writes_the_outputs() {
    let dir = tempdir("onnx-infer");
    for exporter in ["ts", "dynamo"] {
        let out = dir.join(format!("y_{exporter}.npy"));
        let o = triad(&[
            "infer",
            "--onnx",
            &fixture(&format!("residual_cnn_{exporter}.onnx")),
            "--inputs",
            &fixture("residual_cnn.input.npy"),
            "--output",
            out.to_str().unwrap(),
            "--batch",
            "3",
            "--json",
        ]);
        let j = json(&o);
        let (shape, got) = npy::read_f64(&out).unwrap();
        let (wshape, want) =
            npy::read_f64(std::path::Path::new(&fixture(&format!("residual_cnn_{exporter}.ort.npy")))).unwrap();
        assert_eq!(shape, wshape);
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d <= 1e-3, "{exporter}: outputs differ from onnxruntime's by {d}");
        let preds = j["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), shape[0]);
        assert_eq!(j["samples"].as_u64(), Some(shape[0] as u64));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn infer_onnx_errors_are_one_line() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["infer", "--onnx", &fixture("unsupported_op_ts.onnx"), "--inputs", &fixture("mlp.input.npy")],
            "unsupported operator Erf",
        ),
        (
            &["infer", "--onnx", &fixture("mlp_ts.onnx"), "--inputs", &fixture("residual_cnn.input.npy")],
            "inputs of shape [4, 3, 16, 16]; the model takes [N, 20]",
        ),
        (&["infer", "--onnx", &fixture("garbage.onnx"), "--inputs", &fixture("mlp.input.npy")], "not an ONNX model"),
        (&["infer", "--onnx", &fixture("mlp_ts.onnx")], "needs --inputs"),
    ];
    for (args, needle) in cases {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_one_error_line(&triad(&refs), needle);
    }
}

/// `inspect` lists every node and tensor and the dry run's bytes and rounds, for an ONNX
/// file and for a zoo model.
#[test]
fn inspect_shows_nodes_tensors_and_costs() {
    let o = triad(&["inspect", "--onnx", &fixture("residual_cnn_dynamo.onnx")]);
    let s = stdout_ok(&o);
    for needle in
        ["batchnorm 8", "running_var", "buffer", "private inference, batch 1", "private training step, batch 8"]
    {
        assert!(s.contains(needle), "inspect output lacks {needle:?}:\n{s}");
    }
    let s = stdout_ok(&triad(&["inspect", "--model", "lenet"]));
    assert!(s.contains("431080"), "{s}");
}

/// `train --onnx` trains an imported model privately (the MLP fixture learns its four
/// samples' labels) and `--save-weights` writes an ONNX file with the same graph and the
/// trained initializers: it imports again, with other weights than the original's, and
/// private inference of it gives the trained predictions.
#[test]
fn train_onnx_learns_and_saves_an_onnx_file() {
    let dir = tempdir("onnx-train");
    let labels = dir.join("labels.npy");
    npy::write_i64(&labels, &[4], &[0, 1, 2, 3]).unwrap();
    let saved = dir.join("trained.onnx");
    let j = json(&triad(&[
        "train",
        "--onnx",
        &fixture("mlp_ts.onnx"),
        "--inputs",
        &fixture("mlp.input.npy"),
        "--labels",
        labels.to_str().unwrap(),
        "--batch",
        "4",
        "--epochs",
        "30",
        "--lr",
        "0.1",
        "--momentum",
        "0",
        "--save-weights",
        saved.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(j["accuracy"].as_f64(), Some(1.0), "{j}");
    let before = triad_onnx::import_file(std::path::Path::new(&fixture("mlp_ts.onnx"))).unwrap();
    let after = triad_onnx::import_file(&saved).unwrap();
    assert_eq!(before.graph, after.graph);
    assert_ne!(before.weights, after.weights);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the opened model is the owner's secret: mode {mode:o}");
    }
    let out = dir.join("y.npy");
    let j = json(&triad(&[
        "infer",
        "--onnx",
        saved.to_str().unwrap(),
        "--inputs",
        &fixture("mlp.input.npy"),
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]));
    let preds: Vec<u64> = j["predictions"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(preds, [0, 1, 2, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `infer --help` offers what means something for inference, not the training flags.
#[test]
fn infer_help_has_no_training_flags() {
    for args in [&["infer", "--help"][..], &["party", "infer", "--help"][..]] {
        let s = stdout_ok(&triad(args));
        assert!(s.contains("--onnx") && s.contains("--inputs") && s.contains("--batch"), "{s}");
        for flag in ["--epochs", "--lr ", "--momentum", "--save-weights", "--labels", "--twin"] {
            assert!(!s.contains(flag), "{args:?} offers {flag}:\n{s}");
        }
    }
    assert!(stdout_ok(&triad(&["train", "--help"])).contains("--epochs"));
}
