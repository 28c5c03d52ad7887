//! Handshake messages: decoding never panics, and whatever decodes re-encodes exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_transport::{check_handshake, decode_handshake, encode_handshake, Handshake, PartyId};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = decode_handshake(data) {
        assert_eq!(encode_handshake(&h), data);
        let ours = Handshake::new(PartyId::ALL[0], "fuzz");
        let _ = check_handshake(&ours, &h, PartyId::ALL[1]).map_err(|e| e.to_string());
    }
});
