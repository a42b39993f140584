//! What every character language model of the experiment shares: the alphabet, the
//! [`NextCharModel`] interface through which the attacks query a model, and the scorer that
//! scores the whole tree of partial secrets in advance.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dp_attacks::{NextTokenScorer, RandomnessSpace};
use dp_data::canary::CanariedText;
use dp_data::text::CharVocabulary;
use ndarray::{Array2, Axis};

use crate::training::Privacy;

/// The characters the models know: line break, space, common punctuation, digits and lower-case
/// letters. Text is lower-cased and any other character becomes [`REPLACEMENT`].
pub const ALPHABET: &str = "\n !',-.:;?0123456789abcdefghijklmnopqrstuvwxyz";
/// What a character outside [`ALPHABET`] becomes.
pub const REPLACEMENT: char = ' ';

/// Maps text onto [`ALPHABET`] and characters onto tokens (their index in the alphabet).
#[derive(Clone, Debug)]
pub struct CharEncoder {
    vocabulary: CharVocabulary,
}

impl CharEncoder {
    /// The encoder of [`ALPHABET`].
    ///
    /// # Errors
    ///
    /// None in practice (the alphabet is a valid vocabulary); the vocabulary's own errors.
    pub fn new() -> Result<Self> {
        Ok(Self {
            vocabulary: CharVocabulary::from_text(ALPHABET)?,
        })
    }

    /// Number of characters in the vocabulary (the models' classes).
    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// `text` lower-cased, with every character outside [`ALPHABET`] replaced by
    /// [`REPLACEMENT`]; the result is ASCII, one byte per character.
    pub fn normalize(&self, text: &str) -> String {
        text.chars().map(|c| self.normalize_char(c)).collect()
    }

    fn normalize_char(&self, character: char) -> char {
        let lower = character.to_ascii_lowercase();
        if self.vocabulary.index_of(lower).is_some() {
            lower
        } else {
            REPLACEMENT
        }
    }

    /// The token of a character, after normalization (never fails).
    pub fn token(&self, character: char) -> usize {
        self.vocabulary
            .index_of(self.normalize_char(character))
            .expect("normalized characters are in the vocabulary")
    }

    /// The token of every character of `text`, after normalization.
    pub fn tokens(&self, text: &str) -> Vec<usize> {
        text.chars().map(|c| self.token(c)).collect()
    }
}

/// A trained character language model as the attacks see it.
pub trait NextCharModel {
    /// Natural-log next-character distributions over the alphabet (columns in token order),
    /// one row per context. Each context is read as if it began a line: the models were trained
    /// on text where a canary line follows a line break.
    ///
    /// # Errors
    ///
    /// Errors of the underlying model.
    fn log_softmax_rows(&self, contexts: &[Vec<char>]) -> Result<Array2<f64>>;
}

/// The texts a character model is built from.
pub struct CanaryCorpus<'a> {
    /// The training text without canaries (whole lines).
    pub base: &'a str,
    /// The training text with every canary inserted at its line boundaries, and the canaries.
    pub canaried: &'a CanariedText,
    /// The held-out text of the test loss.
    pub test: &'a str,
}

/// Whom a private run protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivacyLevel {
    /// Example-level DP: the unit is one training example ([`ModelDescription::privacy_unit`]),
    /// so a canary inserted `k` times is a group of `k` units.
    Example,
    /// User-level DP: the unit is one contributor ([`ModelDescription::user_privacy_unit`]),
    /// who holds every copy of a canary; a sampled user contributes one of its examples.
    User,
}

impl PrivacyLevel {
    /// `example-level` or `user-level`, for labels and results.
    pub fn name(self) -> &'static str {
        match self {
            PrivacyLevel::Example => "example-level",
            PrivacyLevel::User => "user-level",
        }
    }
}

/// A trained character model with what the report needs of its training.
pub struct TrainedCharModel {
    /// The model, as the attacks query it.
    pub model: Box<dyn NextCharModel>,
    /// Mean cross-entropy in nats per predicted character of the test text.
    pub test_loss: f64,
    /// ε spent at the run's δ (`None` when not private).
    pub epsilon: Option<f64>,
    /// The calibrated noise multiplier (`None` when not private).
    pub noise_multiplier: Option<f64>,
    /// Poisson sampling probability q of one privacy unit (`None` when not private).
    pub sampling_probability: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Wall-clock seconds of training and of the test loss.
    pub seconds: f64,
}

/// How the report describes a character model, its training and its privacy unit.
pub struct ModelDescription {
    /// Short name for run labels, e.g. `char-lstm`.
    pub name: &'static str,
    /// The engine as results record it.
    pub engine: String,
    /// The architecture in one sentence.
    pub architecture: String,
    /// What one training example (the unit example-level DP-SGD protects) is.
    pub privacy_unit: String,
    /// What one user (the unit of [`PrivacyLevel::User`]) is, with the number of users and the
    /// cap on a sampled user's examples; `None` when the model has no user-level runs.
    pub user_privacy_unit: Option<String>,
    /// Training examples one insertion of a canary line touches.
    pub examples_per_insertion: usize,
    /// Training examples, canaries included.
    pub training_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Passes, batch, learning rate and optimizer in one sentence.
    pub training: String,
    /// Clipping bound C of the private runs.
    pub max_grad_norm: f64,
}

/// A character model family: its data preparation done once, trained once per ε.
pub trait CharModelTrainer {
    /// What the report says about the model.
    fn description(&self) -> &ModelDescription;

    /// The `details` of a run's records (hyper-parameters, sampler, noise mode, clipping,
    /// privacy unit).
    fn details(&self, privacy: Privacy, level: PrivacyLevel) -> BTreeMap<String, String>;

    /// Trains a fresh model from `seed` and measures its test loss.
    ///
    /// # Privacy
    ///
    /// Private runs are DP-SGD whose unit is one training example as
    /// [`ModelDescription::privacy_unit`] states, or with [`PrivacyLevel::User`] one user as
    /// [`ModelDescription::user_privacy_unit`] states (`level` is ignored by non-private runs).
    ///
    /// # Errors
    ///
    /// Invalid hyper-parameters; a user-level run of a model without users; training errors.
    fn train(
        &self,
        privacy: Privacy,
        level: PrivacyLevel,
        seed: u64,
        label: &str,
    ) -> Result<TrainedCharModel>;
}

/// `ln softmax(logits)` in f64, clamped at 0 against rounding.
pub fn log_softmax(logits: impl Iterator<Item = f64> + Clone) -> impl Iterator<Item = f64> {
    let max = logits.clone().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = max + logits.clone().map(|v| (v - max).exp()).sum::<f64>().ln();
    logits.map(move |v| (v - log_sum).min(0.0))
}

/// The model as the attacks see it, with the whole tree of partial secrets after the canary
/// prefix scored in advance.
///
/// Exact exposure over `|R| = 10^6` secrets and beam search call the scorer once per internal
/// node of that tree (111,111 contexts for six digits); scoring them in a few large batches
/// instead of one row at a time makes exact enumeration affordable. Any other context is
/// scored directly.
pub struct SecretTreeScorer<'a> {
    model: &'a dyn NextCharModel,
    encoder: &'a CharEncoder,
    prefix: Vec<char>,
    space: RandomnessSpace<char>,
    /// Log-probabilities of each alphabet token, `alphabet.len()` per tree node; the nodes of
    /// depth `d` (partial secrets of `d` tokens) follow those of depth `d - 1`, in index order.
    table: Vec<f64>,
}

impl<'a> SecretTreeScorer<'a> {
    /// Scores every context `prefix + partial secret` of `space` with `model`.
    ///
    /// # Errors
    ///
    /// A randomness space too large to enumerate; errors of the model.
    pub fn new(
        model: &'a dyn NextCharModel,
        encoder: &'a CharEncoder,
        prefix: &str,
        space: RandomnessSpace<char>,
    ) -> Result<Self> {
        let prefix: Vec<char> = prefix.chars().collect();
        let base = space.alphabet().len();
        let mut contexts = Vec::new();
        for depth in 0..space.length() {
            let count = base
                .checked_pow(depth as u32)
                .context("randomness space too large")?;
            for value in 0..count {
                let mut context = prefix.clone();
                context.extend(partial_secret(space.alphabet(), depth, value));
                contexts.push(context);
            }
        }
        let distributions = model.log_softmax_rows(&contexts)?;
        let columns: Vec<usize> = space.alphabet().iter().map(|&c| encoder.token(c)).collect();
        let table = distributions
            .axis_iter(Axis(0))
            .flat_map(|row| {
                columns
                    .iter()
                    .map(move |&column| row[column])
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Self {
            model,
            encoder,
            prefix,
            space,
            table,
        })
    }

    /// The randomness space whose tree was scored.
    pub fn space(&self) -> &RandomnessSpace<char> {
        &self.space
    }

    /// The table row of `context` when it is the prefix followed by a partial secret.
    fn node_of(&self, context: &[char]) -> Option<usize> {
        let partial = context.strip_prefix(self.prefix.as_slice())?;
        if partial.len() >= self.space.length() {
            return None;
        }
        let alphabet = self.space.alphabet();
        let base = alphabet.len();
        let mut value = 0_usize;
        for token in partial {
            value = value * base + alphabet.iter().position(|a| a == token)?;
        }
        // Nodes above this depth: 1 + base + ... + base^(depth - 1).
        let offset = (0..partial.len())
            .map(|d| base.pow(d as u32))
            .sum::<usize>();
        Some(offset + value)
    }

    fn direct(&self, context: &[char], candidates: &[char]) -> Vec<f64> {
        match self.model.log_softmax_rows(&[context.to_vec()]) {
            Ok(rows) => candidates
                .iter()
                .map(|&c| rows[[0, self.encoder.token(c)]])
                .collect(),
            // A NaN makes the attack report a non-finite log-probability instead of a wrong
            // number.
            Err(_) => vec![f64::NAN; candidates.len()],
        }
    }
}

/// The first `depth` tokens of the secret with index `value` among secrets of `depth` tokens.
fn partial_secret(alphabet: &[char], depth: usize, value: usize) -> Vec<char> {
    let base = alphabet.len();
    let mut tokens = vec![alphabet[0]; depth];
    let mut rest = value;
    for token in tokens.iter_mut().rev() {
        *token = alphabet[rest % base];
        rest /= base;
    }
    tokens
}

impl NextTokenScorer<char> for SecretTreeScorer<'_> {
    fn log_probability(&self, context: &[char], next: &char) -> f64 {
        self.log_probabilities(context, std::slice::from_ref(next))[0]
    }

    fn log_probabilities(&self, context: &[char], candidates: &[char]) -> Vec<f64> {
        let alphabet = self.space.alphabet();
        match self.node_of(context) {
            Some(node) => {
                let row = &self.table[node * alphabet.len()..(node + 1) * alphabet.len()];
                if candidates == alphabet {
                    return row.to_vec();
                }
                match candidates
                    .iter()
                    .map(|c| alphabet.iter().position(|a| a == c).map(|i| row[i]))
                    .collect::<Option<Vec<f64>>>()
                {
                    Some(values) => values,
                    None => self.direct(context, candidates),
                }
            }
            None => self.direct(context, candidates),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use dp_attacks::log_perplexity;

    use super::*;

    /// Table look-ups and direct scoring compute the same logits; only the order of summation
    /// could differ.
    const SCORE_TOLERANCE: f64 = 1e-9;

    /// A model whose logits are a fixed function of the context's characters and length,
    /// counting the contexts it is asked about.
    struct HashModel {
        vocabulary_size: usize,
        queries: Cell<usize>,
    }

    impl NextCharModel for HashModel {
        fn log_softmax_rows(&self, contexts: &[Vec<char>]) -> Result<Array2<f64>> {
            self.queries.set(self.queries.get() + contexts.len());
            let mut rows = Array2::zeros((contexts.len(), self.vocabulary_size));
            for (context, mut row) in contexts.iter().zip(rows.axis_iter_mut(Axis(0))) {
                let seed = context
                    .iter()
                    .fold(context.len() as u64, |h, &c| h.wrapping_mul(31) + c as u64);
                let logits = (0..self.vocabulary_size)
                    .map(|token| ((seed.wrapping_mul(token as u64 + 7) % 101) as f64) / 20.0);
                for (target, value) in row.iter_mut().zip(log_softmax(logits)) {
                    *target = value;
                }
            }
            Ok(rows)
        }
    }

    #[test]
    fn normalization_lowercases_and_replaces_unknown_characters() {
        let encoder = CharEncoder::new().unwrap();
        assert_eq!(encoder.normalize("To BE—or\tnot: 42!"), "to be or not: 42!");
        assert_eq!(encoder.vocabulary_size(), 46);
        assert_eq!(encoder.token('\n'), 0);
        assert_eq!(encoder.token('Z'), encoder.token('z'));
    }

    #[test]
    fn log_softmax_is_a_distribution_and_shift_invariant() {
        let values: Vec<f64> = log_softmax([1.0, 2.0, 3.0].into_iter()).collect();
        let total: f64 = values.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < SCORE_TOLERANCE);
        let shifted: Vec<f64> = log_softmax([101.0, 102.0, 103.0].into_iter()).collect();
        for (a, b) in values.iter().zip(&shifted) {
            assert!((a - b).abs() < SCORE_TOLERANCE);
        }
    }

    #[test]
    fn the_tree_table_agrees_with_direct_scoring() {
        let encoder = CharEncoder::new().unwrap();
        let model = HashModel {
            vocabulary_size: encoder.vocabulary_size(),
            queries: Cell::new(0),
        };
        let space = RandomnessSpace::new("0123456789".chars().collect(), 3).unwrap();
        let scorer = SecretTreeScorer::new(&model, &encoder, "pin is ", space).unwrap();
        assert_eq!(scorer.table.len(), (1 + 10 + 100) * 10);
        assert_eq!(model.queries.get(), 1 + 10 + 100);
        let prefix: Vec<char> = "pin is ".chars().collect();
        let secret: Vec<char> = "907".chars().collect();
        let from_table = log_perplexity(&scorer, &prefix, &secret).unwrap();
        // The table answered: no further queries.
        assert_eq!(model.queries.get(), 111);
        let mut context = prefix.clone();
        let mut nats = 0.0;
        for &digit in &secret {
            let row = model.log_softmax_rows(&[context.clone()]).unwrap();
            nats -= row[[0, encoder.token(digit)]];
            context.push(digit);
        }
        assert!((from_table - nats / std::f64::consts::LN_2).abs() < SCORE_TOLERANCE);
        // Contexts off the tree and non-digit candidates are scored directly.
        let off_tree = scorer.log_probabilities(&['x'], &['a', 'b']);
        let direct = model.log_softmax_rows(&[vec!['x']]).unwrap();
        assert_eq!(
            off_tree,
            vec![
                direct[[0, encoder.token('a')]],
                direct[[0, encoder.token('b')]]
            ]
        );
    }
}
