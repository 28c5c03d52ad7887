//! Frame headers: decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_transport::{decode_frame_header, encode_frame_header, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the limit, the rest is the header (like the crate's replay test).
    let (limit, rest) = data.split_at(data.len().min(8));
    let mut l = [0u8; 8];
    l[..limit.len()].copy_from_slice(limit);
    let max = u64::from_le_bytes(l);
    if let Ok(h) = decode_frame_header(rest, max) {
        assert!(h.len <= h.kind.max_len(max));
        assert_eq!(
            &encode_frame_header(h.kind, h.len)[..],
            &rest[..FRAME_HEADER_LEN]
        );
    }
});
