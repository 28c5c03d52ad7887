#![allow(clippy::unwrap_used)]
use proptest::prelude::*;
use triad_data::idx::{encode, parse, parse_raw, IdxError};
use triad_data::{DataError, Mnist};

#[test]
fn bundled_mnist_loads_with_expected_shape() {
    let m = Mnist::bundled().unwrap();
    assert_eq!((m.train.len(), m.test.len()), (8000, 2000));
    assert_eq!((m.train.rows, m.train.cols), (28, 28));
    assert_eq!(m.train.pixels.len(), 8000 * 784);
    // Every digit occurs, and images are not blank.
    for d in 0..10u8 {
        assert!(m.train.labels.iter().filter(|&&l| l == d).count() >= 700);
        assert!(m.test.labels.contains(&d));
    }
    let ink: u64 = m.train.image(0).iter().map(|&p| u64::from(p)).sum();
    assert!(ink > 10_000, "first training image is nearly blank");
    assert!(m.train.image_f64(3).iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
fn header_errors_are_typed() {
    assert_eq!(parse_raw(&[0, 0]), Err(IdxError::ShortHeader(2)));
    assert_eq!(parse_raw(&[1, 0, 8, 1, 0, 0, 0, 0]), Err(IdxError::BadMagic(1, 0)));
    assert_eq!(parse_raw(&[0, 0, 0x0d, 1, 0, 0, 0, 0]), Err(IdxError::UnsupportedType(0x0d)));
    assert_eq!(parse_raw(&[0, 0, 8, 0]), Err(IdxError::BadRank(0)));
    assert_eq!(parse_raw(&[0, 0, 8, 2, 0, 0, 0, 1]), Err(IdxError::ShortHeader(8)));
    assert_eq!(parse_raw(&[0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), Err(IdxError::Length { expected: 3, found: 2 }));
    assert!(matches!(
        parse_raw(&[0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255]),
        Err(IdxError::TooLarge(_))
    ));
    assert!(matches!(parse(&[0x1f, 0x8b, 1, 2, 3]), Err(IdxError::Gzip(_))));
}

#[test]
fn missing_directory_names_the_file() {
    let err = Mnist::load(std::path::Path::new("/nonexistent/mnist")).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
}

proptest! {
    #[test]
    fn encode_parse_round_trip(dims in proptest::collection::vec(0u32..6, 1..4), seed in any::<u8>()) {
        let n: usize = dims.iter().map(|&d| d as usize).product();
        let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let a = parse_raw(&encode(&dims, &data)).unwrap();
        prop_assert_eq!(a.dims, dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
        prop_assert_eq!(a.data, data);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&bytes);
    }
}
