//! The character LSTM of the experiment (the default, with the `torch` feature): its
//! hyper-parameters and its training sequences.
//!
//! The privacy unit is one fixed-length sequence, and every insertion of a canary is one whole
//! sequence of its own (the canary line at a line start, followed by the text that followed the
//! insertion point), so a canary inserted `k` times is a group of exactly `k` examples. In the
//! user-level runs the unit is a user instead ([`CharSequences::users`]): each corpus sequence is
//! its own user and the `k` sequences of one canary are one user.

#[cfg(feature = "torch")]
mod libtorch;

use anyhow::{Result, ensure};
use dp_data::text::next_char_windows;
use ndarray::Array2;
use serde::Deserialize;

#[cfg(feature = "torch")]
pub use self::libtorch::LstmTrainer;
use super::char_model::{CanaryCorpus, CharEncoder};

/// Hyper-parameters of the character LSTM (a `[<profile>.lstm]` table).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmSpec {
    /// Characters predicted per training sequence (the privacy unit); a sequence reads
    /// `sequence_length` characters and predicts each next one.
    pub sequence_length: usize,
    /// Width of the character embedding.
    pub embedding_dim: i64,
    /// Hidden size of the LSTM.
    pub hidden_size: i64,
    /// Expected (private, Poisson) or exact (non-private) batch size, in sequences.
    pub batch_size: f64,
    /// Passes over the sequences (expected passes for Poisson sampling).
    pub epochs: f64,
    /// Learning rate of the private runs.
    pub learning_rate: f64,
    /// Learning rate of the non-private run (default: `learning_rate`).
    #[serde(default)]
    pub non_private_learning_rate: Option<f64>,
    /// Adam instead of SGD.
    #[serde(default)]
    pub adam: bool,
    /// SGD momentum (ignored with Adam).
    #[serde(default)]
    pub momentum: f64,
    /// Clipping bound C of flat clipping.
    pub max_grad_norm: f64,
}

impl LstmSpec {
    /// The learning rate of a run, private or not.
    pub fn learning_rate(&self, private: bool) -> f64 {
        if private {
            self.learning_rate
        } else {
            self.non_private_learning_rate.unwrap_or(self.learning_rate)
        }
    }

    /// The optimizer in words.
    pub fn optimizer(&self) -> String {
        if self.adam {
            "adam".to_owned()
        } else {
            format!("sgd (momentum {})", self.momentum)
        }
    }
}

/// Fixed-length next-character sequences: row `i` of `targets` is row `i` of `inputs` shifted
/// by one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharSequences {
    /// Input tokens, `sequences x sequence_length`.
    pub inputs: Array2<usize>,
    /// Target tokens, `sequences x sequence_length`.
    pub targets: Array2<usize>,
    /// How many of the rows (the first ones) were cut from the corpus; the rest hold canaries.
    pub corpus_sequences: usize,
    /// For each canary row (row `corpus_sequences + i` is entry `i`), the index of its canary
    /// in [`CanariedText::canaries`](dp_data::canary::CanariedText).
    pub canary_of_row: Vec<usize>,
}

impl CharSequences {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.inputs.nrows()
    }

    /// The users of the user-level runs, as row indices: one user per corpus sequence, then one
    /// user per canary holding every sequence of that canary (the `k` copies of a secret come
    /// from one contributor). Every row belongs to exactly one user.
    pub fn users(&self) -> Vec<Vec<usize>> {
        let canaries = self.canary_of_row.iter().max().map_or(0, |&last| last + 1);
        let mut users: Vec<Vec<usize>> = (0..self.corpus_sequences).map(|row| vec![row]).collect();
        let mut canary_users = vec![Vec::new(); canaries];
        for (offset, &canary) in self.canary_of_row.iter().enumerate() {
            canary_users[canary].push(self.corpus_sequences + offset);
        }
        users.extend(canary_users);
        users
    }
}

/// The test text cut into consecutive sequences of `sequence_length` predictions.
///
/// # Errors
///
/// A zero length; a text shorter than one sequence.
pub fn test_sequences(
    encoder: &CharEncoder,
    text: &str,
    sequence_length: usize,
) -> Result<CharSequences> {
    let windows = next_char_windows(&encoder.tokens(text), sequence_length, sequence_length)?;
    Ok(CharSequences {
        corpus_sequences: windows.len(),
        inputs: windows.inputs,
        targets: windows.targets,
        canary_of_row: Vec::new(),
    })
}

/// The training sequences: the base text (without canaries) cut into consecutive sequences of
/// `sequence_length` predictions (windows of `sequence_length + 1` characters that overlap by
/// one, so every character but the first is predicted once), followed by one sequence per
/// canary insertion: a line break, the canary line, a line break and the base text that
/// followed the insertion point, wrapping round to the start of the text at its end, cut to
/// `sequence_length + 1` characters.
///
/// # Privacy
///
/// One insertion is one sequence and no other sequence holds any of its characters: removing
/// an insertion removes exactly one example (the add/remove-one neighbour of DP-SGD).
///
/// # Errors
///
/// A sequence too short to hold a canary line between two line breaks; a base text shorter
/// than one sequence; canary offsets that do not point at their canary.
pub fn training_sequences(
    encoder: &CharEncoder,
    corpus: &CanaryCorpus<'_>,
    sequence_length: usize,
) -> Result<CharSequences> {
    let canaried = corpus.canaried;
    let line = canaried.format.prefix().len() + canaried.format.digits() as usize;
    ensure!(
        sequence_length > line + 1,
        "sequence_length {sequence_length} cannot hold a canary line of {line} characters \
         between two line breaks"
    );
    ensure!(
        corpus.base.is_ascii() && corpus.base.ends_with('\n'),
        "the base text must be normalized ASCII of whole lines"
    );
    let base_windows = next_char_windows(
        &encoder.tokens(corpus.base),
        sequence_length,
        sequence_length,
    )?;
    // Every insertion with its offset in the canaried text, in text order; subtracting the
    // lines inserted before it gives its insertion point in the base text.
    let mut insertions: Vec<(usize, &str, usize)> = canaried
        .canaries
        .iter()
        .enumerate()
        .flat_map(|(index, canary)| {
            canary
                .offsets
                .iter()
                .map(move |&offset| (offset, canary.text.as_str(), index))
        })
        .collect();
    insertions.sort_unstable();
    let base: Vec<usize> = encoder.tokens(corpus.base);
    let newline = encoder.token('\n');
    let mut inserted_before = 0;
    let mut canary_rows = Vec::with_capacity(insertions.len() * (sequence_length + 1));
    for (offset, text, _) in &insertions {
        ensure!(
            canaried.text.get(*offset..offset + text.len()) == Some(*text),
            "canary offset {offset} does not point at its canary"
        );
        let base_position = offset - inserted_before;
        inserted_before += text.len() + 1;
        let mut row = vec![newline];
        row.extend(encoder.tokens(text));
        row.push(newline);
        let continuation = base[base_position..].iter().chain(base.iter()).cycle();
        row.extend(continuation.take(sequence_length + 1 - row.len()));
        canary_rows.extend(row);
    }
    let corpus_sequences = base_windows.len();
    let canary_windows = next_char_windows_of_rows(&canary_rows, sequence_length);
    let stack = |corpus: &Array2<usize>, canaries: &Array2<usize>| {
        ndarray::concatenate(ndarray::Axis(0), &[corpus.view(), canaries.view()])
    };
    Ok(CharSequences {
        inputs: stack(&base_windows.inputs, &canary_windows.0)?,
        targets: stack(&base_windows.targets, &canary_windows.1)?,
        corpus_sequences,
        canary_of_row: insertions.iter().map(|&(_, _, canary)| canary).collect(),
    })
}

/// Inputs and targets of rows of `sequence_length + 1` tokens laid end to end.
fn next_char_windows_of_rows(
    rows: &[usize],
    sequence_length: usize,
) -> (Array2<usize>, Array2<usize>) {
    let width = sequence_length + 1;
    let count = rows.len() / width;
    let slice = |offset: usize| {
        Array2::from_shape_fn((count, sequence_length), |(i, j)| {
            rows[i * width + j + offset]
        })
    };
    (slice(0), slice(1))
}

#[cfg(test)]
mod tests {
    use dp_data::canary::{SecretFormat, TextCanaryConfig, insert_text_canaries};
    use dp_data::text::CharVocabulary;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::super::char_model::ALPHABET;
    use super::*;

    /// The characters of `tokens`.
    fn text_of<'a>(tokens: impl IntoIterator<Item = &'a usize>) -> String {
        let tokens: Vec<usize> = tokens.into_iter().copied().collect();
        CharVocabulary::from_text(ALPHABET)
            .unwrap()
            .decode(&tokens)
            .unwrap()
    }

    #[test]
    fn every_insertion_is_one_whole_sequence() {
        let encoder = CharEncoder::new().unwrap();
        let base = "to be or not to be\nthat is the question\nwhether tis nobler\n";
        let format = SecretFormat::new("pin ", 3).unwrap();
        let canaried = insert_text_canaries(
            base,
            &TextCanaryConfig {
                format,
                repetitions: vec![1, 3],
                num_reference_candidates: 2,
            },
            &mut ChaCha20Rng::seed_from_u64(5),
        )
        .unwrap();
        let corpus = CanaryCorpus {
            base,
            canaried: &canaried,
            test: "",
        };
        let sequence_length = 12;
        let sequences = training_sequences(&encoder, &corpus, sequence_length).unwrap();
        // (60 - 13) / 12 + 1 = 4 corpus sequences, then 1 + 3 canary sequences.
        assert_eq!(sequences.corpus_sequences, (base.len() - 13) / 12 + 1);
        assert_eq!(sequences.len(), sequences.corpus_sequences + 4);
        // Targets are the inputs shifted by one.
        for row in 0..sequences.len() {
            for j in 1..sequence_length {
                assert_eq!(sequences.targets[[row, j - 1]], sequences.inputs[[row, j]]);
            }
        }
        // The corpus rows never hold a canary; each canary row holds exactly one, at its start,
        // followed by the base text from the insertion point on.
        let rows: Vec<String> = (0..sequences.len())
            .map(|row| {
                let mut text = text_of(sequences.inputs.row(row));
                text.push_str(&text_of(&[sequences.targets[[row, sequence_length - 1]]]));
                text
            })
            .collect();
        for row in &rows[..sequences.corpus_sequences] {
            assert!(!row.contains("pin "), "{row:?}");
        }
        let mut seen: Vec<&str> = Vec::new();
        for row in &rows[sequences.corpus_sequences..] {
            assert_eq!(row.matches("pin ").count(), 1, "{row:?}");
            let canary = canaried
                .canaries
                .iter()
                .find(|canary| row.starts_with(&format!("\n{}\n", canary.text)))
                .expect("a canary line at the start");
            let continuation = &row[canary.text.len() + 2..];
            assert!(
                format!("{base}{base}").contains(continuation),
                "{continuation:?}"
            );
            seen.push(&canary.text);
        }
        for canary in &canaried.canaries {
            let count = seen.iter().filter(|text| **text == canary.text).count();
            assert_eq!(count, canary.repetitions);
        }
        // Users: one per corpus sequence, then one per canary holding exactly its rows.
        let users = sequences.users();
        assert_eq!(users.len(), sequences.corpus_sequences + 2);
        for (row, user) in users[..sequences.corpus_sequences].iter().enumerate() {
            assert_eq!(user, &vec![row]);
        }
        for (canary, user) in canaried
            .canaries
            .iter()
            .zip(&users[sequences.corpus_sequences..])
        {
            assert_eq!(user.len(), canary.repetitions);
            for &row in user {
                assert!(
                    rows[row].starts_with(&format!("\n{}\n", canary.text)),
                    "{row}"
                );
            }
        }
        let mut every_row: Vec<usize> = users.into_iter().flatten().collect();
        every_row.sort_unstable();
        assert_eq!(every_row, (0..sequences.len()).collect::<Vec<_>>());
        // Too short to hold the canary line between two line breaks.
        assert!(training_sequences(&encoder, &corpus, 8).is_err());
    }

    #[test]
    fn test_sequences_cover_the_text_once() {
        let encoder = CharEncoder::new().unwrap();
        let sequences = test_sequences(&encoder, "abcdefghij", 3).unwrap();
        assert_eq!(sequences.len(), 3);
        assert_eq!(text_of(sequences.inputs.row(1)), "def");
        assert_eq!(text_of(sequences.targets.row(2)), "hij");
        assert!(test_sequences(&encoder, "abc", 3).is_err());
    }
}
