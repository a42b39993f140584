//! The privacy configuration of a DP-SGD run, and training phases (batch-size schedules).

use crate::TrainerError;
use dp_sampler::NoiseMode;

/// The privacy parameters of a DP-SGD run. There is deliberately no `Default`: there is no safe
/// default ε.
///
/// The clipping bound lives in the clip policy the trainer is given (`dp_clip::FlatClip::new(
/// max_grad_norm)` for the usual flat clipping); the noise std of a step is
/// `noise_multiplier · sensitivity` of that policy.
///
/// # Examples
///
/// ```
/// use dp_trainer::DpSgdConfig;
///
/// // 60 000 examples, expected batch 256, 60 epochs, δ = 1e-5, refuse to go past ε = 3.
/// let config = DpSgdConfig::with_epochs(1.1, 256.0 / 60_000.0, 60.0, 1e-5)?
///     .with_epsilon_budget(3.0)?;
/// assert_eq!(config.steps(), 14_063);
/// # Ok::<(), dp_trainer::TrainerError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DpSgdConfig {
    noise_multiplier: f64,
    sampling_probability: f64,
    steps: u64,
    delta: f64,
    epsilon_budget: Option<f64>,
    noise_mode: NoiseMode,
    max_physical_batch_size: Option<usize>,
}

pub(crate) fn check_noise_multiplier(noise_multiplier: f64) -> Result<f64, TrainerError> {
    if noise_multiplier.is_finite() && noise_multiplier > 0.0 {
        Ok(noise_multiplier)
    } else {
        Err(TrainerError::invalid(
            "noise_multiplier",
            noise_multiplier,
            "must be finite and positive",
        ))
    }
}

pub(crate) fn check_sampling_probability(q: f64) -> Result<f64, TrainerError> {
    if q > 0.0 && q <= 1.0 {
        Ok(q)
    } else {
        Err(TrainerError::invalid(
            "sampling_probability",
            q,
            "must be in (0, 1]",
        ))
    }
}

pub(crate) fn check_delta(delta: f64) -> Result<f64, TrainerError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(TrainerError::invalid("delta", delta, "must be in (0, 1)"))
    }
}

impl DpSgdConfig {
    /// `steps` logical steps with Poisson sampling probability `sampling_probability` and noise
    /// multiplier `noise_multiplier`, reporting ε at `delta`. Secure noise, no budget, no
    /// physical batch bound.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for σ ≤ 0 or non-finite, q outside (0, 1], δ outside
    /// (0, 1) or zero steps.
    pub fn new(
        noise_multiplier: f64,
        sampling_probability: f64,
        steps: u64,
        delta: f64,
    ) -> Result<Self, TrainerError> {
        if steps == 0 {
            return Err(TrainerError::invalid("steps", 0.0, "must be positive"));
        }
        Ok(Self {
            noise_multiplier: check_noise_multiplier(noise_multiplier)?,
            sampling_probability: check_sampling_probability(sampling_probability)?,
            steps,
            delta: check_delta(delta)?,
            epsilon_budget: None,
            noise_mode: NoiseMode::Secure,
            max_physical_batch_size: None,
        })
    }

    /// As [`new`](Self::new) with `steps = ceil(epochs / sampling_probability)`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and for non-positive or non-finite `epochs`.
    pub fn with_epochs(
        noise_multiplier: f64,
        sampling_probability: f64,
        epochs: f64,
        delta: f64,
    ) -> Result<Self, TrainerError> {
        let q = check_sampling_probability(sampling_probability)?;
        if !(epochs.is_finite() && epochs > 0.0) {
            return Err(TrainerError::invalid(
                "epochs",
                epochs,
                "must be finite and positive",
            ));
        }
        Self::new(noise_multiplier, q, (epochs / q).ceil() as u64, delta)
    }

    /// Refuse any step after which ε at δ would exceed `epsilon_budget`.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] unless the budget is finite and positive.
    pub fn with_epsilon_budget(mut self, epsilon_budget: f64) -> Result<Self, TrainerError> {
        if !(epsilon_budget.is_finite() && epsilon_budget > 0.0) {
            return Err(TrainerError::invalid(
                "epsilon_budget",
                epsilon_budget,
                "must be finite and positive",
            ));
        }
        self.epsilon_budget = Some(epsilon_budget);
        Ok(self)
    }

    /// Use `noise_mode` for the gradient noise ([`NoiseMode::Secure`] by default).
    pub fn with_noise_mode(mut self, noise_mode: NoiseMode) -> Self {
        self.noise_mode = noise_mode;
        self
    }

    /// Process each logical batch in physical chunks of at most `max_physical_batch_size`
    /// examples (virtual steps); noise is still drawn once per logical step.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for 0.
    pub fn with_max_physical_batch_size(
        mut self,
        max_physical_batch_size: usize,
    ) -> Result<Self, TrainerError> {
        if max_physical_batch_size == 0 {
            return Err(TrainerError::invalid(
                "max_physical_batch_size",
                0.0,
                "must be positive",
            ));
        }
        self.max_physical_batch_size = Some(max_physical_batch_size);
        Ok(self)
    }

    /// The noise multiplier σ.
    pub fn noise_multiplier(&self) -> f64 {
        self.noise_multiplier
    }

    /// The Poisson sampling probability q.
    pub fn sampling_probability(&self) -> f64 {
        self.sampling_probability
    }

    /// Number of logical steps.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The δ at which ε is reported and the budget enforced.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// The ε budget, if any.
    pub fn epsilon_budget(&self) -> Option<f64> {
        self.epsilon_budget
    }

    /// How gradient noise is generated.
    pub fn noise_mode(&self) -> NoiseMode {
        self.noise_mode
    }

    /// The physical batch bound, if any.
    pub fn max_physical_batch_size(&self) -> Option<usize> {
        self.max_physical_batch_size
    }
}

/// A stretch of training with one sampler and one noise multiplier. A run of several phases is
/// a batch-size (or noise) schedule; each step is accounted with its own phase's event, so the
/// heterogeneous composition is exact.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingPhase<S> {
    /// The batch sampler of this phase.
    pub sampler: S,
    /// The noise multiplier of this phase.
    pub noise_multiplier: f64,
    /// Number of logical steps in this phase.
    pub steps: u64,
}

impl<S> TrainingPhase<S> {
    /// A phase of `steps` steps.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for a bad noise multiplier or zero steps.
    pub fn new(sampler: S, noise_multiplier: f64, steps: u64) -> Result<Self, TrainerError> {
        if steps == 0 {
            return Err(TrainerError::invalid("steps", 0.0, "must be positive"));
        }
        Ok(Self {
            sampler,
            noise_multiplier: check_noise_multiplier(noise_multiplier)?,
            steps,
        })
    }
}
