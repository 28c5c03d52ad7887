//! Three servers (their compute loops in one process, their gates on loopback TLS) and
//! real clients: a model owner uploads a small residual network with batch norm as
//! shares, a data owner is refused until allowed, two data owners classify at once and
//! get the plaintext twin's outputs, and a stop at one server stops all three cleanly.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::{Chain, ConvSpec, Graph, Model, Op, PTensor, Plain};
use triad_ring::CpuDevice;
use triad_service::{serve, testing, Client, ServeOptions};
use triad_sharing::run_in_process;
use triad_transport::{LinkConfig, PartyId};

fn tiny_resnet() -> Graph {
    let mut c = Chain::new("tiny-resnet", &[2, 6, 6]);
    c.extend([Op::Conv(ConvSpec::square(2, 4, 3, 1, 1, false)), Op::BatchNorm { c: 4 }, Op::Relu]);
    c.residual(vec![Op::Conv(ConvSpec::square(4, 4, 3, 1, 1, false)), Op::BatchNorm { c: 4 }], vec![]);
    c.extend([Op::Relu, Op::GlobalAvgPool { keep_dims: false }, Op::Linear { inp: 4, out: 3, bias: true }]);
    c.finish().unwrap()
}

/// Weights whose batch norms have running statistics far from (0, 1), so that a server
/// that ignored the folded map would be wrong.
fn weights(g: &Graph) -> Vec<Vec<f64>> {
    let mut w = g.init_weights(7);
    for (t, info) in w.iter_mut().zip(g.tensors()) {
        if info.name.ends_with("running_mean") {
            t.iter_mut().enumerate().for_each(|(i, v)| *v = 0.3 * i as f64 - 0.4);
        }
        if info.name.ends_with("running_var") {
            t.iter_mut().enumerate().for_each(|(i, v)| *v = 0.5 + 0.7 * i as f64);
        }
    }
    w
}

fn inputs(n: usize, k: usize) -> Vec<f64> {
    (0..n * 72).map(|i| ((i * 7 + k * 13) % 23) as f64 / 11.0 - 1.0).collect()
}

fn twin(g: &Graph, w: &[Vec<f64>], n: usize, x: &[f64]) -> Vec<f64> {
    let mut m = Model::new(&Plain, g, PartyId::ALL[0], Some(w)).unwrap();
    m.train = false;
    m.forward(&Plain, PTensor::new(vec![n, 2, 6, 6], x.to_vec()).unwrap()).unwrap().data
}

#[test]
fn owners_upload_allow_and_classify_and_a_stop_stops_all_three() {
    let dir = testing::temp_dir("serve");
    let svc = testing::start(&dir, &["owner", "reader", "other"], 20).unwrap();
    let gates = svc.gates.clone();
    let fixed = FixedConfig::new(20).unwrap();
    let opt = ServeOptions {
        max_wait: Duration::from_millis(20),
        arrival_wait: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let link = LinkConfig { timeout: Duration::from_secs(60), ..LinkConfig::default() };
    let servers = std::thread::spawn(move || {
        run_in_process(CpuDevice, &link, fixed, |p| {
            serve(p, &gates[p.id.index()], &opt).map_err(|e| triad_sharing::Error::Usage(e.to_string()))
        })
    });
    let file = |name: &str| svc.clients.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let g = tiny_resnet();
    let w = weights(&g);

    let mut owner = Client::connect(&file("owner")).unwrap();
    let info = owner.upload("tiny", &g, &w, 20).unwrap();
    assert_eq!(
        (info.input.as_slice(), info.output.as_slice(), info.owner.as_str()),
        (&[2, 6, 6][..], &[3][..], "owner")
    );

    // The owner classifies; the outputs are the twin's.
    let x = inputs(3, 0);
    let (dims, y) = owner.infer("tiny", &[3, 2, 6, 6], &x).unwrap();
    assert_eq!(dims, vec![3, 3]);
    let want = twin(&g, &w, 3, &x);
    let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-3, "max error {err}: {y:?} vs {want:?}");

    // A data owner is refused until the owner allows it, and only the owner may allow.
    let mut reader = Client::connect(&file("reader")).unwrap();
    let e = reader.infer("tiny", &[1, 2, 6, 6], &inputs(1, 1)).unwrap_err().to_string();
    assert!(e.contains("no model \"tiny\" that reader may use"), "{e}");
    let e = reader.allow("tiny", "reader").unwrap_err().to_string();
    assert!(e.contains("belongs to another client"), "{e}");
    let e = owner.allow("tiny", "nobody").unwrap_err().to_string();
    assert!(e.contains("\"nobody\" is not an enrolled client"), "{e}");
    owner.allow("tiny", "reader").unwrap();
    owner.allow("tiny", "other").unwrap();
    // A wrong shape is one line, before anything is shared.
    let e = reader.infer("tiny", &[1, 3, 6, 6], &vec![0.0; 108]).unwrap_err().to_string();
    assert!(e.contains("takes inputs of shape [N, 2, 6, 6]"), "{e}");

    // Two data owners at once, several requests each: every answer is the twin's.
    let handles: Vec<_> = ["reader", "other"]
        .into_iter()
        .enumerate()
        .map(|(c, name)| {
            let cfg = file(name);
            let (g, w) = (g.clone(), w.clone());
            std::thread::spawn(move || {
                let mut cl = Client::connect(&cfg).unwrap();
                for k in 0..4 {
                    let n = 1 + (k + c) % 3;
                    let x = inputs(n, 10 * c + k);
                    let (_, y) = cl.infer("tiny", &[n, 2, 6, 6], &x).unwrap();
                    let want = twin(&g, &w, n, &x);
                    let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                    assert!(err < 1e-3, "{name} request {k}: max error {err}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    // Refused again after refuse.
    owner.refuse("tiny", "reader").unwrap();
    assert!(reader.infer("tiny", &[1, 2, 6, 6], &inputs(1, 2)).is_err());

    // A client that disconnects mid-request does not stop the others: it sends its shares
    // to parties 0 and 1 only and leaves; party 2 refuses that request when its shares do
    // not come, and the owner's next request is answered.
    testing::leave_mid_request(&file("other"), &[0, 1], "tiny", &[1, 2, 6, 6], &inputs(1, 4)).unwrap();
    drop(reader);
    let (_, y) = owner.infer("tiny", &[1, 2, 6, 6], &inputs(1, 5)).unwrap();
    assert_eq!(y.len(), 3);

    // A stop at party 2 stops all three, cleanly.
    svc.gates[2].stop();
    let summaries = servers.join().unwrap().unwrap();
    for s in &summaries {
        assert_eq!(s.requests, summaries[0].requests);
        assert_eq!(s.refused, 1, "{s:?}");
        assert!(s.requests >= 10, "{s:?}");
        assert!(s.batches <= s.requests);
    }
    let e = Client::connect(&file("owner")).and_then(|mut c| c.describe("tiny"));
    assert!(e.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
