//! The fuzz targets' bodies, one plain function per target (`fuzz/fuzz_targets/<name>.rs`
//! calls `triad_tests::fuzz::<name>`), so that `tests/fuzz_corpora.rs` replays every file
//! of `fuzz/corpus/<name>/` through the same code on stable, without libFuzzer.
//!
//! Each body takes the fuzzer's bytes and panics only on a real failure: a parser that
//! panics or accepts something inconsistent, a protocol whose three parties disagree with
//! the spec's simulator bit for bit, or whose opened result leaves the documented bound.
//! The bytes choose values, shapes and parameters within small limits (an execution takes
//! milliseconds); inputs outside a protocol's documented domain must give a typed error
//! or the documented result.
//!
//! [`TARGETS`] lists every target with its body, for the replay test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_ring::{CpuDevice, Device, RingError, Shape, Tensor};
use triad_sharing::{run_in_process_with_test_keys, test_keys, AShare, BShare, Party, Product, Rounding};
use triad_spec::ring as sr;
use triad_spec::sharing::{ideal_truncate, Shared, Sim};
use triad_transport::{LinkConfig, PartyId};

use crate::convert;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/corpus/`) and its body.
pub const TARGETS: [(&str, Body); 17] = [
    ("service_request", service_request),
    ("frame_header", frame_header),
    ("handshake", handshake),
    ("parties_config", parties_config),
    ("onnx_reader", onnx_reader),
    ("npy_reader", npy_reader),
    ("graph_wire", graph_wire),
    ("idx_reader", idx_reader),
    ("cifar_reader", cifar_reader),
    ("weights_plain", weights_plain),
    ("share_checkpoint", share_checkpoint),
    ("frame_assembler", frame_assembler),
    ("ring_ops", ring_ops),
    ("sharing", sharing),
    ("compare", compare),
    ("approx", approx),
    ("layer", layer),
];

/// The fuzzer's bytes as a stream of choices; past the end every choice is 0.
#[derive(Debug)]
pub struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::from(self.byte()) % (hi - lo + 1)
    }

    /// The next 8 bytes as a word.
    pub fn word(&mut self) -> u64 {
        (0..8).fold(0u64, |w, k| w | u64::from(self.byte()) << (8 * k))
    }

    /// A ring value biased to the edges: small signed, a power of two and its neighbours,
    /// the ends of the signed range, or any word.
    pub fn value(&mut self) -> u64 {
        let tag = self.byte();
        match tag % 4 {
            0 => i64::from(self.byte() as i8) as u64,
            1 => {
                let p = 1u64 << (self.byte() % 64);
                [p, p.wrapping_sub(1), p.wrapping_neg(), p.wrapping_neg().wrapping_add(1)][usize::from(tag >> 2) % 4]
            }
            2 => ((self.word() as i64) >> (tag >> 2)) as u64,
            _ => self.word(),
        }
    }

    /// `n` values, each kept to `|v| < 2^bits` by an arithmetic shift.
    pub fn values(&mut self, n: usize, bits: u32) -> Vec<u64> {
        (0..n).map(|_| ((self.value() as i64) >> (64 - bits.min(64)).min(63)) as u64).collect()
    }

    /// A real in `[lo, hi]` (a fraction with 16 bits), or one of the ends.
    pub fn real(&mut self, lo: f64, hi: f64) -> f64 {
        let u = u16::from_le_bytes([self.byte(), self.byte()]);
        lo + (hi - lo) * f64::from(u) / f64::from(u16::MAX)
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
}

/// An error's message: one non-empty line (what a user sees).
fn one_line(e: &impl std::fmt::Display) {
    let line = e.to_string();
    assert!(!line.is_empty() && !line.contains('\n'), "error is not one line: {line:?}");
}

// ---- parsers of outside input --------------------------------------------------------------------

/// Frame headers: decoding never panics, and whatever decodes re-encodes to the same bytes.
/// The first 8 bytes choose the frame limit.
pub fn frame_header(data: &[u8]) {
    use triad_transport::{decode_frame_header, encode_frame_header, FRAME_HEADER_LEN};
    let (limit, rest) = data.split_at(data.len().min(8));
    let mut l = [0u8; 8];
    l[..limit.len()].copy_from_slice(limit);
    let max = u64::from_le_bytes(l);
    if let Ok(h) = decode_frame_header(rest, max) {
        assert!(h.len <= h.kind.max_len(max));
        assert_eq!(&encode_frame_header(h.kind, h.len)[..], &rest[..FRAME_HEADER_LEN]);
    }
}

/// Handshake messages: decoding never panics, and whatever decodes re-encodes exactly.
pub fn handshake(data: &[u8]) {
    use triad_transport::{check_handshake, decode_handshake, encode_handshake, Handshake};
    if let Ok(h) = decode_handshake(data) {
        assert_eq!(encode_handshake(&h), data);
        let ours = Handshake::new(PartyId::ALL[0], "fuzz");
        if let Err(e) = check_handshake(&ours, &h, PartyId::ALL[1]) {
            one_line(&e);
        }
    }
}

/// The parties file: never panics; accepted files survive a round trip.
pub fn parties_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match triad_transport::PartiesConfig::parse(text) {
        Ok(c) => assert_eq!(triad_transport::PartiesConfig::parse(&c.to_toml()).as_ref(), Ok(&c)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The ONNX reader: a model in the supported opsets or a one-line error. No base folder,
/// so external data is refused without touching the file system. A model it accepts goes
/// on through the importer (`triad_onnx::import`, what `triad infer --onnx` runs next): a
/// graph whose output shape can be computed (`Graph::out_dims`), or the importer's error,
/// naming the file.
///
/// Not yet required: that the importer's error is one line. It quotes names from the
/// file raw, so a tensor name holding a newline makes it two lines (found by this target
/// at once; `fuzz/corpus/onnx_reader/regress_import_name_with_newline_*`, and the ignored
/// test `import_errors_are_one_line` of `tests/fuzz_corpora.rs`, which passes once
/// `triad_onnx::import` escapes names as the reader does; then check `one_line` here).
pub fn onnx_reader(data: &[u8]) {
    let m = match triad_onnx::parse(data, None) {
        Ok(m) => m,
        Err(e) => return one_line(&e),
    };
    assert!((triad_onnx::OPSET_MIN..=triad_onnx::OPSET_MAX).contains(&m.opset));
    match triad_onnx::import(&m, "fuzz.onnx") {
        Ok(imp) => {
            if let Err(e) = imp.graph.out_dims() {
                panic!("an imported graph without an output shape: {e}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.onnx: ") && msg.len() > "fuzz.onnx: ".len(), "import error {msg:?}");
            one_line(&e);
        }
    }
}

/// The `.npy` reader: an array whose elements fill its shape, or an error.
pub fn npy_reader(data: &[u8]) {
    match triad_data::npy::parse(data) {
        Ok(a) => assert_eq!(a.shape.iter().product::<usize>(), a.len()),
        Err(e) => one_line(&e),
    }
}

/// The graph decoder parties 1 and 2 run on party 0's message (`triad party ...
/// --onnx-from-owner`): any bytes give a graph or a typed error, never a panic; a graph
/// has shapes, and its encoding is the bytes it came from (the encoding is canonical, so
/// its SHA-256 names it); an error is one line.
pub fn graph_wire(data: &[u8]) {
    match triad_layers::graph_wire::decode(data) {
        Ok(g) => {
            assert!(g.node_dims().is_ok());
            assert_eq!(triad_layers::graph_wire::encode(&g).as_deref(), Some(data));
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
}

/// What a server of `triad serve` reads from an enrolled client (`triad_service::wire`):
/// any bytes give a request and its body, the clean end of the stream, or a typed error,
/// never a panic and never an allocation the bytes did not pay for; a request then goes
/// through the server's own handling ([`triad_service::Gate::try_request`]: an upload's
/// graph decoded with the checked decoder and its shares counted against the graph, an
/// inference request's shape and shares checked against the model) to a result or a
/// one-line reason. The `owner` client has the fuzz model ([`weights_model`]) installed as
/// `m` first, so
/// inference requests reach the shape and byte checks.
pub fn service_request(data: &[u8]) {
    use triad_service::wire::{read_frame, Request};
    let fp = triad_transport::Fingerprint([1; 32]);
    let owner = triad_transport::EnrolledClient { name: "owner".into(), fingerprint: fp };
    let gate = triad_service::Gate::offline(vec![owner], PartyId::ALL[0], 20);
    let g = weights_model();
    let graph = triad_layers::graph_wire::encode(&g).unwrap_or_default();
    let n: usize = triad_layers::serving_shapes(&g).iter().map(|s| s.iter().product::<usize>()).sum();
    let mut body = graph.clone();
    body.resize(graph.len() + 16 * n, 0);
    let up = Request::Upload { model: "m".into(), version: 1, frac_bits: 20, graph_bytes: graph.len() as u64 };
    assert_eq!(gate.try_request("owner", up, body), Ok(()));
    let mut r = data;
    for _ in 0..4 {
        match read_frame::<Request>(&mut r, 1 << 24) {
            Ok(Some((req, body))) => {
                if let Err(m) = gate.try_request("owner", req, body) {
                    assert!(!m.contains('\n'), "{m}");
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// IDX files (MNIST), raw or gzip: an array whose bytes fill its dimensions, within the
/// size limit, or a one-line error.
pub fn idx_reader(data: &[u8]) {
    match triad_data::idx::parse(data) {
        Ok(a) => {
            assert!((1..=4).contains(&a.dims.len()), "rank {}", a.dims.len());
            assert_eq!(a.dims.iter().product::<usize>(), a.data.len());
            assert!(a.data.len() <= triad_data::idx::MAX_BYTES);
        }
        Err(e) => one_line(&e),
    }
}

/// A scratch folder for the file readers, one per process and target.
fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-fuzz-{}-{target}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch folder {}: {e}", dir.display()));
    dir
}

fn put(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// CIFAR-10 binary files (`triad::data::Data::cifar10`, the bytes as both the training
/// and the test file): one record per 3073 bytes with labels 0 to 9, or a one-line error.
pub fn cifar_reader(data: &[u8]) {
    let dir = scratch("cifar");
    put(&dir.join("data_batch_1.bin"), data);
    put(&dir.join("test_batch.bin"), data);
    match triad::data::Data::cifar10(&dir) {
        Ok(d) => {
            assert_eq!(data.len() % 3073, 0);
            assert_eq!(d.train.len(), data.len() / 3073);
            assert_eq!(d.test.len(), data.len() / 3073);
            assert!(data.chunks_exact(3073).all(|r| r[0] <= 9));
        }
        Err(e) => one_line(&e),
    }
}

/// The model the weights targets load into: a linear layer and a batch norm (whose
/// running statistics are buffers), small enough to read fast.
pub fn weights_model() -> triad_layers::Graph {
    use triad_layers::{ConvSpec, Graph, Op};
    Graph::chain(
        "fuzz-conv-bn-linear",
        &[1, 3, 3],
        vec![
            Op::Conv(ConvSpec::square(1, 2, 2, 1, 0, true)),
            Op::BatchNorm { c: 2 },
            Op::Flatten,
            Op::Linear { inp: 8, out: 2, bias: true },
        ],
    )
    .unwrap_or_else(|e| panic!("the weights targets' model: {e}"))
}

/// Plaintext weights (safetensors): every tensor the model needs, with its shape and
/// finite values, or a one-line error.
pub fn weights_plain(data: &[u8]) {
    let net = weights_model();
    let path = scratch("weights").join("w.safetensors");
    put(&path, data);
    match triad::weights::load_plain(&path, &net) {
        Ok(w) => {
            let names = triad::weights::param_names(&net);
            assert_eq!(w.len(), names.len());
            for (v, (name, shape)) in w.iter().zip(&names) {
                assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
                assert!(v.iter().all(|x| x.is_finite()), "{name}");
            }
        }
        Err(e) => one_line(&e),
    }
}

fn link() -> LinkConfig {
    LinkConfig { timeout: Duration::from_secs(10), ..LinkConfig::default() }
}

/// Share checkpoints (party 0's file): the metadata reader and, when it accepts the file,
/// `load_shares` into the model on three parties in process: it returns the metadata's
/// step, or a one-line error (never a panic, and the parties never fail around it).
pub fn share_checkpoint(data: &[u8]) {
    let dir = scratch("shares");
    put(&triad::checkpoint::share_path(&dir, 0), data);
    let meta = match triad::checkpoint::read_share_meta(&dir, 0) {
        Ok(m) => m,
        Err(e) => return one_line(&e),
    };
    assert_eq!(meta.party, 0);
    let net = weights_model();
    let w = net.init_weights(1);
    let out = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), 3, |p| {
        let owner = PartyId::ALL[0];
        let mut m = triad_layers::Model::new(p, &net, owner, (p.id == owner).then_some(&w[..]))?;
        if p.id != owner {
            return Ok(None);
        }
        Ok(Some(
            triad::checkpoint::load_shares(&triad::checkpoint::share_path(&dir, 0), p, &mut m)
                .map_err(|e| e.to_string()),
        ))
    });
    match out {
        Ok([Some(Ok(step)), _, _]) => assert_eq!(step, meta.step),
        Ok([Some(Err(e)), _, _]) => one_line(&e),
        Ok(_) => panic!("party 0 did not load"),
        Err(e) => panic!("the parties failed around a load: {e}"),
    }
}

/// The transport's frame assembler (what the reader thread runs on decrypted bytes): the
/// first byte chooses the frame limit (2^k bytes), the next four how the stream is cut
/// into reads; the frames it returns must be exactly those a straightforward decoder
/// finds, and a stream it rejects must be one with a bad header.
pub fn frame_assembler(data: &[u8]) {
    use triad_transport::testing::{assemble, AssembledFrame};
    use triad_transport::{decode_frame_header, FrameKind, DATA_DEPTH_LEN, FRAME_HEADER_LEN};
    let mut b = Bytes(data);
    let max = 1u64 << (b.byte() % 24);
    let cuts: Vec<usize> = (0..4).map(|_| usize::from(b.byte() % 32)).collect();
    let stream = b.rest();
    let (frames, end) = assemble(stream, &cuts, max);
    // The reference: decode header after header.
    let mut want = Vec::new();
    let mut at = 0;
    let reference_end = loop {
        if stream.len() - at < FRAME_HEADER_LEN {
            break (stream.len() > at).then_some(((stream.len() - at) as u64, FRAME_HEADER_LEN as u64));
        }
        let h = match decode_frame_header(&stream[at..], max) {
            Ok(h) => h,
            Err(_) => {
                assert!(end.is_err(), "the assembler accepted a header the decoder refuses");
                assert_eq!(frames, want);
                return;
            }
        };
        let body = &stream[at + FRAME_HEADER_LEN..];
        let depth_len = if h.kind == FrameKind::Data { DATA_DEPTH_LEN } else { 0 };
        if (h.len as usize) < depth_len {
            assert!(end.is_err(), "a data frame shorter than its depth word was accepted");
            assert_eq!(frames, want);
            return;
        }
        if (body.len() as u64) < h.len {
            break Some(((FRAME_HEADER_LEN + body.len()) as u64, FRAME_HEADER_LEN as u64 + h.len));
        }
        let depth =
            if depth_len == 0 { 0 } else { u64::from_le_bytes(body[..DATA_DEPTH_LEN].try_into().unwrap_or([0; 8])) };
        want.push(AssembledFrame { kind: h.kind, depth, bytes: body[depth_len..h.len as usize].to_vec() });
        at += FRAME_HEADER_LEN + h.len as usize;
    };
    assert_eq!(frames, want);
    match end {
        Ok(partial) => assert_eq!(partial, reference_end, "the incomplete frame at the end"),
        Err(e) => panic!("the assembler refused a well-formed stream: {e}"),
    }
}

// ---- ring ops and the CPU device against triad_spec::ring ------------------------------------------

/// Ring ops on the CPU device against the spec's num-bigint twins, bit for bit: the bytes
/// choose one of matrix product (any transposes), convolution forward and both gradients,
/// pooling (sums, windows and their adjoints), bit packing, and a strided view, with raw
/// parameters in small ranges. Invalid parameters (the spec's `is_valid` says no) must give
/// `RingError::Params`, never a panic.
pub fn ring_ops(data: &[u8]) {
    let dev = CpuDevice;
    let mut b = Bytes(data);
    let t = |dims: &[usize], v: Vec<u64>| {
        Tensor::from_vec(&dev, dims.to_vec(), v).unwrap_or_else(|e| panic!("tensor {dims:?}: {e}"))
    };
    let host = |r: Result<Tensor<CpuDevice>, RingError>, what: &str| match r {
        Ok(x) => x.to_vec().unwrap_or_else(|e| panic!("{what}: to_vec: {e}")),
        Err(e) => panic!("{what}: valid parameters refused: {e}"),
    };
    let is_params = |r: Result<Tensor<CpuDevice>, RingError>, what: &str| match r {
        Err(RingError::Params { .. }) => {}
        Err(e) => panic!("{what}: invalid parameters gave {e:?}, not RingError::Params"),
        Ok(_) => panic!("{what}: invalid parameters accepted"),
    };
    match b.byte() % 5 {
        0 => {
            let s = sr::Matmul {
                batch: 1,
                m: b.range(0, 5),
                k: b.range(0, 5),
                n: b.range(0, 5),
                a_trans: b.byte() & 1 == 1,
                b_trans: b.byte() & 1 == 1,
            };
            let (av, bv) = (b.values(s.m * s.k, 64), b.values(s.k * s.n, 64));
            let want = sr::matmul(&av, &bv, &s);
            let ad = if s.a_trans { [s.k, s.m] } else { [s.m, s.k] };
            let bd = if s.b_trans { [s.n, s.k] } else { [s.k, s.n] };
            let got = host(t(&ad, av.clone()).matmul_t(&t(&bd, bv.clone()), s.a_trans, s.b_trans), "matmul");
            assert_eq!(got, want, "matmul {s:?}");
            let dg = dev.matmul(
                &dev.from_host(&av).unwrap_or_else(|e| panic!("{e}")),
                &dev.from_host(&bv).unwrap_or_else(|e| panic!("{e}")),
                &convert::matmul(&s),
            );
            assert_eq!(dg.and_then(|x| dev.to_host(&x)).ok(), Some(want), "device matmul {s:?}");
        }
        1 => {
            let p = sr::Conv2d {
                batch: b.range(0, 2),
                in_c: b.range(0, 4),
                in_h: b.range(0, 5),
                in_w: b.range(0, 5),
                out_c: b.range(0, 4),
                kh: b.range(0, 4),
                kw: b.range(0, 4),
                stride_h: b.range(0, 3),
                stride_w: b.range(0, 3),
                pad_h: b.range(0, 2),
                pad_w: b.range(0, 2),
                groups: b.range(0, 3),
            };
            let rp = convert::conv(&p);
            if !p.is_valid() {
                let z = |d: &[usize]| Tensor::zeros(&dev, d.to_vec()).unwrap_or_else(|e| panic!("{e}"));
                is_params(z(&[0]).conv2d(&z(&[0]), &rp), "conv2d");
                is_params(z(&[0]).conv2d_grad_input(&z(&[0]), &rp), "conv2d grad input");
                is_params(z(&[0]).conv2d_grad_weight(&z(&[0]), &rp), "conv2d grad weight");
                return;
            }
            let (id, wd, od) = (p.input_dims(), p.weight_dims(), p.output_dims());
            let x = b.values(sr::numel(&id), 64);
            let w = b.values(sr::numel(&wd), 64);
            let g = b.values(sr::numel(&od), 64);
            assert_eq!(host(t(&id, x.clone()).conv2d(&t(&wd, w.clone()), &rp), "conv2d"), sr::conv2d(&x, &w, &p));
            assert_eq!(
                host(t(&od, g.clone()).conv2d_grad_input(&t(&wd, w.clone()), &rp), "grad input"),
                sr::conv2d_grad_input(&g, &w, &p),
                "conv2d grad input {p:?}"
            );
            assert_eq!(
                host(t(&id, x.clone()).conv2d_grad_weight(&t(&od, g.clone()), &rp), "grad weight"),
                sr::conv2d_grad_weight(&x, &g, &p),
                "conv2d grad weight {p:?}"
            );
        }
        2 => {
            let p = sr::Pool2d {
                batch: b.range(0, 2),
                channels: b.range(0, 2),
                in_h: b.range(0, 5),
                in_w: b.range(0, 5),
                kh: b.range(0, 4),
                kw: b.range(0, 4),
                stride_h: b.range(0, 3),
                stride_w: b.range(0, 3),
                pad_h: b.range(0, 3),
                pad_w: b.range(0, 3),
            };
            let rp = convert::pool(&p);
            let pad = b.value();
            if !p.is_valid() {
                let z = Tensor::zeros(&dev, vec![0]).unwrap_or_else(|e| panic!("{e}"));
                is_params(z.pool_sum(&rp), "pool sum");
                is_params(z.pool_sum_backward(&rp), "pool sum backward");
                is_params(z.pool_windows(&rp, pad), "pool windows");
                is_params(z.pool_windows_backward(&rp), "pool windows backward");
                return;
            }
            let (id, od, wd) = (p.input_dims(), p.output_dims(), p.windows_dims());
            let x = b.values(sr::numel(&id), 64);
            let g = b.values(sr::numel(&od), 64);
            let gw = b.values(sr::numel(&wd), 64);
            assert_eq!(host(t(&id, x.clone()).pool_sum(&rp), "pool sum"), sr::pool_sum(&x, &p), "{p:?}");
            assert_eq!(host(t(&od, g.clone()).pool_sum_backward(&rp), "sum bwd"), sr::pool_sum_backward(&g, &p));
            assert_eq!(host(t(&id, x.clone()).pool_windows(&rp, pad), "windows"), sr::pool_windows(&x, &p, pad));
            assert_eq!(
                host(t(&wd, gw.clone()).pool_windows_backward(&rp), "windows bwd"),
                sr::pool_windows_backward(&gw, &p)
            );
        }
        3 => {
            let n = b.range(0, 70);
            let mask = b.word();
            let x = b.values(n, 64);
            let packed = host(t(&[n], x.clone()).pack_bits(mask), "pack_bits");
            assert_eq!(packed, sr::pack_bits(&x, mask), "pack mask {mask:#x}");
            let words = (n * mask.count_ones() as usize).div_ceil(64);
            let stream = b.values(words, 64);
            let got = host(t(&[words], stream.clone()).unpack_bits(vec![n], mask), "unpack_bits");
            assert_eq!(got, sr::unpack_bits(&stream, n, mask), "unpack mask {mask:#x}");
        }
        _ => {
            // A transpose of a small 2-D or 3-D tensor (a strided view, then materialised).
            let dims: Vec<usize> = (0..b.range(2, 3)).map(|_| b.range(0, 4)).collect();
            let mut perm: Vec<usize> = (0..dims.len()).collect();
            perm.rotate_left(b.range(0, dims.len() - 1));
            let x = b.values(dims.iter().product(), 64);
            let (want, wdims) = sr::permute(&x, &dims, &perm);
            let v = t(&dims, x).permute(&perm).unwrap_or_else(|e| panic!("permute {perm:?}: {e}"));
            assert_eq!(v.dims(), &wdims[..]);
            assert_eq!(v.to_vec().unwrap_or_else(|e| panic!("{e}")), want, "permute {dims:?} by {perm:?}");
        }
    }
}

// ---- sharing, comparisons, approximations, a layer: three parties against the spec --------------

type Pair = (Vec<u64>, Vec<u64>);

fn pair(own: &Tensor<CpuDevice>, next: &Tensor<CpuDevice>) -> triad_sharing::Result<Pair> {
    Ok((own.to_vec()?, next.to_vec()?))
}

fn share(p: &Party<CpuDevice>, owner: usize, v: &[u64], dims: &[usize]) -> triad_sharing::Result<AShare<CpuDevice>> {
    let shape = Shape::new(dims.to_vec());
    let t = Tensor::from_vec(&p.dev, shape.clone(), v.to_vec())?;
    let o = PartyId::ALL[owner];
    p.share_input(o, (p.id == o).then_some(&t), &shape)
}

/// Three parties in process with the test keys from `seed`; a party error is a failure.
fn three<R: Send>(seed: u64, f: impl Fn(&Party<CpuDevice>) -> triad_sharing::Result<R> + Sync) -> [R; 3] {
    run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, f)
        .unwrap_or_else(|e| panic!("the parties failed: {e}"))
}

fn sim(seed: u64) -> Sim {
    Sim::new(PartyId::ALL.map(|id| *test_keys(seed, id).prev.as_bytes()), FixedConfig::default().frac_bits)
}

/// The real parties' components as a sharing, checking the replication (party i's next
/// is party i+1's own).
fn shared(p: [Pair; 3]) -> Shared {
    for i in 0..3 {
        assert_eq!(p[i].1, p[(i + 1) % 3].0, "party {i}'s next is not party {}'s own", (i + 1) % 3);
    }
    let [a, b, c] = p;
    Shared { comps: [a.0, b.0, c.0] }
}

fn column(out: &[Vec<Pair>; 3], k: usize) -> Shared {
    shared([out[0][k].clone(), out[1][k].clone(), out[2][k].clone()])
}

/// `|got - floor(exact / 2^bits)|` within `lo..=hi` for every element.
fn truncated(got: &[u64], exact: &[u64], bits: u32, lo: i64, hi: i64, what: &str) {
    for (g, e) in got.iter().zip(exact) {
        let d = (*g as i64).wrapping_sub(ideal_truncate(*e, bits) as i64);
        assert!((lo..=hi).contains(&d), "{what}: {} / 2^{bits} off by {d}", *e as i64);
    }
}

fn signed_below(v: &[u64], bits: u32) -> bool {
    v.iter().all(|&x| (x as i64).unsigned_abs() < 1u64 << bits)
}

/// The sharing protocols against the simulator, bit for bit: share (each owner), reveal,
/// elementwise product, matrix product, convolution and both gradients (shapes and values
/// from the bytes), AND, share truncation and wrap-free truncation by a chosen number of
/// bits, and the products with truncation. Then the simulator's outputs against the ideal
/// functionalities: products exact; wrap-free truncation floor or floor + 1 on its domain
/// `|t| < 2^62`; share truncation within one unit when `|t| < 2^32` (its documented
/// failure probability `|t|/2^64` is then below 2^-32 per element, so a run of days
/// meets no legitimate wrap).
pub fn sharing(data: &[u8]) {
    let mut b = Bytes(data);
    let seed = u64::from(b.byte());
    let n = b.range(1, 8);
    let (m, k, nn) = (b.range(1, 4), b.range(1, 4), b.range(1, 4));
    let cp = sr::Conv2d {
        batch: 1,
        in_c: b.range(1, 2),
        in_h: b.range(1, 4),
        in_w: b.range(1, 4),
        out_c: b.range(1, 2),
        kh: b.range(1, 3),
        kw: b.range(1, 3),
        stride_h: b.range(1, 2),
        stride_w: b.range(1, 2),
        pad_h: b.range(0, 1),
        pad_w: b.range(0, 1),
        groups: 1,
    };
    let conv_ok = cp.is_valid();
    let bits = b.range(1, 62) as u32;
    let xb = 8 + u32::from(b.byte() % 57);
    let x = b.values(n, xb);
    let y = b.values(n, 64);
    let a = b.values(m * k, 30);
    let bm = b.values(k * nn, 30);
    let (ci, cw) = if conv_ok {
        (b.values(sr::numel(&cp.input_dims()), 30), b.values(sr::numel(&cp.weight_dims()), 30))
    } else {
        (Vec::new(), Vec::new())
    };
    let rp = convert::conv(&cp);
    let out = three(seed, |p| {
        let xs = share(p, 0, &x, &[n])?;
        let ys = share(p, 1, &y, &[n])?;
        let as_ = share(p, 2, &a, &[m, k])?;
        let bs = share(p, 0, &bm, &[k, nn])?;
        let mut o = vec![pair(&xs.own, &xs.next)?, pair(&ys.own, &ys.next)?];
        o.push(pair(&as_.own, &as_.next)?);
        o.push(pair(&bs.own, &bs.next)?);
        let push = |o: &mut Vec<Pair>, s: AShare<CpuDevice>| -> triad_sharing::Result<()> {
            o.push(pair(&s.own, &s.next)?);
            Ok(())
        };
        push(&mut o, p.product(Product::Elementwise, &xs, &ys)?)?;
        push(&mut o, p.product(Product::Matmul { a_trans: false, b_trans: false }, &as_, &bs)?)?;
        push(&mut o, p.truncate_with(&xs, bits, Rounding::Floor)?)?;
        push(&mut o, p.truncate_with(&xs, bits, Rounding::WrapFree)?)?;
        push(&mut o, p.product_trunc_with(Product::Elementwise, &xs, &ys, Rounding::WrapFree)?)?;
        push(
            &mut o,
            p.product_trunc_with(Product::Matmul { a_trans: false, b_trans: false }, &as_, &bs, Rounding::Floor)?,
        )?;
        let bx = BShare { own: xs.own.try_clone()?, next: xs.next.try_clone()? };
        let by = BShare { own: ys.own.try_clone()?, next: ys.next.try_clone()? };
        let z = p.and(&bx, &by)?;
        o.push(pair(&z.own, &z.next)?);
        if conv_ok {
            let cis = share(p, 1, &ci, &cp.input_dims())?;
            let cws = share(p, 2, &cw, &cp.weight_dims())?;
            let g = p.product(Product::Conv2d(rp), &cis, &cws)?;
            o.push(pair(&g.own, &g.next)?);
            push(&mut o, p.product(Product::Conv2dGradInput(rp), &g, &cws)?)?;
            push(&mut o, p.product(Product::Conv2dGradWeight(rp), &cis, &g)?)?;
        }
        let opened = p.reveal_all(&xs)?.to_vec()?;
        Ok((o, opened))
    });
    // The simulator, same calls in the same order.
    let mut s = sim(seed);
    let sx = s.share_input(0, &x);
    let sy = s.share_input(1, &y);
    let sa = s.share_input(2, &a);
    let sb = s.share_input(0, &bm);
    let ew = |u: &[u64], v: &[u64]| sr::binary(sr::BinOp::Mul, u, v);
    let mm = sr::Matmul { batch: 1, m, k, n: nn, a_trans: false, b_trans: false };
    let mmf = |u: &[u64], v: &[u64]| sr::matmul(u, v, &mm);
    let mut want = vec![sx.clone(), sy.clone(), sa.clone(), sb.clone()];
    want.push(s.product(&ew, &sx, &sy));
    want.push(s.product(&mmf, &sa, &sb));
    want.push(s.truncate_with(&sx, bits, false));
    want.push(s.truncate_wrap_free(&sx, bits));
    want.push(s.product_trunc_wrap_free(&ew, &sx, &sy));
    want.push(s.product_trunc_with(&mmf, &sa, &sb, false));
    want.push(s.and(&sx, &sy));
    if conv_ok {
        let sci = s.share_input(1, &ci);
        let scw = s.share_input(2, &cw);
        let g = s.product(&|u, v| sr::conv2d(u, v, &cp), &sci, &scw);
        want.push(g.clone());
        want.push(s.product(&|u, v| sr::conv2d_grad_input(u, v, &cp), &g, &scw));
        want.push(s.product(&|u, v| sr::conv2d_grad_weight(u, v, &cp), &sci, &g));
    }
    let [(o0, r0), (o1, r1), (o2, r2)] = out;
    for r in [&r0, &r1, &r2] {
        assert_eq!(r, &x, "reveal");
    }
    let parties = [o0, o1, o2];
    assert_eq!(parties[0].len(), want.len());
    for (step, w) in want.iter().enumerate() {
        assert_eq!(&column(&parties, step), w, "step {step}: the parties differ from the simulator");
    }
    // The ideal functionalities, on the simulator's (equal) sharings.
    for (k, v) in [&x, &y, &a, &bm].into_iter().enumerate() {
        assert_eq!(&want[k].reconstruct(), v, "share_input {k}");
    }
    let prod = ew(&x, &y);
    assert_eq!(want[4].reconstruct(), prod, "elementwise product");
    let mprod = sr::matmul(&a, &bm, &mm);
    assert_eq!(want[5].reconstruct(), mprod, "matrix product");
    if signed_below(&x, 32) {
        truncated(&want[6].reconstruct(), &x, bits, -1, 1, "share truncation");
    }
    if signed_below(&x, 62) {
        truncated(&want[7].reconstruct(), &x, bits, 0, 1, "wrap-free truncation");
    }
    if signed_below(&prod, 62) {
        truncated(&want[8].reconstruct(), &prod, FixedConfig::default().frac_bits, 0, 1, "wrap-free product");
    }
    if signed_below(&mprod, 32) {
        truncated(&want[9].reconstruct(), &mprod, FixedConfig::default().frac_bits, -1, 1, "matmul with truncation");
    }
    // AND acts on the XOR-reinterpretation of the arithmetic components.
    let (xb, yb) = (want[0].reconstruct_xor(), want[1].reconstruct_xor());
    let and: Vec<u64> = xb.iter().zip(&yb).map(|(u, v)| u & v).collect();
    assert_eq!(want[10].reconstruct_xor(), and, "AND");
    if conv_ok {
        let conv = sr::conv2d(&ci, &cw, &cp);
        assert_eq!(want[11].reconstruct(), conv, "conv2d");
        assert_eq!(want[12].reconstruct(), sr::conv2d_grad_input(&conv, &cw, &cp), "conv2d grad input");
        assert_eq!(want[13].reconstruct(), sr::conv2d_grad_weight(&ci, &conv, &cp), "conv2d grad weight");
    }
    sharing_outside(&mut b, seed, &cp);
}

/// The sharing protocols outside their domain: parameters a caller can get wrong give a
/// typed error, or the documented result, never a panic. The byte after the in-domain
/// part chooses (0, as past the end of the input, tries nothing, so the committed inputs
/// keep their meaning), then the values (`|x| < 2^32`) and the bad number of bits (0, 63,
/// 64 and beyond, `u32::MAX`):
/// - share truncation: by 0 bits exactly `x`; by 63, the parts' shifts, `floor(x / 2^63)`
///   or one below; by 64 or more `RingError::Params` (a shift must be below 64);
/// - wrap-free truncation outside its documented `1..=62`: the misuse error at every party;
/// - products whose operands' shapes do not fit (elementwise, matrix product and
///   convolution, with either truncation or none), and a sharing whose two components
///   differ in shape: a typed error at every party, before anything is sent;
/// - an owner whose plaintext has another shape than the agreed one (`share_input`): the
///   owner's misuse error, and a typed error (not a hang) at the parties it leaves.
fn sharing_outside(b: &mut Bytes<'_>, seed: u64, cp: &sr::Conv2d) {
    use triad_sharing::Error;
    let tag = b.byte();
    if tag == 0 {
        return;
    }
    let n = b.range(1, 8);
    let x = b.values(n, 32);
    let bits = match b.byte() % 4 {
        0 => 0,
        1 => 63,
        2 => 64 + u32::from(b.byte()),
        _ => u32::MAX,
    };
    let each = |f: &(dyn Fn(&Party<CpuDevice>) -> triad_sharing::Result<()> + Sync)| {
        run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, |p| Ok(f(p)))
            .unwrap_or_else(|e| panic!("a party failed outside the call under test: {e}"))
    };
    match tag % 4 {
        0 => {
            let r = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, |p| {
                let xs = share(p, 0, &x, &[n])?;
                Ok(p.reveal_all(&p.truncate_share(&xs, bits)?)?.to_vec()?)
            });
            match r {
                Ok([o0, o1, o2]) => {
                    assert!(o0 == o1 && o1 == o2, "the parties opened different values");
                    match bits {
                        0 => assert_eq!(o0, x, "share truncation by 0 bits"),
                        63 => truncated(&o0, &x, 63, -1, 0, "share truncation by 63 bits"),
                        _ => panic!("share truncation by {bits} bits gave a result"),
                    }
                }
                Err(Error::Ring(RingError::Params { .. })) if bits >= 64 => {}
                Err(e) => panic!("share truncation by {bits} bits: {e:?}"),
            }
        }
        1 => {
            let out = each(&|p| {
                let xs = share(p, 0, &x, &[n])?;
                p.truncate(&xs, bits).map(drop)
            });
            for (i, r) in out.iter().enumerate() {
                match r {
                    Err(Error::Usage(m)) if m.contains("outside 1..=62") => {}
                    other => panic!("party {i}: wrap-free truncation by {bits} bits gave {other:?}"),
                }
            }
        }
        2 => {
            // Operands that do not fit, for each product and rounding the tag picks.
            let (m, k, nn) = (b.range(1, 3), b.range(1, 3), b.range(1, 3));
            let rounding = [None, Some(Rounding::Floor), Some(Rounding::WrapFree)][usize::from(tag >> 2) % 3];
            let rp = convert::conv(cp);
            let (op, ld, rd) = match (tag >> 4) % 4 {
                0 => (Product::Elementwise, vec![n], vec![n + 1]),
                1 => (Product::Matmul { a_trans: false, b_trans: false }, vec![m, k], vec![k + 1, nn]),
                2 => {
                    let mut id = cp.input_dims().to_vec();
                    id[3] += 1;
                    (Product::Conv2d(rp), id, cp.weight_dims().to_vec())
                }
                _ => {
                    // One sharing whose components differ in shape.
                    let out = each(&|p| {
                        let xs = share(p, 0, &x, &[n])?;
                        let longer = Tensor::zeros(&p.dev, [n + 1])?;
                        AShare::new(xs.own, longer).map(drop)
                    });
                    for (i, r) in out.iter().enumerate() {
                        assert!(matches!(r, Err(Error::Usage(_))), "party {i}: mismatched components gave {r:?}");
                    }
                    return;
                }
            };
            let (lv, rv) = (vec![1u64 << 20; ld.iter().product()], vec![1u64 << 20; rd.iter().product()]);
            let out = each(&|p| {
                let l = share(p, 0, &lv, &ld)?;
                let r = share(p, 1, &rv, &rd)?;
                match rounding {
                    None => p.product(op, &l, &r),
                    Some(ro) => p.product_trunc_with(op, &l, &r, ro),
                }
                .map(drop)
            });
            for (i, r) in out.iter().enumerate() {
                assert!(matches!(r, Err(Error::Ring(_))), "party {i}: {op:?} of {ld:?} and {rd:?} gave {r:?}");
            }
        }
        _ => {
            let owner = b.range(0, 2);
            let out = each(&|p| {
                let o = PartyId::ALL[owner];
                let t = Tensor::from_vec(&p.dev, [n], x.clone())?;
                p.share_input(o, (p.id == o).then_some(&t), &Shape::new([n + 1])).map(drop)
            });
            for (i, r) in out.iter().enumerate() {
                match r {
                    Err(Error::Usage(m)) if i == owner => assert!(m.contains("differs from the agreed shape"), "{m}"),
                    Err(e) if i != owner => {
                        assert!(!matches!(e, Error::Panicked(..)), "party {i} panicked: {e}")
                    }
                    other => panic!("party {i}: a plaintext of the wrong shape gave {other:?}"),
                }
            }
        }
    }
}

/// The comparisons: A2B and MSB, MSB from the low bits at any width, bit injection and ReLU
/// bit for bit against the simulator on any 64-bit values; max / argmax along a chosen axis with its backward, and max
/// pooling forward and backward, opened and equal to the spec's plain functions on their
/// documented domain (pairwise differences below 2^63: values below 2^62 in magnitude);
/// outside it (any words) argmax gives a result or a typed error, never a panic. The range
/// check of the overflow guard (`all_in_range`) against its ideal
/// (`triad_spec::compare::all_in_range`) on values at its edges, and its typed error for
/// bits outside `1..=62`.
pub fn compare(data: &[u8]) {
    use triad_compare as cmp;
    use triad_spec::compare as spec;
    let mut b = Bytes(data);
    let seed = u64::from(b.byte());
    // (Branches 0 to 2 keep the choice bytes they had before the range check was added as
    // branch 3, so the committed corpus means what it did.)
    match b.byte() % 4 {
        0 => {
            // MSB (through A2B), ReLU and its mask, and bit injection of the MSB.
            let n = b.range(1, 8);
            let x = b.values(n, 64);
            let lane = b.range(0, 63) as u32;
            let out = three(seed, |p| {
                let a = share(p, 0, &x, &[n])?;
                let bits = cmp::a2b(p, &a)?;
                let m = cmp::msb(p, &a)?;
                let r = cmp::relu(p, &a)?;
                let inj = cmp::inject_bit(p, &bits, lane)?;
                Ok(vec![
                    pair(&bits.own, &bits.next)?,
                    pair(&m.own, &m.next)?,
                    pair(&r.out.own, &r.out.next)?,
                    pair(&r.mask.own, &r.mask.next)?,
                    pair(&inj.own, &inj.next)?,
                ])
            });
            let bits = column(&out, 0).reconstruct_xor();
            assert_eq!(bits, x, "A2B reconstructs the value");
            assert!(column(&out, 1).reconstruct_xor().iter().zip(&x).all(|(&m, &v)| m == spec::msb(v)), "MSB");
            assert!(column(&out, 2).reconstruct().iter().zip(&x).all(|(&r, &v)| r == spec::relu(v)), "ReLU");
            assert!(column(&out, 3).reconstruct().iter().zip(&x).all(|(&r, &v)| r == spec::drelu(v)), "DReLU");
            assert!(
                column(&out, 4).reconstruct().iter().zip(&x).all(|(&r, &v)| r == (v >> lane) & 1),
                "bit injection of lane {lane}"
            );
            // Bit for bit: MSB alone, ReLU alone, injection of a random sharing, each
            // against its simulator twin from the same keys.
            let got = three(seed, |p| {
                let a = share(p, 0, &x, &[n])?;
                let m = cmp::msb(p, &a)?;
                pair(&m.own, &m.next)
            });
            let mut s = sim(seed);
            let a = s.share_input(0, &x);
            assert_eq!(shared(got), spec::sim_msb(&mut s, &a), "MSB against the simulator");
            let got = three(seed, |p| {
                let a = share(p, 0, &x, &[n])?;
                let r = cmp::relu(p, &a)?;
                Ok([pair(&r.out.own, &r.out.next)?, pair(&r.mask.own, &r.mask.next)?])
            });
            let mut s = sim(seed);
            let a = s.share_input(0, &x);
            let (y, mask) = spec::sim_relu(&mut s, &a);
            let [g0, g1, g2] = got;
            assert_eq!(shared([g0[1].clone(), g1[1].clone(), g2[1].clone()]), mask, "ReLU mask against the simulator");
            assert_eq!(shared([g0[0].clone(), g1[0].clone(), g2[0].clone()]), y, "ReLU against the simulator");
            let got = three(seed, |p| {
                let r = p.random(&Shape::new([n]))?;
                let bs = BShare { own: r.own, next: r.next };
                cmp::inject_bit(p, &bs, lane).and_then(|a| pair(&a.own, &a.next))
            });
            let mut s = sim(seed);
            let rb = s.random(n);
            assert_eq!(shared(got), spec::sim_inject(&mut s, &rb, lane), "injection against the simulator");
            // The sign from the low bits, at a width the input chooses (read last, so the
            // corpus's earlier bytes mean what they did): bit for bit against its simulator,
            // and opened, bit `bits - 1` of each value.
            let bits = b.range(2, 64) as u32;
            let got = three(seed, |p| {
                let a = share(p, 0, &x, &[n])?;
                let m = cmp::msb_within(p, &a, bits)?;
                pair(&m.own, &m.next)
            });
            let mut s = sim(seed);
            let a = s.share_input(0, &x);
            let want = spec::sim_msb_within(&mut s, &a, bits);
            assert_eq!(shared(got), want, "msb_within {bits} against the simulator");
            assert!(
                want.reconstruct_xor().iter().zip(&x).all(|(&m, &v)| m == spec::msb_within(v, bits)),
                "msb_within {bits}"
            );
        }
        1 => {
            // Max and argmax along an axis, and max's backward.
            let rank = b.range(1, 3);
            let dims: Vec<usize> = (0..rank).map(|_| b.range(1, 4)).collect();
            let axis = b.range(0, rank - 1);
            let x = b.values(dims.iter().product(), 62);
            let mut gd = dims.clone();
            gd.remove(axis);
            if b.byte() % 8 == 0 {
                // Outside the domain (any words): a result or a typed error, never a panic.
                let wide = b.values(x.len(), 64);
                let r = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, |p| {
                    let a = share(p, 0, &wide, &dims)?;
                    cmp::argmax_axis(p, &a, axis).map(|_| ())
                });
                if let Err(e) = r {
                    assert!(!matches!(e, triad_sharing::Error::Panicked(..)), "a party panicked: {e}");
                }
                return;
            }
            let g = b.values(gd.iter().product(), 40);
            let out = three(seed, |p| {
                let a = share(p, 0, &x, &dims)?;
                let gr = share(p, 1, &g, &gd)?;
                let m = cmp::max_axis(p, &a, axis)?;
                let am = cmp::argmax_axis(p, &a, axis)?;
                let back = cmp::max_axis_backward(p, &gr, &am, axis)?;
                Ok(vec![
                    pair(&m.own, &m.next)?,
                    pair(&am.max.own, &am.max.next)?,
                    pair(&am.onehot.own, &am.onehot.next)?,
                    pair(&back.own, &back.next)?,
                ])
            });
            let want = spec::max_axis(&x, &dims, axis);
            let onehot = spec::argmax_axis(&x, &dims, axis);
            assert_eq!(column(&out, 0).reconstruct(), want, "max over axis {axis} of {dims:?}");
            assert_eq!(column(&out, 1).reconstruct(), want, "argmax's max");
            assert_eq!(column(&out, 2).reconstruct(), onehot, "argmax one-hot");
            assert_eq!(
                column(&out, 3).reconstruct(),
                spec::max_axis_backward(&g, &onehot, &dims, axis),
                "max backward"
            );
        }
        3 => {
            // The overflow guard's range check against its ideal: one opened bit, the same
            // at every party, true exactly when every value lies in [-2^bits, 2^bits).
            // Values sit at and around the edges ±2^bits (or anywhere, or in range); bits
            // outside 1..=62 must be the typed misuse error at every party.
            let n = b.range(0, 9);
            let tag = b.byte();
            let bits = match tag % 16 {
                0 => [0, 63, 64, u32::MAX][usize::from(tag >> 4) % 4],
                _ => b.range(1, 62) as u32,
            };
            let edge = 1i128 << bits.min(63);
            let x: Vec<u64> = (0..n)
                .map(|_| match b.byte() % 4 {
                    0 => b.value(),
                    1 => b.values(1, bits.clamp(1, 64))[0],
                    t => {
                        let d = i128::from(b.byte() % 4) - 2;
                        let e = if t == 2 { edge } else { -edge };
                        (e + d) as u64
                    }
                })
                .collect();
            let out = run_in_process_with_test_keys(CpuDevice, &link(), FixedConfig::default(), seed, |p| {
                let a = share(p, 0, &x, &[n])?;
                Ok(cmp::all_in_range(p, &a, bits))
            })
            .unwrap_or_else(|e| panic!("the parties failed around a range check: {e}"));
            if !(1..=62).contains(&bits) {
                for (i, r) in out.iter().enumerate() {
                    match r {
                        Err(triad_sharing::Error::Usage(m)) => assert!(m.contains("1..=62"), "party {i}: {m}"),
                        other => panic!("party {i}: all_in_range with bits {bits} gave {other:?}"),
                    }
                }
                return;
            }
            let got: Vec<bool> =
                out.into_iter().map(|r| r.unwrap_or_else(|e| panic!("all_in_range, bits {bits}: {e}"))).collect();
            assert!(got[0] == got[1] && got[1] == got[2], "the parties opened different bits: {got:?}");
            let want = spec::all_in_range(&x, bits);
            assert_eq!(got[0], want, "all_in_range of {x:?} with bits {bits}");
        }
        _ => {
            // Max pooling forward and backward; invalid parameters are a typed error.
            let sp = sr::Pool2d {
                batch: b.range(1, 2),
                channels: b.range(1, 2),
                in_h: b.range(0, 5),
                in_w: b.range(0, 5),
                kh: b.range(0, 3),
                kw: b.range(0, 3),
                stride_h: b.range(0, 3),
                stride_w: b.range(0, 3),
                pad_h: b.range(0, 2),
                pad_w: b.range(0, 2),
            };
            let pp = convert::pool(&sp);
            // An empty image has windows of padding only: refused (found by this target).
            if !sp.is_valid() || sp.in_h == 0 || sp.in_w == 0 {
                let dims = if sp.is_valid() { sp.input_dims().to_vec() } else { vec![0] };
                let out = three(seed, |p| {
                    let a = share(p, 0, &[], &dims)?;
                    Ok(cmp::maxpool(p, &a, &pp).map(|_| ()).map_err(|e| e.to_string()))
                });
                for r in out {
                    assert!(r.is_err(), "maxpool accepted invalid {sp:?}");
                }
                return;
            }
            let x = b.values(sr::numel(&sp.input_dims()), 62);
            let g = b.values(sr::numel(&sp.output_dims()), 40);
            let out = three(seed, |p| {
                let a = share(p, 0, &x, &sp.input_dims())?;
                let gr = share(p, 1, &g, &sp.output_dims())?;
                let mp = cmp::maxpool(p, &a, &pp)?;
                let back = cmp::maxpool_backward(p, &gr, &mp)?;
                Ok(vec![
                    pair(&mp.out.own, &mp.out.next)?,
                    pair(&mp.onehot.own, &mp.onehot.next)?,
                    pair(&back.own, &back.next)?,
                ])
            });
            let (want, onehot) = spec::maxpool(&x, &sp);
            assert_eq!(column(&out, 0).reconstruct(), want, "maxpool {sp:?}");
            assert_eq!(column(&out, 1).reconstruct(), onehot, "maxpool one-hot {sp:?}");
            assert_eq!(column(&out, 2).reconstruct(), spec::maxpool_backward(&g, &onehot, &sp), "maxpool backward");
        }
    }
}

/// A protocol from a shared input to a shared output.
type ShareFn<'a> =
    dyn Fn(&Party<CpuDevice>, &AShare<CpuDevice>) -> triad_sharing::Result<AShare<CpuDevice>> + Sync + 'a;

/// The approximations with wrap-free rounding (what the layers use; nothing may miss),
/// each output inside the spec's enclosure and within the documented float64 error bound
/// (`triad_spec::approx::*_BOUND`) on the documented domain: exp, reciprocal, inverse
/// square root, sigmoid, tanh, log, and softmax rows of up to 10 classes spread up to 500.
/// The spec's own floor iteration must lie in its enclosure too. Inputs outside the
/// domain (any 64-bit value) must give a result or a typed error, never a panic.
pub fn approx(data: &[u8]) {
    use triad_approx::{exp, inv_sqrt, log, reciprocal, sigmoid, softmax, tanh, ApproxParams};
    use triad_spec::approx::{self as spec, Encl};
    use triad_spec::BigInt;
    let fixed = FixedConfig::default();
    let f = fixed.frac_bits;
    let pr = ApproxParams::default().with_rounding(Rounding::WrapFree);
    let sp = spec::Params::default().with_rounding(spec::Rounding::WrapFree);
    let mut b = Bytes(data);
    let seed = u64::from(b.byte());
    let which = b.byte() % 8;
    let n = b.range(1, 6);
    type Run = fn(&Party<CpuDevice>, &AShare<CpuDevice>, &ApproxParams) -> triad_sharing::Result<AShare<CpuDevice>>;
    let run = |xs: &[u64], cols: usize, g: &ShareFn<'_>| {
        let out = run_in_process_with_test_keys(CpuDevice, &link(), fixed, seed, |p| {
            let x = share(p, 0, xs, &[xs.len() / cols, cols])?;
            let y = g(p, &x)?;
            Ok(p.reveal_all(&y)?.to_vec()?)
        });
        out.map(|[a, b2, c]| {
            assert!(a == b2 && b2 == c, "the parties opened different values");
            a
        })
    };
    if which == 7 {
        // Outside every domain: any words through every function; a result or an error.
        let xs = b.values(n, 64);
        let fs: [Run; 6] = [exp, reciprocal, inv_sqrt, sigmoid, tanh, log];
        for g in fs {
            if let Err(e) = run(&xs, 1, &|p, x| g(p, x, &pr)) {
                assert!(!matches!(e, triad_sharing::Error::Panicked(..)), "a party panicked: {e}");
            }
        }
        if let Err(e) = run(&xs, n, &|p, x| softmax(p, x, 1, &pr)) {
            assert!(!matches!(e, triad_sharing::Error::Panicked(..)), "a party panicked in softmax: {e}");
        }
        return;
    }
    if which == 6 {
        let d = n.min(10);
        let spread = b.real(0.0, 500.0);
        let off = b.real(-50.0, 50.0);
        let row: Vec<f64> = (0..d).map(|_| off + b.real(-spread / 2.0, spread / 2.0)).collect();
        let raw: Vec<u64> = row.iter().map(|&v| fixed.encode(v).unwrap_or_else(|e| panic!("{e}"))).collect();
        let got = run(&raw, d, &|p, x| softmax(p, x, 1, &pr)).unwrap_or_else(|e| panic!("softmax failed: {e}"));
        let brow: Vec<BigInt> = raw.iter().map(|&v| spec::raw(v)).collect();
        let it = spec::softmax_fixed(&brow, &sp, f);
        let en = spec::softmax_enclosure(&brow, &sp, f);
        let want = spec::softmax_ideal(&raw.iter().map(|&v| fixed.decode(v)).collect::<Vec<_>>());
        for j in 0..d {
            assert!(en[j].contains(&it[j]), "softmax: the spec's iteration outside its enclosure");
            assert!(en[j].contains(&spec::raw(got[j])), "softmax {row:?} entry {j}: {} outside {:?}", got[j], en[j]);
            assert!(spec::SOFTMAX_BOUND.holds(fixed.decode(got[j]), want[j]), "softmax {row:?} entry {j}");
        }
        return;
    }
    struct Case {
        name: &'static str,
        bound: spec::ErrorBound,
        ideal: fn(f64) -> f64,
        g: Run,
        log_domain: bool,
    }
    let cases = [
        Case { name: "exp", bound: spec::EXP_BOUND, ideal: spec::exp_ideal, g: exp, log_domain: false },
        Case {
            name: "reciprocal",
            bound: spec::RECIP_BOUND,
            ideal: spec::reciprocal_ideal,
            g: reciprocal,
            log_domain: true,
        },
        Case {
            name: "inv_sqrt",
            bound: spec::INV_SQRT_BOUND,
            ideal: spec::inv_sqrt_ideal,
            g: inv_sqrt,
            log_domain: true,
        },
        Case { name: "sigmoid", bound: spec::SIGMOID_BOUND, ideal: spec::sigmoid_ideal, g: sigmoid, log_domain: false },
        Case { name: "tanh", bound: spec::TANH_BOUND, ideal: spec::tanh_ideal, g: tanh, log_domain: false },
        Case { name: "log", bound: spec::LOG_BOUND, ideal: spec::log_ideal, g: log, log_domain: true },
    ];
    let c = &cases[usize::from(which)];
    let enclosure = |x: &BigInt| -> (BigInt, Encl) {
        match c.name {
            "exp" => (spec::exp_fixed(x, 9, f), spec::exp_enclosure(&Encl::point(x.clone()), 9, f, sp.rounding)),
            "reciprocal" => (spec::reciprocal_fixed(x, &sp, f), spec::reciprocal_enclosure(x, &sp, f)),
            "inv_sqrt" => (spec::inv_sqrt_fixed(x, &sp, f), spec::inv_sqrt_enclosure(x, &sp, f)),
            "sigmoid" => (spec::sigmoid_fixed(x, &sp, f), spec::sigmoid_enclosure(x, &sp, f)),
            "tanh" => (spec::tanh_fixed(x, &sp, f), spec::tanh_enclosure(x, &sp, f)),
            _ => (spec::log_fixed(x, &sp, f), spec::log_enclosure(x, &sp, f)),
        }
    };
    let xs: Vec<f64> = (0..n)
        .map(|_| {
            if c.log_domain {
                b.real(c.bound.lo.ln(), c.bound.hi.ln()).exp().clamp(c.bound.lo, c.bound.hi)
            } else {
                b.real(c.bound.lo, c.bound.hi)
            }
        })
        .collect();
    let raw: Vec<u64> = xs.iter().map(|&v| fixed.encode(v).unwrap_or_else(|e| panic!("{e}"))).collect();
    let g = c.g;
    let got = run(&raw, 1, &|p, x| g(p, x, &pr)).unwrap_or_else(|e| panic!("{} failed: {e}", c.name));
    for (&xr, &gv) in raw.iter().zip(&got) {
        let (it, en) = enclosure(&spec::raw(xr));
        let xv = fixed.decode(xr);
        assert!(en.contains(&it), "{} x = {xv}: the spec's iteration {it} outside its enclosure {en:?}", c.name);
        assert!(en.contains(&spec::raw(gv)), "{} x = {xv}: protocol {gv} outside the enclosure {en:?}", c.name);
        let want = (c.ideal)(xv);
        assert!(c.bound.holds(fixed.decode(gv), want), "{} x = {xv}: {} vs float64 {want}", c.name, fixed.decode(gv));
    }
}

/// One layer of each kind the bytes pick (convolution, linear, average pooling, with
/// ReLU), forward and backward on shares against the enclosure backend built from
/// the spec's layer model (`crate::enclosure`): the opened output and every parameter
/// gradient must lie inside its interval. Weights, inputs and the output gradient come
/// from the bytes, in `[-0.5, 0.5]`, `[-1, 1]` and `[-1, 1]` (the enclosure backend
/// needs its sums below 2^52 units: about 4096 in real terms).
pub fn layer(data: &[u8]) {
    use crate::enclosure::{ETensor, Enclosure};
    use triad_layers::{Backend, ConvSpec, Graph, Model, Op, PoolSpec};
    let p0 = PartyId::ALL[0];
    let fixed = FixedConfig::default();
    let mut b = Bytes(data);
    let seed = u64::from(b.byte());
    let batch = b.range(1, 2);
    let side = b.range(3, 5);
    let (ch, out_c, kk) = (b.range(1, 2), b.range(1, 3), b.range(1, 3).min(side));
    let stride = b.range(1, 2);
    let conv_out = (side - kk) / stride + 1;
    let ops = match b.byte() % 4 {
        0 => vec![Op::Conv(ConvSpec::square(ch, out_c, kk, stride, 0, true)), Op::Relu],
        1 => vec![Op::Flatten, Op::Linear { inp: ch * side * side, out: out_c, bias: true }, Op::Relu],
        2 => vec![Op::Conv(ConvSpec::square(ch, out_c, kk, stride, 0, false)), Op::AvgPool(PoolSpec::square(1, 1, 0))],
        // (The enclosure backend has no max pooling: the compare target checks it exactly.)
        _ => vec![
            Op::Conv(ConvSpec::square(ch, out_c, kk, stride, 0, false)),
            Op::Relu,
            Op::Flatten,
            Op::Linear { inp: out_c * conv_out * conv_out, out: 2, bias: true },
        ],
    };
    let net = match Graph::chain("fuzz-layer", &[ch, side, side], ops) {
        Ok(n) => n,
        Err(e) => return one_line(&e),
    };
    let w: Vec<Vec<f64>> = net
        .tensors()
        .iter()
        .map(|t| (0..t.shape.iter().product::<usize>()).map(|_| b.real(-0.5, 0.5)).collect())
        .collect();
    let xs: Vec<usize> = std::iter::once(batch).chain(net.input().iter().copied()).collect();
    let x: Vec<f64> = (0..xs.iter().product::<usize>()).map(|_| b.real(-1.0, 1.0)).collect();
    // The output shape, from a plaintext-free run on the enclosure backend.
    let e = Enclosure { fixed };
    let mut em = Model::new(&e, &net, p0, Some(&w)).unwrap_or_else(|err| panic!("enclosure model: {err}"));
    let ey = em
        .forward(&e, e.input(p0, Some(&x), &xs).unwrap_or_else(|err| panic!("{err}")))
        .unwrap_or_else(|err| panic!("{err}"));
    let ys = e.dims(&ey);
    let g: Vec<f64> = (0..ys.iter().product::<usize>()).map(|_| b.real(-1.0, 1.0)).collect();
    em.backward(&e, e.input(p0, Some(&g), &ys).unwrap_or_else(|err| panic!("{err}")))
        .unwrap_or_else(|err| panic!("{err}"));
    let mut spec_out = vec![ey];
    spec_out.extend(
        em.params().iter().filter_map(|p| p.grad.as_ref().map(|t| e.copy(t).unwrap_or_else(|err| panic!("{err}")))),
    );
    let opened = three(seed, |p| {
        let owner = p.id == p0;
        let mut m = Model::new(p, &net, p0, owner.then_some(&w[..]))?;
        let y = m.forward(p, p.input(p0, owner.then_some(&x[..]), &xs)?)?;
        m.backward(p, p.input(p0, owner.then_some(&g[..]), &ys)?)?;
        let mut out = vec![p.open(p0, &y)?];
        for prm in m.params() {
            if let Some(gr) = prm.grad.as_ref() {
                out.push(p.open(p0, gr)?);
            }
        }
        Ok(out)
    });
    let [opened, _, _] = opened;
    assert_eq!(opened.len(), spec_out.len());
    for (k, (enc, got)) in spec_out.iter().zip(opened).enumerate() {
        let got = got.unwrap_or_else(|| panic!("tensor {k} not opened to party 0"));
        let units: Vec<i128> = got.iter().map(|v| (v * fixed.scale()).round() as i128).collect();
        if let Some((i, v, (lo, hi))) = ETensor::first_outside(enc, &units) {
            panic!("{}: tensor {k}, element {i}: private {v} outside the spec's [{lo}, {hi}]", net.name);
        }
    }
    layer_outside(&mut b, seed, &net, (&w, &x, &g), (&xs, &ys));
}

/// The same layer outside the domain: weights and inputs scaled by up to `2^44` (past the
/// products' `2^62` and past the encoding limit of about `4.4e12`), or one of them made
/// `±1e13`, infinite or NaN, with the overflow guard on or off. The byte after the
/// in-domain part chooses (0, as past the end, tries nothing). The documented results:
/// a value the owner cannot encode is the owner's typed `Fixed` error (the other parties
/// end with a typed error, not a hang); without the guard the layer runs and opens a
/// result (wrapped values are garbage, silently: what the guard is for); with the guard,
/// a result or the guard's `OutOfRange`. Never a panic.
fn layer_outside(
    b: &mut Bytes<'_>,
    seed: u64,
    net: &triad_layers::Graph,
    (w, x, g): (&[Vec<f64>], &[f64], &[f64]),
    (xs, ys): (&[usize], &[usize]),
) {
    use triad_layers::{Backend, Guard, Model};
    use triad_sharing::Error;
    let tag = b.byte();
    if tag == 0 {
        return;
    }
    let fixed = FixedConfig::default();
    let p0 = PartyId::ALL[0];
    let (sw, sx) = (f64::from(1u32 << b.range(0, 22)), f64::from(1u32 << b.range(0, 22)));
    let (sw, sx) = (sw * f64::from(1u32 << b.range(0, 22)), sx * f64::from(1u32 << b.range(0, 22)));
    let mut w: Vec<Vec<f64>> = w.iter().map(|t| t.iter().map(|v| v * sw).collect()).collect();
    let mut x: Vec<f64> = x.iter().map(|v| v * sx).collect();
    if tag % 4 == 3 {
        let bad = [1e13, -1e13, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MAX][b.range(0, 5)];
        let at = usize::from(b.byte()) + 256 * usize::from(b.byte());
        let nw: usize = w.iter().map(Vec::len).sum();
        if at % 2 == 0 && nw > 0 {
            let mut k = (at / 2) % nw;
            for t in &mut w {
                if k < t.len() {
                    t[k] = bad;
                    break;
                }
                k -= t.len();
            }
        } else {
            let k = (at / 2) % x.len();
            x[k] = bad;
        }
    }
    let guard = (tag & 4 != 0).then(|| Guard::for_frac_bits(fixed.frac_bits)).flatten();
    let encodable = w.iter().flatten().chain(&x).all(|&v| fixed.encode(v).is_ok());
    let r = run_in_process_with_test_keys(CpuDevice, &link(), fixed, seed, |p| {
        let owner = p.id == p0;
        let mut m = Model::new(p, net, p0, owner.then_some(&w[..]))?;
        m.guard = guard;
        let y = m.forward(p, p.input(p0, owner.then_some(&x[..]), xs)?)?;
        m.backward(p, p.input(p0, owner.then_some(g), ys)?)?;
        p.open(p0, &y)
    });
    match r {
        Ok([Some(y), None, None]) => {
            assert!(encodable, "{}: values past the encoding limit were accepted", net.name);
            assert_eq!(y.len(), ys.iter().product::<usize>());
        }
        Ok(other) => panic!("{}: opened to the wrong parties: {other:?}", net.name),
        Err(Error::Fixed(e)) => {
            assert!(!encodable, "{}: encodable values refused: {e}", net.name);
            one_line(&e);
        }
        Err(Error::OutOfRange { at, .. }) if guard.is_some() && encodable => assert!(!at.is_empty()),
        Err(e) => panic!("{}: scaled by 2^{} and 2^{} (guard {guard:?}): {e:?}", net.name, sw.log2(), sx.log2()),
    }
}
