//! Training runs on the libtorch engines of dp-engine-tch (feature `torch`): any
//! [`Sequential`] model on tensors, trained privately (DP-SGD through dp-trainer, Poisson
//! sampling, σ calibrated with the same accountant as the MLP runs, secure noise) or not
//! ([`train_model`]); and the CNN runs of `mnist` and `tips` on top of it (the Opacus MNIST CNN,
//! with or without GroupNorm).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dp_accountant::{NeighbouringRelation, RdpAccountant};
use dp_clip::FlatClip;
use dp_engine::PerSampleGradEngine;
use dp_engine_tch::tch::{self, Device, Kind, Tensor, nn};
use dp_engine_tch::{
    BookKeeping, ConvConfig, DpModel, Function, Ghost, LinearConfig, Loss, Materialized,
    Microbatch, NormConfig, Sequential, TchEngineError, TensorBatch, TensorDataset, conv2d,
    group_norm, linear, models,
};
use dp_sampler::{BatchSampler, Poisson, UserLevelPoisson};
use dp_trainer::{
    DpSgdConfig, DpTrainer, LearningRateSchedule, NonPrivateConfig, Optimizer, TrainerParts,
    TrainerRngs, TrainingPhase, train_non_private,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use crate::EngineChoice;
use crate::progress::RunProgress;
use crate::report::RunRecord;
use crate::training::{self, ACCOUNTANT, Privacy};

/// MNIST pixel mean of the full training set; inputs are standardized with it as in the
/// Opacus example.
const MNIST_MEAN: f64 = 0.1307;
/// MNIST pixel standard deviation of the full training set.
const MNIST_STD: f64 = 0.3081;

/// Outputs of the CNN (the MNIST digits).
const CNN_CLASSES: i64 = 10;

/// Examples per forward pass when measuring accuracy.
const EVALUATION_CHUNK: i64 = 1000;

/// Hyper-parameters of one CNN run (a `[<profile>.cnn]` table).
#[derive(Clone, Debug, Deserialize)]
pub struct CnnSpec {
    /// Expected (private, Poisson) or exact (non-private) batch size.
    pub batch_size: f64,
    /// Passes over the data (expected passes for Poisson sampling); fractions are allowed
    /// for private runs (the smoke profile takes a few steps).
    pub epochs: f64,
    /// Learning rate of SGD in private runs.
    pub learning_rate: f64,
    /// Learning rate of SGD in non-private runs (default: `learning_rate`). DP-SGD's
    /// per-example gradients are clipped to norm C, raw ones are not, so the non-private run
    /// of the same CNN usually needs a smaller rate (it diverges at the private one here).
    #[serde(default)]
    pub non_private_learning_rate: Option<f64>,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Clipping bound C of flat clipping.
    pub max_grad_norm: f64,
}

/// Normalization layers of the CNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// None: exactly the Opacus MNIST CNN ([`models::mnist_cnn`]).
    None,
    /// GroupNorm with `groups` groups after each convolution, before its ReLU.
    GroupNorm {
        /// Groups of each GroupNorm layer (must divide 16, the first convolution's channels).
        groups: i64,
    },
}

impl Normalization {
    /// A short description for tables and `details`.
    pub fn describe(self) -> String {
        match self {
            Normalization::None => "none".to_owned(),
            Normalization::GroupNorm { groups } => format!("GroupNorm ({groups} groups)"),
        }
    }
}

/// Image classification data as tensors: the training set the trainer samples from, and both
/// sets for measuring accuracy.
pub struct ImageData {
    train: TrainingTensors,
    test_inputs: Tensor,
    test_labels: Tensor,
    num_classes: i64,
    device: Device,
}

impl ImageData {
    /// Converts MNIST-like data (`1 x 28 x 28` images in `[0, 1]`) to standardized tensors
    /// `[n, 1, 28, 28]` on `device`.
    ///
    /// # Errors
    ///
    /// When the data sets are not images or libtorch fails.
    pub fn new(data: &dp_data::TrainTest, device: Device) -> Result<Self> {
        let (train_inputs, train_labels) = image_tensors(&data.train, device)?;
        let (test_inputs, test_labels) = image_tensors(&data.test, device)?;
        Ok(Self {
            train: TrainingTensors {
                inputs: train_inputs,
                targets: train_labels,
                device,
            },
            test_inputs,
            test_labels,
            num_classes: i64::try_from(data.train.num_classes())?,
            device,
        })
    }

    /// Accuracy of `model` on the training set.
    ///
    /// # Errors
    ///
    /// libtorch errors.
    pub fn train_accuracy(&self, model: &DpModel) -> Result<f64> {
        accuracy(model, &self.train.inputs, &self.train.targets)
    }

    /// Accuracy of `model` on the test set.
    ///
    /// # Errors
    ///
    /// libtorch errors.
    pub fn test_accuracy(&self, model: &DpModel) -> Result<f64> {
        accuracy(model, &self.test_inputs, &self.test_labels)
    }
}

/// The device the CNN runs use: CUDA when libtorch has it, else the CPU.
pub fn device() -> Device {
    Device::cuda_if_available()
}

/// A description of the device and the libtorch threads, for the report.
pub fn device_summary(device: Device) -> String {
    match device {
        Device::Cpu => format!("CPU, libtorch threads: {}", tch::get_num_threads()),
        other => format!("{other:?}"),
    }
}

fn image_tensors(data: &dp_data::Dataset, device: Device) -> Result<(Tensor, Tensor)> {
    let shape = data
        .image_shape()
        .context("the CNN runs need image data (a data set with an image shape)")?;
    let features = data.features().as_standard_layout();
    let pixels = features
        .as_slice()
        .context("features in standard layout are contiguous")?;
    let dims = [
        i64::try_from(data.len())?,
        i64::try_from(shape.channels)?,
        i64::try_from(shape.height)?,
        i64::try_from(shape.width)?,
    ];
    let inputs = Tensor::from_slice(pixels)
        .f_reshape(dims)?
        .f_sub_scalar(MNIST_MEAN)?
        .f_div_scalar(MNIST_STD)?
        .f_to_device(device)?;
    let labels: Vec<i64> = data
        .labels()
        .iter()
        .map(|&label| i64::try_from(label))
        .collect::<Result<_, _>>()?;
    let labels = Tensor::from_slice(&labels).f_to_device(device)?;
    Ok((inputs, labels))
}

/// Fraction of `inputs` whose arg-max logit is the label.
fn accuracy(model: &DpModel, inputs: &Tensor, labels: &Tensor) -> Result<f64> {
    let total = labels.size().first().copied().unwrap_or(0);
    if total == 0 {
        bail!("accuracy of an empty data set");
    }
    let correct = tch::no_grad(|| -> Result<i64> {
        let mut correct = 0;
        let mut start = 0;
        while start < total {
            let length = EVALUATION_CHUNK.min(total - start);
            let predictions = model
                .forward(&inputs.f_narrow(0, start, length)?)?
                .f_argmax(-1, false)?;
            correct += predictions
                .f_eq_tensor(&labels.f_narrow(0, start, length)?)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
            start += length;
        }
        Ok(correct)
    })?;
    Ok(correct as f64 / total as f64)
}

/// The CNN: the Opacus MNIST CNN (conv 1->16 k8 s2 p3, ReLU, max-pool 2 s1, conv 16->32 k4
/// s2, ReLU, max-pool 2 s1, fc 512->32, ReLU, fc 32->10), with GroupNorm after each
/// convolution when asked.
///
/// # Errors
///
/// Invalid group counts; libtorch errors.
pub fn cnn(path: &nn::Path<'_>, normalization: Normalization) -> Result<Sequential> {
    let Normalization::GroupNorm { groups } = normalization else {
        return Ok(models::mnist_cnn(path)?);
    };
    let pool = Function::MaxPool2d {
        kernel_size: 2,
        stride: 1,
    };
    let first = ConvConfig {
        stride: 2,
        padding: 3,
        ..ConvConfig::default()
    };
    let second = ConvConfig {
        stride: 2,
        ..ConvConfig::default()
    };
    let norm = NormConfig::default();
    Ok(Sequential::new()
        .add(conv2d(&(path / "conv1"), 1, 16, 8, first)?)
        .add(group_norm(&(path / "norm1"), groups, 16, norm)?)
        .add(Function::Relu)
        .add(pool)
        .add(conv2d(&(path / "conv2"), 16, 32, 4, second)?)
        .add(group_norm(&(path / "norm2"), groups, 32, norm)?)
        .add(Function::Relu)
        .add(pool)
        .add(Function::Flatten)
        .add(linear(
            &(path / "fc1"),
            32 * 4 * 4,
            32,
            LinearConfig::default(),
        )?)
        .add(Function::Relu)
        .add(linear(&(path / "fc2"), 32, 10, LinearConfig::default())?))
}

/// What the model validator says when the CNN comes with a BatchNorm layer (registered in the
/// same variable store after the first convolution, as a tch `batch_norm2d`).
///
/// # Errors
///
/// When the validator accepts the model (a bug: BatchNorm mixes examples, so it has no
/// per-example gradients) or refuses it for another reason; libtorch errors.
pub fn batch_norm_refusal() -> Result<String> {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let module = models::mnist_cnn(&root)?;
    let _batch_norm = nn::batch_norm2d(&root / "norm1", 16, Default::default());
    match DpModel::new(&store, module, Loss::CrossEntropy) {
        Err(error @ TchEngineError::UnsupportedLayer { .. }) => Ok(error.to_string()),
        Err(error) => Err(error).context("the validator failed on a CNN with BatchNorm"),
        Ok(_) => bail!("the model validator accepted a CNN with BatchNorm"),
    }
}

/// A training set held as two tensors (example i is row i of both), shared rather than copied
/// with every run that trains on it.
pub struct TrainingTensors {
    /// Inputs `[n, ...]`.
    pub inputs: Tensor,
    /// Targets `[n, ...]`.
    pub targets: Tensor,
    /// Where the batches go.
    pub device: Device,
}

impl TrainingTensors {
    /// Number of examples (rows).
    pub fn num_examples(&self) -> usize {
        self.targets.size().first().map_or(0, |&n| n as usize)
    }

    /// The data set as the trainer samples it (sharing the tensors).
    ///
    /// # Errors
    ///
    /// Inputs and targets with different numbers of rows.
    fn dataset(&self) -> Result<TensorDataset> {
        Ok(TensorDataset::new(
            self.inputs.shallow_clone(),
            self.targets.shallow_clone(),
            self.device,
        )?)
    }
}

/// Whom the private runs of [`train_model`] protect.
#[derive(Clone, Copy, Debug)]
pub enum PrivacyUnitSampling<'a> {
    /// One row of the training tensors: Poisson sampling of rows.
    Example,
    /// One user, a group of rows: Poisson sampling of users ([`UserLevelPoisson`]), each
    /// sampled user contributing at most `max_examples_per_user` uniformly chosen rows.
    User {
        /// The rows of each user; every row belongs to at most one user.
        users: &'a [Vec<usize>],
        /// Cap on a sampled user's rows in one batch (the sensitivity is this times C).
        max_examples_per_user: usize,
    },
}

impl PrivacyUnitSampling<'_> {
    /// Number of units sampled from: the rows of `train`, or the users.
    fn population(&self, train: &TrainingTensors) -> usize {
        match self {
            PrivacyUnitSampling::Example => train.num_examples(),
            PrivacyUnitSampling::User { users, .. } => users.len(),
        }
    }
}

/// How a libtorch model is trained, whatever its architecture and data: batch size, passes,
/// optimizer, clipping bound, privacy, privacy unit, engine and seed.
pub struct TorchTraining<'a> {
    /// Expected (private, Poisson) or exact (non-private) batch size, in privacy units (rows,
    /// or users for user-level sampling).
    pub batch_size: f64,
    /// Passes over the data (expected passes over the privacy units for Poisson sampling).
    pub epochs: f64,
    /// Constant learning rate.
    pub learning_rate: f64,
    /// The update rule (fresh: no steps taken).
    pub optimizer: Optimizer,
    /// Clipping bound C of flat clipping (private runs only).
    pub max_grad_norm: f64,
    /// Private or not.
    pub privacy: Privacy,
    /// The unit the private runs protect (ignored by non-private runs).
    pub unit: PrivacyUnitSampling<'a>,
    /// A libtorch engine (`ndarray` is refused).
    pub engine: EngineChoice,
    /// Seed of the initialization, the sampling and the noise.
    pub seed: u64,
    /// Label of the progress line.
    pub label: &'a str,
}

/// A trained libtorch model and how it was obtained.
pub struct TrainedTorchModel {
    /// The model.
    pub model: DpModel,
    /// ε spent at the run's δ (`None` when not private).
    pub epsilon: Option<f64>,
    /// The calibrated noise multiplier (`None` when not private).
    pub noise_multiplier: Option<f64>,
    /// Poisson sampling probability q of a privacy unit (`None` when not private).
    pub sampling_probability: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Wall-clock seconds of training (evaluation excluded).
    pub seconds: f64,
}

/// Builds the model `build` returns (parameters initialized from `training.seed`, cross-entropy
/// loss) and trains it on `train` with `training.engine`.
///
/// # Privacy
///
/// Private runs are DP-SGD with Poisson sampling of the privacy units of `training.unit` (rows
/// of `train`, or users) at q = batch size / units, and flat clipping; σ is calibrated with
/// [`ACCOUNTANT`] by [`training::calibrated_config`] for that q, ε is composed step by step
/// under add/remove of one unit and the trainer refuses a step beyond the calibrated target.
///
/// # Errors
///
/// `ndarray` as engine; invalid hyper-parameters; engine and libtorch errors.
pub fn train_model<F>(
    training: &TorchTraining<'_>,
    train: &TrainingTensors,
    build: F,
) -> Result<TrainedTorchModel>
where
    F: FnOnce(&nn::Path<'_>) -> Result<Sequential>,
{
    match training.engine {
        EngineChoice::Ndarray => {
            bail!("the libtorch runs need a libtorch engine, not `ndarray`")
        }
        EngineChoice::Microbatch => training.train_with(Microbatch::new(), train, build),
        EngineChoice::Materialized => training.train_with(Materialized::new(), train, build),
        EngineChoice::Ghost => training.train_with(Ghost::new(), train, build),
        EngineChoice::Bookkeeping => training.train_with(BookKeeping::new(), train, build),
    }
}

impl TorchTraining<'_> {
    fn train_with<E, F>(
        &self,
        engine: E,
        train: &TrainingTensors,
        build: F,
    ) -> Result<TrainedTorchModel>
    where
        E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
        F: FnOnce(&nn::Path<'_>) -> Result<Sequential>,
    {
        let started = Instant::now();
        // libtorch initializes the parameters from its global generator.
        tch::manual_seed(i64::from_le_bytes(self.seed.to_le_bytes()));
        let store = nn::VarStore::new(train.device);
        let module = build(&store.root())?;
        let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
        let schedule = LearningRateSchedule::constant(self.learning_rate)?;
        let mut trained = match self.privacy {
            Privacy::NonPrivate => self.non_private(engine, model, train, &schedule)?,
            Privacy::Private {
                target_epsilon,
                delta,
            } => {
                let config = training::calibrated_config(
                    self.batch_size,
                    self.epochs,
                    self.unit.population(train),
                    target_epsilon,
                    delta,
                )?;
                self.private(engine, model, train, schedule, &config)?
            }
        };
        trained.seconds = started.elapsed().as_secs_f64();
        Ok(trained)
    }

    fn non_private<E>(
        &self,
        mut engine: E,
        mut model: DpModel,
        train: &TrainingTensors,
        schedule: &LearningRateSchedule,
    ) -> Result<TrainedTorchModel>
    where
        E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
    {
        let epochs = self.epochs.ceil().max(1.0) as u64;
        let batch_size = self.batch_size.round().max(1.0) as usize;
        let progress = RunProgress::new(self.label, epochs);
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let mut optimizer = self.optimizer.clone();
        let dataset = train.dataset()?;
        // One epoch per call, for the progress line; the schedule is constant, so restarting
        // its step count changes nothing.
        for epoch in 1..=epochs {
            let loss = train_non_private(
                &mut engine,
                &mut model,
                &dataset,
                NonPrivateConfig {
                    batch_size,
                    epochs: 1,
                },
                &mut optimizer,
                schedule,
                &mut rng,
            )?;
            progress.update(epoch, &format!("loss {loss:.3}"));
        }
        let steps = epochs * train.num_examples().div_ceil(batch_size) as u64;
        progress.finish(&format!("{steps} steps"));
        Ok(TrainedTorchModel {
            model,
            epsilon: None,
            noise_multiplier: None,
            sampling_probability: None,
            steps,
            seconds: 0.0,
        })
    }

    fn private<E>(
        &self,
        engine: E,
        model: DpModel,
        train: &TrainingTensors,
        schedule: LearningRateSchedule,
        config: &DpSgdConfig,
    ) -> Result<TrainedTorchModel>
    where
        E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
    {
        let parts = TrainerParts {
            engine,
            model,
            data: train.dataset()?,
            clip: FlatClip::new(self.max_grad_norm)?,
            accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
            optimizer: self.optimizer.clone(),
            schedule,
        };
        let q = config.sampling_probability();
        match self.unit {
            PrivacyUnitSampling::Example => {
                let sampler = Poisson::new(train.num_examples(), q)?;
                self.run_private(parts, config, sampler)
            }
            PrivacyUnitSampling::User {
                users,
                max_examples_per_user,
            } => {
                let sampler = UserLevelPoisson::new(users.to_vec(), q, max_examples_per_user)?;
                self.run_private(parts, config, sampler)
            }
        }
    }

    /// Runs every step of `config` with `sampler`, whose privacy unit the events protect.
    fn run_private<E, S>(
        &self,
        parts: TrainerParts<E, TensorDataset, FlatClip, RdpAccountant>,
        config: &DpSgdConfig,
        sampler: S,
    ) -> Result<TrainedTorchModel>
    where
        E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
        S: BatchSampler,
    {
        let steps = config.steps();
        let progress = RunProgress::new(self.label, steps);
        let phase = TrainingPhase::new(sampler, config.noise_multiplier(), steps)?;
        let mut trainer =
            DpTrainer::with_schedule(parts, config, vec![phase], TrainerRngs::seeded(self.seed))?;
        let epsilon = training::train_to_end(&mut trainer, &progress)?;
        progress.finish(&format!(
            "σ = {:.3}, {steps} steps, ε = {epsilon:.3}",
            config.noise_multiplier()
        ));
        Ok(TrainedTorchModel {
            model: trainer.into_parts().model,
            epsilon: Some(epsilon),
            noise_multiplier: Some(config.noise_multiplier()),
            sampling_probability: Some(config.sampling_probability()),
            steps,
            seconds: 0.0,
        })
    }
}

/// What one CNN run is: data, hyper-parameters, architecture, privacy, engine and seed.
pub struct CnnRun<'a> {
    /// The data.
    pub data: &'a ImageData,
    /// Hyper-parameters.
    pub spec: &'a CnnSpec,
    /// Normalization layers.
    pub normalization: Normalization,
    /// Private or not.
    pub privacy: Privacy,
    /// A libtorch engine (`ndarray` is refused).
    pub engine: EngineChoice,
    /// Seed of the initialization, the sampling and the noise.
    pub seed: u64,
    /// Label of the progress line.
    pub label: &'a str,
}

impl CnnRun<'_> {
    /// Trains the CNN with the run's engine through [`train_model`].
    ///
    /// # Privacy
    ///
    /// As [`train_model`]: the privacy unit is one image.
    ///
    /// # Errors
    ///
    /// `ndarray` as engine; data without 10 classes; invalid hyper-parameters; engine and
    /// libtorch errors.
    pub fn train(&self) -> Result<TrainedTorchModel> {
        if self.data.num_classes != CNN_CLASSES {
            bail!(
                "the CNN has {CNN_CLASSES} outputs but the data has {} classes",
                self.data.num_classes
            );
        }
        let training = TorchTraining {
            batch_size: self.spec.batch_size,
            epochs: self.spec.epochs,
            learning_rate: self.learning_rate(),
            optimizer: Optimizer::sgd(self.spec.momentum)?,
            max_grad_norm: self.spec.max_grad_norm,
            privacy: self.privacy,
            unit: PrivacyUnitSampling::Example,
            engine: self.engine,
            seed: self.seed,
            label: self.label,
        };
        train_model(&training, &self.data.train, |path| {
            cnn(path, self.normalization)
        })
    }

    /// The learning rate of this run (private or not).
    pub fn learning_rate(&self) -> f64 {
        match self.privacy {
            Privacy::NonPrivate => self
                .spec
                .non_private_learning_rate
                .unwrap_or(self.spec.learning_rate),
            Privacy::Private { .. } => self.spec.learning_rate,
        }
    }

    /// The engine as results record it, e.g. `tch-bookkeeping`.
    pub fn engine_name(&self) -> String {
        engine_name(self.engine)
    }

    /// The result of this run after `trained`, with its `metrics`.
    pub fn record(
        &self,
        experiment: &str,
        delta: f64,
        trained: &TrainedTorchModel,
        metrics: BTreeMap<String, f64>,
    ) -> RunRecord {
        RunRecord {
            experiment: experiment.to_owned(),
            run: self.label.to_owned(),
            epsilon: trained.epsilon,
            delta,
            noise_multiplier: trained.noise_multiplier,
            accountant: ACCOUNTANT.to_string(),
            engine: self.engine_name(),
            seed: self.seed,
            steps: trained.steps,
            metrics,
            details: self.details(),
            seconds: trained.seconds,
        }
    }

    /// The facts of the run that are not in [`RunRecord`]'s own fields.
    fn details(&self) -> BTreeMap<String, String> {
        let spec = self.spec;
        let mut details = BTreeMap::from([
            (
                "model".to_owned(),
                format!(
                    "opacus mnist cnn, normalization {}",
                    self.normalization.describe()
                ),
            ),
            ("batch_size".to_owned(), spec.batch_size.to_string()),
            ("epochs".to_owned(), spec.epochs.to_string()),
            ("learning_rate".to_owned(), self.learning_rate().to_string()),
            (
                "optimizer".to_owned(),
                format!("sgd (momentum {})", spec.momentum),
            ),
            ("device".to_owned(), device_summary(self.data.device)),
            (
                "inputs".to_owned(),
                format!("standardized with mean {MNIST_MEAN}, std {MNIST_STD}"),
            ),
        ]);
        details.extend(privacy_details(self.privacy, spec.max_grad_norm));
        details
    }
}

/// The engine as results record it, e.g. `tch-bookkeeping`.
pub fn engine_name(engine: EngineChoice) -> String {
    format!("tch-{}", engine.name())
}

/// The `details` entries that describe how a libtorch run of [`train_model`] was private:
/// sampler, noise mode, clipping and target ε.
pub fn privacy_details(privacy: Privacy, max_grad_norm: f64) -> BTreeMap<String, String> {
    match privacy {
        Privacy::NonPrivate => BTreeMap::from([(
            "sampler".to_owned(),
            "shuffled mini-batches (not private)".to_owned(),
        )]),
        Privacy::Private { target_epsilon, .. } => BTreeMap::from([
            ("sampler".to_owned(), "poisson".to_owned()),
            ("noise_mode".to_owned(), "secure".to_owned()),
            ("clipping".to_owned(), format!("Flat C = {max_grad_norm}")),
            ("target_epsilon".to_owned(), target_epsilon.to_string()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use dp_data::{Dataset, ImageShape, TrainTest};
    use ndarray::Array2;

    use super::*;

    /// `count` random 1 x 28 x 28 images in [0, 1) with labels `0..10` in turn.
    fn images(count: usize, seed: i64) -> Dataset {
        tch::manual_seed(seed);
        let pixels =
            Vec::<f32>::try_from(Tensor::rand([(count * 784) as i64], tch::kind::FLOAT_CPU))
                .expect("a float tensor converts to Vec<f32>");
        let features = Array2::from_shape_vec((count, 784), pixels).expect("count x 784 pixels");
        let shape = ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        Dataset::with_image_shape(features, (0..count).map(|i| i % 10).collect(), 10, shape)
            .expect("valid images")
    }

    fn image_data(train: usize, test: usize) -> ImageData {
        let data = TrainTest {
            train: images(train, 1),
            test: images(test, 2),
        };
        ImageData::new(&data, Device::Cpu).expect("image data")
    }

    fn parameter_names(normalization: Normalization) -> Vec<String> {
        let store = nn::VarStore::new(Device::Cpu);
        let module = cnn(&store.root(), normalization).expect("a valid CNN");
        let model = DpModel::new(&store, module, Loss::CrossEntropy).expect("accepted");
        model.parameters().iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn group_norm_adds_a_norm_after_each_convolution() {
        let plain = parameter_names(Normalization::None);
        assert_eq!(plain.len(), 8);
        let with_norm = parameter_names(Normalization::GroupNorm { groups: 4 });
        let expected: Vec<String> = [
            "conv1.weight",
            "conv1.bias",
            "norm1.weight",
            "norm1.bias",
            "conv2.weight",
            "conv2.bias",
            "norm2.weight",
            "norm2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(with_norm, expected);
        // Without normalization the CNN is the Opacus one: the same layers minus the norms.
        let without: Vec<String> = expected
            .into_iter()
            .filter(|name| !name.starts_with("norm"))
            .collect();
        assert_eq!(plain, without);
        assert!(
            cnn(
                &nn::VarStore::new(Device::Cpu).root(),
                Normalization::GroupNorm { groups: 3 }
            )
            .is_err()
        );
    }

    #[test]
    fn batch_norm_is_refused_naming_group_norm() {
        let message = batch_norm_refusal().expect("the validator refuses BatchNorm");
        assert!(message.contains("GroupNorm"), "{message}");
    }

    #[test]
    fn accuracy_counts_arg_max_matches_across_chunks() {
        // More examples than one evaluation chunk, so the chunking is exercised.
        let count = EVALUATION_CHUNK + 37;
        let data = image_data(10, count as usize);
        let store = nn::VarStore::new(Device::Cpu);
        let module = cnn(&store.root(), Normalization::None).expect("a valid CNN");
        let model = DpModel::new(&store, module, Loss::CrossEntropy).expect("accepted");
        let predictions = tch::no_grad(|| model.forward(&data.test_inputs))
            .expect("forward")
            .argmax(-1, false);
        assert_eq!(
            accuracy(&model, &data.test_inputs, &predictions).expect("accuracy"),
            1.0
        );
        let wrong = (&predictions + 1).remainder(10);
        assert_eq!(
            accuracy(&model, &data.test_inputs, &wrong).expect("accuracy"),
            0.0
        );
        // Every third label right: exactly a third (rounded up) of the examples.
        let mask = Tensor::arange(count, tch::kind::INT64_CPU)
            .remainder(3)
            .eq(0);
        let mixed = predictions.where_self(&mask, &wrong);
        let expected = ((count + 2) / 3) as f64 / count as f64;
        assert_eq!(
            accuracy(&model, &data.test_inputs, &mixed).expect("accuracy"),
            expected
        );
    }

    #[test]
    fn private_runs_take_the_calibrated_steps_within_the_target() {
        let data = image_data(64, 20);
        let spec = CnnSpec {
            batch_size: 16.0,
            epochs: 0.75,
            learning_rate: 0.5,
            non_private_learning_rate: Some(0.02),
            momentum: 0.5,
            max_grad_norm: 1.0,
        };
        let target_epsilon = 3.0;
        let privacy = Privacy::Private {
            target_epsilon,
            delta: 1e-5,
        };
        let run = CnnRun {
            data: &data,
            spec: &spec,
            normalization: Normalization::GroupNorm { groups: 4 },
            privacy,
            engine: EngineChoice::Bookkeeping,
            seed: 7,
            label: "test",
        };
        let trained = run.train().expect("training");
        // q = 16 / 64, steps = ceil(0.75 / q) = 3.
        assert_eq!(trained.steps, 3);
        let epsilon = trained.epsilon.expect("private");
        assert!(epsilon <= target_epsilon, "ε = {epsilon}");
        assert!(trained.noise_multiplier.is_some_and(|sigma| sigma > 0.0));
        let record = run.record("tips", 1e-5, &trained, BTreeMap::new());
        assert_eq!(record.engine, "tch-bookkeeping");
        assert_eq!(record.details["learning_rate"], "0.5");

        let non_private = CnnRun {
            privacy: Privacy::NonPrivate,
            ..run
        };
        assert_eq!(non_private.learning_rate(), 0.02);
        let ndarray = CnnRun {
            engine: EngineChoice::Ndarray,
            ..non_private
        };
        assert!(ndarray.train().is_err());
    }
}
