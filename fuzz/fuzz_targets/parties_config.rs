//! The parties file parser: never panics; accepted files survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_transport::PartiesConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PartiesConfig::parse(text) {
        Ok(c) => assert_eq!(PartiesConfig::parse(&c.to_toml()).as_ref(), Ok(&c)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
