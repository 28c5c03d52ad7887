//! Three real processes over mutual TLS on loopback: a normal run completes on all three,
//! and a party killed mid-run (SIGKILL) leaves the other two with an error naming it,
//! inside the timeout, with no hang. A party computing alone for longer than the timeout
//! keeps its peers waiting (heartbeats); a stopped one (SIGSTOP) is reported inside it.
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
    spawn_pausing(dir, id, rounds, 0)
}

fn spawn_pausing(dir: &Path, id: usize, rounds: u64, pause_ms: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_triad-test-party"))
        .args(["--id", &id.to_string(), "--config"])
        .arg(dir.join("parties.toml"))
        .args(["--rounds", &rounds.to_string(), "--pause-ms", &pause_ms.to_string()])
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
        let status = exit_within(&mut kids[i], timeout * 2);
        let status =
            status.unwrap_or_else(|| panic!("party {i} still running {:?} after the kill", killed_at.elapsed()));
        assert_eq!(status.code(), Some(2), "party {i} must exit with an error");
        let err = stderr_of(&mut kids[i]);
        assert!(err.contains("party 2"), "party {i}'s error should name party 2: {err}");
    }
    assert!(killed_at.elapsed() < timeout + Duration::from_secs(1), "took {:?}", killed_at.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (at most `limit`) for a party process to exit; `None` if it had to be killed.
fn exit_within(kid: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = kid.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > limit {
            let _ = kid.kill();
            let _ = kid.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(kid: &mut Child) -> String {
    let mut err = String::new();
    std::io::Read::read_to_string(kid.stderr.as_mut().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn a_party_computing_longer_than_the_timeout_completes() {
    let dir = tempdir("compute");
    write_setup(&dir, 800);
    // Party 1 computes alone for three timeouts while the others wait on it.
    let kids: Vec<Child> = (0..3).map(|i| spawn_pausing(&dir, i, 3, if i == 1 { 2_400 } else { 0 })).collect();
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "party {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn a_stopped_party_is_reported_inside_the_timeout() {
    let dir = tempdir("stop");
    let timeout = Duration::from_millis(1500);
    write_setup(&dir, timeout.as_millis() as u64);
    let mut kids: Vec<Child> = (0..3).map(|i| spawn(&dir, i, 0)).collect();
    for k in kids.iter_mut() {
        wait_ready(k);
    }
    std::thread::sleep(Duration::from_millis(200));
    let stopped_at = Instant::now();
    let pid = kids[1].id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    for i in [0, 2] {
        let status = exit_within(&mut kids[i], timeout * 3);
        let status =
            status.unwrap_or_else(|| panic!("party {i} still running {:?} after the stop", stopped_at.elapsed()));
        assert_eq!(status.code(), Some(2), "party {i} must exit with an error");
        let err = stderr_of(&mut kids[i]);
        assert!(err.contains("party 1"), "party {i}'s error should name party 1: {err}");
    }
    let took = stopped_at.elapsed();
    // The timeout runs from the last frame heard from party 1, at most one heartbeat
    // interval (a quarter of the timeout) before the stop.
    let earliest = timeout - triad_transport::heartbeat_interval(timeout);
    assert!(took >= earliest, "reported before the timeout: {took:?}");
    assert!(took < timeout + Duration::from_secs(1), "took {took:?}");
    let _ = kids[1].kill();
    let _ = kids[1].wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fault done to one party of three `triad-test-party` processes.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL 20 ms after start (on loopback, setup is often just done by then).
    KillAtStart,
    /// SIGKILL after setup, mid-computation.
    KillMidRun,
    /// SIGSTOP after setup.
    Stop,
}

/// Runs three parties with `fault` done to `victim`; checks that both survivors exit with
/// an error naming it (no hang, no panic) and returns their first stderr lines and how
/// long after the fault the later of them exited.
#[cfg(unix)]
fn fault_row(fault: Fault, victim: usize, timeout: Duration) -> (Vec<String>, Duration) {
    let dir = tempdir(&format!("fault-{fault:?}-{victim}"));
    write_setup(&dir, timeout.as_millis() as u64);
    let mut kids: Vec<Child> = (0..3).map(|i| spawn(&dir, i, 0)).collect();
    match fault {
        Fault::KillAtStart => std::thread::sleep(Duration::from_millis(20)),
        Fault::KillMidRun | Fault::Stop => {
            for k in kids.iter_mut() {
                wait_ready(k);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let at = Instant::now();
    match fault {
        Fault::Stop => {
            let pid = kids[victim].id().to_string();
            assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        }
        _ => kids[victim].kill().unwrap(),
    }
    let mut reports = Vec::new();
    for i in (0..3).filter(|&i| i != victim) {
        let status = exit_within(&mut kids[i], timeout * 3);
        let status = status.unwrap_or_else(|| panic!("{fault:?} of party {victim}: party {i} hung"));
        assert_eq!(status.code(), Some(2), "{fault:?} of party {victim}: party {i} must exit with an error");
        let err = stderr_of(&mut kids[i]);
        assert!(!err.contains("panicked"), "party {i} panicked: {err}");
        assert!(err.contains(&format!("party {victim}")), "{fault:?}: party {i} should name party {victim}: {err}");
        reports.push(err.lines().last().unwrap_or("").to_string());
    }
    let took = at.elapsed();
    let _ = kids[victim].kill();
    let _ = kids[victim].wait();
    let _ = std::fs::remove_dir_all(&dir);
    (reports, took)
}

/// The fault table of BENCHMARKS.md: every fault, every party, plus strangers during
/// setup. Slow-ish (a setup fault waits for the setup timeout), hence ignored by default:
/// `cargo test -p triad-tests --test processes fault_table -- --ignored --nocapture`.
#[cfg(unix)]
#[test]
#[ignore]
fn fault_table() {
    let timeout = Duration::from_millis(1500);
    println!("| fault | party | what the survivors report | exited after |");
    println!("|---|---|---|---|");
    for fault in [Fault::KillAtStart, Fault::KillMidRun, Fault::Stop] {
        for victim in 0..3 {
            let (reports, took) = fault_row(fault, victim, timeout);
            assert!(took < timeout * 2 + Duration::from_secs(1), "{fault:?} of party {victim} took {took:?}");
            println!("| {fault:?} | {victim} | {} | {:.2} s |", reports.join("<br>"), took.as_secs_f64());
        }
    }
    // Strangers at both listeners during setup: the run completes as usual.
    let dir = tempdir("fault-stranger");
    write_setup(&dir, timeout.as_millis() as u64);
    let cfg = triad_transport::PartiesConfig::load(dir.join("parties.toml")).unwrap();
    let mut kids: Vec<Child> = (0..2).map(|i| spawn(&dir, i, 3)).collect();
    let start = Instant::now();
    for p in &cfg.parties[..2] {
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&p.address).is_err() {
            assert!(Instant::now() < until, "{} never listened", p.address);
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut s = std::net::TcpStream::connect(&p.address).unwrap();
        let _ = std::io::Write::write_all(&mut s, b"GET / HTTP/1.0\r\n\r\n");
    }
    kids.push(spawn(&dir, 2, 3));
    let outs: Vec<_> = kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "party {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let logged = String::from_utf8_lossy(&outs[0].stderr);
    let line = logged.lines().find(|l| l.contains("dropped")).unwrap_or("").to_string();
    println!(
        "| stray connections at setup | 0, 1 | all three complete; {line} | {:.2} s (whole run) |",
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
