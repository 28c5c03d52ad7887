//! Three real processes over mutual TLS on loopback: a normal run completes on all three,
//! and a party killed mid-run (SIGKILL) leaves the other two with an error naming it,
//! inside the timeout, with no hang.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use triad_transport::generate_test_pki;

/// Writes certificates and a config with free loopback ports into `dir`.
fn write_setup(dir: &Path, timeout_ms: u64) {
    let pki = generate_test_pki(["127.0.0.1", "127.0.0.1", "127.0.0.1"]).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca_cert_pem).unwrap();
    let mut parties = String::new();
    for (i, pp) in pki.parties.iter().enumerate() {
        std::fs::write(dir.join(format!("p{i}.pem")), &pp.cert_pem).unwrap();
        std::fs::write(dir.join(format!("p{i}.key")), &pp.key_pem).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        parties.push_str(&format!(
            "[[party]]\nid = {i}\naddress = \"127.0.0.1:{port}\"\ncert = \"p{i}.pem\"\nkey = \"p{i}.key\"\n"
        ));
    }
    let cfg = format!("session = \"proc-test\"\ntimeout_ms = {timeout_ms}\nca = \"ca.pem\"\n{parties}");
    std::fs::write(dir.join("parties.toml"), cfg).unwrap();
}

fn spawn(dir: &Path, id: usize, rounds: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_triad-test-party"))
        .args(["--id", &id.to_string(), "--config"])
        .arg(dir.join("parties.toml"))
        .args(["--rounds", &rounds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("triad-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wait_ready(c: &mut Child) {
    let out = c.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
}

#[test]
fn three_processes_complete_and_agree() {
    let dir = tempdir("ok");
    write_setup(&dir, 20_000);
    let kids: Vec<Child> = (0..3).map(|i| spawn(&dir, i, 5)).collect();
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "party {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let last = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or("").to_string();
    assert!(last(&outs[0]).starts_with("done "));
    assert_eq!(last(&outs[0]), last(&outs[1]));
    assert_eq!(last(&outs[1]), last(&outs[2]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_party_leaves_the_others_with_an_error_inside_the_timeout() {
    let dir = tempdir("kill");
    let timeout = Duration::from_millis(3000);
    write_setup(&dir, timeout.as_millis() as u64);
    let mut kids: Vec<Child> = (0..3).map(|i| spawn(&dir, i, 0)).collect();
    for k in kids.iter_mut() {
        wait_ready(k);
    }
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    kids[2].kill().unwrap(); // SIGKILL: no goodbye, no flush
    let _ = kids[2].wait();
    for i in 0..2 {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = kids[i].try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > timeout * 2 {
                let _ = kids[i].kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let status =
            status.unwrap_or_else(|| panic!("party {i} still running {:?} after the kill", killed_at.elapsed()));
        assert_eq!(status.code(), Some(2), "party {i} must exit with an error");
        let mut err = String::new();
        std::io::Read::read_to_string(kids[i].stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains("party 2"), "party {i}'s error should name party 2: {err}");
    }
    assert!(killed_at.elapsed() < timeout + Duration::from_secs(1), "took {:?}", killed_at.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
