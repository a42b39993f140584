//! The one error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while reading, generating or fetching data.
///
/// Every variant that comes from a file names the file, so that a message alone tells the user
/// which file to replace and why.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused to read or write a file.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file involved.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file ends before the data its header announces.
    #[error("{}: truncated file: expected {expected_bytes} bytes of {what}, found {actual_bytes}", file.display())]
    Truncated {
        /// The file involved.
        file: PathBuf,
        /// Which part of the file is short.
        what: &'static str,
        /// How many bytes the format requires.
        expected_bytes: u64,
        /// How many bytes were there.
        actual_bytes: u64,
    },
    /// The file does not start with the magic number of its format.
    #[error("{}: wrong magic number {found:#010x}: {expected}", file.display())]
    BadMagic {
        /// The file involved.
        file: PathBuf,
        /// What a valid file starts with.
        expected: &'static str,
        /// The first four bytes, big-endian.
        found: u32,
    },
    /// The dimensions in a header, or the size of a file, are not what the format allows.
    #[error("{}: wrong dimensions: expected {expected}, found {found}", file.display())]
    WrongDimensions {
        /// The file involved.
        file: PathBuf,
        /// What the loader requires.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A class label is not below the number of classes.
    #[error("{}: label {label} of example {example} is out of range (number of classes {num_classes})", file.display())]
    LabelOutOfRange {
        /// The file involved.
        file: PathBuf,
        /// Index of the example.
        example: usize,
        /// The label found.
        label: usize,
        /// Number of classes of the data set.
        num_classes: usize,
    },
    /// The content of a file breaks its format in a way not covered by a more specific variant.
    #[error("{}: {reason}", file.display())]
    Malformed {
        /// The file involved.
        file: PathBuf,
        /// What is wrong, with the position where known.
        reason: String,
    },
    /// A file's SHA-256 digest differs from the recorded one.
    #[error("{}: sha256 mismatch: expected {expected}, found {found}{hint}", file.display())]
    ChecksumMismatch {
        /// The file involved.
        file: PathBuf,
        /// The recorded digest (lower-case hex).
        expected: String,
        /// The digest of the file on disk.
        found: String,
        /// What to do about it (starts with a separator, may be empty).
        hint: String,
    },
    /// Downloading a corpus failed; the message says what to do instead.
    #[error("could not fetch {what}: {reason}\n{hint}")]
    Fetch {
        /// What was being fetched.
        what: &'static str,
        /// Why it failed (the command and its output).
        reason: String,
        /// What the user can do.
        hint: String,
    },
    /// Text contains a character the vocabulary does not know.
    #[error("character {character:?} at char position {position} is not in the vocabulary")]
    UnknownCharacter {
        /// The character.
        character: char,
        /// Its position in the text, counted in characters.
        position: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl DataError {
    pub(crate) fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            file: file.into(),
            source,
        }
    }

    pub(crate) fn malformed(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Malformed {
            file: file.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(
        name: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
