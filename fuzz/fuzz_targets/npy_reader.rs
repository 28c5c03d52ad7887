//! The `.npy` reader: any bytes give an array whose elements fill its shape, or an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match triad_data::npy::parse(data) {
        Ok(a) => assert_eq!(a.shape.iter().product::<usize>(), a.len()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
