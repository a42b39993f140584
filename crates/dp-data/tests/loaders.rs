//! Loaders round-trip generated files and reject malformed ones with the right error, never a
//! panic.

mod common;

use std::io::Write;
use std::path::Path;

use common::ScratchDir;
use dp_data::cifar::{
    CIFAR10_RECORD_BYTES, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, parse_cifar10_batch,
};
use dp_data::idx::{IdxArray, IdxCompression, encode_idx, parse_idx, read_idx, write_idx};
use dp_data::{DataError, load_cifar10, load_mnist};
use proptest::prelude::*;

fn images(n: usize, seed: u8) -> IdxArray {
    let data = (0..n * 28 * 28)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    IdxArray::new(vec![n, 28, 28], data).expect("n * 784 bytes for n x 28 x 28")
}

fn labels(values: &[u8]) -> IdxArray {
    IdxArray::new(vec![values.len()], values.to_vec()).expect("one byte per label")
}

/// An MNIST-layout directory with 3 training and 2 test images; the training files are gzip,
/// the test files raw, as both occur in the wild.
fn write_mnist_dir(dir: &Path) -> dp_data::Result<()> {
    write_idx(
        dir.join("train-images-idx3-ubyte.gz"),
        &images(3, 1),
        IdxCompression::Gzip,
    )?;
    write_idx(
        dir.join("train-labels-idx1-ubyte.gz"),
        &labels(&[0, 9, 4]),
        IdxCompression::Gzip,
    )?;
    write_idx(
        dir.join("t10k-images-idx3-ubyte"),
        &images(2, 2),
        IdxCompression::None,
    )?;
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &labels(&[7, 7]),
        IdxCompression::None,
    )?;
    Ok(())
}

#[test]
fn idx_files_round_trip_gzip_and_raw() {
    let scratch = ScratchDir::new("idx-round-trip");
    let array = images(4, 3);
    for (name, compression) in [("a.gz", IdxCompression::Gzip), ("a", IdxCompression::None)] {
        let path = scratch.0.join(name);
        write_idx(&path, &array, compression).unwrap();
        assert_eq!(read_idx(&path).unwrap(), array);
    }
    // The gzip header carries no time stamp, so the same array always gives the same bytes.
    write_idx(scratch.0.join("b.gz"), &array, IdxCompression::Gzip).unwrap();
    let first = std::fs::read(scratch.0.join("a.gz")).unwrap();
    assert_eq!(first, std::fs::read(scratch.0.join("b.gz")).unwrap());
    assert_eq!(&first[4..8], &[0, 0, 0, 0], "gzip mtime is zero");
}

#[test]
fn mnist_directory_loads_with_pixels_in_unit_range() {
    let scratch = ScratchDir::new("mnist-dir");
    write_mnist_dir(&scratch.0).unwrap();
    let data = load_mnist(&scratch.0).unwrap();
    assert_eq!(data.train.labels(), &[0, 9, 4]);
    assert_eq!(data.test.labels(), &[7, 7]);
    let expected = images(2, 2);
    let pixels = data.test.features();
    assert_eq!(pixels.dim(), (2, 784));
    for (x, &byte) in pixels.iter().zip(expected.data()) {
        assert_eq!(*x, f32::from(byte) / 255.0);
    }
}

#[test]
fn mnist_errors_name_the_file_and_the_problem() {
    let scratch = ScratchDir::new("mnist-errors");
    let dir = &scratch.0;
    write_mnist_dir(dir).unwrap();

    // Label out of range.
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &labels(&[7, 10]),
        IdxCompression::None,
    )
    .unwrap();
    let err = load_mnist(dir).unwrap_err();
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            example: 1,
            label: 10,
            num_classes: 10,
            ..
        }
    ));
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"));

    // Label count differs from image count.
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &labels(&[7]),
        IdxCompression::None,
    )
    .unwrap();
    assert!(matches!(
        load_mnist(dir),
        Err(DataError::WrongDimensions { .. })
    ));

    // Images with two dimensions.
    let flat = IdxArray::new(vec![2, 784], images(2, 2).into_data()).unwrap();
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &labels(&[7, 7]),
        IdxCompression::None,
    )
    .unwrap();
    write_idx(
        dir.join("t10k-images-idx3-ubyte"),
        &flat,
        IdxCompression::None,
    )
    .unwrap();
    let err = load_mnist(dir).unwrap_err();
    assert!(matches!(err, DataError::WrongDimensions { .. }));
    assert!(
        err.to_string()
            .contains("t10k-images-idx3-ubyte: wrong dimensions"),
        "{err}"
    );

    // Truncated gzip file.
    let gz = dir.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_mnist(dir).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Malformed { .. } | DataError::Truncated { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train-images-idx3-ubyte.gz"));

    // Wrong magic number (a labels file where images are expected: 00 00 08 01).
    std::fs::write(&gz, encode_idx(&labels(&[1, 2, 3]))).unwrap();
    assert!(matches!(
        load_mnist(dir),
        Err(DataError::WrongDimensions { .. })
    ));
    std::fs::write(&gz, b"PK\x03\x04 not idx at all").unwrap();
    let err = load_mnist(dir).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 0x504b_0304,
                ..
            }
        ),
        "{err}"
    );

    // Missing file.
    std::fs::remove_file(&gz).unwrap();
    let err = load_mnist(dir).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
}

fn cifar_batch(labels: &[u8]) -> Vec<u8> {
    labels
        .iter()
        .flat_map(|&label| {
            let mut record = vec![label; CIFAR10_RECORD_BYTES];
            record[1..]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i % 256) as u8);
            record
        })
        .collect()
}

#[test]
fn cifar10_directory_loads_and_rejects_a_truncated_batch() {
    let scratch = ScratchDir::new("cifar");
    let dir = scratch.0.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for (k, name) in CIFAR10_TRAIN_FILES.iter().enumerate() {
        std::fs::write(dir.join(name), cifar_batch(&[k as u8, 9])).unwrap();
    }
    std::fs::write(dir.join(CIFAR10_TEST_FILE), cifar_batch(&[5])).unwrap();
    let data = load_cifar10(&scratch.0).unwrap();
    assert_eq!(data.train.labels(), &[0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    assert_eq!(data.train.images().unwrap().shape(), &[10, 3, 32, 32]);
    assert_eq!(data.test.features()[[0, 1024 + 1]], 1.0 / 255.0);

    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("data_batch_3.bin"))
        .unwrap();
    file.write_all(&[1, 2, 3]).unwrap();
    let err = load_cifar10(&scratch.0).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }));
    assert!(
        err.to_string().contains("data_batch_3.bin: truncated file"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes never panic the IDX parser, raw or as a gzip stream.
    #[test]
    fn idx_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_idx(bytes.as_slice(), Path::new("random.idx"));
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        gz.extend_from_slice(&bytes);
        let _ = parse_idx(flate2::read::GzDecoder::new(gz.as_slice()), Path::new("random.idx.gz"));
    }

    /// A valid header followed by random bytes is accepted exactly when the size matches.
    #[test]
    fn idx_length_is_checked(dims in proptest::collection::vec(0usize..6, 1..4), extra in 0usize..40) {
        let n: usize = dims.iter().product();
        let array = IdxArray::new(dims, vec![7; n]).unwrap();
        let mut bytes = encode_idx(&array);
        let header = bytes.len() - n;
        let cut = header + (extra % (n + 1));
        let result = parse_idx(&bytes[..cut], Path::new("x"));
        if cut == bytes.len() {
            prop_assert_eq!(result.unwrap(), array);
        } else {
            let is_truncated = matches!(result, Err(DataError::Truncated { .. }));
            prop_assert!(is_truncated);
        }
        bytes.push(0);
        let is_malformed = matches!(parse_idx(bytes.as_slice(), Path::new("x")), Err(DataError::Malformed { .. }));
        prop_assert!(is_malformed);
    }

    /// Every cut of an IDX file before its last byte is an error, never a short array.
    #[test]
    fn truncated_idx_is_an_error(cut in 0usize..(16 + 2 * 3 * 3)) {
        let bytes = encode_idx(&IdxArray::new(vec![2, 3, 3], (0..18).collect()).unwrap());
        prop_assert!(parse_idx(&bytes[..cut], Path::new("x")).is_err());
    }

    /// Arbitrary bytes never panic the CIFAR-10 parser; whole records with valid labels parse.
    #[test]
    fn cifar_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..(3 * CIFAR10_RECORD_BYTES))) {
        let result = parse_cifar10_batch(&bytes, Path::new("random.bin"));
        let whole = !bytes.is_empty() && bytes.len() % CIFAR10_RECORD_BYTES == 0;
        let labels_ok = bytes.iter().step_by(CIFAR10_RECORD_BYTES).all(|&b| b < 10);
        prop_assert_eq!(result.is_ok(), whole && labels_ok);
    }
}
