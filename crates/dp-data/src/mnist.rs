//! MNIST-layout directories (MNIST, Fashion-MNIST) and the MNIST subset shipped in `data/mnist`.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::checksum::verify_sha256;
use crate::dataset::{Dataset, ImageShape, TrainTest};
use crate::error::{DataError, Result};
use crate::idx::read_idx;

/// Number of classes of MNIST and Fashion-MNIST.
pub const MNIST_NUM_CLASSES: usize = 10;
/// Side length of an MNIST image in pixels.
pub const MNIST_SIDE: usize = 28;

/// File stems of the four files of an MNIST-layout directory: train images, train labels,
/// test images, test labels. Each is looked up with a `.gz` suffix first, then without.
pub const MNIST_FILE_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// SHA-256 of each file shipped in `data/mnist` (also recorded in `data/mnist/SHA256SUMS` and
/// `data/README.md`; a test checks that the three agree).
pub const SHIPPED_MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "680b6ec4df2023089d1bc555e7eaa045daf12aa903fb90486a4abc5a5f5f4fe8",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "ec33189cdd02c6a7b9828b7b1f5a3df2898641c9da18a9c1ac70ba44b11e9d44",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "920866a6a654a32f433eba7972b15af5dc52e9a853e9c63d09c6c918bf9d57d5",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "d4e9439593f1f51deb63afd7068bb956034a4008a3b92ca823a32628e2ad21a6",
    ),
];

/// Loads an MNIST-layout directory: MNIST itself (60,000 + 10,000 images), Fashion-MNIST
/// (same file names and shapes), or the subset shipped in `data/mnist`.
///
/// Pixels are scaled to `[0, 1]` (byte / 255); the image shape is `1 x rows x cols` as the
/// files say (28 x 28 for both data sets).
///
/// # Errors
/// [`DataError::Io`] naming the file if one of the four is missing, and every error of
/// [`load_idx_classification`].
///
/// # Examples
/// ```
/// let data = dp_data::load_mnist(dp_data::shipped_mnist_dir())?;
/// assert_eq!(data.train.len() + data.test.len(), 10_000);
/// assert_eq!(data.train.num_features(), 784);
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<TrainTest> {
    let dir = dir.as_ref();
    let [train_images, train_labels, test_images, test_labels] =
        MNIST_FILE_STEMS.map(|stem| find_file(dir, stem));
    Ok(TrainTest {
        train: load_idx_classification(train_images?, train_labels?, MNIST_NUM_CLASSES)?,
        test: load_idx_classification(test_images?, test_labels?, MNIST_NUM_CLASSES)?,
    })
}

/// The directory of the shipped MNIST subset (`data/mnist` in the source tree).
#[must_use]
pub fn shipped_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

/// Loads the shipped MNIST subset (8,000 training and 2,000 test images) after checking
/// every file against [`SHIPPED_MNIST_SHA256`].
///
/// # Errors
/// [`DataError::ChecksumMismatch`] if a file was altered, and the errors of [`load_mnist`].
pub fn load_shipped_mnist() -> Result<TrainTest> {
    let dir = shipped_mnist_dir();
    for (name, sha256) in SHIPPED_MNIST_SHA256 {
        verify_sha256(
            &dir.join(name),
            sha256,
            "; restore the file from the repository",
        )?;
    }
    load_mnist(dir)
}

/// Loads an IDX image file (`n x rows x cols` bytes) and its IDX label file (`n` bytes).
///
/// # Errors
/// The errors of [`read_idx`]; [`DataError::WrongDimensions`] if the images are not 3-D, the
/// labels not 1-D, or their counts differ; [`DataError::LabelOutOfRange`] for a label not
/// below `num_classes`.
pub fn load_idx_classification(
    images_file: impl AsRef<Path>,
    labels_file: impl AsRef<Path>,
    num_classes: usize,
) -> Result<Dataset> {
    let (images_file, labels_file) = (images_file.as_ref(), labels_file.as_ref());
    let images = read_idx(images_file)?;
    let &[n, rows, cols] = images.dims() else {
        return Err(DataError::WrongDimensions {
            file: images_file.to_path_buf(),
            expected: "3 dimensions (images x rows x columns)".into(),
            found: format!("{:?}", images.dims()),
        });
    };
    let labels = read_idx(labels_file)?;
    let &[num_labels] = labels.dims() else {
        return Err(DataError::WrongDimensions {
            file: labels_file.to_path_buf(),
            expected: "1 dimension (labels)".into(),
            found: format!("{:?}", labels.dims()),
        });
    };
    if num_labels != n {
        return Err(DataError::WrongDimensions {
            file: labels_file.to_path_buf(),
            expected: format!("{n} labels, one per image of {}", images_file.display()),
            found: format!("{num_labels} labels"),
        });
    }
    let labels = byte_labels(labels.data(), num_classes, labels_file)?;
    let features = Array2::from_shape_vec((n, rows * cols), pixels_to_unit(images.data()))
        .expect("read_idx checked that the data has n * rows * cols bytes");
    let shape = ImageShape {
        channels: 1,
        height: rows,
        width: cols,
    };
    Dataset::with_image_shape(features, labels, num_classes, shape)
}

/// Converts label bytes, checking each against the number of classes.
pub(crate) fn byte_labels(bytes: &[u8], num_classes: usize, file: &Path) -> Result<Vec<usize>> {
    bytes
        .iter()
        .enumerate()
        .map(|(example, &b)| {
            let label = usize::from(b);
            if label < num_classes {
                Ok(label)
            } else {
                Err(DataError::LabelOutOfRange {
                    file: file.to_path_buf(),
                    example,
                    label,
                    num_classes,
                })
            }
        })
        .collect()
}

/// Scales pixel bytes to `[0, 1]`.
pub(crate) fn pixels_to_unit(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / 255.0).collect()
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(DataError::io(
        gz,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("neither {stem}.gz nor {stem} exists in this directory"),
        ),
    ))
}
