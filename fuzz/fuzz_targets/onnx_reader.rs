//! The ONNX reader: any bytes give a model or a one-line error, never a panic. No base
//! folder is given, so external data is refused without touching the file system.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match triad_onnx::parse(data, None) {
        Ok(m) => assert!((triad_onnx::OPSET_MIN..=triad_onnx::OPSET_MAX).contains(&m.opset)),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
        }
    }
});
