//! Policies with one factor per sample: flat and automatic clipping, and the loop they share
//! with adaptive clipping.

use dp_accountant::DpEvent;

use crate::error::check_positive;
use crate::norms::{at_most, clip_factor, total_norm};
use crate::{ClipError, ClipOutcome, ClipPolicy, NoiseSource, NormMatrix, ScaleFactors};

/// One factor per sample from its whole-gradient norm: invalid rows get 0 and are counted,
/// rows whose norm is at most `bound` are counted as unclipped.
pub(crate) fn per_sample_outcome(
    norms: &NormMatrix<'_>,
    bound: f64,
    factor: impl Fn(f64) -> f64,
) -> ClipOutcome {
    let mut invalid_norms = 0;
    let mut unclipped = 0;
    let factors = norms
        .rows()
        .map(|row| match total_norm(row) {
            Some(norm) => {
                unclipped += usize::from(norm <= bound);
                factor(norm)
            }
            None => {
                invalid_norms += 1;
                0.0
            }
        })
        .collect();
    ClipOutcome {
        scales: ScaleFactors::PerSample(factors),
        sensitivity: bound,
        invalid_norms,
        unclipped,
    }
}

/// Flat clipping (Abadi et al. 2016): each sample's whole gradient (all groups together) is
/// scaled to L2 norm at most `max_grad_norm`, by `min(1, C/‖g‖)`.
///
/// # Privacy
///
/// Sensitivity `max_grad_norm` under add/remove of one example.
///
/// # Examples
///
/// ```
/// use dp_clip::{ClipPolicy, FlatClip, NormMatrix, ScaleFactors};
///
/// let policy = FlatClip::new(1.0)?;
/// let outcome = policy.clip(&NormMatrix::per_sample(&[0.5, 4.0, f64::NAN]))?;
/// assert_eq!(outcome.scales, ScaleFactors::PerSample(vec![1.0, 0.25, 0.0]));
/// assert_eq!((outcome.sensitivity, outcome.invalid_norms), (1.0, 1));
/// assert!(FlatClip::new(0.0).is_err());
/// # Ok::<(), dp_clip::ClipError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FlatClip {
    max_grad_norm: f64,
}

impl FlatClip {
    /// Flat clipping at `max_grad_norm`.
    ///
    /// # Errors
    ///
    /// [`ClipError::InvalidParameter`] unless `max_grad_norm` is positive and finite.
    pub fn new(max_grad_norm: f64) -> Result<Self, ClipError> {
        Ok(FlatClip {
            max_grad_norm: check_positive("max_grad_norm", max_grad_norm)?,
        })
    }

    /// The bound C.
    pub fn max_grad_norm(&self) -> f64 {
        self.max_grad_norm
    }
}

impl ClipPolicy for FlatClip {
    fn clip(&self, norms: &NormMatrix<'_>) -> Result<ClipOutcome, ClipError> {
        let bound = self.max_grad_norm;
        Ok(per_sample_outcome(norms, bound, |norm| {
            clip_factor(bound, norm)
        }))
    }

    fn sensitivity(&self) -> f64 {
        self.max_grad_norm
    }

    fn update(&mut self, _: &ClipOutcome, _: &mut dyn NoiseSource) -> Result<DpEvent, ClipError> {
        Ok(DpEvent::NoOp)
    }
}

/// Automatic (normalized) clipping (Bu et al. 2022): every sample is scaled by
/// `C/(‖g‖ + stability)`, so every scaled gradient has norm just below C and no clip norm
/// needs tuning (the learning rate absorbs C). Factors can exceed 1.
///
/// # Privacy
///
/// Sensitivity `max_grad_norm`: `C·‖g‖/(‖g‖ + γ) < C` for γ > 0.
///
/// # Examples
///
/// ```
/// use dp_clip::{AutomaticClip, ClipPolicy, NormMatrix};
///
/// let policy = AutomaticClip::new(1.0, 0.01)?;
/// let outcome = policy.clip(&NormMatrix::per_sample(&[0.0, 99.99]))?;
/// assert_eq!(outcome.scales.get(0, 0), Some(100.0));
/// assert!((outcome.scales.get(1, 0).unwrap() - 0.01).abs() < 1e-15);
/// # Ok::<(), dp_clip::ClipError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AutomaticClip {
    max_grad_norm: f64,
    stability: f64,
}

impl AutomaticClip {
    /// Automatic clipping with bound `max_grad_norm` and stability constant `stability`
    /// (γ; Bu et al. use 0.01).
    ///
    /// # Errors
    ///
    /// [`ClipError::InvalidParameter`] unless both are positive and finite.
    pub fn new(max_grad_norm: f64, stability: f64) -> Result<Self, ClipError> {
        Ok(AutomaticClip {
            max_grad_norm: check_positive("max_grad_norm", max_grad_norm)?,
            stability: check_positive("stability", stability)?,
        })
    }
}

impl ClipPolicy for AutomaticClip {
    fn clip(&self, norms: &NormMatrix<'_>) -> Result<ClipOutcome, ClipError> {
        let bound = self.max_grad_norm;
        Ok(per_sample_outcome(norms, bound, |norm| {
            at_most(bound / (norm + self.stability), norm, bound)
        }))
    }

    fn sensitivity(&self) -> f64 {
        self.max_grad_norm
    }

    fn update(&mut self, _: &ClipOutcome, _: &mut dyn NoiseSource) -> Result<DpEvent, ClipError> {
        Ok(DpEvent::NoOp)
    }
}
