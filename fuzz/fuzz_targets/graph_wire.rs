//! The graph decoder parties 1 and 2 run on party 0's message: any bytes give a graph or
//! a typed error, never a panic; a graph has shapes, and its encoding is the bytes it
//! came from (the encoding is canonical, so its SHA-256 names it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_layers::graph_wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = graph_wire::decode(data) {
        assert!(g.node_dims().is_ok());
        assert_eq!(graph_wire::encode(&g).as_deref(), Some(data));
    }
});
