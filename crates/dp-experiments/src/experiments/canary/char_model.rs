//! A fixed-context character language model: an MLP that reads the one-hot encoding of the
//! previous `context_length` characters and predicts the next one, and the scorer through which
//! the exposure and extraction attacks query it.
//!
//! The privacy unit of DP-SGD on this model is one (context window, next character) pair, so a
//! canary line of `len` characters inserted `k` times touches about `k * len` training examples.

use anyhow::{Context, Result, ensure};
use dp_attacks::{NextTokenScorer, RandomnessSpace};
use dp_data::text::CharVocabulary;
use dp_engine_ndarray::{ArrayDataset, Mlp};
use ndarray::{Array2, ArrayView1, Axis};

/// The characters the model knows: line break, space, common punctuation, digits and lower-case
/// letters. Text is lower-cased and any other character becomes [`REPLACEMENT`], which keeps the
/// one-hot input at `context_length * 46` columns.
pub const ALPHABET: &str = "\n !',-.:;?0123456789abcdefghijklmnopqrstuvwxyz";
/// What a character outside [`ALPHABET`] becomes.
pub const REPLACEMENT: char = ' ';
/// Rows per forward pass when many contexts are scored at once (memory: rows x inputs f32).
const SCORING_CHUNK_ROWS: usize = 4096;

/// Maps text onto [`ALPHABET`] and turns character windows into one-hot features.
#[derive(Clone, Debug)]
pub struct CharEncoder {
    vocabulary: CharVocabulary,
    context_length: usize,
}

impl CharEncoder {
    /// An encoder whose windows hold `context_length` characters.
    pub fn new(context_length: usize) -> Result<Self> {
        ensure!(context_length >= 1, "context_length must be at least 1");
        Ok(Self {
            vocabulary: CharVocabulary::from_text(ALPHABET)?,
            context_length,
        })
    }

    /// Number of characters in the vocabulary (the model's classes).
    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// Columns of a one-hot window: `context_length * vocabulary_size`.
    pub fn num_features(&self) -> usize {
        self.context_length * self.vocabulary_size()
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

    /// Every (window, next character) pair of a token sequence: row `t` holds the one-hot
    /// encoding of `tokens[t..t + context_length]` and its label is `tokens[t + context_length]`.
    pub fn windows(&self, tokens: &[usize]) -> Result<ArrayDataset> {
        ensure!(
            tokens.len() > self.context_length,
            "the text has {} characters; one window needs {}",
            tokens.len(),
            self.context_length + 1
        );
        let rows = tokens.len() - self.context_length;
        let mut features = Array2::<f32>::zeros((rows, self.num_features()));
        for (row, mut values) in features.axis_iter_mut(Axis(0)).enumerate() {
            for (position, &token) in tokens[row..row + self.context_length].iter().enumerate() {
                values[position * self.vocabulary_size() + token] = 1.0;
            }
        }
        Ok(ArrayDataset::new(
            features,
            tokens[self.context_length..].to_vec(),
        )?)
    }

    /// Writes the one-hot encoding of the last `context_length` characters of `context` into
    /// `row` (zeroed first); a shorter context is padded on the left with line breaks, as if the
    /// text started a line there.
    fn encode_context(&self, context: &[char], mut row: ndarray::ArrayViewMut1<'_, f32>) {
        row.fill(0.0);
        let vocabulary_size = self.vocabulary_size();
        let padding = self.context_length.saturating_sub(context.len());
        let newline = self.token('\n');
        for position in 0..padding {
            row[position * vocabulary_size + newline] = 1.0;
        }
        let visible = &context[context.len().saturating_sub(self.context_length)..];
        for (offset, &character) in visible.iter().enumerate() {
            row[(padding + offset) * vocabulary_size + self.token(character)] = 1.0;
        }
    }

    /// Natural-log next-character distributions of `model` after each context.
    pub fn log_softmax_rows(&self, model: &Mlp, contexts: &[Vec<char>]) -> Result<Array2<f64>> {
        let mut out = Array2::<f64>::zeros((contexts.len(), self.vocabulary_size()));
        for (chunk_index, chunk) in contexts.chunks(SCORING_CHUNK_ROWS).enumerate() {
            let mut features = Array2::<f32>::zeros((chunk.len(), self.num_features()));
            for (context, row) in chunk.iter().zip(features.axis_iter_mut(Axis(0))) {
                self.encode_context(context, row);
            }
            let logits = model.logits(features.view())?;
            for (row, logit_row) in logits.axis_iter(Axis(0)).enumerate() {
                let target = out.row_mut(chunk_index * SCORING_CHUNK_ROWS + row);
                log_softmax_into(logit_row, target);
            }
        }
        Ok(out)
    }
}

/// Writes `ln softmax(logits)` into `out`, in f64.
fn log_softmax_into(logits: ArrayView1<'_, f32>, mut out: ndarray::ArrayViewMut1<'_, f64>) {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let log_sum = max
        + logits
            .iter()
            .map(|&v| (f64::from(v) - max).exp())
            .sum::<f64>()
            .ln();
    for (target, &value) in out.iter_mut().zip(logits) {
        *target = (f64::from(value) - log_sum).min(0.0);
    }
}

/// The model as the attacks see it, with the whole tree of partial secrets after the canary
/// prefix scored in advance.
///
/// Exact exposure over `|R| = 10^6` secrets and beam search call the scorer once per internal
/// node of that tree (111,111 contexts for six digits); scoring them in a few large batches
/// instead of one row at a time makes exact enumeration cost about a second. Any other context
/// is scored directly.
pub struct SecretTreeScorer<'a> {
    model: &'a Mlp,
    encoder: &'a CharEncoder,
    prefix: Vec<char>,
    space: RandomnessSpace<char>,
    /// Log-probabilities of each alphabet token, `alphabet.len()` per tree node; the nodes of
    /// depth `d` (partial secrets of `d` tokens) follow those of depth `d - 1`, in index order.
    table: Vec<f64>,
}

impl<'a> SecretTreeScorer<'a> {
    /// Scores every context `prefix + partial secret` of `space` with `model`.
    pub fn new(
        model: &'a Mlp,
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
        let distributions = encoder.log_softmax_rows(model, &contexts)?;
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
        match self
            .encoder
            .log_softmax_rows(self.model, &[context.to_vec()])
        {
            Ok(rows) => candidates
                .iter()
                .map(|&c| rows[[0, self.encoder.token(c)]])
                .collect(),
            // The shapes are fixed at construction, so scoring cannot fail; a NaN makes the
            // attack report a non-finite log-probability instead of a wrong number.
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

/// Mean cross-entropy in nats of `model` on the windows of `data` (the test loss).
pub fn mean_loss(model: &Mlp, data: &ArrayDataset) -> Result<f64> {
    let mut total = 0.0;
    let rows = data.features().nrows();
    ensure!(rows > 0, "no test windows");
    for start in (0..rows).step_by(SCORING_CHUNK_ROWS) {
        let end = (start + SCORING_CHUNK_ROWS).min(rows);
        let rows_view = data
            .features()
            .slice_axis(Axis(0), ndarray::Slice::from(start..end));
        let logits = model.logits(rows_view)?;
        let mut log_probabilities = ndarray::Array1::<f64>::zeros(logits.ncols());
        for (row, &label) in logits.axis_iter(Axis(0)).zip(&data.labels()[start..end]) {
            log_softmax_into(row, log_probabilities.view_mut());
            total -= log_probabilities[label];
        }
    }
    Ok(total / rows as f64)
}

#[cfg(test)]
mod tests {
    use dp_attacks::log_perplexity;
    use dp_engine_ndarray::Activation;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// Table look-ups and direct scoring compute the same f32 logits; only the f64 log-softmax
    /// order of summation could differ.
    const SCORE_TOLERANCE: f64 = 1e-9;

    fn model(encoder: &CharEncoder) -> Mlp {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        Mlp::new(
            &[encoder.num_features(), 16, encoder.vocabulary_size()],
            Activation::Tanh,
            &mut rng,
        )
        .unwrap()
    }

    #[test]
    fn normalization_lowercases_and_replaces_unknown_characters() {
        let encoder = CharEncoder::new(3).unwrap();
        assert_eq!(encoder.normalize("To BE—or\tnot: 42!"), "to be or not: 42!");
        assert_eq!(encoder.vocabulary_size(), 46);
        assert_eq!(encoder.num_features(), 138);
    }

    #[test]
    fn windows_hold_the_previous_characters_and_the_next_one() {
        let encoder = CharEncoder::new(2).unwrap();
        let tokens = encoder.tokens("abc d");
        let data = encoder.windows(&tokens).unwrap();
        assert_eq!(data.features().nrows(), 3);
        assert_eq!(data.labels(), &tokens[2..]);
        let v = encoder.vocabulary_size();
        for row in 0..3 {
            let hot: Vec<usize> = data
                .features()
                .row(row)
                .iter()
                .enumerate()
                .filter(|(_, x)| **x == 1.0)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(hot, vec![tokens[row], v + tokens[row + 1]]);
        }
        assert!(encoder.windows(&tokens[..2]).is_err());
    }

    #[test]
    fn short_contexts_are_padded_with_line_breaks() {
        let encoder = CharEncoder::new(4).unwrap();
        let padded = encoder
            .log_softmax_rows(&model(&encoder), &[vec!['a']])
            .unwrap();
        let explicit = encoder
            .log_softmax_rows(&model(&encoder), &[vec!['\n', '\n', '\n', 'a']])
            .unwrap();
        assert_eq!(padded, explicit);
        let total: f64 = padded.row(0).iter().map(|lp| lp.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_tree_table_agrees_with_direct_scoring() {
        let encoder = CharEncoder::new(5).unwrap();
        let model = model(&encoder);
        let space = RandomnessSpace::new("0123456789".chars().collect(), 3).unwrap();
        let scorer = SecretTreeScorer::new(&model, &encoder, "pin is ", space).unwrap();
        assert_eq!(scorer.table.len(), (1 + 10 + 100) * 10);
        let prefix: Vec<char> = "pin is ".chars().collect();
        let secret: Vec<char> = "907".chars().collect();
        let from_table = log_perplexity(&scorer, &prefix, &secret).unwrap();
        let mut context = prefix.clone();
        let mut nats = 0.0;
        for &digit in &secret {
            let row = encoder
                .log_softmax_rows(&model, &[context.clone()])
                .unwrap();
            nats -= row[[0, encoder.token(digit)]];
            context.push(digit);
        }
        assert!((from_table - nats / std::f64::consts::LN_2).abs() < SCORE_TOLERANCE);
        // Contexts off the tree and non-digit candidates are scored directly.
        let off_tree = scorer.log_probabilities(&['x'], &['a', 'b']);
        let direct = encoder.log_softmax_rows(&model, &[vec!['x']]).unwrap();
        assert_eq!(
            off_tree,
            vec![
                direct[[0, encoder.token('a')]],
                direct[[0, encoder.token('b')]]
            ]
        );
    }

    #[test]
    fn mean_loss_of_a_uniform_model_is_log_vocabulary_size() {
        let encoder = CharEncoder::new(2).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut layers = Mlp::new(
            &[encoder.num_features(), encoder.vocabulary_size()],
            Activation::Tanh,
            &mut rng,
        )
        .unwrap()
        .layers()
        .to_vec();
        layers[0] = dp_engine_ndarray::Linear::from_parts(
            Array2::zeros((encoder.num_features(), encoder.vocabulary_size())),
            ndarray::Array1::zeros(encoder.vocabulary_size()),
        )
        .unwrap();
        let uniform = Mlp::from_layers(layers, Activation::Tanh).unwrap();
        let data = encoder.windows(&encoder.tokens("hello world")).unwrap();
        let loss = mean_loss(&uniform, &data).unwrap();
        assert!((loss - (encoder.vocabulary_size() as f64).ln()).abs() < SCORE_TOLERANCE);
    }
}
