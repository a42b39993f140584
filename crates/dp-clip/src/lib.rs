//! Clipping policies for DP-SGD: per-sample gradient norms in, scale factors and the L2
//! sensitivity the noise must be calibrated to out. No tensors: engines compute the norms
//! and apply the factors.
//!
//! - [`ClipPolicy`], over a [`NormMatrix`] (batch x groups) and returning a [`ClipOutcome`];
//! - [`FlatClip`] (Abadi et al. 2016), [`PerLayerClip`] (sensitivity `sqrt(Σ C_k²)`),
//!   [`AutomaticClip`] (Bu et al. 2022) and [`AdaptiveQuantileClip`] (Andrew et al. 2021,
//!   which spends privacy budget and returns its [`DpEvent`](dp_accountant::DpEvent)).
//!
//! Non-finite (or negative) norms get factor 0 and are counted in
//! [`ClipOutcome::invalid_norms`]; they never make a policy fail or take another path.
//!
//! Siblings: `dp-accountant` composes the events; `dp-sampler` draws batches and the noise
//! (including the noisy count of [`AdaptiveQuantileClip`], through [`NoiseSource`]);
//! `dp-trainer` runs them in order each step.
//!
//! # Examples
//!
//! ```
//! use dp_clip::{ClipPolicy, FlatClip, NormMatrix};
//!
//! // Three samples, two parameter groups each.
//! let norms = [3.0, 4.0, 0.3, 0.4, f64::NAN, 1.0];
//! let policy = FlatClip::new(1.0)?;
//! let outcome = policy.clip(&NormMatrix::new(&norms, 3, 2)?)?;
//! assert_eq!(outcome.scales.get(0, 1), Some(0.2)); // norm 5 scaled to 1
//! assert_eq!(outcome.scales.get(1, 0), Some(1.0)); // norm 0.5 kept
//! assert_eq!(outcome.scales.get(2, 0), Some(0.0)); // NaN: excluded and counted
//! assert_eq!((outcome.invalid_norms, outcome.sensitivity), (1, 1.0));
//! # Ok::<(), dp_clip::ClipError>(())
//! ```

mod adaptive;
mod error;
mod norms;
mod outcome;
mod per_layer;
mod per_sample;
mod policy;

pub use adaptive::{AdaptiveQuantileClip, AdaptiveQuantileConfig, combined_noise_multiplier};
pub use error::ClipError;
pub use norms::NormMatrix;
pub use outcome::{ClipOutcome, ScaleFactors};
pub use per_layer::PerLayerClip;
pub use per_sample::{AutomaticClip, FlatClip};
pub use policy::{ClipPolicy, NoiseSource};
