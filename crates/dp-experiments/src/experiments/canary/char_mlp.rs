//! The fallback character model without libtorch (`--engine ndarray`): an MLP on the pure-Rust
//! engine that reads the one-hot encoding of the previous `context_length` characters and
//! predicts the next one.
//!
//! Its privacy unit is one (context window, next character) pair, so a canary line of `len`
//! characters inserted `k` times touches about `k * (len + 1 + context_length)` training
//! examples: DP-SGD protects the canary only as that group.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use dp_engine_ndarray::{ArrayDataset, Mlp};
use ndarray::{Array2, ArrayViewMut1, Axis};
use serde::Deserialize;

use super::char_model::{
    CanaryCorpus, CharEncoder, CharModelTrainer, ModelDescription, NextCharModel, PrivacyLevel,
    TrainedCharModel, log_softmax,
};
use crate::training::{self, ENGINE, Privacy, TrainingSpec};

/// Rows per forward pass when many contexts are scored at once (memory: rows x inputs f32).
const SCORING_CHUNK_ROWS: usize = 4096;

/// Hyper-parameters of the fallback MLP (a `[<profile>.mlp]` table).
#[derive(Clone, Debug, Deserialize)]
pub struct MlpSpec {
    /// Characters of context the model reads.
    pub context_length: usize,
    /// Model and optimizer.
    #[serde(flatten)]
    pub training: TrainingSpec,
}

/// Turns character windows into one-hot features.
#[derive(Clone, Debug)]
struct WindowEncoder {
    encoder: CharEncoder,
    context_length: usize,
}

impl WindowEncoder {
    fn new(encoder: CharEncoder, context_length: usize) -> Result<Self> {
        ensure!(context_length >= 1, "context_length must be at least 1");
        Ok(Self {
            encoder,
            context_length,
        })
    }

    /// Columns of a one-hot window: `context_length * vocabulary_size`.
    fn num_features(&self) -> usize {
        self.context_length * self.encoder.vocabulary_size()
    }

    /// Every (window, next character) pair of a token sequence: row `t` holds the one-hot
    /// encoding of `tokens[t..t + context_length]` and its label is `tokens[t + context_length]`.
    fn windows(&self, tokens: &[usize]) -> Result<ArrayDataset> {
        ensure!(
            tokens.len() > self.context_length,
            "the text has {} characters; one window needs {}",
            tokens.len(),
            self.context_length + 1
        );
        let rows = tokens.len() - self.context_length;
        let vocabulary_size = self.encoder.vocabulary_size();
        let mut features = Array2::<f32>::zeros((rows, self.num_features()));
        for (row, mut values) in features.axis_iter_mut(Axis(0)).enumerate() {
            for (position, &token) in tokens[row..row + self.context_length].iter().enumerate() {
                values[position * vocabulary_size + token] = 1.0;
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
    fn encode_context(&self, context: &[char], mut row: ArrayViewMut1<'_, f32>) {
        row.fill(0.0);
        let vocabulary_size = self.encoder.vocabulary_size();
        let padding = self.context_length.saturating_sub(context.len());
        let newline = self.encoder.token('\n');
        for position in 0..padding {
            row[position * vocabulary_size + newline] = 1.0;
        }
        let visible = &context[context.len().saturating_sub(self.context_length)..];
        for (offset, &character) in visible.iter().enumerate() {
            row[(padding + offset) * vocabulary_size + self.encoder.token(character)] = 1.0;
        }
    }
}

/// A trained MLP with its window encoding.
struct CharMlp {
    model: Mlp,
    windows: WindowEncoder,
}

impl NextCharModel for CharMlp {
    fn log_softmax_rows(&self, contexts: &[Vec<char>]) -> Result<Array2<f64>> {
        let mut out =
            Array2::<f64>::zeros((contexts.len(), self.windows.encoder.vocabulary_size()));
        for (chunk_index, chunk) in contexts.chunks(SCORING_CHUNK_ROWS).enumerate() {
            let mut features = Array2::<f32>::zeros((chunk.len(), self.windows.num_features()));
            for (context, row) in chunk.iter().zip(features.axis_iter_mut(Axis(0))) {
                self.windows.encode_context(context, row);
            }
            let logits = self.model.logits(features.view())?;
            for (row, logit_row) in logits.axis_iter(Axis(0)).enumerate() {
                let values = log_softmax(logit_row.iter().map(|&v| f64::from(v)));
                for (target, value) in out
                    .row_mut(chunk_index * SCORING_CHUNK_ROWS + row)
                    .iter_mut()
                    .zip(values)
                {
                    *target = value;
                }
            }
        }
        Ok(out)
    }
}

/// Mean cross-entropy in nats of `model` on the windows of `data` (the test loss).
fn mean_loss(model: &Mlp, data: &ArrayDataset) -> Result<f64> {
    let mut total = 0.0;
    let rows = data.features().nrows();
    ensure!(rows > 0, "no test windows");
    for start in (0..rows).step_by(SCORING_CHUNK_ROWS) {
        let end = (start + SCORING_CHUNK_ROWS).min(rows);
        let rows_view = data
            .features()
            .slice_axis(Axis(0), ndarray::Slice::from(start..end));
        let logits = model.logits(rows_view)?;
        for (row, &label) in logits.axis_iter(Axis(0)).zip(&data.labels()[start..end]) {
            let log_probability = log_softmax(row.iter().map(|&v| f64::from(v)))
                .nth(label)
                .expect("labels are tokens of the alphabet");
            total -= log_probability;
        }
    }
    Ok(total / rows as f64)
}

/// The MLP family: windows of the canaried text, trained on the ndarray engine.
pub struct MlpTrainer {
    spec: MlpSpec,
    windows: WindowEncoder,
    train: ArrayDataset,
    test: ArrayDataset,
    description: ModelDescription,
}

impl MlpTrainer {
    /// Cuts the canaried training text and the test text into windows.
    ///
    /// # Errors
    ///
    /// A zero context length; texts shorter than one window.
    pub fn new(spec: &MlpSpec, encoder: &CharEncoder, corpus: &CanaryCorpus<'_>) -> Result<Self> {
        let windows = WindowEncoder::new(encoder.clone(), spec.context_length)?;
        let train = windows.windows(&encoder.tokens(&corpus.canaried.text))?;
        let test = windows.windows(&encoder.tokens(corpus.test))?;
        // Windows touched by one insertion: those predicting a character of the line (its text
        // and line break) and those whose context still reaches back into it.
        let format = &corpus.canaried.format;
        let line = format.prefix().len() + format.digits() as usize;
        let examples_per_insertion = line + 1 + spec.context_length;
        let model = &spec.training;
        let description = ModelDescription {
            name: "char-mlp",
            engine: ENGINE.to_owned(),
            architecture: format!(
                "a character MLP reading the one-hot encoding of the previous {} characters ({} \
                 inputs), hidden layers {:?} (tanh), softmax over the alphabet",
                spec.context_length,
                windows.num_features(),
                model.hidden
            ),
            privacy_unit: "one (context window, next character) pair".to_owned(),
            user_privacy_unit: None,
            examples_per_insertion,
            training_examples: train.labels().len(),
            test_examples: test.labels().len(),
            training: format!(
                "{} expected passes, expected batch {}, learning rate {}, {}",
                model.epochs,
                model.batch_size,
                model.learning_rate,
                super::super::mnist::training_details(model, Privacy::NonPrivate)
                    .remove("optimizer")
                    .unwrap_or_default()
            ),
            max_grad_norm: model.max_grad_norm,
        };
        Ok(Self {
            spec: spec.clone(),
            windows,
            train,
            test,
            description,
        })
    }
}

impl CharModelTrainer for MlpTrainer {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn details(&self, privacy: Privacy, _level: PrivacyLevel) -> BTreeMap<String, String> {
        super::super::mnist::training_details(&self.spec.training, privacy)
    }

    fn train(
        &self,
        privacy: Privacy,
        level: PrivacyLevel,
        seed: u64,
        label: &str,
    ) -> Result<TrainedCharModel> {
        ensure!(
            level == PrivacyLevel::Example,
            "the character MLP has no users: its runs are example-level only"
        );
        let started = Instant::now();
        let trained = training::train_mlp(
            &self.train,
            self.windows.encoder.vocabulary_size(),
            &self.spec.training,
            privacy,
            seed,
            label,
        )?;
        let test_loss = mean_loss(&trained.model, &self.test)?;
        Ok(TrainedCharModel {
            model: Box::new(CharMlp {
                model: trained.model,
                windows: self.windows.clone(),
            }),
            test_loss,
            epsilon: trained.epsilon,
            noise_multiplier: trained.noise_multiplier,
            // Poisson sampling of windows at q = batch size / windows (`training::train_mlp`).
            sampling_probability: trained
                .epsilon
                .map(|_| self.spec.training.batch_size / self.description.training_examples as f64),
            steps: trained.steps,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use dp_engine_ndarray::{Activation, Linear};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    const SCORE_TOLERANCE: f64 = 1e-9;

    fn windows(context_length: usize) -> WindowEncoder {
        WindowEncoder::new(CharEncoder::new().unwrap(), context_length).unwrap()
    }

    fn model(windows: &WindowEncoder) -> CharMlp {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        CharMlp {
            model: Mlp::new(
                &[
                    windows.num_features(),
                    16,
                    windows.encoder.vocabulary_size(),
                ],
                Activation::Tanh,
                &mut rng,
            )
            .unwrap(),
            windows: windows.clone(),
        }
    }

    #[test]
    fn windows_hold_the_previous_characters_and_the_next_one() {
        let windows = windows(2);
        let tokens = windows.encoder.tokens("abc d");
        let data = windows.windows(&tokens).unwrap();
        assert_eq!(data.features().nrows(), 3);
        assert_eq!(data.labels(), &tokens[2..]);
        let v = windows.encoder.vocabulary_size();
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
        assert!(windows.windows(&tokens[..2]).is_err());
        assert!(WindowEncoder::new(CharEncoder::new().unwrap(), 0).is_err());
    }

    #[test]
    fn short_contexts_are_padded_with_line_breaks() {
        let model = model(&windows(4));
        let padded = model.log_softmax_rows(&[vec!['a']]).unwrap();
        let explicit = model
            .log_softmax_rows(&[vec!['\n', '\n', '\n', 'a']])
            .unwrap();
        assert_eq!(padded, explicit);
        let total: f64 = padded.row(0).iter().map(|lp| lp.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn mean_loss_of_a_uniform_model_is_log_vocabulary_size() {
        let windows = windows(2);
        let classes = windows.encoder.vocabulary_size();
        let zero = Linear::from_parts(
            Array2::zeros((windows.num_features(), classes)),
            ndarray::Array1::zeros(classes),
        )
        .unwrap();
        let uniform = Mlp::from_layers(vec![zero], Activation::Tanh).unwrap();
        let data = windows
            .windows(&windows.encoder.tokens("hello world"))
            .unwrap();
        let loss = mean_loss(&uniform, &data).unwrap();
        assert!((loss - (classes as f64).ln()).abs() < SCORE_TOLERANCE);
    }
}
