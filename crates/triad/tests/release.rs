//! The shipped binary cannot select test keys: neither `cargo build -p triad` nor a plain
//! `cargo build` at the workspace root (its `default-members`) turns on
//! `triad-sharing/insecure-test-keys`, the feature behind every fixed-key constructor, nor
//! `triad-transport/recording`, which keeps every received message for the view-secrecy
//! tests.
//! Only `cargo test` builds what enables it (the test crate, and dev-dependencies, which
//! `cargo tree` is told to leave out here as `cargo build` does).
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn features_of(krate: &str, args: &[&str]) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "--offline", "-e", "features,normal,build", "-i", krate])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn release_builds_have_no_test_keys() {
    for args in [&["-p", "triad"][..], &[][..]] {
        let tree = features_of("triad-sharing", args);
        assert!(tree.contains("triad-sharing"), "{tree}");
        assert!(!tree.contains("insecure-test-keys"), "cargo build {args:?} would link test keys:\n{tree}");
        let tree = features_of("triad-transport", args);
        assert!(tree.contains("triad-transport"), "{tree}");
        assert!(!tree.contains("\"recording\""), "cargo build {args:?} would link the message recorder:\n{tree}");
    }
    // The check can fail: the whole workspace, test crate included, does enable them.
    assert!(features_of("triad-sharing", &["--workspace"]).contains("insecure-test-keys"));
    assert!(features_of("triad-transport", &["--workspace"]).contains("\"recording\""));
}
