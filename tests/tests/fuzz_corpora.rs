//! The fuzz corpora, replayed on stable without libFuzzer: every file of
//! `fuzz/corpus/<target>/` goes through the target's body (`triad_tests::fuzz`), the same
//! function the fuzz target calls. A crash the fuzzer found stays fixed once its input is
//! in the corpus. `write_seed_corpora` (ignored) regenerates the seeds that need the
//! library to write them (weights files, share checkpoints).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use triad_tests::fuzz::TARGETS;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

#[test]
fn every_target_has_a_seed_corpus_and_every_input_replays() {
    let mut total = 0;
    for (name, body) in TARGETS {
        let dir = corpus(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{name}: {} fails", f.display());
        }
        println!("{name}: {} inputs", files.len());
        total += files.len();
    }
    assert!(total > 0);
}

#[test]
fn every_fuzz_target_is_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "fuzz/fuzz_targets and triad_tests::fuzz::TARGETS differ");
}

/// Writes the seeds made by the library itself: a valid weights file and a valid share
/// checkpoint for the fuzz model, and a valid CIFAR-10 record.
#[test]
#[ignore = "regenerates seed corpora: cargo test -p triad-tests --test fuzz_corpora -- --ignored"]
fn write_seed_corpora() {
    use triad_fixed::FixedConfig;
    use triad_ring::CpuDevice;
    use triad_transport::{LinkConfig, PartyId};
    let net = triad_tests::fuzz::weights_model();
    let w = net.init_weights(7);
    triad::weights::save_plain(&corpus("weights_plain").join("valid.safetensors"), &net, &w).unwrap();
    let tmp = std::env::temp_dir().join(format!("triad-seed-{}", std::process::id()));
    triad_sharing::run_in_process_with_test_keys(CpuDevice, &LinkConfig::default(), FixedConfig::default(), 1, |p| {
        let owner = PartyId::ALL[0];
        let mut m = triad_layers::Model::new(p, &net, owner, (p.id == owner).then_some(&w[..]))?;
        let id = triad::start::RunId([7; 16]);
        let lineage = triad::checkpoint::Lineage { run: id, attempt: id };
        triad::checkpoint::save_shares(&tmp, p, &mut m, 5, lineage)
            .map_err(|e| triad_sharing::Error::Usage(e.to_string()))?;
        Ok(())
    })
    .unwrap();
    std::fs::copy(triad::checkpoint::share_path(&tmp, 0), corpus("share_checkpoint").join("valid.safetensors"))
        .unwrap();
    let mut rec = vec![3u8];
    rec.extend((0..3072).map(|i| (i % 251) as u8));
    std::fs::write(corpus("cifar_reader").join("one_record.bin"), &rec).unwrap();
    rec[0] = 10;
    std::fs::write(corpus("cifar_reader").join("bad_label.bin"), &rec).unwrap();
    let lenet = triad_layers::zoo::lenet(triad_layers::Activation::Relu, triad_layers::Pooling::Max);
    std::fs::write(corpus("graph_wire").join("lenet.bin"), triad_layers::graph_wire::encode(&lenet).unwrap()).unwrap();
    std::fs::write(corpus("graph_wire").join("fuzz_model.bin"), triad_layers::graph_wire::encode(&net).unwrap())
        .unwrap();
    // The service: an upload of the fuzz model, an inference request on the installed
    // one (`m`, the same model), an allow, and a request with a body cut short.
    use triad_service::wire::{write_frame, Request};
    let graph = triad_layers::graph_wire::encode(&net).unwrap();
    let n: usize = triad_layers::serving_shapes(&net).iter().map(|s| s.iter().product::<usize>()).sum();
    let mut up = Vec::new();
    let mut body = graph.clone();
    body.extend((0..16 * n).map(|i| (i % 251) as u8));
    let req = Request::Upload { model: "f".into(), version: 9, frac_bits: 20, graph_bytes: graph.len() as u64 };
    write_frame(&mut up, &req, &body).unwrap();
    let dir = corpus("service_request");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("upload.bin"), &up).unwrap();
    let mut infer = Vec::new();
    let mut dims = vec![2];
    dims.extend(net.input());
    let per: usize = net.input().iter().product();
    let req = Request::Infer { id: 3, model: "m".into(), dims };
    write_frame(&mut infer, &req, &vec![7u8; 16 * 2 * per]).unwrap();
    write_frame(&mut infer, &Request::Allow { model: "m".into(), client: "owner".into() }, &[]).unwrap();
    std::fs::write(dir.join("infer_allow.bin"), &infer).unwrap();
    std::fs::write(dir.join("cut.bin"), &infer[..infer.len() / 2]).unwrap();
}

/// Found by the `compare` target: max pooling of an image with no rows (valid pooling
/// parameters, `in_h = 0`, padding 1, window 2) made every window padding only, and the
/// spec has no maximum there. The protocol now refuses it with a typed error on every
/// party. The input is `fuzz/corpus/compare/regress_maxpool_empty_image`.
#[test]
fn maxpool_of_an_empty_image_is_a_typed_error() {
    use triad_ring::{Pool2dParams, Shape};
    let pp = Pool2dParams {
        batch: 1,
        channels: 1,
        in_h: 0,
        in_w: 3,
        kh: 2,
        kw: 2,
        stride_h: 1,
        stride_w: 1,
        pad_h: 1,
        pad_w: 1,
    };
    let out = triad_tests::parties::in_process(4, |p| {
        let x = p.random(&Shape::new([1, 1, 0, 3]))?;
        Ok(triad_compare::maxpool(p, &x, &pp).map(|_| ()).map_err(|e| e.to_string()))
    })
    .unwrap();
    for r in out {
        let e = r.unwrap_err();
        assert!(e.contains("every window is padding"), "{e}");
    }
    let data = std::fs::read(corpus("compare").join("regress_maxpool_empty_image")).unwrap();
    triad_tests::fuzz::compare(&data);
}

/// Found by the `npy_reader` target: a dtype descriptor, then a shape dimension, holding a
/// newline (and NULs) was echoed raw into the error, which was then not one line. Both are
/// escaped now. The inputs are `fuzz/corpus/npy_reader/regress_*_with_newline.npy`.
#[test]
fn npy_header_errors_are_one_line() {
    for (file, shown) in [("regress_dtype_with_newline.npy", "<f8\\n"), ("regress_dimension_with_newline.npy", "\\n")] {
        let data = std::fs::read(corpus("npy_reader").join(file)).unwrap();
        let e = triad_data::npy::parse(&data).unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\0'), "{file}: {e:?}");
        assert!(e.contains(shown), "{file}: the file's text is shown escaped: {e:?}");
        triad_tests::fuzz::npy_reader(&data);
    }
}

/// The valid seeds stay valid (else the weights targets would only ever fuzz the error
/// paths): the weights file loads into the fuzz model, the checkpoint's metadata reads back.
#[test]
fn the_valid_weights_seeds_load() {
    let net = triad_tests::fuzz::weights_model();
    let w = triad::weights::load_plain(&corpus("weights_plain").join("valid.safetensors"), &net).unwrap();
    assert_eq!(w, net.init_weights(7));
    let dir = std::env::temp_dir().join(format!("triad-seed-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(corpus("share_checkpoint").join("valid.safetensors"), triad::checkpoint::share_path(&dir, 0))
        .unwrap();
    let meta = triad::checkpoint::read_share_meta(&dir, 0).unwrap();
    assert_eq!((meta.model.as_str(), meta.party, meta.step), (net.name.as_str(), 0, 5));
    let p0 = triad_transport::PartyId::ALL[0];
    let [step, _, _] = triad_tests::parties::in_process(3, |p| {
        let mut m = triad_layers::Model::new(p, &net, p0, (p.id == p0).then_some(&w[..]))?;
        Ok((p.id == p0).then(|| {
            triad::checkpoint::load_shares(&triad::checkpoint::share_path(&dir, 0), p, &mut m)
                .map_err(|e| e.to_string())
        }))
    })
    .unwrap();
    assert_eq!(step, Some(Ok(5)), "party 0 loads the valid checkpoint");
}

/// Found by the `onnx_reader` target as soon as it went on through the importer: a model
/// the reader accepts whose node input names hold a newline (the fuzzer merged names)
/// made `triad_onnx::import`'s error quote them raw, in several lines. Import errors now
/// escape control characters as the reader's do (`regress_tensor_name_with_newline`).
#[test]
fn import_errors_are_one_line() {
    for file in ["regress_import_name_with_newline_gemm", "regress_import_name_with_newline_conv"] {
        let data = std::fs::read(corpus("onnx_reader").join(file)).unwrap();
        let m = triad_onnx::parse(&data, None).unwrap();
        let e = triad_onnx::import(&m, "m.onnx").map(drop).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{file}: {e:?}");
    }
}
