//! The IDX file format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 tt nn` (`tt` the element type, `nn` the number
//! of dimensions), `nn` big-endian `u32` dimension sizes, then the elements in row-major order.
//! Only unsigned bytes (`tt = 0x08`), the type of every MNIST-style file, are supported.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder, read::GzDecoder};

use crate::error::{DataError, Result};

/// Element type code of unsigned bytes.
const UNSIGNED_BYTE: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest allocation made before the data has actually been read, so that a header that
/// claims terabytes cannot exhaust memory on its own.
const MAX_PREALLOCATION: usize = 1 << 26;
const EXPECTED_MAGIC: &str =
    "an IDX file of unsigned bytes starts with 00 00 08 <number of dimensions>";

/// An n-dimensional array of unsigned bytes, as stored in an IDX file.
///
/// # Examples
/// ```
/// use dp_data::idx::IdxArray;
///
/// let labels = IdxArray::new(vec![3], vec![7, 2, 1])?;
/// assert_eq!(labels.dims(), &[3]);
/// # Ok::<(), dp_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: Vec<u8>,
}

impl IdxArray {
    /// An array with the given dimensions and row-major data.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if there are no dimensions or more than 255, a dimension
    /// does not fit in a `u32`, or `data.len()` is not the product of the dimensions.
    pub fn new(dims: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        if dims.is_empty() || dims.len() > usize::from(u8::MAX) {
            return Err(DataError::invalid(
                "dims",
                format!("{dims:?}"),
                "needs 1 to 255 dimensions",
            ));
        }
        if dims.iter().any(|&d| u32::try_from(d).is_err()) {
            return Err(DataError::invalid(
                "dims",
                format!("{dims:?}"),
                "a dimension exceeds u32",
            ));
        }
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(DataError::invalid(
                "data",
                data.len(),
                format!("dimensions {dims:?} need their product in bytes"),
            ));
        }
        Ok(Self { dims, data })
    }

    /// The dimension sizes, outermost first.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements in row-major order.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the elements out.
    #[must_use]
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

/// Whether [`write_idx`] compresses its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxCompression {
    /// Raw IDX bytes.
    None,
    /// gzip at the best compression level, with a zero modification time and an "unknown"
    /// operating system in the header, so that the same array always gives the same bytes
    /// (for a given version of the deflate implementation).
    Gzip,
}

/// Reads an IDX file of unsigned bytes; gzip compression is detected from the content.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::BadMagic`] if it is not an IDX
/// file of unsigned bytes, [`DataError::Truncated`] if it is shorter than its header says,
/// [`DataError::Malformed`] for trailing bytes or a corrupt gzip stream.
pub fn read_idx(file: impl AsRef<Path>) -> Result<IdxArray> {
    let file = file.as_ref();
    let mut reader = BufReader::new(File::open(file).map_err(|e| DataError::io(file, e))?);
    let mut first = [0u8; 2];
    let got = read_up_to(&mut reader, &mut first, file)?;
    let prefix = &first[..got];
    if prefix == GZIP_MAGIC {
        parse_idx(GzDecoder::new(prefix.chain(reader)), file)
    } else {
        parse_idx(prefix.chain(reader), file)
    }
}

/// Parses IDX bytes from a reader; `file` only names the source in errors.
///
/// # Errors
/// As [`read_idx`].
pub fn parse_idx(mut reader: impl Read, file: &Path) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic, file)?;
    if got < magic.len() {
        return Err(truncated(file, "IDX magic number", 4, got));
    }
    if magic[0] != 0 || magic[1] != 0 || magic[2] != UNSIGNED_BYTE || magic[3] == 0 {
        return Err(DataError::BadMagic {
            file: file.to_path_buf(),
            expected: EXPECTED_MAGIC,
            found: u32::from_be_bytes(magic),
        });
    }
    let num_dims = usize::from(magic[3]);
    let mut header = vec![0u8; 4 * num_dims];
    let got = read_up_to(&mut reader, &mut header, file)?;
    if got < header.len() {
        return Err(truncated(file, "IDX dimension sizes", header.len(), got));
    }
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(DataError::WrongDimensions {
            file: file.to_path_buf(),
            expected: "a size that fits in memory".into(),
            found: format!("{dims:?}"),
        });
    };
    let mut data = Vec::with_capacity(expected.min(MAX_PREALLOCATION));
    let limit = u64::try_from(expected)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| read_error(file, e))?;
    if data.len() < expected {
        return Err(truncated(file, "IDX data", expected, data.len()));
    }
    if data.len() > expected {
        return Err(DataError::malformed(
            file,
            format!(
                "trailing bytes after the {expected} bytes of data that dimensions {dims:?} announce"
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Writes an IDX file of unsigned bytes.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be written.
pub fn write_idx(
    file: impl AsRef<Path>,
    array: &IdxArray,
    compression: IdxCompression,
) -> Result<()> {
    let file = file.as_ref();
    let out = BufWriter::new(File::create(file).map_err(|e| DataError::io(file, e))?);
    let result = match compression {
        IdxCompression::None => write_raw(out, array),
        IdxCompression::Gzip => {
            let encoder = GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(out, Compression::best());
            write_raw(encoder, array)
        }
    };
    result.map_err(|e| DataError::io(file, e))
}

/// Encodes an array as raw IDX bytes.
#[must_use]
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + 4 * array.dims.len() + array.data.len());
    // `IdxArray::new` guarantees at most 255 dimensions, each fitting in a u32.
    bytes.extend_from_slice(&[0, 0, UNSIGNED_BYTE, array.dims.len() as u8]);
    for &d in &array.dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(&array.data);
    bytes
}

fn write_raw<W: Write>(mut out: W, array: &IdxArray) -> std::io::Result<()> {
    out.write_all(&encode_idx(array))?;
    out.flush()
}

/// Fills as much of `buf` as the reader can give; returns the number of bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], file: &Path) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(file, e)),
        }
    }
    Ok(filled)
}

/// A read error: decoder failures are format errors, everything else an I/O error.
fn read_error(file: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => {
            DataError::malformed(file, format!("corrupt or truncated gzip stream: {e}"))
        }
        _ => DataError::io(file, e),
    }
}

fn truncated(file: &Path, what: &'static str, expected: usize, actual: usize) -> DataError {
    DataError::Truncated {
        file: file.to_path_buf(),
        what,
        expected_bytes: expected as u64,
        actual_bytes: actual as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<IdxArray> {
        parse_idx(bytes, Path::new("test.idx"))
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let array = IdxArray::new(vec![2, 3], vec![0, 1, 2, 253, 254, 255]).unwrap();
        let bytes = encode_idx(&array);
        assert_eq!(&bytes[..12], &[0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(parse(&bytes).unwrap(), array);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let bytes = encode_idx(&IdxArray::new(vec![4], vec![1, 2, 3, 4]).unwrap());
        assert!(matches!(
            parse(&bytes[..6]),
            Err(DataError::Truncated {
                what: "IDX dimension sizes",
                ..
            })
        ));
        assert!(matches!(
            parse(&bytes[..10]),
            Err(DataError::Truncated {
                expected_bytes: 4,
                actual_bytes: 2,
                ..
            })
        ));
        let mut long = bytes.clone();
        long.push(9);
        assert!(matches!(parse(&long), Err(DataError::Malformed { .. })));
        let mut float_type = bytes;
        float_type[2] = 0x0D;
        let err = parse(&float_type).unwrap_err();
        assert!(matches!(
            err,
            DataError::BadMagic {
                found: 0x0000_0D01,
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("test.idx: wrong magic number 0x00000d01")
        );
    }

    #[test]
    fn huge_header_is_an_error_not_an_allocation() {
        let bytes = [
            0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        ];
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn new_rejects_inconsistent_sizes() {
        assert!(IdxArray::new(vec![2, 2], vec![0; 3]).is_err());
        assert!(IdxArray::new(vec![], vec![]).is_err());
    }
}
