//! Plain text for character language models: reading, a character vocabulary, and fixed-length
//! next-character prediction windows.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;

use crate::error::{DataError, Result};

/// Reads a UTF-8 text file, to train on any text (`--text FILE`).
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Malformed`] with the byte offset
/// if it is not valid UTF-8.
pub fn text_from_file(file: impl AsRef<Path>) -> Result<String> {
    let file = file.as_ref();
    let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::malformed(
            file,
            format!(
                "not UTF-8 text: invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The characters of a corpus, each with an index (its rank in code-point order).
///
/// # Examples
/// ```
/// use dp_data::text::CharVocabulary;
///
/// let vocabulary = CharVocabulary::from_text("abca")?;
/// assert_eq!(vocabulary.len(), 3);
/// let tokens = vocabulary.encode("cab")?;
/// assert_eq!(tokens, vec![2, 0, 1]);
/// assert_eq!(vocabulary.decode(&tokens)?, "cab");
/// # Ok::<(), dp_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocabulary {
    chars: Vec<char>,
    index: BTreeMap<char, usize>,
}

impl CharVocabulary {
    /// The vocabulary of every character that occurs in `text`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if `text` is empty.
    pub fn from_text(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(DataError::invalid(
                "text",
                "\"\"",
                "a vocabulary needs some text",
            ));
        }
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        Ok(Self { chars, index })
    }

    /// Number of characters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Always false: a vocabulary is built from non-empty text.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, in index order.
    #[must_use]
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The index of a character, if it is in the vocabulary.
    #[must_use]
    pub fn index_of(&self, character: char) -> Option<usize> {
        self.index.get(&character).copied()
    }

    /// The index of every character of `text`.
    ///
    /// # Errors
    /// [`DataError::UnknownCharacter`] for the first character not in the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.chars()
            .enumerate()
            .map(|(position, character)| {
                self.index_of(character).ok_or(DataError::UnknownCharacter {
                    character,
                    position,
                })
            })
            .collect()
    }

    /// The text of a sequence of indices.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for an index not below [`CharVocabulary::len`].
    pub fn decode(&self, tokens: &[usize]) -> Result<String> {
        tokens
            .iter()
            .map(|&t| {
                self.chars.get(t).copied().ok_or_else(|| {
                    DataError::invalid(
                        "tokens",
                        t,
                        format!("vocabulary has {} characters", self.len()),
                    )
                })
            })
            .collect()
    }
}

/// Next-character prediction windows: row `i` of `targets` is row `i` of `inputs` shifted by
/// one position, so `targets[[i, j]]` is the character that follows `inputs[[i, j]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCharWindows {
    /// `windows x sequence_length` input tokens.
    pub inputs: Array2<usize>,
    /// `windows x sequence_length` target tokens.
    pub targets: Array2<usize>,
}

impl NextCharWindows {
    /// Number of windows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inputs.nrows()
    }

    /// Whether there are no windows (never true for a value built by [`next_char_windows`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inputs.nrows() == 0
    }
}

/// Cuts a token sequence into windows of `sequence_length` inputs starting every `stride`
/// tokens, each with its next-token targets.
///
/// Window `i` starts at token `i * stride`; every window whose targets fit in `tokens` is kept.
///
/// # Errors
/// [`DataError::InvalidParameter`] if `sequence_length` or `stride` is zero, or `tokens` is
/// too short for one window (`sequence_length + 1` tokens).
///
/// # Examples
/// ```
/// let windows = dp_data::text::next_char_windows(&[0, 1, 2, 3, 4], 2, 2)?;
/// assert_eq!(windows.inputs, ndarray::array![[0, 1], [2, 3]]);
/// assert_eq!(windows.targets, ndarray::array![[1, 2], [3, 4]]);
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn next_char_windows(
    tokens: &[usize],
    sequence_length: usize,
    stride: usize,
) -> Result<NextCharWindows> {
    if sequence_length == 0 {
        return Err(DataError::invalid(
            "sequence_length",
            0,
            "must be at least 1",
        ));
    }
    if stride == 0 {
        return Err(DataError::invalid("stride", 0, "must be at least 1"));
    }
    if tokens.len() <= sequence_length {
        return Err(DataError::invalid(
            "sequence_length",
            sequence_length,
            format!(
                "the text has only {} tokens; a window needs sequence_length + 1",
                tokens.len()
            ),
        ));
    }
    let count = (tokens.len() - sequence_length - 1) / stride + 1;
    let window = |offset: usize| {
        Array2::from_shape_fn((count, sequence_length), |(i, j)| {
            tokens[i * stride + j + offset]
        })
    };
    Ok(NextCharWindows {
        inputs: window(0),
        targets: window(1),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn unknown_character_is_reported_with_position() {
        let vocabulary = CharVocabulary::from_text("ab").unwrap();
        assert!(matches!(
            vocabulary.encode("abz"),
            Err(DataError::UnknownCharacter {
                character: 'z',
                position: 2
            })
        ));
        assert!(vocabulary.decode(&[2]).is_err());
        assert!(CharVocabulary::from_text("").is_err());
    }

    #[test]
    fn windows_reject_degenerate_sizes() {
        assert!(next_char_windows(&[0, 1], 0, 1).is_err());
        assert!(next_char_windows(&[0, 1], 1, 0).is_err());
        assert!(next_char_windows(&[0, 1], 2, 1).is_err());
        assert_eq!(next_char_windows(&[0, 1], 1, 1).unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(text in "\\PC{1,200}") {
            let vocabulary = CharVocabulary::from_text(&text).unwrap();
            let tokens = vocabulary.encode(&text).unwrap();
            prop_assert!(tokens.iter().all(|&t| t < vocabulary.len()));
            prop_assert_eq!(vocabulary.decode(&tokens).unwrap(), text);
        }

        #[test]
        fn every_target_follows_its_input(
            tokens in proptest::collection::vec(0usize..50, 2..300),
            sequence_length in 1usize..20,
            stride in 1usize..10,
        ) {
            prop_assume!(tokens.len() > sequence_length);
            let windows = next_char_windows(&tokens, sequence_length, stride).unwrap();
            // The last window is the last start that still fits.
            let last_start = (windows.len() - 1) * stride;
            prop_assert!(last_start + sequence_length < tokens.len());
            prop_assert!(last_start + stride + sequence_length >= tokens.len());
            for i in 0..windows.len() {
                for j in 0..sequence_length {
                    prop_assert_eq!(windows.inputs[[i, j]], tokens[i * stride + j]);
                    prop_assert_eq!(windows.targets[[i, j]], tokens[i * stride + j + 1]);
                }
            }
        }
    }
}
