//! CI compiles every CUDA kernel: each `kernels/*.cu` goes through NVRTC for sm_90 (the
//! H100/H200 architecture) and must compile with no error and no warning. No GPU is
//! needed, only the NVRTC library: CI installs it from PyPI into `.venv` and names it in
//! `TRIAD_NVRTC_LIB` (see `.ci/run`). Without NVRTC the test prints a skip line and
//! passes, unless `CI` is set, where a missing NVRTC fails.

use triad_cuda::nvrtc;

/// The architectures the kernels must compile for: Hopper (H100, H200) first.
const ARCHES: [&str; 1] = ["sm_90"];

fn nvrtc_or_skip(test: &str) -> bool {
    match nvrtc::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: CI is set but NVRTC is unavailable: {why}");
            }
            eprintln!("{test}: skipped (NVRTC unavailable: {why})");
            false
        }
    }
}

/// The repository's `kernels/`: `TRIAD_KERNELS_DIR` when set (the packed GPU check runs this
/// binary from another checkout than the one it was built in), else the build's checkout.
fn kernels_dir() -> std::path::PathBuf {
    match std::env::var_os("TRIAD_KERNELS_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels"),
    }
}

/// The files of `kernels/` with extension `ext` and the crate's list of them agree, name
/// for name and byte for byte.
fn listed_as_on_disk(ext: &str, list: &[(&str, &str)], what: &str) {
    let dir = kernels_dir();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = list.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "kernels/*{ext} and triad_cuda::nvrtc::{what} differ");
    for (name, src) in list {
        let disk = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&disk, src, "{name}: the crate's copy is stale (rebuild)");
    }
}

#[test]
fn every_kernel_file_is_listed() {
    listed_as_on_disk(".cu", &nvrtc::KERNEL_SOURCES, "KERNEL_SOURCES");
    listed_as_on_disk(".cuh", &nvrtc::KERNEL_HEADERS, "KERNEL_HEADERS");
}

#[test]
fn every_kernel_compiles_for_sm_90_without_warnings() {
    if !nvrtc_or_skip("every_kernel_compiles_for_sm_90_without_warnings") {
        return;
    }
    let (major, minor) = nvrtc::version().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    for arch in ARCHES {
        for (name, src) in nvrtc::KERNEL_SOURCES {
            match nvrtc::compile(name, src, arch) {
                Ok(c) => {
                    if !c.log.is_empty() {
                        failures.push(format!("{name} ({arch}) compiled with messages:\n{}", c.log));
                    } else if c.cubin.is_empty() {
                        failures.push(format!("{name} ({arch}): empty CUBIN"));
                    } else {
                        eprintln!("{name} ({arch}): ok, {} bytes of CUBIN", c.cubin.len());
                    }
                }
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "kernel compilation failed:\n{}", failures.join("\n\n"));
}

#[test]
fn a_broken_kernel_is_reported_not_panicked() {
    if !nvrtc_or_skip("a_broken_kernel_is_reported_not_panicked") {
        return;
    }
    let err = nvrtc::compile("broken.cu", "extern \"C\" __global__ void k(int* p) { p[0] = undefined_name; }", "sm_90")
        .expect_err("a kernel with an undefined name must not compile");
    assert!(err.contains("undefined_name"), "the error carries NVRTC's log: {err}");
    // A warning shows up in the log of a successful compile (the test above fails on it).
    let warn =
        nvrtc::compile("warn.cu", "extern \"C\" __global__ void k(int* p) { int unused_var; p[0] = 1; }", "sm_90");
    let warn = warn.unwrap_or_else(|e| panic!("{e}"));
    assert!(warn.log.contains("unused_var"), "NVRTC's warnings reach the log: {:?}", warn.log);
}
