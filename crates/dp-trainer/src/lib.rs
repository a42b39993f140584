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
//!
//! # Examples
//!
//! Five private steps of a logistic regression on a toy data set, with the pure-Rust engine:
//!
//! ```
//! use dp_accountant::{NeighbouringRelation, RdpAccountant};
//! use dp_clip::FlatClip;
//! use dp_engine_ndarray::{ArrayDataset, BookKeepingEngine, Mlp};
//! use dp_trainer::{
//!     DpSgdConfig, DpTrainer, LearningRateSchedule, Optimizer, TrainerParts, TrainerRngs,
//! };
//! use ndarray::Array2;
//! use rand::SeedableRng;
//!
//! let features = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0);
//! let labels = (0..200).map(|i| i % 2).collect();
//! let mut init = rand::rngs::StdRng::seed_from_u64(0);
//! let parts = TrainerParts {
//!     engine: BookKeepingEngine::new(),
//!     model: Mlp::logistic_regression(2, 2, &mut init)?,
//!     data: ArrayDataset::new(features, labels)?,
//!     clip: FlatClip::new(1.0)?,
//!     accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
//!     optimizer: Optimizer::sgd(0.9)?,
//!     schedule: LearningRateSchedule::constant(0.1)?,
//! };
//! // σ = 1.1, q = 0.1, 5 steps, ε reported at δ = 1e-5, and refused beyond ε = 8.
//! let config = DpSgdConfig::new(1.1, 0.1, 5, 1e-5)?.with_epsilon_budget(8.0)?;
//! let mut trainer = DpTrainer::new(parts, &config, TrainerRngs::seeded(42))?;
//! trainer.run()?;
//! assert_eq!(trainer.step_count(), 5);
//! assert!(trainer.epsilon()? < 8.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
