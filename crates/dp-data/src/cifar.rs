//! CIFAR-10 in its binary version (`cifar-10-batches-bin`).
//!
//! Each batch file is a sequence of 3,073-byte records: one label byte (0 to 9), then a
//! 32 x 32 image as 1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::dataset::{Dataset, ImageShape, TrainTest};
use crate::error::{DataError, Result};
use crate::mnist::{byte_labels, pixels_to_unit};

/// Number of classes of CIFAR-10.
pub const CIFAR10_NUM_CLASSES: usize = 10;
/// Shape of a CIFAR-10 image.
pub const CIFAR10_IMAGE_SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};
/// Bytes per record: one label byte and the image.
pub const CIFAR10_RECORD_BYTES: usize = 1 + 3 * 32 * 32;
/// The training batches of the binary distribution.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch of the binary distribution.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

/// Reads one CIFAR-10 binary batch file.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Truncated`] if its length is
/// not a whole number of records (or it is empty), [`DataError::LabelOutOfRange`] for a
/// label byte above 9.
pub fn read_cifar10_batch(file: impl AsRef<Path>) -> Result<Dataset> {
    let file = file.as_ref();
    let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
    parse_cifar10_batch(&bytes, file)
}

/// Parses the bytes of one CIFAR-10 binary batch; `file` only names the source in errors.
///
/// # Errors
/// As [`read_cifar10_batch`].
pub fn parse_cifar10_batch(bytes: &[u8], file: &Path) -> Result<Dataset> {
    let remainder = bytes.len() % CIFAR10_RECORD_BYTES;
    if bytes.is_empty() || remainder != 0 {
        let whole = bytes.len() / CIFAR10_RECORD_BYTES;
        return Err(DataError::Truncated {
            file: file.to_path_buf(),
            what: "CIFAR-10 records (3,073 bytes each)",
            expected_bytes: ((whole + 1) * CIFAR10_RECORD_BYTES) as u64,
            actual_bytes: bytes.len() as u64,
        });
    }
    let n = bytes.len() / CIFAR10_RECORD_BYTES;
    let label_bytes: Vec<u8> = bytes
        .iter()
        .step_by(CIFAR10_RECORD_BYTES)
        .copied()
        .collect();
    let labels = byte_labels(&label_bytes, CIFAR10_NUM_CLASSES, file)?;
    let pixels: Vec<u8> = bytes
        .chunks_exact(CIFAR10_RECORD_BYTES)
        .flat_map(|record| record[1..].iter().copied())
        .collect();
    let features = Array2::from_shape_vec(
        (n, CIFAR10_IMAGE_SHAPE.num_features()),
        pixels_to_unit(&pixels),
    )
    .expect("n whole records give n x 3072 pixels");
    Dataset::with_image_shape(features, labels, CIFAR10_NUM_CLASSES, CIFAR10_IMAGE_SHAPE)
}

/// Loads the binary CIFAR-10 distribution: the five training batches and the test batch.
///
/// `dir` is either the `cifar-10-batches-bin` directory or the directory that contains it.
///
/// # Errors
/// The errors of [`read_cifar10_batch`] for each file (a missing file is [`DataError::Io`]).
pub fn load_cifar10(dir: impl AsRef<Path>) -> Result<TrainTest> {
    let dir = batches_dir(dir.as_ref());
    let mut train_parts = Vec::with_capacity(CIFAR10_TRAIN_FILES.len());
    for name in CIFAR10_TRAIN_FILES {
        train_parts.push(read_cifar10_batch(dir.join(name))?);
    }
    Ok(TrainTest {
        train: concatenate(train_parts)?,
        test: read_cifar10_batch(dir.join(CIFAR10_TEST_FILE))?,
    })
}

fn batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Stacks batches of the same image shape and classes.
fn concatenate(parts: Vec<Dataset>) -> Result<Dataset> {
    let n: usize = parts.iter().map(Dataset::len).sum();
    let mut features = Vec::with_capacity(n * CIFAR10_IMAGE_SHAPE.num_features());
    let mut labels = Vec::with_capacity(n);
    for part in parts {
        let (part_features, part_labels, _, _) = part.into_parts();
        features.extend(part_features.iter().copied());
        labels.extend(part_labels);
    }
    let features = Array2::from_shape_vec((n, CIFAR10_IMAGE_SHAPE.num_features()), features)
        .expect("every batch has 3072 features per image");
    Dataset::with_image_shape(features, labels, CIFAR10_NUM_CLASSES, CIFAR10_IMAGE_SHAPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; CIFAR10_RECORD_BYTES];
        r[0] = label;
        r
    }

    #[test]
    fn parses_records_channel_major() {
        let mut bytes = record(3, 0);
        bytes[1 + 1024] = 255; // first green pixel
        bytes.extend(record(9, 51));
        let data = parse_cifar10_batch(&bytes, Path::new("b.bin")).unwrap();
        assert_eq!(data.labels(), &[3, 9]);
        let images = data.images().unwrap();
        assert_eq!(images.shape(), &[2, 3, 32, 32]);
        assert_eq!(images[[0, 1, 0, 0]], 1.0);
        assert_eq!(images[[0, 0, 0, 0]], 0.0);
        assert_eq!(images[[1, 2, 31, 31]], 0.2);
    }

    #[test]
    fn rejects_partial_records_and_bad_labels() {
        let bytes = record(1, 0);
        assert!(matches!(
            parse_cifar10_batch(&bytes[..100], Path::new("b.bin")),
            Err(DataError::Truncated {
                actual_bytes: 100,
                ..
            })
        ));
        assert!(matches!(
            parse_cifar10_batch(&[], Path::new("b.bin")),
            Err(DataError::Truncated { .. })
        ));
        let mut two = record(1, 0);
        two.extend(record(10, 0));
        assert!(matches!(
            parse_cifar10_batch(&two, Path::new("b.bin")),
            Err(DataError::LabelOutOfRange {
                example: 1,
                label: 10,
                ..
            })
        ));
    }
}
