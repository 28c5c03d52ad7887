//! Replays the cargo-fuzz seed corpus `fuzz/corpus/onnx_reader/` through the same check
//! as the fuzz target, plus every truncation and a deterministic set of byte mutations
//! of each file (as `crates/transport/tests/fuzz_corpus.rs` does for its targets).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "corpus {target} is nearly empty");
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

/// The same check as `fuzz/fuzz_targets/onnx_reader.rs`.
fn onnx_reader(data: &[u8]) {
    match triad_onnx::parse(data, None) {
        Ok(m) => assert!((triad_onnx::OPSET_MIN..=triad_onnx::OPSET_MAX).contains(&m.opset)),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
        }
    }
}

#[test]
fn onnx_reader_corpus() {
    let mut n = 0;
    for (name, data) in corpus("onnx_reader") {
        // The input, every prefix, and single-byte mutations at every position.
        for i in 0..=data.len() {
            let mut cases = vec![data[..i].to_vec()];
            if i < data.len() {
                cases.extend([0x00u8, 0xff, 0x01, 0x80].map(|x| {
                    let mut v = data.clone();
                    v[i] ^= x;
                    v
                }));
            }
            for v in cases {
                let r = std::panic::catch_unwind(|| onnx_reader(&v));
                assert!(r.is_ok(), "onnx_reader: panic on a variant of {name}: {v:?}");
                n += 1;
            }
        }
    }
    assert!(n > 100);
}

#[test]
fn corpus_seeds_parse_as_labelled() {
    for (name, data) in corpus("onnx_reader") {
        let r = triad_onnx::parse(&data, None);
        // The TorchScript exports parse (the reader does not judge ops), and so do the
        // importer's finds (`regress_import_*`: models the reader accepts and the importer
        // refuses); the dynamo one has external data and no folder to find it in; the
        // rest are broken files.
        let parses = name.ends_with("_ts.onnx") || name.contains("/regress_import_");
        assert_eq!(r.is_ok(), parses, "{name}: {:?}", r.err().map(|e| e.to_string()));
    }
}
