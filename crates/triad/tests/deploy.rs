//! Three organisations: each party makes its own key on its own "host" (a directory and,
//! on Linux, a loopback address of its own), the three assemble the same parties file from
//! the public certificates, and three `triad party` processes run a job, undisturbed by a
//! port scan and garbage during setup. No directory ever holds another party's key.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn host(i: usize) -> String {
    if cfg!(target_os = "linux") {
        format!("127.0.0.{}", i + 1)
    } else {
        "127.0.0.1".into()
    }
}

/// `keygen --party` on each host; returns the host directories, addresses and the
/// fingerprints each printed.
fn three_keygens(root: &Path) -> ([PathBuf; 3], [String; 3], [String; 3]) {
    let dirs = [0, 1, 2].map(|i| root.join(format!("host{i}")));
    let addrs = [0, 1, 2].map(|i| {
        let port = std::net::TcpListener::bind(format!("{}:0", host(i))).unwrap().local_addr().unwrap().port();
        format!("{}:{port}", host(i))
    });
    let fps = [0, 1, 2].map(|i| {
        let port = addrs[i].rsplit_once(':').unwrap().1;
        let out = stdout_ok(&triad(&[
            "keygen",
            "--party",
            &i.to_string(),
            "--host",
            &host(i),
            "--port",
            port,
            "--out",
            dirs[i].to_str().unwrap(),
        ]));
        out.split_whitespace().find(|w| w.starts_with("sha256:")).unwrap().to_string()
    });
    (dirs, addrs, fps)
}

#[test]
fn three_organisations_three_keygens_one_run() {
    let root = tempdir("deploy");
    let (dirs, addrs, fps) = three_keygens(&root);
    #[cfg(unix)]
    for (i, d) in dirs.iter().enumerate() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join(format!("party{i}.key"))).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "party {i}'s key");
    }
    // The operators exchange certificates (public) and each assembles on its own host.
    for (i, d) in dirs.iter().enumerate() {
        for (j, src) in dirs.iter().enumerate() {
            if i != j {
                std::fs::copy(src.join(format!("party{j}.pem")), d.join(format!("party{j}.pem"))).unwrap();
            }
        }
        let certs: Vec<String> =
            [2, 0, 1].iter().map(|j| d.join(format!("party{j}.pem")).display().to_string()).collect();
        let mut args = vec!["keygen", "--assemble"];
        args.extend(certs.iter().map(String::as_str));
        args.extend(["--out", d.to_str().unwrap(), "--session", "deploy", "--timeout-ms", "30000"]);
        let out = stdout_ok(&triad(&args));
        // What each operator checks: the three fingerprints and addresses, as read out.
        for j in 0..3 {
            assert!(out.contains(&format!("party {j} at {}: {}", addrs[j], fps[j])), "{out}");
        }
    }
    let files = dirs.each_ref().map(|d| std::fs::read(d.join("parties.toml")).unwrap());
    assert!(files[0] == files[1] && files[1] == files[2], "the three parties files differ");
    for (i, d) in dirs.iter().enumerate() {
        for j in (0..3).filter(|&j| j != i) {
            assert!(!d.join(format!("party{j}.key")).exists(), "host {i} holds party {j}'s key");
        }
    }

    let party = |i: usize| {
        let cfg = dirs[i].join("parties.toml").display().to_string();
        let id = i.to_string();
        let args =
            ["party", "--id", &id, "--config", &cfg, "infer", "--model", "lenet", "--samples", "2", "--batch", "2"];
        spawn(&args.iter().chain(&["--json"]).map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let (k0, k1) = (party(0), party(1));
    // A port scan and garbage at both listeners during setup, before party 2 arrives.
    for a in &addrs[..2] {
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(a).is_err() {
            assert!(Instant::now() < until, "{a} never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut s = std::net::TcpStream::connect(a).unwrap();
        let _ = s.write_all(b"SSH-2.0-scanner\r\n");
    }
    let k2 = party(2);
    let outs: Vec<_> = [k0, k1, k2].into_iter().map(|k| k.wait_with_output().unwrap()).collect();
    let reports: Vec<_> = outs.iter().map(json).collect();
    let owner = &reports[0]["parties"][0]["owner"];
    assert_eq!(owner["predictions"].as_array().unwrap().len(), 2, "{owner}");
    let stderr0 = String::from_utf8_lossy(&outs[0].stderr);
    assert!(stderr0.contains("dropped a connection"), "party 0 logs the strangers: {stderr0}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn assemble_refuses_what_it_cannot_vouch_for() {
    let root = tempdir("assemble-bad");
    let (dirs, _, _) = three_keygens(&root);
    let cert = |i: usize| dirs[i].join(format!("party{i}.pem")).display().to_string();
    let out = root.join("out").display().to_string();
    let run = |certs: [&str; 3]| {
        let o = triad(&["keygen", "--assemble", certs[0], certs[1], certs[2], "--out", &out]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run([&cert(0), &cert(1), &cert(1)]);
    assert!(e.contains("a second certificate for party 1"), "{e}");
    // A certificate whose fingerprint line was changed in transit.
    let text = std::fs::read_to_string(cert(2)).unwrap();
    let line = text.lines().find(|l| l.starts_with("sha256 fingerprint:")).unwrap();
    let forged = root.join("forged.pem");
    let zeros = vec!["00"; 32].join(":");
    std::fs::write(&forged, text.replace(line, &format!("sha256 fingerprint: sha256:{zeros}"))).unwrap();
    let e = run([&cert(0), &cert(1), forged.to_str().unwrap()]);
    assert!(e.contains("does not match"), "{e}");
    // A one-machine keygen's certificate has no address line.
    let local = root.join("local");
    let o = triad(&["keygen", "--hosts", "a,b,c", "--out", local.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("local runs and tests only"));
    let e = run([&cert(0), &cert(1), local.join("party2.pem").to_str().unwrap()]);
    assert!(e.contains("triad address"), "{e}");
    assert!(!root.join("out/parties.toml").exists());
    let _ = std::fs::remove_dir_all(&root);
}
