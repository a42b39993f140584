//! SHA-256 digests of files, for the shipped and fetched data.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// The lower-case hex SHA-256 digest of a byte string.
///
/// # Examples
/// ```
/// // FIPS 180-2, appendix B.1.
/// assert_eq!(
///     dp_data::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The lower-case hex SHA-256 digest of a file's content.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read.
pub fn sha256_file(file: impl AsRef<Path>) -> Result<String> {
    let file = file.as_ref();
    let mut reader = BufReader::new(File::open(file).map_err(|e| DataError::io(file, e))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| DataError::io(file, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks a file against a recorded digest; `hint` (starting with a separator such as `"; "`)
/// is appended to the error message.
pub(crate) fn verify_sha256(file: &Path, expected: &str, hint: &str) -> Result<()> {
    let found = sha256_file(file)?;
    if found == expected {
        Ok(())
    } else {
        Err(DataError::ChecksumMismatch {
            file: file.to_path_buf(),
            expected: expected.to_owned(),
            found,
            hint: hint.to_owned(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
