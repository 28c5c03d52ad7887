//! Three `triad serve` processes and `triad client` on loopback: keys and client files
//! from `keygen --clients`, an upload as shares, a data owner refused until allowed, its
//! predictions equal to the plaintext twin's, a client with an unenrolled key refused,
//! and SIGTERM at one server stopping all three with exit status 0.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::*;

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/onnx/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The servers, killed if the test fails before it stops them (no process outlives it).
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for k in &mut self.0 {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

fn wait_exit(k: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Some(s) = k.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn three_servers_serve_enrolled_clients_and_stop_on_sigterm() {
    let dir = tempdir("serve");
    let d = dir.to_str().unwrap();
    let client_ports = format!("{},{},{}", free_port(), free_port(), free_port());
    let cfg = keygen_with(&dir, 30_000, &["--clients", "owner,reader", "--client-ports", &client_ports]);
    let mut servers = Servers(Vec::new());
    servers.0 = (0..3)
        .map(|i| {
            spawn(
                &["serve", "--id", &i.to_string(), "--config", cfg.to_str().unwrap(), "--threads", "1"]
                    .map(String::from),
            )
        })
        .collect();
    let owner = dir.join("owner.toml");
    let reader = dir.join("reader.toml");
    let (owner, reader) = (owner.to_str().unwrap(), reader.to_str().unwrap());
    let model = fixture("residual_cnn_ts.onnx");

    // The servers are up once a client can connect (they start in any order).
    let t = Instant::now();
    let up = loop {
        let out = triad(&["client", "--config", owner, "upload", &model, "--id", "cnn"]);
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("cannot connect") {
            break stdout_ok(&out);
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the servers did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(up.contains("uploaded \"cnn\""), "{up}");
    // The reader is refused until the owner allows it; then a load test's every answer
    // matches the plaintext twin of the same file.
    let load = ["client", "--config", reader, "load", "cnn", "--onnx", &model, "--clients", "2", "--seconds", "1"];
    assert_one_error_line(&triad(&load), "no model \"cnn\" that reader may use");
    stdout_ok(&triad(&["client", "--config", owner, "allow", "cnn", "reader"]));
    let l = stdout_ok(&triad(&load));
    assert!(l.contains("every answer within"), "{l}");

    // A client whose key no operator enrolled is refused.
    stdout_ok(&triad(&["keygen", "--client", "stranger", "--servers", cfg.to_str().unwrap(), "--out", d]));
    let s = triad(&["client", "--config", dir.join("stranger.toml").to_str().unwrap(), "allow", "cnn", "reader"]);
    assert!(!s.status.success());

    // SIGTERM at server 1: all three stop cleanly.
    let pid = servers.0[1].id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for (i, k) in servers.0.iter_mut().enumerate() {
        let status = wait_exit(k, Duration::from_secs(20));
        assert!(status.is_some_and(|s| s.success()), "server {i}: {status:?}");
    }
    for (i, k) in std::mem::take(&mut servers.0).into_iter().enumerate() {
        let out = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("party {i}: stopped; inference requests answered")), "server {i}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
