//! Helpers shared by the integration tests: run the `triad` binary, make temp dirs.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_triad"));
    c.stdin(Stdio::null());
    c
}

/// Runs `triad args...` to completion.
pub fn triad(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Spawns `triad args...` with piped output.
pub fn spawn(args: &[String]) -> Child {
    bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A fresh directory under the system temp dir.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triad-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes certificates and a parties file for three loopback parties with `triad keygen`.
pub fn keygen(dir: &Path, timeout_ms: u64) -> PathBuf {
    keygen_with(dir, timeout_ms, &[])
}

/// [`keygen`] with more arguments (`--clients ...` for `triad serve`).
pub fn keygen_with(dir: &Path, timeout_ms: u64, more: &[&str]) -> PathBuf {
    let ports = format!("{},{},{}", free_port(), free_port(), free_port());
    let timeout = timeout_ms.to_string();
    let mut args =
        vec!["keygen", "--hosts", "127.0.0.1,127.0.0.1,127.0.0.1", "--ports", &ports, "--out", dir.to_str().unwrap()];
    args.extend(["--timeout-ms", &timeout]);
    args.extend(more);
    let out = triad(&args);
    assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("parties.toml")
}

/// Asserts the run succeeded (showing its output if not); returns its stdout.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses stdout as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout_ok(out)).unwrap()
}

/// Asserts the run failed with exactly one stderr line `error: ...` containing `needle`.
pub fn assert_one_error_line(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stdout: {}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {err}");
    assert!(lines[0].starts_with("error: "), "not an error line: {err}");
    assert!(lines[0].contains(needle), "error line {:?} does not mention {needle:?}", lines[0]);
}
