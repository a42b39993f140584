//! The DP-SGD trainer: DESIGN.md section 3.5, generic over engine, sampler, clip policy and
//! accountant.

use crate::checkpoint::Checkpoint;
use crate::{
    DpSgdConfig, LearningRateSchedule, Optimizer, StepReport, TrainerError, TrainerRngs,
    TrainingPhase,
};
use dp_accountant::{DpEvent, NeighbouringRelation, PrivacyAccountant};
use dp_clip::{ClipOutcome, ClipPolicy, NormMatrix, ScaleFactors};
use dp_engine::{EngineError, ExampleBatch, ExampleSource, PerSampleGradEngine, ScaleVector};
use dp_sampler::{BatchSampler, DpRng, NoiseMode, Poisson, add_gaussian_noise, sample_gaussian};
use rand::RngCore;

/// A caller-supplied augmentation for augmentation multiplicity (De et al. 2022): maps a batch of
/// examples to a batch with K views per example (an engine batch whose examples have K rows),
/// whose per-example gradient is the mean over the views, clipped once.
///
/// Closures `Fn(&B, &mut dyn RngCore) -> Result<B, EngineError>` implement it.
pub trait Augmentation<B> {
    /// The augmented batch.
    ///
    /// # Errors
    ///
    /// Whatever the augmentation reports.
    fn augment(&self, batch: &B, rng: &mut dyn RngCore) -> Result<B, EngineError>;
}

impl<B, F> Augmentation<B> for F
where
    F: Fn(&B, &mut dyn RngCore) -> Result<B, EngineError>,
{
    fn augment(&self, batch: &B, rng: &mut dyn RngCore) -> Result<B, EngineError> {
        self(batch, rng)
    }
}

/// What a trainer is made of, apart from its configuration and random streams.
#[derive(Debug)]
pub struct TrainerParts<E: PerSampleGradEngine, D, C, A> {
    /// The per-sample gradient engine.
    pub engine: E,
    /// The model it trains.
    pub model: E::Model,
    /// The private training data.
    pub data: D,
    /// The clipping policy (for example `dp_clip::FlatClip::new(max_grad_norm)`).
    pub clip: C,
    /// The privacy accountant (usually fresh; it may already hold earlier releases).
    pub accountant: A,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: LearningRateSchedule,
}

type ProgressCallback = Box<dyn FnMut(&StepReport)>;

/// DP-SGD (Abadi et al. 2016) with Poisson sampling, per-sample clipping, Gaussian noise and
/// an accountant that composes every step.
///
/// One logical step: sample a batch (an empty batch is a normal step) -> per-sample norms ->
/// clip factors -> clipped sum (in physical chunks if bounded) -> add N(0, (σ·S)²) with S the
/// clip policy's sensitivity -> divide by the EXPECTED batch size q·N -> optimizer -> the
/// accountant composes the step's event.
///
/// # Privacy
///
/// Each step is accounted as the sampler's event for a Gaussian mechanism of noise multiplier
/// σ·S/(S + rounding slack) (the slack of secure noise is below 1e-7 relative), combined with
/// the clip policy's own release if it makes one. With a budget, a step whose event would raise ε
/// above it is refused before anything is released: the parameters, the ledger and the clip
/// policy stay as they were, and [`TrainerError::BudgetExceeded`] says so. The guarantee is under
/// add/remove-one of the sampler's privacy unit.
pub struct DpTrainer<E: PerSampleGradEngine, D, S, C, A, R> {
    parts: TrainerParts<E, D, C, A>,
    phases: Vec<TrainingPhase<S>>,
    delta: f64,
    epsilon_budget: Option<f64>,
    noise_mode: NoiseMode,
    max_physical_batch_size: Option<usize>,
    augmentation: Option<Box<dyn Augmentation<E::Batch>>>,
    rngs: TrainerRngs<R>,
    step: u64,
    callback: Option<ProgressCallback>,
}

impl<E, D, S, C, A, R> std::fmt::Debug for DpTrainer<E, D, S, C, A, R>
where
    E: PerSampleGradEngine,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpTrainer")
            .field("step", &self.step)
            .field("delta", &self.delta)
            .field("epsilon_budget", &self.epsilon_budget)
            .field("noise_mode", &self.noise_mode)
            .finish_non_exhaustive()
    }
}

impl<E, D, C, A, R> DpTrainer<E, D, Poisson, C, A, R>
where
    E: PerSampleGradEngine,
    D: ExampleSource<Batch = E::Batch>,
    C: ClipPolicy + Clone,
    A: PrivacyAccountant + Clone,
    R: DpRng,
{
    /// A trainer with Poisson sampling over the whole data set as `config` describes.
    ///
    /// # Errors
    ///
    /// As [`with_schedule`](Self::with_schedule), and sampler construction errors.
    pub fn new(
        parts: TrainerParts<E, D, C, A>,
        config: &DpSgdConfig,
        rngs: TrainerRngs<R>,
    ) -> Result<Self, TrainerError> {
        let sampler = Poisson::new(parts.data.num_examples(), config.sampling_probability())?;
        let phase = TrainingPhase::new(sampler, config.noise_multiplier(), config.steps())?;
        Self::with_schedule(parts, config, vec![phase], rngs)
    }
}

impl<E, D, S, C, A, R> DpTrainer<E, D, S, C, A, R>
where
    E: PerSampleGradEngine,
    D: ExampleSource<Batch = E::Batch>,
    S: BatchSampler,
    C: ClipPolicy + Clone,
    A: PrivacyAccountant + Clone,
    R: DpRng,
{
    /// A trainer that runs `phases` in order (a batch-size or noise schedule); the noise
    /// multiplier, sampling probability and step count of `config` are replaced by the phases',
    /// its δ, budget, noise mode and physical batch bound apply.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for no phases, a sampler over another population than
    /// the data, or a budget with an approximate (GDP) accountant.
    pub fn with_schedule(
        parts: TrainerParts<E, D, C, A>,
        config: &DpSgdConfig,
        phases: Vec<TrainingPhase<S>>,
        rngs: TrainerRngs<R>,
    ) -> Result<Self, TrainerError> {
        if phases.is_empty() {
            return Err(TrainerError::invalid(
                "phases",
                0.0,
                "need at least one phase",
            ));
        }
        let population = parts.data.num_examples();
        if let Some(phase) = phases.iter().find(|p| {
            p.sampler.privacy_unit() == dp_sampler::PrivacyUnit::Example
                && p.sampler.population_size() != population
        }) {
            return Err(TrainerError::invalid(
                "sampler population_size",
                phase.sampler.population_size() as f64,
                "must equal the number of training examples",
            ));
        }
        if config.epsilon_budget().is_some() && parts.accountant.kind().is_approximate() {
            return Err(TrainerError::invalid(
                "accountant",
                f64::NAN,
                "a budget needs an accountant that returns upper bounds (RDP or PLD), not GDP",
            ));
        }
        Ok(Self {
            parts,
            phases,
            delta: config.delta(),
            epsilon_budget: config.epsilon_budget(),
            noise_mode: config.noise_mode(),
            max_physical_batch_size: config.max_physical_batch_size(),
            augmentation: None,
            rngs,
            step: 0,
            callback: None,
        })
    }

    /// Trains on K augmented views per example, averaged before clipping.
    pub fn with_augmentation(
        mut self,
        augmentation: impl Augmentation<E::Batch> + 'static,
    ) -> Self {
        self.augmentation = Some(Box::new(augmentation));
        self
    }

    /// Calls `callback` after every logical step (see [`crate::TerminalProgress`]).
    pub fn with_progress(mut self, callback: impl FnMut(&StepReport) + 'static) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// Logical steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Total logical steps of the schedule.
    pub fn total_steps(&self) -> u64 {
        self.phases.iter().map(|p| p.steps).sum()
    }

    /// The model.
    pub fn model(&self) -> &E::Model {
        &self.parts.model
    }

    /// The accountant (its ledger holds every step composed so far).
    pub fn accountant(&self) -> &A {
        &self.parts.accountant
    }

    /// ε spent so far at the configured δ.
    ///
    /// # Errors
    ///
    /// Accountant errors.
    pub fn epsilon(&self) -> Result<f64, TrainerError> {
        Ok(self.parts.accountant.epsilon(self.delta)?.epsilon)
    }

    /// Gives back the parts (model, engine, accountant, ...).
    pub fn into_parts(self) -> TrainerParts<E, D, C, A> {
        self.parts
    }

    /// The phase the next step belongs to.
    fn phase_index(&self) -> Option<usize> {
        let mut end = 0;
        self.phases.iter().position(|p| {
            end += p.steps;
            self.step < end
        })
    }

    /// Runs every remaining step.
    ///
    /// # Errors
    ///
    /// The first step's error, [`TrainerError::BudgetExceeded`] included.
    pub fn run(&mut self) -> Result<(), TrainerError> {
        while self.step < self.total_steps() {
            self.step_once()?;
        }
        Ok(())
    }

    /// One logical step of DP-SGD; returns its report (also passed to the progress callback).
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] after the last step of the schedule;
    /// [`TrainerError::BudgetExceeded`] when the step would exceed the budget (nothing changes);
    /// engine, clipping, noise and accountant errors.
    pub fn step_once(&mut self) -> Result<StepReport, TrainerError> {
        let Some(phase_index) = self.phase_index() else {
            return Err(TrainerError::invalid(
                "step",
                self.step as f64,
                "the schedule is complete",
            ));
        };
        let phase = &mut self.phases[phase_index];
        let noise_multiplier = phase.noise_multiplier;
        let expected_batch_size = phase.sampler.expected_batch_size();
        let contributions = phase.sampler.privacy_unit().max_contributions() as f64;
        let batch = phase.sampler.sample(&mut self.rngs.sampling);

        self.parts.engine.zero_grad(&mut self.parts.model);
        let clipped = self.clipped_sum(&batch.indices)?;

        // Noise N(0, (σ·S)²) per coordinate, then the division by the expected batch size.
        let sensitivity = clipped.sensitivity * contributions;
        let std = noise_multiplier * sensitivity;
        let mode = self.noise_mode;
        let noise_rng = &mut self.rngs.noise;
        let mut noise_result = Ok(0.0);
        let divisor = expected_batch_size as f32;
        self.parts
            .engine
            .visit_gradients(&mut self.parts.model, &mut |_, gradient| {
                if let Ok(slack) = &mut noise_result {
                    match add_gaussian_noise(gradient, std, mode, noise_rng) {
                        Ok(report) => *slack += report.rounding_slack,
                        Err(error) => noise_result = Err(error),
                    }
                }
                gradient.iter_mut().for_each(|g| *g /= divisor);
            })?;
        let rounding_slack = noise_result?;
        let effective_multiplier = std / (sensitivity + rounding_slack);

        // The clip policy's own release (adaptive clipping), on a copy until the step commits.
        let mut clip = self.parts.clip.clone();
        let noise_rng = &mut self.rngs.noise;
        let mut noise = |std: f64| sample_gaussian(std, mode, noise_rng).map(|(value, _)| value);
        let clip_event =
            clip.update(&clipped.outcome, &mut noise)
                .map_err(|e| TrainerError::Clip {
                    message: e.to_string(),
                })?;
        // Noise multipliers are relative to the sensitivity under the accountant's relation:
        // replacing one example moves the clipped sum by up to 2·S, adding or removing one by S.
        let relation_factor = match self.parts.accountant.neighbouring_relation() {
            NeighbouringRelation::ReplaceOne => 2.0,
            NeighbouringRelation::AddOrRemoveOne => 1.0,
        };
        let gradient_multiplier =
            combine_with_clip_release(effective_multiplier / relation_factor, &clip_event)?;
        let event = self.phases[phase_index]
            .sampler
            .step_event(DpEvent::gaussian(gradient_multiplier));
        let epsilon = self.compose_within_budget(&event)?;
        self.parts.clip = clip;

        let learning_rate = self.parts.schedule.learning_rate(self.step);
        let optimizer = &mut self.parts.optimizer;
        optimizer.begin_step();
        self.parts
            .engine
            .visit_parameters(&mut self.parts.model, &mut |view| {
                optimizer.update(view.group, view.values, view.gradient, learning_rate);
            })?;
        self.step += 1;
        let report = StepReport {
            step: self.step,
            mean_loss: clipped.loss_sum / clipped.num_examples as f64,
            epsilon,
            learning_rate,
            non_finite_norms: clipped.outcome.invalid_norms,
        };
        if let Some(callback) = &mut self.callback {
            callback(&report);
        }
        Ok(report)
    }

    /// Adds the clipped per-sample gradients of `indices` to the gradient buffers, chunk by
    /// chunk, and returns the clip outcome over the whole logical batch.
    fn clipped_sum(&mut self, indices: &[usize]) -> Result<ClippedSum, TrainerError> {
        let chunk_size = self.max_physical_batch_size.unwrap_or(indices.len()).max(1);
        let groups = self
            .parts
            .engine
            .parameter_groups(&self.parts.model)
            .len()
            .max(1);
        let mut norms = Vec::new();
        let mut loss_sum = 0.0;
        for chunk in indices.chunks(chunk_size) {
            let mut batch = self.parts.data.gather(chunk)?;
            if let Some(augmentation) = &self.augmentation {
                batch = augmentation.augment(&batch, &mut self.rngs.augmentation)?;
            }
            let phase1 = self.parts.engine.norms(&self.parts.model, &batch)?;
            let outcome = clip(
                &self.parts.clip,
                phase1.norms.as_slice(),
                batch.num_examples(),
                groups,
            )?;
            let scales = match outcome.scales {
                ScaleFactors::PerSample(factors) => ScaleVector::new(factors)?,
                ScaleFactors::PerGroup { factors, groups } => {
                    ScaleVector::per_group(factors, groups)?
                }
            };
            self.parts
                .engine
                .accumulate_scaled(&mut self.parts.model, &scales)?;
            loss_sum += phase1.losses.iter().sum::<f64>();
            norms.extend_from_slice(phase1.norms.as_slice());
        }
        // The policy's state does not change within a step, so clipping the whole logical batch
        // gives the factors used chunk by chunk; its outcome drives the policy's update.
        let outcome = clip(&self.parts.clip, &norms, indices.len(), groups)?;
        Ok(ClippedSum {
            sensitivity: outcome.sensitivity,
            outcome,
            loss_sum,
            num_examples: indices.len(),
        })
    }

    /// Composes `event` if the budget allows it, returning ε after it (when a budget or a
    /// progress callback needs it).
    fn compose_within_budget(&mut self, event: &DpEvent) -> Result<Option<f64>, TrainerError> {
        let mut trial = self.parts.accountant.clone();
        trial.compose(event)?;
        let epsilon = if self.epsilon_budget.is_some() || self.callback.is_some() {
            Some(trial.epsilon(self.delta)?.epsilon)
        } else {
            None
        };
        if let (Some(budget), Some(after)) = (self.epsilon_budget, epsilon)
            && after > budget
        {
            self.parts.engine.zero_grad(&mut self.parts.model);
            return Err(TrainerError::BudgetExceeded {
                step: self.step,
                epsilon_spent: self.epsilon()?,
                epsilon_after_step: after,
                epsilon_budget: budget,
                delta: self.delta,
            });
        }
        self.parts.accountant = trial;
        Ok(epsilon)
    }

    /// The run's state after the steps so far.
    ///
    /// # Errors
    ///
    /// Engine errors while reading the parameters.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, TrainerError> {
        let mut parameters = Vec::new();
        self.parts
            .engine
            .visit_parameters(&mut self.parts.model, &mut |view| {
                parameters.push(view.values.to_vec())
            })?;
        Ok(Checkpoint {
            step: self.step,
            parameters,
            optimizer: self.parts.optimizer.clone(),
            ledger: self.parts.accountant.ledger().clone(),
            sampling_rng: self.rngs.sampling.checkpoint(),
            noise_rng: self.rngs.noise.checkpoint(),
            augmentation_rng: self.rngs.augmentation.checkpoint(),
        })
    }

    /// Continues from `checkpoint`, which must come from a trainer with the same configuration,
    /// data, model shape and generator kind.
    ///
    /// # Errors
    ///
    /// [`TrainerError::Checkpoint`] if the parameter shapes differ or the step is beyond the
    /// schedule; generator and accountant restore errors.
    pub fn restore(&mut self, checkpoint: Checkpoint) -> Result<(), TrainerError> {
        if checkpoint.step > self.total_steps() {
            return Err(TrainerError::Checkpoint {
                reason: format!(
                    "checkpoint at step {} is beyond the schedule",
                    checkpoint.step
                ),
            });
        }
        let groups = self.parts.engine.parameter_groups(&self.parts.model);
        let shapes_match = groups.len() == checkpoint.parameters.len()
            && groups
                .iter()
                .zip(&checkpoint.parameters)
                .all(|(g, p)| g.len == p.len());
        if !shapes_match {
            return Err(TrainerError::Checkpoint {
                reason: "parameter shapes differ from the model's".into(),
            });
        }
        let rngs = TrainerRngs::restore(
            checkpoint.sampling_rng,
            checkpoint.noise_rng,
            checkpoint.augmentation_rng,
        )?;
        let mut accountant = self.parts.accountant.clone();
        accountant.restore(&checkpoint.ledger)?;
        self.parts
            .engine
            .visit_parameters(&mut self.parts.model, &mut |view| {
                view.values
                    .copy_from_slice(&checkpoint.parameters[view.group]);
            })?;
        self.parts.engine.zero_grad(&mut self.parts.model);
        self.parts.accountant = accountant;
        self.parts.optimizer = checkpoint.optimizer;
        self.rngs = rngs;
        self.step = checkpoint.step;
        Ok(())
    }
}

struct ClippedSum {
    sensitivity: f64,
    outcome: ClipOutcome,
    loss_sum: f64,
    num_examples: usize,
}

fn clip<C: ClipPolicy>(
    policy: &C,
    norms: &[f64],
    num_examples: usize,
    groups: usize,
) -> Result<ClipOutcome, TrainerError> {
    let matrix = NormMatrix::new(norms, num_examples, groups).map_err(|e| TrainerError::Clip {
        message: e.to_string(),
    })?;
    policy.clip(&matrix).map_err(|e| TrainerError::Clip {
        message: e.to_string(),
    })
}

/// The noise multiplier of the joint release of the noisy gradient (multiplier σ_g) and the clip
/// policy's Gaussian release (σ_c) on the same batch: a Gaussian mechanism with
/// 1/σ² = 1/σ_g² + 1/σ_c² (both have sensitivity-normalized noise).
fn combine_with_clip_release(
    gradient_multiplier: f64,
    clip_event: &DpEvent,
) -> Result<f64, TrainerError> {
    match clip_event {
        DpEvent::NoOp => Ok(gradient_multiplier),
        DpEvent::Gaussian { noise_multiplier } => {
            Ok((gradient_multiplier.powi(-2) + noise_multiplier.powi(-2)).powf(-0.5))
        }
        other => Err(TrainerError::Clip {
            message: format!("the trainer cannot account the clip policy's event {other:?}"),
        }),
    }
}
