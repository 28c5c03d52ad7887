//! View secrecy of the service: what each server of `triad serve` receives tells it
//! nothing about the model's weights, a client's inputs or their outputs.
//!
//! Three servers (their compute loops in one process with test keys, so each server's
//! own randomness is the same in both runs; their gates on loopback TLS) serve a model
//! owner that uploads LeNet and classifies a batch, twice: with all-zero weights and
//! images, and with real weights and real digits scaled to the top of the documented
//! range. Each server's view is every share body clients sent it (the model's shares
//! without the public graph, the inputs' shares) and every message its peers sent it,
//! except the control messages that agree on each batch (public facts: names, ids,
//! shapes; scope `control`). Each view passes the uniformity tests of
//! [`triad_tests::views`] and the two runs' views cannot be told apart. A planted leak (a
//! client that sends one server its inputs in the clear) must be caught.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_fixed::FixedConfig;
use triad_layers::data::Mnist;
use triad_layers::zoo::lenet;
use triad_layers::{Activation, Graph, Pooling};
use triad_service::{serve, server::CONTROL_SCOPE, testing, Client, ServeOptions};
use triad_tests::views::View;
use triad_transport::{PartyId, Received};

const BATCH: usize = 4;
const SEED: u64 = 37;

fn top() -> f64 {
    let g = triad_layers::Guard::for_frac_bits(FixedConfig::default().frac_bits).unwrap();
    2f64.powi(g.log2_bound as i32) - 1.0
}

/// The two secrets: (weights, images).
fn secrets(net: &Graph) -> [(Vec<Vec<f64>>, Vec<f64>); 2] {
    let w = net.init_weights(5);
    let zeros = (w.iter().map(|t| vec![0.0; t.len()]).collect(), vec![0.0; BATCH * 784]);
    let m = Mnist::bundled().unwrap();
    let x = (0..BATCH).flat_map(|i| m.train.image_f64(i).into_iter().map(|v| v * top())).collect();
    [zeros, (w, x)]
}

/// Each server's view of one upload and one inference; with `leak`, the client also
/// sends server 1 its images' fixed-point words in the clear.
fn views(net: &Graph, secret: &(Vec<Vec<f64>>, Vec<f64>), leak: bool) -> [Vec<Received>; 3] {
    let dir = testing::temp_dir("secrecy-service");
    let svc = testing::start(&dir, &["owner"], 20).unwrap();
    for g in &svc.gates {
        g.start_recording();
    }
    let gates = svc.gates.clone();
    let opt = ServeOptions { max_wait: Duration::ZERO, ..ServeOptions::default() };
    let servers = std::thread::spawn(move || {
        triad_tests::parties::in_process(SEED, |p| {
            p.net.start_recording();
            serve(p, &gates[p.id.index()], &opt).map_err(|e| triad_sharing::Error::Usage(e.to_string()))?;
            Ok(p.net.stop_recording())
        })
    });
    let mut c = Client::connect(&svc.clients[0].1).unwrap();
    c.upload("lenet", net, &secret.0, 20).unwrap();
    let mut dims = vec![BATCH];
    dims.extend(net.input());
    let (out, _) = c.infer("lenet", &dims, &secret.1).unwrap();
    assert_eq!(out, vec![BATCH, 10]);
    svc.gates[0].stop();
    let peers = servers.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut out: Vec<Vec<Received>> = Vec::new();
    for (i, recorded) in peers.into_iter().enumerate() {
        let mut v: Vec<Received> = recorded.into_iter().filter(|r| r.scope != CONTROL_SCOPE).collect();
        let me = PartyId::ALL[i];
        for body in svc.gates[i].stop_recording() {
            v.push(Received { from: me, scope: "client".into(), bytes: body });
        }
        if leak && i == 1 {
            let words = FixedConfig::default().encode_slice(&secret.1).unwrap();
            let bytes = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            v.push(Received { from: me, scope: "client".into(), bytes });
        }
        out.push(v);
    }
    out.try_into().unwrap()
}

fn check(leak: bool) -> Result<(), String> {
    let net = lenet(Activation::Relu, Pooling::Max);
    let [a, b] = secrets(&net);
    let (va, vb) = (views(&net, &a, false), views(&net, &b, leak));
    for i in 0..3 {
        let (x, y) = (View::new(&va[i]), View::new(&vb[i]));
        println!(
            "server {i}: {} messages, {} bytes per run; bit |z| {:.2} and {:.2}; between runs |z| {:.2}",
            x.messages,
            x.all.total_bytes(),
            x.all.bit_z().0,
            y.all.bit_z().0,
            x.all.bit_z_between(&y.all).0,
        );
        x.check_uniform(&format!("server {i}, zero model and images"))?;
        y.check_uniform(&format!("server {i}, real model and digits"))?;
        x.check_alike(&y, &format!("server {i}"))?;
    }
    Ok(())
}

#[test]
fn no_server_sees_the_weights_the_inputs_or_the_outputs() {
    check(false).unwrap();
}

#[test]
fn the_service_secrecy_test_catches_a_client_that_leaks() {
    let e = check(true).unwrap_err();
    assert!(e.contains("server 1"), "{e}");
}
