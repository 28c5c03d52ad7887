//! Faults during real jobs: three `triad party` processes over mutual TLS on loopback,
//! one of them killed (SIGKILL) at setup, mid-training or mid-inference, or stopped (SIGSTOP)
//! mid-training, a peer that sends garbage
//! after its handshake, a stranger process during setup, and a resume from the last
//! checkpoint after a kill. Each survivor must exit with one `error:` line naming the
//! party at fault, within a bound, without a panic. `fault_table` (ignored by default)
//! runs every row and prints the table of BENCHMARKS.md:
//! `cargo test -p triad --test faults fault_table -- --ignored --nocapture --test-threads 1`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};
use triad_transport::testing::RawPeer;
use triad_transport::{Handshake, PartiesConfig, PartyId, TlsIdentity};

/// The parties file's timeout (setup and idle).
const TIMEOUT_MS: u64 = 3000;

/// Survivors must be done this long after the fault.
fn limit() -> Duration {
    Duration::from_millis(2 * TIMEOUT_MS + 1000)
}

fn party(cfg: &Path, id: usize, job: &[String]) -> Child {
    let mut a: Vec<String> =
        ["party", "--id", &id.to_string(), "--config", cfg.to_str().unwrap()].map(String::from).to_vec();
    a.extend_from_slice(job);
    spawn(&a)
}

fn three(cfg: &Path, job: &[String]) -> Vec<Child> {
    (0..3).map(|i| party(cfg, i, job)).collect()
}

/// Waits at most `limit` for `kid`; a kid still running then is killed and `None` returned.
fn exit_within(kid: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(s) = kid.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = kid.kill();
    let _ = kid.wait();
    None
}

fn stderr_of(kid: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = kid.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// Polls `cond` every 5 ms for at most 60 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The step of every party's checkpoint in `dir`, once all three have one.
fn steps(dir: &Path) -> Option<[u64; 3]> {
    let m = [0, 1, 2].map(|i| triad::checkpoint::read_share_meta(dir, i).ok().map(|m| m.step));
    Some([m[0]?, m[1]?, m[2]?])
}

/// Checks that every party but `victim` exits within [`limit`] of `since`, with a failure
/// status and one `error:` line naming `victim`, and no panic. Returns what each said and
/// how long after `since` the later one exited.
fn survivors(kids: &mut [Child], victim: usize, since: Instant, case: &str) -> (Vec<String>, Duration) {
    let mut said = Vec::new();
    let mut last = Duration::ZERO;
    for (i, kid) in kids.iter_mut().enumerate().filter(|(i, _)| *i != victim) {
        let status = exit_within(kid, limit()).unwrap_or_else(|| panic!("{case}: party {i} hung"));
        last = last.max(since.elapsed());
        let err = stderr_of(kid);
        assert!(!status.success(), "{case}: party {i} must fail");
        assert!(!err.contains("panicked"), "{case}: party {i} panicked: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{case}: party {i} must say one line: {err}");
        let line = lines[0].strip_prefix("error: ").unwrap_or_else(|| panic!("{case}: not an error line: {err}"));
        assert!(line.contains(&format!("party {victim}")), "{case}: party {i} should name party {victim}: {line}");
        said.push(format!("party {i}: {line}"));
    }
    (said, last)
}

/// A directory with a one-machine keygen (loopback, [`TIMEOUT_MS`]).
fn rig(name: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(name);
    let cfg = keygen(&dir, TIMEOUT_MS);
    (dir, cfg)
}

/// `train --steps S --batch 4 --samples N <extra> -q`, as arguments.
fn train(steps: &str, samples: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["train", "--steps", steps, "--batch", "4", "--samples", samples];
    a.extend_from_slice(extra);
    a.push("-q");
    a.into_iter().map(String::from).collect()
}

/// `infer --samples 2 --batch 2 <extra> -q`, as arguments.
fn small_infer(extra: &[&str]) -> Vec<String> {
    let mut a = vec!["infer", "--samples", "2", "--batch", "2"];
    a.extend_from_slice(extra);
    a.push("-q");
    a.into_iter().map(String::from).collect()
}

/// Starts the three parties on `job`, waits until `ready`, then SIGKILLs `victim`.
/// Returns the parties and the moment of the kill.
fn kill_when(
    cfg: &Path,
    job: &[String],
    victim: usize,
    what: &str,
    ready: impl FnMut() -> bool,
) -> (Vec<Child>, Instant) {
    let mut kids = three(cfg, job);
    wait_until(what, ready);
    kids[victim].kill().unwrap();
    let at = Instant::now();
    let _ = kids[victim].wait();
    (kids, at)
}

/// One row: party `victim` is killed once training has checkpointed step 2 on all three.
fn kill_mid_training(victim: usize) -> (Vec<String>, Duration) {
    let (dir, cfg) = rig(&format!("kill-train-{victim}"));
    let ck = dir.join("ck");
    let job = train("400", "0", &["--checkpoint", ck.to_str().unwrap(), "--checkpoint-every", "1"]);
    let (mut kids, at) = kill_when(&cfg, &job, victim, "three checkpoints of step 2", || {
        steps(&ck).is_some_and(|s| s.iter().all(|&k| k >= 2))
    });
    let out = survivors(&mut kids, victim, at, &format!("party {victim} killed mid-training"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// One row: party `victim` is killed 20 ms after the three start, during setup (before
/// or while it connects).
fn kill_at_setup(victim: usize) -> (Vec<String>, Duration) {
    let (dir, cfg) = rig(&format!("kill-setup-{victim}"));
    let started = Instant::now();
    let (mut kids, at) =
        kill_when(&cfg, &small_infer(&[]), victim, "20 ms", || started.elapsed() >= Duration::from_millis(20));
    let out = survivors(&mut kids, victim, at, &format!("party {victim} killed at setup"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// One row: party `victim` is stopped (SIGSTOP) once training has checkpointed step 2
/// on all three: it keeps its connections open but sends nothing, heartbeats included,
/// so the others must give up after the timeout.
#[cfg(unix)]
fn stop_mid_training(victim: usize) -> (Vec<String>, Duration) {
    let (dir, cfg) = rig(&format!("stop-train-{victim}"));
    let ck = dir.join("ck");
    let job = train("400", "0", &["--checkpoint", ck.to_str().unwrap(), "--checkpoint-every", "1"]);
    let mut kids = three(&cfg, &job);
    wait_until("three checkpoints of step 2", || steps(&ck).is_some_and(|s| s.iter().all(|&k| k >= 2)));
    let pid = kids[victim].id().to_string();
    let stopped = std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stopped.success(), "kill -STOP {pid}");
    let at = Instant::now();
    let out = survivors(&mut kids, victim, at, &format!("party {victim} stopped mid-training"));
    kids[victim].kill().unwrap();
    let _ = kids[victim].wait();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// One row: party `victim` is killed during the private inference after a one-step
/// training (its checkpoint, written between the two, marks the moment).
fn kill_mid_inference(victim: usize) -> (Vec<String>, Duration) {
    let (dir, cfg) = rig(&format!("kill-infer-{victim}"));
    let ck = dir.join("ck");
    let job = train("1", "2000", &["--eval-batch", "4", "--checkpoint", ck.to_str().unwrap()]);
    let (mut kids, at) = kill_when(&cfg, &job, victim, "three checkpoints", || steps(&ck).is_some());
    let out = survivors(&mut kids, victim, at, &format!("party {victim} killed mid-inference"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Waits until `address` accepts TCP connections.
fn listening(address: &str) {
    wait_until(&format!("{address} listening"), || std::net::TcpStream::connect(address).is_ok());
}

/// One row: the test plays party 2 with its real key, completes TLS and the triad
/// handshake with parties 0 and 1, then sends garbage to party 0.
fn garbage_after_handshake() -> (Vec<String>, Duration) {
    let (dir, cfg_path) = rig("garbage-after-handshake");
    let cfg = PartiesConfig::load(&cfg_path).unwrap();
    let job = small_infer(&[]);
    let mut kids: Vec<Child> = (0..2).map(|i| party(&cfg_path, i, &job)).collect();
    let p2 = PartyId::new(2).unwrap();
    let ident = TlsIdentity::load(&cfg, p2).unwrap();
    let hello = Handshake::new(p2, &cfg.session);
    let dial = |to: u8| {
        let to = PartyId::new(to).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match RawPeer::connect(&cfg, p2, &ident, to, &hello) {
                Ok(r) => return r,
                Err(e) => assert!(Instant::now() < until, "cannot reach party {to}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (mut to0, _to1) = (dial(0), dial(1));
    to0.send_raw(b"\x07this is not a triad frame, just bytes from a confused or hostile peer").unwrap();
    let at = Instant::now();
    // Party 2 is the test; both real parties must name it.
    let out = survivors(&mut kids, 2, at, "party 2 sends garbage after its handshake");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// One row: during setup a separate process (bash) connects to parties 0 and 1 and sends
/// garbage, the test holds a silent connection to each and makes a connect-and-close; the
/// real party 2 then arrives and the run completes. Returns party 0's log line and the
/// whole run's time.
fn strangers_during_setup() -> (Vec<String>, Duration) {
    let (dir, cfg_path) = rig("strangers");
    let cfg = PartiesConfig::load(&cfg_path).unwrap();
    let job = small_infer(&["--json"]);
    let t = Instant::now();
    let mut kids: Vec<Child> = (0..2).map(|i| party(&cfg_path, i, &job)).collect();
    let mut silent = Vec::new();
    for p in &cfg.parties[..2] {
        listening(&p.address);
        let (host, port) = p.address.rsplit_once(':').unwrap();
        let script = format!("exec 3<>/dev/tcp/{host}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && sleep 0.2");
        let status = std::process::Command::new("bash").args(["-c", &script]).status();
        assert!(status.is_ok_and(|s| s.success()), "the stranger process could not connect to {}", p.address);
        silent.push(std::net::TcpStream::connect(&p.address).unwrap());
    }
    kids.push(party(&cfg_path, 2, &job));
    let mut said = Vec::new();
    for (i, kid) in kids.iter_mut().enumerate() {
        let status = exit_within(kid, limit() * 2).unwrap_or_else(|| panic!("party {i} hung"));
        let err = stderr_of(kid);
        assert!(status.success(), "party {i} failed: {err}");
        for l in err.lines().filter(|l| l.contains("dropped a connection")) {
            said.push(format!("party {i}: {}", l.trim_start_matches("triad: ")));
        }
    }
    let took = t.elapsed();
    assert!(said.iter().any(|l| l.starts_with("party 0")), "party 0 logs the strangers: {said:?}");
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
    (said, took)
}

/// The resume row: party `victim` is killed at step 3 or later of an 8-step run with a
/// checkpoint every step; the three then resume from their checkpoints (from the latest
/// step all three hold: a kill can catch one party's save a step ahead of the others').
/// The resumed run must continue the same run id and end where a run that was never
/// interrupted ends: same predictions, the sum of the 40 opened logits within 2e-2 and the
/// first sample's logits within 2e-3 (the fixed-point truncation's last bits depend on
/// the random share masks, which every run draws afresh, so any two runs differ by about
/// 1e-4 per logit after 8 steps). Returns what happened and the resumed run's time.
fn resume_after_kill(victim: usize) -> (Vec<String>, Duration) {
    let (dir, cfg) = rig(&format!("resume-{victim}"));
    let ck = dir.join("ck");
    let ck_s = ck.to_str().unwrap();
    let job = train("8", "4", &["--checkpoint", ck_s, "--checkpoint-every", "1"]);
    let (mut kids, at) = kill_when(&cfg, &job, victim, "three checkpoints of step 3", || {
        steps(&ck).is_some_and(|s| s.iter().all(|&k| k >= 3))
    });
    survivors(&mut kids, victim, at, "kill before the resume");
    let at_kill = steps(&ck).unwrap();
    let run = triad::checkpoint::read_share_meta(&ck, 0).unwrap().run;

    let resume = train("8", "4", &["--resume", ck_s, "--checkpoint", ck_s, "--json"]);
    let t = Instant::now();
    let mut kids = three(&cfg, &resume);
    let statuses: Vec<_> =
        kids.iter_mut().map(|k| exit_within(k, limit() * 4).expect("the resumed run hung")).collect();
    let took = t.elapsed();
    // A kill can catch one save a step ahead; the three then resume from the step they all hold.
    let from = *at_kill.iter().min().unwrap();
    let outs: Vec<Value> = kids
        .into_iter()
        .zip(&statuses)
        .map(|(k, s)| {
            let o = k.wait_with_output().unwrap();
            assert!(s.success(), "the resume from {at_kill:?} failed: {}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    assert_eq!(outs[0]["parties"][0]["train"]["count"], 8 - from, "steps after the checkpoint of {at_kill:?}");
    for i in 0..3 {
        let m = triad::checkpoint::read_share_meta(&ck, i).unwrap();
        assert_eq!((m.step, m.run), (8, run), "party {i} continues the same run");
    }
    let fresh = json(&triad(&["train", "--steps", "8", "--batch", "4", "--samples", "4", "--json", "-q"]));
    let (a, b) = (&outs[0]["parties"][0]["owner"], &fresh["parties"][0]["owner"]);
    assert_eq!(a["predictions"], b["predictions"], "resumed and uninterrupted runs classify alike");
    let d = (a["logits_sum"].as_f64().unwrap() - b["logits_sum"].as_f64().unwrap()).abs();
    assert!(d <= 2e-2, "logit sums {} and {} differ by {d}", a["logits_sum"], b["logits_sum"]);
    let first =
        |v: &Value| -> Vec<f64> { v["first_logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let dmax = first(a).iter().zip(first(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(dmax <= 2e-3, "first logits differ by {dmax}");
    let said = vec![format!(
        "checkpoints at steps {at_kill:?}; resumed from step {from}, same run id; 8 steps then inference: same predictions as an uninterrupted run, logit sum differs by {d:.1e}, first logits by at most {dmax:.1e}"
    )];
    let _ = std::fs::remove_dir_all(&dir);
    (said, took)
}

#[test]
fn a_party_killed_mid_training_is_reported_by_both_others() {
    let (said, took) = kill_mid_training(1);
    assert!(took < limit(), "{took:?}");
    eprintln!("{said:?} after {took:?}");
}

#[cfg(unix)]
#[test]
fn a_party_stopped_mid_training_is_reported_after_the_timeout() {
    let (said, took) = stop_mid_training(2);
    assert!(said.iter().all(|l| l.contains(&format!("timed out after {TIMEOUT_MS} ms"))), "{said:?}");
    // The timeout runs from the last frame heard from the stopped party, which may precede
    // the SIGSTOP by up to one heartbeat interval (a quarter of the timeout): a CI run
    // measured 2.998 s against a 3 s timeout.
    let earliest =
        Duration::from_millis(TIMEOUT_MS) - triad_transport::heartbeat_interval(Duration::from_millis(TIMEOUT_MS));
    assert!(took >= earliest && took < limit(), "{took:?}");
    eprintln!("{said:?} after {took:?}");
}

#[test]
fn a_party_killed_at_setup_is_reported_by_both_others() {
    let (said, took) = kill_at_setup(0);
    assert!(took < limit(), "{took:?}");
    eprintln!("{said:?} after {took:?}");
}

#[test]
fn a_party_killed_mid_inference_is_reported_by_both_others() {
    let (said, took) = kill_mid_inference(0);
    assert!(took < limit(), "{took:?}");
    eprintln!("{said:?} after {took:?}");
}

#[test]
fn garbage_after_the_handshake_is_reported_by_both_others() {
    let (said, took) = garbage_after_handshake();
    assert!(said[0].contains("party 2"), "{said:?}");
    eprintln!("{said:?} after {took:?}");
}

#[cfg(unix)]
#[test]
fn a_stranger_process_during_setup_does_not_stop_the_run() {
    let (said, took) = strangers_during_setup();
    eprintln!("{said:?} in {took:?}");
}

#[test]
fn a_resume_after_a_kill_ends_where_an_uninterrupted_run_ends() {
    let (said, took) = resume_after_kill(2);
    eprintln!("{said:?} in {took:?}");
}

/// Every row, printed as the table of BENCHMARKS.md.
#[test]
#[ignore = "the whole table: about a minute; run it to refresh BENCHMARKS.md"]
fn fault_table() {
    println!("| fault | party | what the survivors report | after |");
    println!("|---|---|---|---|");
    let row = |fault: &str, who: &str, (said, took): (Vec<String>, Duration)| {
        println!("| {fault} | {who} | {} | {:.2} s |", said.join("<br>"), took.as_secs_f64());
    };
    for v in 0..3 {
        row("SIGKILL at setup (20 ms after start)", &v.to_string(), kill_at_setup(v));
    }
    for v in 0..3 {
        row("SIGKILL mid-training (after step 2's checkpoint)", &v.to_string(), kill_mid_training(v));
    }
    #[cfg(unix)]
    for v in 0..3 {
        row("SIGSTOP mid-training (after step 2's checkpoint)", &v.to_string(), stop_mid_training(v));
    }
    for v in 0..3 {
        row("SIGKILL mid-inference (2000 samples, batch 4)", &v.to_string(), kill_mid_inference(v));
    }
    row("garbage after the handshake (the test plays party 2 with its key)", "2", garbage_after_handshake());
    row("stranger process + silent connection during setup", "none", strangers_during_setup());
    for v in 0..3 {
        row("SIGKILL at step ≥ 3 of 8, then --resume", &v.to_string(), resume_after_kill(v));
    }
}
