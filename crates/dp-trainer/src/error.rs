//! The one error type of the trainer.

use dp_accountant::AccountantError;
use dp_engine::EngineError;
use dp_sampler::SamplerError;
use thiserror::Error;

/// What can go wrong while configuring or running private training.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrainerError {
    /// A configuration value is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The step would spend more than the privacy budget; it was not taken and nothing about
    /// it was released.
    #[error(
        "privacy budget exhausted: step {step} would raise epsilon from {epsilon_spent} to \
         {epsilon_after_step} at delta = {delta}, above the budget {epsilon_budget}; the step was refused"
    )]
    BudgetExceeded {
        /// The logical step that was refused (0-based).
        step: u64,
        /// ε spent before the step.
        epsilon_spent: f64,
        /// ε the step would have brought the total to.
        epsilon_after_step: f64,
        /// The budget.
        epsilon_budget: f64,
        /// The δ of the budget.
        delta: f64,
    },
    /// The clipping policy failed.
    #[error("clipping policy error: {message}")]
    Clip {
        /// The policy's message.
        message: String,
    },
    /// A checkpoint could not be written, read or applied.
    #[error("checkpoint error: {reason}")]
    Checkpoint {
        /// What went wrong.
        reason: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The sampler or noise generator failed.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// The accountant failed (for example an unsupported event).
    #[error(transparent)]
    Accountant(#[from] AccountantError),
}

impl TrainerError {
    pub(crate) fn invalid(name: &'static str, value: f64, reason: &'static str) -> Self {
        Self::InvalidParameter {
            name,
            value,
            reason,
        }
    }
}
