//! The DP-SGD loop of dp-rs (DESIGN.md section 3.5), generic over the per-sample gradient engine
//! (`dp-engine`), the batch sampler and noise (`dp-sampler`), the clip policy (`dp-clip`) and the
//! accountant (`dp-accountant`). It names no concrete engine.
//!
//! - [`DpTrainer`]: sample a Poisson batch -> norms -> clip factors -> clipped sum -> add
//!   N(0, (σ·C)²) -> divide by the expected batch size -> optimizer -> compose the step's event;
//!   with budget enforcement, virtual steps, augmentation multiplicity, batch-size schedules
//!   ([`TrainingPhase`]) and checkpoint/resume ([`Checkpoint`]).
//! - [`DpSgdConfig`] (no `Default`), [`DpSgdConfig::calibrated`] (`make_private_with_epsilon`).
//! - [`Optimizer`] (SGD with momentum, Adam, AdamW), [`LearningRateSchedule`].
//! - [`RandomizedResponseWithPrior`]: label DP as an alternative to DP-SGD.
//! - [`train_non_private`]: the non-private baseline through the same engine.
//! - [`StepReport`] and [`TerminalProgress`] for progress reporting.
mod calibrate;
mod checkpoint;
mod config;
mod error;
mod label_dp;
mod non_private;
mod optimizer;
mod progress;
mod rngs;
mod schedule;
mod trainer;

pub use calibrate::SECURE_NOISE_HEADROOM;
pub use checkpoint::Checkpoint;
pub use config::{DpSgdConfig, TrainingPhase};
pub use error::TrainerError;
pub use label_dp::RandomizedResponseWithPrior;
pub use non_private::{NonPrivateConfig, train_non_private};
pub use optimizer::{Optimizer, OptimizerKind};
pub use progress::{StepReport, TerminalProgress};
pub use rngs::TrainerRngs;
pub use schedule::LearningRateSchedule;
pub use trainer::{Augmentation, DpTrainer, TrainerParts};
