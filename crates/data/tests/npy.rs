//! The npy reader on files written by real NumPy (`tools/npy-fixtures/make.py`, and
//! the ONNX fixtures' input batches), and the writer's files read back.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use triad_data::npy::{self, NpyDtype, NpyError};
use triad_data::DataError;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

const X: [f64; 6] = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75];

#[test]
fn reads_numpy_written_files() {
    for f in ["npy/f8_2x3.npy", "npy/f4_2x3.npy", "npy/v2_f8.npy", "npy/v3_f8.npy"] {
        let (shape, v) = npy::read_f64(&fx(f)).unwrap();
        assert_eq!(shape, [2, 3], "{f}");
        assert_eq!(v, X, "{f}");
    }
    assert_eq!(npy::read(&fx("npy/f4_2x3.npy")).unwrap().dtype, NpyDtype::F4);
    for f in ["npy/i8_labels.npy", "npy/i4_labels.npy"] {
        assert_eq!(npy::read_labels(&fx(f)).unwrap(), [3, 0, 9, 1], "{f}");
    }
    let a = npy::read(&fx("npy/u1_2x2.npy")).unwrap();
    assert_eq!((a.shape.clone(), a.to_i64().unwrap()), (vec![2, 2], vec![0, 1, 254, 255]));
    assert_eq!(npy::read(&fx("npy/i1_3.npy")).unwrap().to_i64().unwrap(), [-128, 0, 127]);
    let (shape, v) = npy::read_f64(&fx("onnx/tiny_cnn.input.npy")).unwrap();
    assert_eq!(shape, [4, 1, 28, 28]);
    assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
}

#[test]
fn refusals_name_the_file() {
    let cases = [
        ("npy/fortran.npy", "Fortran-order arrays are not supported"),
        ("npy/big_endian.npy", "big-endian dtype '>f4' is not supported"),
        ("npy/f2.npy", "dtype '<f2' is not supported"),
    ];
    for (f, want) in cases {
        let e = npy::read(&fx(f)).unwrap_err().to_string();
        assert!(e.contains(f) && e.contains(want), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = npy::read_labels(&fx("npy/f8_2x3.npy")).unwrap_err().to_string();
    assert!(e.contains("f8_2x3.npy: labels must be 1-D [N], the array has shape [2, 3]"), "{e}");
    let e = npy::read_labels(&fx("onnx/mlp_ts.ort.npy")).unwrap_err();
    assert!(e.to_string().contains("mlp_ts.ort.npy"), "{e}");
    let e = npy::read(&fx("onnx/garbage.onnx")).unwrap_err();
    assert!(matches!(e, DataError::Npy { source: NpyError::Magic, .. }), "{e}");
    let e = npy::read(&fx("npy/none.npy")).unwrap_err().to_string();
    assert!(e.starts_with("cannot read ") && e.contains("none.npy"), "{e}");
}

#[test]
fn written_files_read_back() {
    let dir = std::env::temp_dir().join(format!("triad-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("y.npy");
    npy::write_f64(&p, &[2, 3], &X).unwrap();
    // Byte for byte what NumPy writes for the same array.
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(fx("npy/f8_2x3.npy")).unwrap());
    npy::write_f32(&p, &[2, 3], &X).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(fx("npy/f4_2x3.npy")).unwrap());
    npy::write_i64(&p, &[4], &[3, 0, 9, 1]).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(fx("npy/i8_labels.npy")).unwrap());
    let e = npy::write_f64(&dir.join("no/such/dir.npy"), &[1], &[1.0]).unwrap_err();
    assert!(e.to_string().starts_with("cannot write "), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
