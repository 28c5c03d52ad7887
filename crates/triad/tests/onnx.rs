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
    assert!(!s.contains("training graph sha256"), "no final softmax, one digest:\n{s}");
    let s = stdout_ok(&triad(&["inspect", "--onnx", &fixture("ops_cnn_ts.onnx")]));
    assert!(s.contains("training graph sha256"), "a final softmax, a training digest too:\n{s}");
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

/// Spawns three `triad party ... KIND` processes (`infer` or `train`): party 0 with
/// `owner` (its model and data), parties 1 and 2 with `--onnx-from-owner` and their own
/// extra arguments.
fn onnx_parties(kind: &str, cfg: &std::path::Path, owner: &[&str], others: [&[&str]; 2]) -> Vec<std::process::Output> {
    let kids: Vec<_> = (0..3)
        .map(|i| {
            let mut a: Vec<String> =
                ["party", "--id", &i.to_string(), "--config", cfg.to_str().unwrap(), kind].map(String::from).to_vec();
            let extra: &[&str] = if i == 0 { owner } else { others[i - 1] };
            if i > 0 {
                a.push("--onnx-from-owner".into());
            }
            a.extend(extra.iter().map(|s| s.to_string()));
            spawn(&a)
        })
        .collect();
    kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Three `triad party` processes over mutual TLS on loopback: only party 0 names the
/// model (the dynamo export, with its external weights) and the inputs; parties 1 and 2
/// take the public graph from it (one pinning its digest) and say what they received.
/// The outputs agree with the in-process run and with onnxruntime's within the
/// documented 1e-3, the bytes sent are the same as in process, and only party 0 learns
/// the predictions.
#[test]
fn three_processes_infer_an_onnx_model_like_one_process() {
    let dir = tempdir("onnx-parties");
    let model = fixture("residual_cnn_dynamo.onnx");
    let inputs = fixture("residual_cnn.input.npy");
    let local_out = dir.join("local.npy");
    let local = json(&triad(&[
        "infer",
        "--onnx",
        &model,
        "--inputs",
        &inputs,
        "--output",
        local_out.to_str().unwrap(),
        "--batch",
        "3",
        "--json",
    ]));
    let digest = local["graph_sha256"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    let cfg = keygen(&dir, 30_000);
    let out = dir.join("parties.npy");
    let owner = ["--onnx", &model, "--inputs", &inputs, "--output", out.to_str().unwrap(), "--batch", "3", "--json"];
    let outs = onnx_parties("infer", &cfg, &owner, [&["--json"], &["--expect-graph", &digest, "--json"]]);
    let reports: Vec<serde_json::Value> = outs.iter().map(json).collect();
    for (i, (r, o)) in reports.iter().zip(&outs).enumerate() {
        assert_eq!(r["party"], i);
        assert_eq!(r["graph_sha256"].as_str(), Some(digest.as_str()));
        assert_eq!(r["bytes_sent"], local["bytes"][i], "party {i}: bytes sent");
        let err = String::from_utf8_lossy(&o.stderr);
        if i > 0 {
            assert!(r["predictions"].is_null() && r["output"].is_null(), "party {i} learnt the outputs: {r}");
            assert!(err.contains("the model comes from party 0") && err.contains(&digest), "party {i}: {err}");
        }
    }
    assert_eq!(reports[0]["predictions"], local["predictions"]);
    let (shape, got) = npy::read_f64(&out).unwrap();
    let (_, here) = npy::read_f64(&local_out).unwrap();
    let (wshape, ort) = npy::read_f64(std::path::Path::new(&fixture("residual_cnn_dynamo.ort.npy"))).unwrap();
    assert_eq!(shape, wshape);
    assert!(max_diff(&got, &here) <= 1e-3, "three processes vs one: {}", max_diff(&got, &here));
    assert!(max_diff(&got, &ort) <= 1e-3, "three processes vs onnxruntime: {}", max_diff(&got, &ort));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A party pinning another graph digest refuses party 0's graph in one line, and the
/// others stop too; parties 1 and 2 may not name a model themselves.
#[test]
fn a_party_refuses_a_graph_it_did_not_expect() {
    let dir = tempdir("onnx-expect");
    let cfg = keygen(&dir, 20_000);
    let other = "ab".repeat(32);
    let owner = ["--onnx", &fixture("mlp_ts.onnx"), "--inputs", &fixture("mlp.input.npy"), "-q"];
    let outs = onnx_parties("infer", &cfg, &owner, [&["-q"], &["--expect-graph", &other, "-q"]]);
    assert_one_error_line(&outs[2], &format!("not the {other} of --expect-graph"));
    assert!(!outs[0].status.success() && !outs[1].status.success());
    let c = cfg.to_str().unwrap();
    let own = triad(&[
        "party",
        "--id",
        "1",
        "--config",
        c,
        "infer",
        "--onnx",
        &fixture("mlp_ts.onnx"),
        "--inputs",
        &fixture("mlp.input.npy"),
    ]);
    assert_one_error_line(&own, "only party 0 does");
    let bad = triad(&["party", "--id", "1", "--config", c, "infer", "--onnx-from-owner", "--expect-graph", "12"]);
    assert_one_error_line(&bad, "64 hex digits");
    // Party 0 runs a zoo job: the party waiting for an ONNX graph says so.
    let kids: Vec<_> = (0..3)
        .map(|i| {
            let mut a: Vec<String> =
                ["party", "--id", &i.to_string(), "--config", c, "infer", "-q"].map(String::from).to_vec();
            a.push(if i == 1 { "--onnx-from-owner" } else { "--random" }.into());
            spawn(&a)
        })
        .collect();
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    assert_one_error_line(&outs[1], "party 0 did not announce an ONNX job (was it started with --onnx?)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train --onnx` on the bundled MNIST digits: a model of input [1, 28, 28] and 10
/// classes trains a few private steps (its saved weights change) and is evaluated on the
/// first test digits; a model of another shape is one error line.
#[test]
fn train_onnx_on_the_bundled_mnist() {
    let dir = tempdir("onnx-mnist");
    let saved = dir.join("trained.onnx");
    let model = fixture("tiny_cnn_ts.onnx");
    let j = json(&triad(&[
        "train",
        "--onnx",
        &model,
        "--steps",
        "3",
        "--batch",
        "8",
        "--samples",
        "8",
        "--save-weights",
        saved.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(j["steps"].as_u64(), Some(3), "{j}");
    assert!(j["data"].as_str().unwrap().contains("mnist"), "{j}");
    assert_eq!(j["evaluated"].as_str(), Some("8 test samples"));
    let before = triad_onnx::import_file(std::path::Path::new(&model)).unwrap();
    let after = triad_onnx::import_file(&saved).unwrap();
    assert_eq!(before.graph, after.graph);
    assert_ne!(before.weights, after.weights, "three private steps changed nothing");
    assert_one_error_line(
        &triad(&["train", "--onnx", &fixture("mlp_ts.onnx"), "--steps", "1"]),
        "needs input [1, 28, 28] (or [784]) and 10 classes",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train --onnx --data DIR` reads MNIST IDX files from the directory (here 16 training
/// and 8 test digits written uncompressed) instead of the bundled ones.
#[test]
fn train_onnx_on_an_mnist_directory() {
    let dir = tempdir("onnx-data");
    let idx = |dims: &[u32], data: &[u8]| -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, dims.len() as u8];
        dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
        v.extend(data);
        v
    };
    for (split, n) in [("train", 16u32), ("t10k", 8)] {
        let pixels: Vec<u8> = (0..n as usize * 784).map(|i| (i * 7 % 251) as u8).collect();
        let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), idx(&[n, 28, 28], &pixels)).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), idx(&[n], &labels)).unwrap();
    }
    let data = dir.to_str().unwrap();
    let j = json(&triad(&[
        "train",
        "--onnx",
        &fixture("tiny_cnn_ts.onnx"),
        "--data",
        data,
        "--steps",
        "2",
        "--batch",
        "8",
        "--json",
    ]));
    assert_eq!(j["steps"].as_u64(), Some(2), "{j}");
    assert_eq!(j["samples"].as_u64(), Some(16), "{j}");
    assert!(j["data"].as_str().unwrap().contains(data), "{j}");
    assert_eq!(j["evaluated"].as_str(), Some("8 test samples"), "{j}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The zoo's options that an ONNX job does not take (initial weights, checkpoints,
/// resuming, the plaintext twin) are each refused in one line naming the flag, before any
/// party starts (a party's refusal comes before its missing config file is read).
#[test]
fn onnx_jobs_refuse_the_zoo_only_options() {
    let (model, inputs) = (fixture("mlp_ts.onnx"), fixture("mlp.input.npy"));
    let train = ["train", "--onnx", &model, "--inputs", &inputs, "--labels", &inputs, "--steps", "1"];
    for (extra, flag) in [
        (&["--weights", "w.safetensors"][..], "--weights"),
        (&["--checkpoint", "ck"][..], "--checkpoint"),
        (&["--checkpoint-every", "5"][..], "--checkpoint-every"),
        (&["--resume", "ck"][..], "--resume"),
        (&["--twin"][..], "--twin"),
    ] {
        let args: Vec<&str> = train.iter().chain(extra).copied().collect();
        assert_one_error_line(&triad(&args), &format!("train --onnx: {flag} is for zoo models only"));
    }
    let party = ["party", "--id", "1", "--config", "/nonexistent/parties.toml", "train", "--onnx-from-owner"];
    let args: Vec<&str> = party.iter().chain(&["--resume", "ck"]).copied().collect();
    assert_one_error_line(&triad(&args), "train --onnx: --resume is for zoo models only");
    let infer = ["infer", "--onnx", &model, "--inputs", &inputs, "--weights", "w.safetensors"];
    assert_one_error_line(&triad(&infer), "infer --onnx: --weights is for zoo models only");
}

/// The tiny CNN fixture with its convolution's bias set to 1e7, written into `dir`.
fn risky_model(dir: &std::path::Path) -> PathBuf {
    let src = fixture("tiny_cnn_ts.onnx");
    let mut im = triad_onnx::import_file(std::path::Path::new(&src)).unwrap();
    let bias = im.graph.tensors().iter().position(|t| t.name == "conv.bias").unwrap();
    im.weights[bias] = vec![1e7; im.weights[bias].len()];
    let risky = dir.join("risky.onnx");
    triad_onnx::write_trained(std::path::Path::new(&src), &risky, &im, &im.weights).unwrap();
    risky
}

/// A model whose first convolution has a bias of 1e7: `inspect` warns on the layer whose
/// product that value reaches (the linear layer after it: Σ|w|·1e7 is past the 2^22 that
/// 20 fractional bits leave a product), not on the convolution; `infer` and `train` print
/// the same warning before running.
#[test]
fn range_warnings_name_the_node_at_risk() {
    let dir = tempdir("onnx-range");
    let src = fixture("tiny_cnn_ts.onnx");
    let risky = risky_model(&dir);
    let risky = risky.to_str().unwrap();
    let s = stdout_ok(&triad(&["inspect", "--onnx", risky]));
    let line = "warning: node fc/Gemm (linear 144->10): a product before truncation may reach";
    assert!(s.contains(line) && s.contains("beyond the 4.194e6 (2^22)"), "{s}");
    assert!(!s.contains("node conv/Conv"), "{s}");
    assert!(stdout_ok(&triad(&["inspect", "--onnx", &src])).contains("every node's bound is within the range"));
    let o = triad(&["infer", "--onnx", risky, "--inputs", &fixture("tiny_cnn.input.npy"), "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().filter(|l| l.contains(line)).count(), 1, "{err}");
    let o = triad(&["train", "--onnx", risky, "--steps", "1", "--batch", "2", "--samples", "2"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(line));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same model, refused before anything runs: the owner's plaintext check of its
/// first samples finds the convolution's output (1e7) past the 2^22 where products wrap
/// around, in one error line after the range warning.
#[test]
fn the_owners_plaintext_check_refuses_a_model_that_would_wrap() {
    let dir = tempdir("onnx-precheck");
    let risky = risky_model(&dir);
    let x = fixture("tiny_cnn.input.npy");
    let o = triad(&["infer", "--onnx", risky.to_str().unwrap(), "--inputs", &x, "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(!o.status.success(), "{err}");
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("plaintext check of its first")
            && errors[0].contains("at node conv/Conv (conv2d): its output"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--guard` where the owner's check cannot see: 65 samples, the first 64 as the fixture's,
/// the last one ten million times larger. The check (of the first 64) passes, and every
/// party stops at the first node past the guard's bound, in one line naming it; without the last
/// sample the guard passes and the outputs are the unguarded run's. And `--frac-bits`
/// beyond what any product survives is refused before anything runs.
#[test]
fn guard_stops_at_the_node_out_of_range() {
    let dir = tempdir("onnx-guard");
    let src = fixture("tiny_cnn_ts.onnx");
    let (shape, x) = npy::read_f64(std::path::Path::new(&fixture("tiny_cnn.input.npy"))).unwrap();
    let per: usize = shape[1..].iter().product();
    let mut big = Vec::new();
    for i in 0..65 {
        let s = &x[(i % shape[0]) * per..(i % shape[0] + 1) * per];
        big.extend(s.iter().map(|v| if i == 64 { v * 1e7 } else { *v }));
    }
    let mut dims = shape.clone();
    dims[0] = 65;
    let xs = dir.join("x65.npy");
    npy::write_f64(&xs, &dims, &big).unwrap();
    let o = triad(&["infer", "--onnx", &src, "--inputs", xs.to_str().unwrap(), "--guard", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(!o.status.success(), "{err}");
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("overflow guard: ") && errors[0].contains("has values outside ±2097152"), "{err}");
    let x = fixture("tiny_cnn.input.npy");
    let out = |guard: bool, name: &str| {
        let y = dir.join(name);
        let mut args = vec!["infer", "--onnx", &src, "--inputs", &x, "--output", y.to_str().unwrap(), "-q"];
        if guard {
            args.push("--guard");
        }
        stdout_ok(&triad(&args));
        npy::read_f64(&y).unwrap().1
    };
    let (bare, guarded) = (out(false, "bare.npy"), out(true, "guarded.npy"));
    let diff = bare.iter().zip(&guarded).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff < 1e-4, "the guard changed the outputs by {diff}");
    assert_one_error_line(
        &triad(&["infer", "--onnx", &src, "--inputs", &x, "--frac-bits", "31"]),
        "--frac-bits 31: a product of two values must stay below 2^(62 - 2f) = 2^0",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Private training of an ONNX model over three processes: party 0 names the model and
/// trains on the bundled MNIST; parties 1 and 2 take the graph and the plan from it. The
/// trained weights party 0 saves are those of the in-process run up to the fixed-point
/// rounding, and only party 0 learns anything.
#[test]
fn three_processes_train_an_onnx_model_like_one_process() {
    let dir = tempdir("onnx-parties-train");
    let model = fixture("tiny_cnn_ts.onnx");
    let (here, there) = (dir.join("here.onnx"), dir.join("there.onnx"));
    let job = ["--steps", "2", "--batch", "4", "--samples", "4", "--json"];
    let mut local = vec!["train", "--onnx", &model, "--save-weights", here.to_str().unwrap()];
    local.extend(job);
    let local = json(&triad(&local));
    let cfg = keygen(&dir, 30_000);
    let mut owner = vec!["--onnx", model.as_str(), "--save-weights", there.to_str().unwrap()];
    owner.extend(job);
    let outs = onnx_parties("train", &cfg, &owner, [&["--json"][..], &["--json"][..]]);
    let reports: Vec<serde_json::Value> = outs.iter().map(json).collect();
    assert_eq!(reports[0]["owner"]["accuracy"], local["accuracy"]);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["steps"].as_u64(), Some(2));
        if i > 0 {
            assert!(r["owner"].is_null(), "party {i} learnt something: {r}");
            let err = String::from_utf8_lossy(&outs[i].stderr);
            assert!(err.contains("training plan from party 0: 2 steps of batch 4"), "{err}");
        }
    }
    let (a, b) = (triad_onnx::import_file(&here).unwrap(), triad_onnx::import_file(&there).unwrap());
    let original = triad_onnx::import_file(std::path::Path::new(&model)).unwrap();
    assert_ne!(b.weights, original.weights);
    for (x, y) in a.weights.iter().zip(&b.weights) {
        assert!(max_diff(x, y) <= 1e-3, "trained weights differ by {}", max_diff(x, y));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The graph message parties 1 and 2 decode, from real exports: every prefix and every
/// bit flip of the encoded graph of the ops CNN (pad, grouped convolution, sub, sigmoid,
/// concat, ...) and the residual CNN decodes to an error or to a graph whose forward pass
/// on the float64 twin gives a result or an error, never a panic.
#[test]
fn every_prefix_and_bit_flip_of_an_imported_graph_is_a_graph_or_an_error() {
    use triad_layers::{graph_wire, Backend, Model, Plain};
    let owner = triad_transport::PartyId::ALL[0];
    for name in ["ops_cnn_ts.onnx", "residual_cnn_dynamo.onnx"] {
        let im = triad_onnx::import_file(std::path::Path::new(&fixture(name))).unwrap();
        let bytes = graph_wire::encode(&im.graph).unwrap();
        assert_eq!(graph_wire::decode(&bytes).unwrap(), im.graph);
        for n in 0..bytes.len() {
            assert!(graph_wire::decode(&bytes[..n]).is_err(), "{name}: prefix {n} decoded");
        }
        let mut ran = 0;
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            let Ok(g) = graph_wire::decode(&b) else { continue };
            let dims = g.node_dims().unwrap();
            // A flip in a name gives the same computation: run only those that differ.
            let same = g.nodes.len() == im.graph.nodes.len()
                && g.nodes.iter().zip(&im.graph.nodes).all(|(a, b)| a.op == b.op && a.inputs == b.inputs);
            if same || dims.iter().any(|d| d.iter().product::<usize>() > 1 << 14) || g.num_params() > 1 << 14 {
                continue;
            }
            let Ok(mut m) = Model::new(&Plain, &g, owner, Some(&g.init_weights(1))) else { continue };
            m.train = false;
            let mut shape = vec![1];
            shape.extend(g.input());
            let x = Plain.input(owner, Some(&vec![0.5; shape.iter().product()]), &shape).unwrap();
            let _ = m.forward(&Plain, x);
            ran += 1;
        }
        assert!(ran > 0, "{name}: no bit flip gave a graph");
    }
}
