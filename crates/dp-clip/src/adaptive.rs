//! Adaptive clipping to a target quantile of the norms (Andrew et al. 2021).

use dp_accountant::DpEvent;

use crate::error::check_positive;
use crate::norms::clip_factor;
use crate::per_sample::per_sample_outcome;
use crate::{ClipError, ClipOutcome, ClipPolicy, NoiseSource, NormMatrix};

/// The clip norm is kept in this range so that noise std and factors stay normal `f64`s.
const CLIP_NORM_RANGE: (f64, f64) = (1e-100, 1e100);

/// Parameters of [`AdaptiveQuantileClip`]. No `Default`: the noise multiplier of the count is
/// a privacy parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveQuantileConfig {
    /// Clip norm of the first step, C_0.
    pub initial_clip_norm: f64,
    /// Fraction of samples meant to be unclipped, γ in [0, 1] (Andrew et al. use 0.5).
    pub target_unclipped_quantile: f64,
    /// Step size of the geometric update, η_C (Andrew et al. use 0.2).
    pub learning_rate: f64,
    /// Noise multiplier of the unclipped count, σ_b relative to the count's sensitivity 1/2.
    pub count_noise_multiplier: f64,
    /// Expected batch size q·N, the count's normalizer (never the realized size).
    pub expected_batch_size: f64,
}

/// Flat clipping whose norm tracks a target quantile of the per-sample norms (Andrew et al.
/// 2021): after each step, with `b̃` the noisy fraction of unclipped samples,
/// `C ← C·exp(-η(b̃ - γ))`.
///
/// The noisy fraction is `(Σ_i (b_i - 1/2) + N(0, (σ_b/2)²))/m + 1/2`, with `b_i = 1` when
/// sample i was unclipped (0 for invalid norms) and `m` the expected batch size; centring the
/// indicators halves the count's sensitivity, as in Andrew et al.
///
/// # Privacy
///
/// Clipping itself has sensitivity C (the current clip norm). Each [`ClipPolicy::update`]
/// releases the noisy count, a Gaussian mechanism on the same batch with noise multiplier
/// `count_noise_multiplier` under add/remove of one example; it returns
/// `DpEvent::gaussian(count_noise_multiplier)`, which the trainer composes with the gradient's
/// Gaussian inside the sampler's event. Both on one batch equal a single Gaussian with
/// multiplier [`combined_noise_multiplier`] (Andrew et al. 2021, Theorem 1).
///
/// # Examples
///
/// ```
/// use dp_accountant::DpEvent;
/// use dp_clip::{AdaptiveQuantileClip, AdaptiveQuantileConfig, ClipPolicy, NormMatrix};
///
/// let mut policy = AdaptiveQuantileClip::new(AdaptiveQuantileConfig {
///     initial_clip_norm: 1.0,
///     target_unclipped_quantile: 0.5,
///     learning_rate: 0.2,
///     count_noise_multiplier: 10.0,
///     expected_batch_size: 4.0,
/// })?;
/// let outcome = policy.clip(&NormMatrix::per_sample(&[3.0, 4.0, 5.0, 6.0]))?;
/// // All four were clipped: the clip norm grows. (A fixed "noise" draw for the example.)
/// let event = policy.update(&outcome, &mut |_std: f64| Ok::<f64, std::fmt::Error>(0.0))?;
/// assert_eq!(event, DpEvent::gaussian(10.0));
/// assert!((policy.clip_norm() - (0.2f64 * 0.5).exp()).abs() < 1e-12);
/// # Ok::<(), dp_clip::ClipError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveQuantileClip {
    clip_norm: f64,
    config: AdaptiveQuantileConfig,
}

impl AdaptiveQuantileClip {
    /// An adaptive policy starting at `config.initial_clip_norm`.
    ///
    /// # Errors
    ///
    /// [`ClipError::InvalidParameter`] unless the initial clip norm is in [1e-100, 1e100], the
    /// target quantile in [0, 1], and the learning rate, count noise multiplier and expected
    /// batch size positive and finite.
    pub fn new(config: AdaptiveQuantileConfig) -> Result<Self, ClipError> {
        let (low, high) = CLIP_NORM_RANGE;
        if !(low..=high).contains(&config.initial_clip_norm) {
            return Err(ClipError::InvalidParameter {
                name: "initial_clip_norm",
                value: config.initial_clip_norm,
                reason: "must be in [1e-100, 1e100]",
            });
        }
        if !(0.0..=1.0).contains(&config.target_unclipped_quantile) {
            return Err(ClipError::InvalidParameter {
                name: "target_unclipped_quantile",
                value: config.target_unclipped_quantile,
                reason: "must be in [0, 1]",
            });
        }
        check_positive("learning_rate", config.learning_rate)?;
        check_positive("count_noise_multiplier", config.count_noise_multiplier)?;
        check_positive("expected_batch_size", config.expected_batch_size)?;
        Ok(AdaptiveQuantileClip {
            clip_norm: config.initial_clip_norm,
            config,
        })
    }

    /// The current clip norm.
    pub fn clip_norm(&self) -> f64 {
        self.clip_norm
    }

    /// Std of the noise added to the centred count: `count_noise_multiplier / 2`.
    pub fn count_noise_std(&self) -> f64 {
        self.config.count_noise_multiplier * 0.5
    }
}

impl ClipPolicy for AdaptiveQuantileClip {
    fn clip(&self, norms: &NormMatrix<'_>) -> Result<ClipOutcome, ClipError> {
        let bound = self.clip_norm;
        Ok(per_sample_outcome(norms, bound, |norm| {
            clip_factor(bound, norm)
        }))
    }

    fn sensitivity(&self) -> f64 {
        self.clip_norm
    }

    fn update(
        &mut self,
        outcome: &ClipOutcome,
        noise: &mut dyn NoiseSource,
    ) -> Result<DpEvent, ClipError> {
        if outcome.sensitivity != self.clip_norm {
            return Err(ClipError::StaleOutcome {
                outcome_clip_norm: outcome.sensitivity,
                current_clip_norm: self.clip_norm,
            });
        }
        let batch_size = outcome.scales.batch_size() as f64;
        let centred_count = outcome.unclipped as f64 - 0.5 * batch_size;
        let draw = noise.gaussian(self.count_noise_std())?;
        if !draw.is_finite() {
            return Err(ClipError::NoiseSource {
                reason: format!("non-finite draw {draw}"),
            });
        }
        let unclipped_fraction = (centred_count + draw) / self.config.expected_batch_size + 0.5;
        let step = -self.config.learning_rate
            * (unclipped_fraction - self.config.target_unclipped_quantile);
        let (low, high) = CLIP_NORM_RANGE;
        self.clip_norm = (self.clip_norm * step.exp()).clamp(low, high);
        Ok(DpEvent::gaussian(self.config.count_noise_multiplier))
    }
}

/// The noise multiplier of one Gaussian mechanism equivalent to two run on the same batch,
/// with multipliers `gradient` and `count`: `(gradient⁻² + count⁻²)^(-1/2)`, rounded down
/// (the safe side: a smaller multiplier means a larger ε). Non-positive or NaN inputs give
/// NaN, which every accountant refuses.
///
/// # Examples
///
/// ```
/// let combined = dp_clip::combined_noise_multiplier(1.0, 1.0);
/// assert!((combined - 0.5f64.sqrt()).abs() < 1e-12 && combined <= 0.5f64.sqrt());
/// ```
pub fn combined_noise_multiplier(gradient: f64, count: f64) -> f64 {
    if !(gradient > 0.0 && count > 0.0) {
        return f64::NAN;
    }
    let combined = (gradient.powi(-2) + count.powi(-2)).sqrt().recip();
    // Four correctly rounded operations: four ulps cover them.
    combined * (1.0 - 4.0 * f64::EPSILON)
}
