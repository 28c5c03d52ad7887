//! Communication of the service, pinned: between the servers, a batch of `triad serve`
//! costs exactly the model's private inference (the same table as the layers' snapshot of
//! LeNet at batch 1) plus one reshare of the outputs (`output`: 8 bytes per output element
//! per server, one round), besides the control messages that agree on the batch (scope
//! `control`: JSON of public facts, whose length varies with the request's random id, so
//! only counted here, not pinned).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use triad_layers::zoo::lenet;
use triad_layers::{layer_cost_table, Activation, Pooling};
use triad_service::server::{CONTROL_SCOPE, OUTPUT_SCOPE};
use triad_service::{serve, testing, Client, ServeOptions};
use triad_transport::CostTable;

#[test]
fn a_batch_costs_the_models_inference_and_one_reshare() {
    let net = lenet(Activation::Relu, Pooling::Avg);
    let dir = testing::temp_dir("service-costs");
    let svc = testing::start(&dir, &["owner"], 20).unwrap();
    let gates = svc.gates.clone();
    let opt = ServeOptions { max_wait: Duration::ZERO, ..ServeOptions::default() };
    let servers = std::thread::spawn(move || {
        triad_tests::parties::in_process(3, |p| {
            serve(p, &gates[p.id.index()], &opt).map_err(|e| triad_sharing::Error::Usage(e.to_string()))?;
            Ok(p.net.costs())
        })
    });
    let mut c = Client::connect(&svc.clients[0].1).unwrap();
    c.upload("lenet", &net, &net.init_weights(1), 20).unwrap();
    let x: Vec<f64> = (0..784).map(|i| (i % 17) as f64 / 17.0).collect();
    c.infer("lenet", &[1, 1, 28, 28], &x).unwrap();
    svc.gates[0].stop();
    let costs: [CostTable; 3] = servers.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let snap = include_str!("snapshots/layers_costs__lenet_forward_batch1.snap");
    let body = snap.splitn(3, "---\n").nth(2).unwrap();
    // Every layer's row as in the layers' snapshot (the table's last line totals the whole
    // cost table, which here also holds the output and the control messages).
    let rows = |t: &str| t.lines().filter(|l| !l.starts_with("total")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(rows(&layer_cost_table(&net, &costs, "forward", &[])), rows(body));
    let out: Vec<String> = costs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let o = t.subtree(OUTPUT_SCOPE);
            format!("server {i}: output {} bytes sent, {} rounds", o.bytes_sent, o.rounds)
        })
        .collect();
    insta::assert_snapshot!("service_output_lenet_batch1", out.join("\n"));
    // Nothing else: every byte is the forward pass, the output's reshare or control.
    for t in &costs {
        let other = t.total().bytes_sent
            - t.subtree("forward").bytes_sent
            - t.subtree(OUTPUT_SCOPE).bytes_sent
            - t.subtree(CONTROL_SCOPE).bytes_sent;
        assert_eq!(other, 0);
        assert!(t.subtree(CONTROL_SCOPE).bytes_sent > 0);
    }
}
