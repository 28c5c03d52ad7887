//! Three `triad party` processes over mutual TLS on loopback get the same result as the
//! same job run with three parties in one process.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

fn owner(v: &Value) -> &Value {
    &v["parties"][0]["owner"]
}

fn close(a: &Value, b: &Value, tol: f64) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= tol
}

/// Runs `job` (the arguments after `train`/`infer`) as three processes and in process,
/// and checks that the owner's predictions agree and the opened logits agree up to the
/// fixed-point rounding (which depends on the random share masks).
fn same_result(name: &str, kind: &str, job: &[&str]) {
    let dir = tempdir(name);
    let cfg = keygen(&dir, 30_000);
    let kids: Vec<_> = (0..3)
        .map(|i| {
            let mut a: Vec<String> =
                ["party", "--id", &i.to_string(), "--config", cfg.to_str().unwrap(), kind].map(String::from).to_vec();
            a.extend(job.iter().map(|s| s.to_string()));
            a.push("--json".into());
            spawn(&a)
        })
        .collect();
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    let parties: Vec<Value> = outs.iter().map(json).collect();
    for (i, p) in parties.iter().enumerate() {
        assert_eq!(p["parties"][0]["party"], i);
        assert!(p["parties"][0]["infer"]["cost"]["bytes_sent"].as_u64().is_some());
    }
    assert!(parties[1]["parties"][0]["owner"].is_null(), "only the owner learns the output");
    let mut args = vec![kind];
    args.extend(job);
    args.push("--json");
    let local = json(&triad(&args));
    let (a, b) = (owner(&parties[0]), owner(&local));
    assert_eq!(a["predictions"], b["predictions"]);
    assert!(!a["predictions"].as_array().unwrap().is_empty());
    assert!(close(&a["logits_sum"], &b["logits_sum"], 1e-2), "{} vs {}", a["logits_sum"], b["logits_sum"]);
    for (x, y) in a["first_logits"].as_array().unwrap().iter().zip(b["first_logits"].as_array().unwrap()) {
        assert!(close(x, y, 1e-3), "{x} vs {y}");
    }
    // Communication is deterministic: the same bytes over TLS as in process.
    for i in 0..3 {
        assert_eq!(
            parties[i]["parties"][0]["infer"]["cost"]["bytes_sent"], local["parties"][i]["infer"]["cost"]["bytes_sent"],
            "party {i} bytes"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_processes_infer_like_one_process() {
    same_result("proc-infer", "infer", &["--model", "lenet", "--samples", "6", "--batch", "3", "-q"]);
}

#[test]
fn three_processes_train_like_one_process() {
    same_result("proc-train", "train", &["--model", "lenet", "--steps", "2", "--batch", "4", "--samples", "4", "-q"]);
}

#[test]
fn parties_with_different_jobs_stop_with_an_error() {
    let dir = tempdir("proc-mismatch");
    let cfg = keygen(&dir, 20_000);
    let kids: Vec<_> = (0..3)
        .map(|i| {
            let seed = if i == 2 { "7" } else { "42" };
            let a: Vec<String> = [
                "party",
                "--id",
                &i.to_string(),
                "--config",
                cfg.to_str().unwrap(),
                "infer",
                "--samples",
                "2",
                "--seed",
                seed,
                "-q",
            ]
            .map(String::from)
            .to_vec();
            spawn(&a)
        })
        .collect();
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    assert_one_error_line(&outs[2], "different job");
    assert!(!outs[0].status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
