//! Training runs shared by the experiments: an MLP on the pure-Rust engine, private
//! (DP-SGD with a calibrated noise multiplier) or not, and the per-example scores the
//! attacks need.

use std::time::Instant;

use anyhow::{Context, Result};
use dp_accountant::{AccountantKind, NeighbouringRelation, PrivacyAccountant, RdpAccountant};
use dp_clip::{AutomaticClip, ClipPolicy, FlatClip};
use dp_engine::{ExampleSource, PerSampleGradEngine};
use dp_engine_ndarray::{Activation, ArrayDataset, Batch, BookKeepingEngine, Mlp};
use dp_sampler::{BatchSampler, DpRng, NoiseMode};
use dp_trainer::{
    DpSgdConfig, DpTrainer, LearningRateSchedule, NonPrivateConfig, Optimizer, TrainerParts,
    TrainerRngs, train_non_private,
};
use ndarray::Axis;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use crate::progress::RunProgress;

/// The accountant every training run uses: RDP with the improved conversion. Calibration
/// uses the same accountant, so the reported ε never exceeds the target.
pub const ACCOUNTANT: AccountantKind = AccountantKind::Rdp;
/// The per-sample gradient engine of every training run.
pub const ENGINE: &str = "ndarray-bookkeeping";

/// Whether and how a run is private.
#[derive(Clone, Copy, Debug)]
pub enum Privacy {
    /// Plain mini-batch training: no guarantee.
    NonPrivate,
    /// DP-SGD with σ calibrated so that ε(δ) after all steps is at most `target_epsilon`.
    Private {
        /// The ε to reach at the end of training.
        target_epsilon: f64,
        /// The δ of the guarantee.
        delta: f64,
    },
}

impl Privacy {
    /// A short label such as `non-private` or `eps=3`.
    pub fn label(self) -> String {
        match self {
            Privacy::NonPrivate => "non-private".to_owned(),
            Privacy::Private { target_epsilon, .. } => format!("eps={target_epsilon}"),
        }
    }
}

/// How per-sample gradients are clipped.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Clipping {
    /// min(1, C/‖g‖) (Abadi et al. 2016).
    #[default]
    Flat,
    /// C/(‖g‖ + 0.01) (Bu et al. 2022).
    Automatic,
}

/// Hyper-parameters of one training run.
#[derive(Clone, Debug, Deserialize)]
pub struct TrainingSpec {
    /// Hidden layer widths of the MLP (empty: logistic regression).
    pub hidden: Vec<usize>,
    /// Expected (private) or exact (non-private) batch size.
    pub batch_size: f64,
    /// Passes over the data (expected passes for Poisson sampling).
    pub epochs: f64,
    /// Learning rate.
    pub learning_rate: f64,
    /// SGD momentum (ignored with `weight_decay`, which uses AdamW).
    #[serde(default)]
    pub momentum: f64,
    /// Decoupled weight decay; when positive the optimizer is AdamW instead of SGD.
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam instead of SGD (AdamW whenever `weight_decay` is positive).
    #[serde(default)]
    pub adam: bool,
    /// Clipping bound C.
    pub max_grad_norm: f64,
    /// Clipping policy.
    #[serde(default)]
    pub clipping: Clipping,
    /// Augmentation multiplicity K (De et al. 2022): each example of a private batch is seen
    /// as K randomly shifted copies whose gradients are averaged before clipping; 1 = off.
    /// Needs 28 x 28 images (random shifts of up to two pixels).
    #[serde(default = "one")]
    pub augmentation_views: usize,
}

fn one() -> usize {
    1
}

/// A trained model and how it was obtained.
pub struct Trained {
    /// The model.
    pub model: Mlp,
    /// ε spent at the run's δ (`None` when not private).
    pub epsilon: Option<f64>,
    /// The calibrated noise multiplier (`None` when not private).
    pub noise_multiplier: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Converts a dp-data data set into the engine's.
pub fn engine_dataset(data: &dp_data::Dataset) -> Result<ArrayDataset> {
    Ok(ArrayDataset::new(
        data.features().to_owned(),
        data.labels().to_vec(),
    )?)
}

/// Trains an MLP on `train` as `spec` and `privacy` say, from `seed`.
pub fn train_mlp(
    train: &ArrayDataset,
    num_classes: usize,
    spec: &TrainingSpec,
    privacy: Privacy,
    seed: u64,
    label: &str,
) -> Result<Trained> {
    let started = Instant::now();
    match privacy {
        Privacy::NonPrivate => {
            let mut init_rng = ChaCha20Rng::seed_from_u64(seed);
            let (mut model, mut optimizer, schedule) =
                new_model_and_optimizer(train, num_classes, spec, &mut init_rng)?;
            let examples = train.features().nrows();
            let epochs = spec.epochs.ceil() as usize;
            let progress = RunProgress::new(label, epochs as u64);
            let batch_size = spec.batch_size.round().max(1.0) as usize;
            let config = NonPrivateConfig { batch_size, epochs };
            let mut engine = BookKeepingEngine::new();
            train_non_private(
                &mut engine,
                &mut model,
                train,
                config,
                &mut optimizer,
                &schedule,
                &mut init_rng,
            )?;
            let steps = (epochs * examples.div_ceil(batch_size)) as u64;
            progress.finish(&format!("{steps} steps"));
            Ok(Trained {
                model,
                epsilon: None,
                noise_multiplier: None,
                steps,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Privacy::Private {
            target_epsilon,
            delta,
        } => {
            let config = private_config(spec, train.features().nrows(), target_epsilon, delta)?;
            let mut trained = train_mlp_private(train, num_classes, spec, &config, seed, label)?;
            trained.seconds = started.elapsed().as_secs_f64();
            Ok(trained)
        }
    }
}

/// The DP-SGD configuration [`train_mlp`] uses for `spec` on `examples` examples: sampling
/// probability `batch_size / examples`, `ceil(epochs / sampling_probability)` steps, secure
/// noise, and σ calibrated with [`ACCOUNTANT`] so that ε(`delta`) after all steps is at most
/// `target_epsilon`.
///
/// # Errors
///
/// If the spec's batch size, epochs or the privacy parameters are invalid, or no σ reaches the
/// target.
pub fn private_config(
    spec: &TrainingSpec,
    examples: usize,
    target_epsilon: f64,
    delta: f64,
) -> Result<DpSgdConfig> {
    calibrated_config(
        spec.batch_size,
        spec.epochs,
        examples,
        target_epsilon,
        delta,
    )
}

/// The rule every private run of the experiments follows, MLP or CNN: sampling probability
/// `batch_size / examples`, `ceil(epochs / sampling_probability)` steps, σ calibrated with
/// [`ACCOUNTANT`] so that ε(`delta`) after all steps is at most `target_epsilon`, physical
/// chunks of at most 512 examples, secure noise.
///
/// # Errors
///
/// Invalid batch size, epochs or privacy parameters, or a target no σ reaches.
pub fn calibrated_config(
    batch_size: f64,
    epochs: f64,
    examples: usize,
    target_epsilon: f64,
    delta: f64,
) -> Result<DpSgdConfig> {
    let sampling_probability = batch_size / examples as f64;
    let steps = (epochs / sampling_probability).ceil() as u64;
    Ok(DpSgdConfig::calibrated(
        ACCOUNTANT,
        target_epsilon,
        sampling_probability,
        steps,
        delta,
    )
    .with_context(|| format!("cannot calibrate σ for ε = {target_epsilon}"))?
    .with_max_physical_batch_size(512)?
    .with_noise_mode(NoiseMode::Secure))
}

/// Trains an MLP with DP-SGD under a configuration fixed in advance (see [`private_config`]).
///
/// # Privacy
///
/// The sampling probability, steps and σ come from `config`, not from the size of `train`, so
/// runs on neighbouring data sets (with and without one example) are the same mechanism, as
/// an audit's add/remove-one hypothesis test requires. ε is reported by [`ACCOUNTANT`].
///
/// # Errors
///
/// If the model cannot be built or a training step fails.
pub fn train_mlp_private(
    train: &ArrayDataset,
    num_classes: usize,
    spec: &TrainingSpec,
    config: &DpSgdConfig,
    seed: u64,
    label: &str,
) -> Result<Trained> {
    let started = Instant::now();
    let mut init_rng = ChaCha20Rng::seed_from_u64(seed);
    let (model, optimizer, schedule) =
        new_model_and_optimizer(train, num_classes, spec, &mut init_rng)?;
    let steps = config.steps();
    let progress = RunProgress::new(label, steps);
    let private = PrivateRun {
        model,
        data: train.clone(),
        optimizer,
        schedule,
        config,
        augmentation_views: spec.augmentation_views,
    };
    let (model, epsilon) = match spec.clipping {
        Clipping::Flat => private.run(FlatClip::new(spec.max_grad_norm)?, seed, &progress)?,
        Clipping::Automatic => private.run(
            AutomaticClip::new(spec.max_grad_norm, 0.01)?,
            seed,
            &progress,
        )?,
    };
    progress.finish(&format!(
        "σ = {:.3}, {steps} steps, ε = {epsilon:.3}",
        config.noise_multiplier()
    ));
    Ok(Trained {
        model,
        epsilon: Some(epsilon),
        noise_multiplier: Some(config.noise_multiplier()),
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A freshly initialized MLP for `spec`, its optimizer and its learning-rate schedule.
fn new_model_and_optimizer(
    train: &ArrayDataset,
    num_classes: usize,
    spec: &TrainingSpec,
    init_rng: &mut ChaCha20Rng,
) -> Result<(Mlp, Optimizer, LearningRateSchedule)> {
    let mut widths = vec![train.features().ncols()];
    widths.extend(&spec.hidden);
    widths.push(num_classes);
    let model = Mlp::new(&widths, Activation::Tanh, init_rng)?;
    let optimizer = if spec.weight_decay > 0.0 {
        Optimizer::adamw(0.9, 0.999, 1e-8, spec.weight_decay)?
    } else if spec.adam {
        Optimizer::adam(0.9, 0.999, 1e-8)?
    } else {
        Optimizer::sgd(spec.momentum)?
    };
    let schedule = LearningRateSchedule::constant(spec.learning_rate)?;
    Ok((model, optimizer, schedule))
}

/// What a private run needs besides its clip policy.
struct PrivateRun<'a> {
    model: Mlp,
    data: ArrayDataset,
    optimizer: Optimizer,
    schedule: LearningRateSchedule,
    config: &'a DpSgdConfig,
    augmentation_views: usize,
}

impl PrivateRun<'_> {
    /// Runs DP-SGD with `clip`; returns the model and the ε spent.
    fn run<C: ClipPolicy + Clone>(
        self,
        clip: C,
        seed: u64,
        progress: &RunProgress,
    ) -> Result<(Mlp, f64)> {
        let parts = TrainerParts {
            engine: BookKeepingEngine::new(),
            model: self.model,
            data: self.data,
            clip,
            accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
            optimizer: self.optimizer,
            schedule: self.schedule,
        };
        let mut trainer = DpTrainer::new(parts, self.config, TrainerRngs::seeded(seed))?;
        if self.augmentation_views > 1 {
            let views = self.augmentation_views;
            trainer = trainer.with_augmentation(move |batch: &Batch, rng: &mut dyn RngCore| {
                batch.augmented(views, |_, image| random_shift(image, rng))
            });
        }
        let epsilon = train_to_end(&mut trainer, progress)?;
        Ok((trainer.into_parts().model, epsilon))
    }
}

/// Runs `trainer` to its last step, showing loss and ε so far on `progress`; returns the ε
/// spent (from the trainer's accountant).
pub fn train_to_end<E, D, S, C, A, R>(
    trainer: &mut DpTrainer<E, D, S, C, A, R>,
    progress: &RunProgress,
) -> Result<f64>
where
    E: PerSampleGradEngine,
    D: ExampleSource<Batch = E::Batch>,
    S: BatchSampler,
    C: ClipPolicy + Clone,
    A: PrivacyAccountant + Clone,
    R: DpRng,
{
    let total = trainer.total_steps();
    let every = (total / 100).max(1);
    while trainer.step_count() < total {
        let report = trainer.step_once()?;
        if report.step % every == 0 {
            progress.update(
                report.step,
                &format!(
                    "loss {:.3} ε {:.2}",
                    report.mean_loss,
                    report.epsilon.unwrap_or(0.0)
                ),
            );
        }
    }
    Ok(trainer.epsilon()?)
}

/// Side of the square images [`random_shift`] moves.
const IMAGE_SIDE: usize = 28;
/// Largest shift, in pixels, of [`random_shift`].
const MAX_SHIFT: i64 = 2;

/// Moves a flattened 28 x 28 image by a random offset of up to [`MAX_SHIFT`] pixels in each
/// direction, filling with zeros (the augmentation of the `tips` experiment). Rows of any
/// other length are left as they are.
pub fn random_shift(image: &mut [f32], rng: &mut dyn RngCore) {
    if image.len() != IMAGE_SIDE * IMAGE_SIDE {
        return;
    }
    let dx = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
    let dy = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
    let original = image.to_vec();
    let side = IMAGE_SIDE as i64;
    for y in 0..side {
        for x in 0..side {
            let (source_x, source_y) = (x - dx, y - dy);
            let inside = (0..side).contains(&source_x) && (0..side).contains(&source_y);
            image[(y * side + x) as usize] = if inside {
                original[(source_y * side + source_x) as usize]
            } else {
                0.0
            };
        }
    }
}

/// Test accuracy of `model` on `data`.
pub fn accuracy(model: &Mlp, data: &ArrayDataset) -> Result<f64> {
    Ok(model.accuracy(data.features().view(), data.labels())?)
}

/// Per-example cross-entropy losses and the probability given to the true label.
pub fn losses_and_confidences(model: &Mlp, data: &ArrayDataset) -> Result<(Vec<f64>, Vec<f64>)> {
    let logits = model.logits(data.features().view())?;
    let mut losses = Vec::with_capacity(logits.nrows());
    let mut confidences = Vec::with_capacity(logits.nrows());
    for (row, &label) in logits.axis_iter(Axis(0)).zip(data.labels()) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let log_sum = max
            + row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        let loss = log_sum - row[label] as f64;
        losses.push(loss);
        confidences.push((-loss).exp());
    }
    Ok((losses, confidences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_shift_moves_pixels_and_keeps_the_image_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut image = vec![0.0_f32; IMAGE_SIDE * IMAGE_SIDE];
        image[14 * IMAGE_SIDE + 14] = 1.0;
        random_shift(&mut image, &mut rng);
        assert_eq!(image.iter().filter(|&&v| v == 1.0).count(), 1);
        let position = image.iter().position(|&v| v == 1.0).unwrap();
        let (y, x) = (position / IMAGE_SIDE, position % IMAGE_SIDE);
        assert!(y.abs_diff(14) <= 2 && x.abs_diff(14) <= 2);
    }

    #[test]
    fn losses_match_the_confidences() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let model = Mlp::new(&[3, 4, 2], Activation::Tanh, &mut rng).unwrap();
        let data = ArrayDataset::new(ndarray::Array2::from_elem((5, 3), 0.5), vec![0, 1, 0, 1, 1])
            .unwrap();
        let (losses, confidences) = losses_and_confidences(&model, &data).unwrap();
        for (loss, confidence) in losses.iter().zip(&confidences) {
            assert!(*loss >= 0.0 && (confidence - (-loss).exp()).abs() < 1e-12);
        }
        // Two classes: the confidences of the two labels of one input sum to one.
        assert!((confidences[0] + confidences[1] - 1.0).abs() < 1e-5);
    }
}
