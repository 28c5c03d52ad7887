//! Replays the cargo-fuzz seed corpora (`fuzz/corpus/<target>/`) through the same pure
//! decoders and checks as the fuzz targets, plus every truncation and a deterministic set
//! of byte mutations of each file: no panics, and the round-trip properties hold.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use triad_transport::{
    check_handshake, decode_frame_header, decode_handshake, encode_frame_header, encode_handshake, Handshake,
    PartiesConfig, PartyId, FRAME_HEADER_LEN,
};

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

/// The input itself, every prefix, and single-byte mutations at every position.
fn variants(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![data.to_vec()];
    for i in 0..data.len() {
        out.push(data[..i].to_vec());
        for x in [0x00u8, 0xff, 0x01, 0x80] {
            let mut v = data.to_vec();
            v[i] ^= x;
            out.push(v);
        }
    }
    out
}

fn frame_header(data: &[u8]) {
    let (limit, rest) = data.split_at(data.len().min(8));
    let mut l = [0u8; 8];
    l[..limit.len()].copy_from_slice(limit);
    let max = u64::from_le_bytes(l);
    if let Ok(h) = decode_frame_header(rest, max) {
        assert!(h.len <= h.kind.max_len(max));
        assert_eq!(&encode_frame_header(h.kind, h.len)[..], &rest[..FRAME_HEADER_LEN]);
    }
}

fn handshake(data: &[u8]) {
    if let Ok(h) = decode_handshake(data) {
        assert_eq!(encode_handshake(&h), data);
        let ours = Handshake::new(PartyId::ALL[0], "fuzz");
        let _ = check_handshake(&ours, &h, PartyId::ALL[1]).map_err(|e| e.to_string());
    }
}

fn parties_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PartiesConfig::parse(text) {
        Ok(c) => assert_eq!(PartiesConfig::parse(&c.to_toml()).as_ref(), Ok(&c)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut n = 0;
    for (name, data) in corpus(target) {
        for v in variants(&data) {
            let r = std::panic::catch_unwind(|| check(&v));
            assert!(r.is_ok(), "{target}: panic on a variant of {name}: {v:?}");
            n += 1;
        }
    }
    n
}

#[test]
fn frame_header_corpus() {
    assert!(replay("frame_header", frame_header) > 100);
}

#[test]
fn handshake_corpus() {
    assert!(replay("handshake", handshake) > 100);
}

#[test]
fn parties_config_corpus() {
    assert!(replay("parties_config", parties_config) > 100);
}

#[test]
fn corpus_seeds_decode_as_labelled() {
    for (name, data) in corpus("frame_header") {
        let (limit, rest) = data.split_at(8);
        let max = u64::from_le_bytes(limit.try_into().unwrap());
        let bad = ["bad_magic", "huge_len", "short", "unknown_kind", "over_limit"].iter().any(|b| name.ends_with(b));
        assert_eq!(decode_frame_header(rest, max).is_ok(), !bad, "{name}");
    }
    for (name, data) in corpus("handshake") {
        let decoded = decode_handshake(&data);
        assert_eq!(decoded.is_ok(), name.contains("valid") || name.contains("wrong_version"), "{name}");
        if name.contains("valid") {
            // Valid seeds speak this protocol version, so the fuzzer reaches the later checks.
            let h = decoded.unwrap();
            let party = PartyId::new(h.party).unwrap();
            assert_eq!(check_handshake(&Handshake::new(party, &h.session), &h, party), Ok(()), "{name}");
        }
    }
    for (name, data) in corpus("parties_config") {
        let ok = PartiesConfig::parse(std::str::from_utf8(&data).unwrap()).is_ok();
        assert_eq!(ok, name.ends_with("example.toml"), "{name}");
    }
}
