//! Replays the cargo-fuzz seed corpus `fuzz/corpus/npy_reader/` through the same check
//! as the fuzz target, with every truncation and single-byte mutation of each file.
#![allow(clippy::unwrap_used)]

use triad_data::npy;

/// The same check as `fuzz/fuzz_targets/npy_reader.rs`.
fn npy_reader(data: &[u8]) {
    match npy::parse(data) {
        Ok(a) => assert_eq!(a.shape.iter().product::<usize>(), a.len()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn npy_reader_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/npy_reader");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "corpus npy_reader is nearly empty");
    let mut n = 0;
    for path in seeds {
        let data = std::fs::read(&path).unwrap();
        let mut cases = vec![data.clone()];
        for i in 0..data.len() {
            cases.push(data[..i].to_vec());
            for x in [0x00u8, 0xff, 0x01, 0x80] {
                let mut v = data.clone();
                v[i] ^= x;
                cases.push(v);
            }
        }
        for v in cases {
            let r = std::panic::catch_unwind(|| npy_reader(&v));
            assert!(r.is_ok(), "npy_reader: panic on a variant of {}: {v:?}", path.display());
            n += 1;
        }
        // Seeds named for a refusal (and the fuzzer's regression inputs, `regress_*`,
        // which are refusals that once printed badly) are refused; the rest parse.
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let refused = ["big_endian", "f2", "fortran"].contains(&stem.as_str()) || stem.starts_with("regress_");
        assert_eq!(npy::parse(&data).is_ok(), !refused, "{}", path.display());
    }
    assert!(n > 100);
}
