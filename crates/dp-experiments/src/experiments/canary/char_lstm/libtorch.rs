//! Training the character LSTM on a libtorch engine through the shared trainer path of
//! [`crate::torch_training`], and querying its next-character log-probabilities.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use dp_engine_tch::models::{CharLstmConfig, char_lstm};
use dp_engine_tch::tch::{self, Device, Kind, Tensor};
use dp_engine_tch::{DpModel, Loss};
use dp_trainer::Optimizer;
use ndarray::Array2;

use super::super::char_model::{
    CanaryCorpus, CharEncoder, CharModelTrainer, ModelDescription, NextCharModel, PrivacyLevel,
    TrainedCharModel,
};
use super::{CharSequences, LstmSpec, test_sequences, training_sequences};
use crate::EngineChoice;
use crate::torch_training::{
    self, PrivacyUnitSampling, TorchTraining, TrainingTensors, engine_name, privacy_details,
    train_model,
};
use crate::training::Privacy;

/// Examples a sampled user contributes to a batch in the user-level runs: one, chosen uniformly
/// among its sequences, so the clipped sum's sensitivity to a whole user stays C.
const MAX_EXAMPLES_PER_USER: usize = 1;

/// Sequences per forward pass when scoring contexts or measuring the test loss: small enough
/// for the activations of a step to stay in cache (on one core, twice as fast as 8192).
const SCORING_CHUNK: usize = 512;

/// The LSTM family: sequences built once, a model trained per run on a libtorch engine.
pub struct LstmTrainer {
    spec: LstmSpec,
    encoder: CharEncoder,
    engine: EngineChoice,
    train: TrainingTensors,
    /// The users of the user-level runs ([`CharSequences::users`]).
    users: Vec<Vec<usize>>,
    test_inputs: Tensor,
    test_targets: Tensor,
    description: ModelDescription,
}

impl LstmTrainer {
    /// Builds the training sequences (one per canary insertion, see
    /// [`training_sequences`]) and the test sequences as tensors on `device`.
    ///
    /// # Errors
    ///
    /// `ndarray` as engine; texts or sequence lengths that do not fit; libtorch errors.
    pub fn new(
        spec: &LstmSpec,
        encoder: &CharEncoder,
        corpus: &CanaryCorpus<'_>,
        engine: EngineChoice,
        device: Device,
    ) -> Result<Self> {
        ensure!(
            engine != EngineChoice::Ndarray,
            "the character LSTM needs a libtorch engine, not `ndarray`"
        );
        let train = training_sequences(encoder, corpus, spec.sequence_length)?;
        let test = test_sequences(encoder, corpus.test, spec.sequence_length)?;
        let users = train.users();
        let description = ModelDescription {
            name: "char-lstm",
            engine: engine_name(engine),
            architecture: format!(
                "a character LSTM: embedding {} -> one LSTM layer of {} units -> linear head \
                 over the alphabet, predicting the next character at every position, started \
                 from zero state at each sequence; on {}",
                spec.embedding_dim,
                spec.hidden_size,
                torch_training::device_summary(device)
            ),
            privacy_unit: format!(
                "one sequence of {} predicted characters; each canary insertion is one whole \
                 sequence",
                spec.sequence_length
            ),
            user_privacy_unit: Some(format!(
                "one user: each of the {} corpus sequences is its own user and the k sequences of \
                 each of the {} canaries are one user ({} users); a sampled user contributes \
                 {MAX_EXAMPLES_PER_USER} of its sequences, chosen uniformly",
                train.corpus_sequences,
                users.len() - train.corpus_sequences,
                users.len()
            )),
            examples_per_insertion: 1,
            training_examples: train.len(),
            test_examples: test.len(),
            training: format!(
                "{} expected passes, expected batch {} sequences, learning rate {} (non-private \
                 {}), {}",
                spec.epochs,
                spec.batch_size,
                spec.learning_rate(true),
                spec.learning_rate(false),
                spec.optimizer()
            ),
            max_grad_norm: spec.max_grad_norm,
        };
        let (test_inputs, test_targets) = tensors(&test, device)?;
        let (inputs, targets) = tensors(&train, device)?;
        Ok(Self {
            spec: spec.clone(),
            encoder: encoder.clone(),
            engine,
            train: TrainingTensors {
                inputs,
                targets,
                device,
            },
            users,
            test_inputs,
            test_targets,
            description,
        })
    }
}

impl CharModelTrainer for LstmTrainer {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn details(&self, privacy: Privacy, level: PrivacyLevel) -> BTreeMap<String, String> {
        let spec = &self.spec;
        let private = matches!(privacy, Privacy::Private { .. });
        let mut details = BTreeMap::from([
            (
                "model".to_owned(),
                format!(
                    "char lstm (embedding {}, hidden {})",
                    spec.embedding_dim, spec.hidden_size
                ),
            ),
            (
                "sequence_length".to_owned(),
                spec.sequence_length.to_string(),
            ),
            ("batch_size".to_owned(), spec.batch_size.to_string()),
            ("epochs".to_owned(), spec.epochs.to_string()),
            (
                "learning_rate".to_owned(),
                spec.learning_rate(private).to_string(),
            ),
            ("optimizer".to_owned(), spec.optimizer()),
        ]);
        details.extend(privacy_details(privacy, spec.max_grad_norm));
        if level == PrivacyLevel::User && matches!(privacy, Privacy::Private { .. }) {
            details.extend([
                (
                    "sampler".to_owned(),
                    "user-level poisson (dp_sampler::UserLevelPoisson)".to_owned(),
                ),
                ("users".to_owned(), self.users.len().to_string()),
                (
                    "max_examples_per_user".to_owned(),
                    MAX_EXAMPLES_PER_USER.to_string(),
                ),
                (
                    "batch_size".to_owned(),
                    format!("{} expected users", spec.batch_size),
                ),
            ]);
        }
        details
    }

    fn train(
        &self,
        privacy: Privacy,
        level: PrivacyLevel,
        seed: u64,
        label: &str,
    ) -> Result<TrainedCharModel> {
        let started = Instant::now();
        let spec = &self.spec;
        let training = TorchTraining {
            batch_size: spec.batch_size,
            epochs: spec.epochs,
            learning_rate: spec.learning_rate(matches!(privacy, Privacy::Private { .. })),
            optimizer: if spec.adam {
                Optimizer::adam(0.9, 0.999, 1e-8)?
            } else {
                Optimizer::sgd(spec.momentum)?
            },
            max_grad_norm: spec.max_grad_norm,
            privacy,
            unit: match level {
                PrivacyLevel::Example => PrivacyUnitSampling::Example,
                PrivacyLevel::User => PrivacyUnitSampling::User {
                    users: &self.users,
                    max_examples_per_user: MAX_EXAMPLES_PER_USER,
                },
            },
            engine: self.engine,
            seed,
            label,
        };
        let config = CharLstmConfig {
            vocabulary: i64::try_from(self.encoder.vocabulary_size())?,
            embedding_dim: spec.embedding_dim,
            hidden_size: spec.hidden_size,
        };
        let trained = train_model(&training, &self.train, |path| Ok(char_lstm(path, &config)?))?;
        let test_loss = mean_loss(&trained.model, &self.test_inputs, &self.test_targets)?;
        Ok(TrainedCharModel {
            model: Box::new(CharLstm {
                model: trained.model,
                encoder: self.encoder.clone(),
            }),
            test_loss,
            epsilon: trained.epsilon,
            noise_multiplier: trained.noise_multiplier,
            sampling_probability: trained.sampling_probability,
            steps: trained.steps,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Inputs and targets as int64 tensors `[n, sequence_length]` on `device`.
fn tensors(sequences: &CharSequences, device: Device) -> Result<(Tensor, Tensor)> {
    let tensor = |array: &Array2<usize>| -> Result<Tensor> {
        let values = array
            .iter()
            .map(|&token| i64::try_from(token))
            .collect::<Result<Vec<i64>, _>>()?;
        let shape = [i64::try_from(array.nrows())?, i64::try_from(array.ncols())?];
        Ok(Tensor::from_slice(&values)
            .f_reshape(shape)?
            .f_to_device(device)?)
    };
    Ok((tensor(&sequences.inputs)?, tensor(&sequences.targets)?))
}

/// Mean cross-entropy in nats per predicted character (all sequences have the same length,
/// so the mean of the per-sequence means is the mean per character).
fn mean_loss(model: &DpModel, inputs: &Tensor, targets: &Tensor) -> Result<f64> {
    let total = inputs.size().first().copied().unwrap_or(0);
    ensure!(total > 0, "no test sequences");
    let chunk = i64::try_from(SCORING_CHUNK)?;
    tch::no_grad(|| -> Result<f64> {
        let mut sum = 0.0;
        let mut start = 0;
        while start < total {
            let length = chunk.min(total - start);
            let outputs = model.forward(&inputs.f_narrow(0, start, length)?)?;
            sum += Loss::CrossEntropy
                .per_example(&outputs, &targets.f_narrow(0, start, length)?)?
                .f_sum(Kind::Double)?
                .f_double_value(&[])?;
            start += length;
        }
        Ok(sum / total as f64)
    })
}

/// A trained LSTM as the attacks query it.
struct CharLstm {
    model: DpModel,
    encoder: CharEncoder,
}

impl CharLstm {
    /// Log-softmax after the last character of each row of `tokens` (`[n, length]`).
    fn last_position_log_softmax(&self, tokens: &[i64], rows: usize) -> Result<Vec<f64>> {
        let length = tokens.len() / rows.max(1);
        let inputs =
            Tensor::from_slice(tokens).f_reshape([i64::try_from(rows)?, i64::try_from(length)?])?;
        let logits = tch::no_grad(|| self.model.forward(&inputs))?;
        let last = logits
            .f_select(1, i64::try_from(length)? - 1)?
            .f_log_softmax(-1, Kind::Double)?
            .f_to_device(Device::Cpu)?
            .f_reshape([-1])?;
        Ok(Vec::<f64>::try_from(last)?)
    }
}

impl NextCharModel for CharLstm {
    fn log_softmax_rows(&self, contexts: &[Vec<char>]) -> Result<Array2<f64>> {
        let vocabulary_size = self.encoder.vocabulary_size();
        let newline = i64::try_from(self.encoder.token('\n'))?;
        let mut out = Array2::<f64>::zeros((contexts.len(), vocabulary_size));
        // Contexts of one length run together; the attacks ask for them grouped by depth.
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, context) in contexts.iter().enumerate() {
            by_length.entry(context.len()).or_default().push(index);
        }
        for indices in by_length.values() {
            for chunk in indices.chunks(SCORING_CHUNK) {
                let mut tokens = Vec::new();
                for &index in chunk {
                    // The line break the model saw before every canary line.
                    tokens.push(newline);
                    for &character in &contexts[index] {
                        tokens.push(i64::try_from(self.encoder.token(character))?);
                    }
                }
                let values = self.last_position_log_softmax(&tokens, chunk.len())?;
                for (&index, row) in chunk.iter().zip(values.chunks(vocabulary_size)) {
                    for (target, &value) in out.row_mut(index).iter_mut().zip(row) {
                        *target = value.min(0.0);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use dp_engine_tch::tch::nn;

    use super::*;

    /// Batched and single scoring run the same f32 network; they may differ by rounding of
    /// the batched matrix products.
    const BATCH_TOLERANCE: f64 = 1e-5;

    fn model(encoder: &CharEncoder) -> CharLstm {
        tch::manual_seed(3);
        let store = nn::VarStore::new(Device::Cpu);
        let config = CharLstmConfig {
            vocabulary: encoder.vocabulary_size() as i64,
            embedding_dim: 8,
            hidden_size: 16,
        };
        let module = char_lstm(&store.root(), &config).unwrap();
        CharLstm {
            model: DpModel::new(&store, module, Loss::CrossEntropy).unwrap(),
            encoder: encoder.clone(),
        }
    }

    #[test]
    fn contexts_of_mixed_lengths_score_as_alone_after_a_line_break() {
        let encoder = CharEncoder::new().unwrap();
        let lstm = model(&encoder);
        let contexts: Vec<Vec<char>> = ["pin 1", "pin", "pin 12", "x", "pin 9"]
            .iter()
            .map(|text| text.chars().collect())
            .collect();
        let batched = lstm.log_softmax_rows(&contexts).unwrap();
        for (row, context) in contexts.iter().enumerate() {
            let alone = lstm
                .log_softmax_rows(std::slice::from_ref(context))
                .unwrap();
            let total: f64 = alone.row(0).iter().map(|v| v.exp()).sum();
            assert!((total - 1.0).abs() < 1e-9);
            for (a, b) in batched.row(row).iter().zip(alone.row(0)) {
                assert!((a - b).abs() < BATCH_TOLERANCE, "{context:?}");
            }
        }
        // The context is read after a line break: the distribution after "\nx" is the one the
        // model gives at position 1 of the sequence "\nx".
        let tokens = Tensor::from_slice(&[0_i64, encoder.token('x') as i64]).reshape([1, 2]);
        let logits = lstm.model.forward(&tokens).unwrap();
        let expected = Vec::<f64>::try_from(
            logits
                .select(1, 1)
                .log_softmax(-1, Kind::Double)
                .reshape([-1]),
        )
        .unwrap();
        for (a, b) in batched.row(3).iter().zip(&expected) {
            assert!((a - b).abs() < BATCH_TOLERANCE);
        }
    }

    #[test]
    fn a_private_run_takes_the_calibrated_steps_within_its_target() {
        use dp_data::canary::{SecretFormat, TextCanaryConfig, insert_text_canaries};
        use rand::SeedableRng;

        let encoder = CharEncoder::new().unwrap();
        let base = "to be or not to be that is the question\n".repeat(8);
        let canaried = insert_text_canaries(
            &base,
            &TextCanaryConfig {
                format: SecretFormat::new("pin ", 2).unwrap(),
                repetitions: vec![2],
                num_reference_candidates: 1,
            },
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        let corpus = CanaryCorpus {
            base: &base,
            canaried: &canaried,
            test: "whether tis nobler in the mind to suffer",
        };
        let spec = LstmSpec {
            sequence_length: 16,
            embedding_dim: 4,
            hidden_size: 8,
            batch_size: 6.0,
            epochs: 1.0,
            learning_rate: 0.01,
            non_private_learning_rate: None,
            adam: true,
            momentum: 0.0,
            max_grad_norm: 1.0,
        };
        let refused =
            LstmTrainer::new(&spec, &encoder, &corpus, EngineChoice::Ndarray, Device::Cpu);
        assert!(refused.is_err());
        let trainer = LstmTrainer::new(
            &spec,
            &encoder,
            &corpus,
            EngineChoice::Bookkeeping,
            Device::Cpu,
        )
        .unwrap();
        // 320 characters: (320 - 17) / 16 + 1 = 19 corpus sequences, and 2 canary sequences.
        let description = trainer.description();
        assert_eq!(description.training_examples, 21);
        assert_eq!(description.examples_per_insertion, 1);
        let target_epsilon = 4.0;
        let privacy = Privacy::Private {
            target_epsilon,
            delta: 1e-5,
        };
        let trained = trainer
            .train(privacy, PrivacyLevel::Example, 7, "test")
            .unwrap();
        // q = 6 / 21, steps = ceil(1 / q) = 4.
        assert_eq!(trained.steps, 4);
        assert_eq!(trained.sampling_probability, Some(6.0 / 21.0));
        let epsilon = trained.epsilon.unwrap();
        assert!(epsilon <= target_epsilon, "ε = {epsilon}");
        assert!(trained.test_loss.is_finite() && trained.test_loss > 0.0);
        let rows = trained.model.log_softmax_rows(&[vec!['p']]).unwrap();
        assert_eq!(rows.ncols(), encoder.vocabulary_size());
        let details = trainer.details(privacy, PrivacyLevel::Example);
        assert_eq!(details["noise_mode"], "secure");
        assert_eq!(details["sampler"], "poisson");

        // User level: 19 corpus users and one user holding both canary sequences, so
        // q = 6 / 20 and steps = ceil(1 / q) = 4, with σ calibrated for that q.
        let user_level = trainer
            .train(privacy, PrivacyLevel::User, 7, "test")
            .unwrap();
        assert_eq!(user_level.sampling_probability, Some(6.0 / 20.0));
        assert_eq!(user_level.steps, 4);
        let epsilon = user_level.epsilon.unwrap();
        assert!(epsilon <= target_epsilon, "ε = {epsilon}");
        assert!(user_level.noise_multiplier > trained.noise_multiplier);
        let details = trainer.details(privacy, PrivacyLevel::User);
        assert_eq!(details["users"], "20");
        assert_eq!(details["max_examples_per_user"], "1");
        assert!(
            trainer
                .description()
                .user_privacy_unit
                .as_ref()
                .is_some_and(|unit| unit.contains("(20 users)"))
        );
    }

    #[test]
    fn test_loss_of_an_untrained_model_is_near_log_vocabulary_size() {
        let encoder = CharEncoder::new().unwrap();
        let lstm = model(&encoder);
        let sequences =
            test_sequences(&encoder, "to be or not to be, that is the question", 8).unwrap();
        let (inputs, targets) = tensors(&sequences, Device::Cpu).unwrap();
        let loss = mean_loss(&lstm.model, &inputs, &targets).unwrap();
        let uniform = (encoder.vocabulary_size() as f64).ln();
        // Small random weights give nearly uniform predictions.
        assert!((loss - uniform).abs() < 0.2, "{loss} vs {uniform}");
        let per_sequence = Loss::CrossEntropy
            .per_example(&lstm.model.forward(&inputs).unwrap(), &targets)
            .unwrap();
        let mean = per_sequence.mean(Kind::Double).double_value(&[]);
        assert!((loss - mean).abs() < 1e-9);
    }
}
