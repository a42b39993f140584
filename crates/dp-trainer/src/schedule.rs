//! Learning-rate schedules.

use crate::TrainerError;
use serde::{Deserialize, Serialize};

/// The learning rate as a function of the (0-based) logical step.
///
/// # Examples
///
/// ```
/// use dp_trainer::LearningRateSchedule;
///
/// let schedule = LearningRateSchedule::step_decay(0.1, 0.5, 100)?;
/// assert_eq!(schedule.learning_rate(99), 0.1);
/// assert_eq!(schedule.learning_rate(100), 0.05);
/// # Ok::<(), dp_trainer::TrainerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LearningRateSchedule {
    /// The same rate at every step.
    Constant {
        /// The rate.
        learning_rate: f64,
    },
    /// `initial · factor^floor(step / every)`.
    StepDecay {
        /// Rate at step 0.
        initial: f64,
        /// Multiplier applied every `every` steps.
        factor: f64,
        /// Period of the decay, in steps.
        every: u64,
    },
    /// Linear warm-up over `warmup_steps`, then cosine decay from `peak` to `floor` at
    /// `total_steps`.
    WarmupCosine {
        /// Rate at the end of warm-up.
        peak: f64,
        /// Rate at `total_steps` and after.
        floor: f64,
        /// Length of the warm-up.
        warmup_steps: u64,
        /// Step at which the decay ends.
        total_steps: u64,
    },
}

fn check_rate(name: &'static str, value: f64) -> Result<f64, TrainerError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(TrainerError::invalid(
            name,
            value,
            "must be finite and non-negative",
        ))
    }
}

impl LearningRateSchedule {
    /// A constant rate.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for a negative or non-finite rate.
    pub fn constant(learning_rate: f64) -> Result<Self, TrainerError> {
        Ok(Self::Constant {
            learning_rate: check_rate("learning_rate", learning_rate)?,
        })
    }

    /// Step decay.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for invalid rates or `every == 0`.
    pub fn step_decay(initial: f64, factor: f64, every: u64) -> Result<Self, TrainerError> {
        if every == 0 {
            return Err(TrainerError::invalid("every", 0.0, "must be positive"));
        }
        Ok(Self::StepDecay {
            initial: check_rate("initial", initial)?,
            factor: check_rate("factor", factor)?,
            every,
        })
    }

    /// Warm-up then cosine decay.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for invalid rates or `warmup_steps > total_steps`.
    pub fn warmup_cosine(
        peak: f64,
        floor: f64,
        warmup_steps: u64,
        total_steps: u64,
    ) -> Result<Self, TrainerError> {
        if warmup_steps > total_steps {
            return Err(TrainerError::invalid(
                "warmup_steps",
                warmup_steps as f64,
                "must not exceed total_steps",
            ));
        }
        Ok(Self::WarmupCosine {
            peak: check_rate("peak", peak)?,
            floor: check_rate("floor", floor)?,
            warmup_steps,
            total_steps,
        })
    }

    /// The rate at `step`.
    pub fn learning_rate(&self, step: u64) -> f64 {
        match *self {
            Self::Constant { learning_rate } => learning_rate,
            Self::StepDecay {
                initial,
                factor,
                every,
            } => initial * factor.powi(i32::try_from(step / every).unwrap_or(i32::MAX)),
            Self::WarmupCosine {
                peak,
                floor,
                warmup_steps,
                total_steps,
            } => {
                if step < warmup_steps {
                    peak * (step + 1) as f64 / warmup_steps as f64
                } else if step >= total_steps {
                    floor
                } else {
                    let progress =
                        (step - warmup_steps) as f64 / (total_steps - warmup_steps).max(1) as f64;
                    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_ramps_up_then_down() {
        let s = LearningRateSchedule::warmup_cosine(1.0, 0.0, 10, 110).unwrap();
        assert!((s.learning_rate(0) - 0.1).abs() < 1e-12);
        assert!((s.learning_rate(9) - 1.0).abs() < 1e-12);
        assert!((s.learning_rate(10) - 1.0).abs() < 1e-12);
        assert!((s.learning_rate(60) - 0.5).abs() < 1e-12);
        assert_eq!(s.learning_rate(500), 0.0);
        assert!(LearningRateSchedule::constant(-1.0).is_err());
    }
}
