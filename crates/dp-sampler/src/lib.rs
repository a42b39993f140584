//! All the randomness of differentially private training: generators, batch samplers that
//! return the privacy event they justify, and Gaussian noise.
//!
//! - [`DpRng`]: the generator trait, with [`SecureRng`] (ChaCha20 keyed by the operating
//!   system, for production) and [`SeededRng`] (ChaCha20 from a recorded seed, for
//!   experiments); checkpoints resume the stream.
//! - [`BatchSampler`]: [`Poisson`] (the default), [`TruncatedPoisson`] (fixed shapes, with the
//!   δ it costs), [`Shuffle`] (accounted as sampling without replacement, never as Poisson) and
//!   [`UserLevelPoisson`] (the privacy unit is a user).
//! - [`add_gaussian_noise`]: noise into `f32`/`f64` buffers, [`NoiseMode::Secure`] (discrete
//!   Gaussian on a grid, [`DiscreteGaussian`]) or [`NoiseMode::Fast`], with a [`NoiseReport`].
//!
//! Siblings: `dp-accountant` interprets the [`DpEvent`](dp_accountant::DpEvent)s produced
//! here; `dp-clip` turns per-sample norms into scale factors and the sensitivity the noise is
//! calibrated to; `dp-trainer` calls a sampler, a clip policy and [`add_gaussian_noise`] each
//! step.
//!
//! # Examples
//!
//! One step of DP-SGD's randomness:
//!
//! ```
//! use dp_accountant::DpEvent;
//! use dp_sampler::{BatchSampler, NoiseMode, Poisson, SeededRng, add_gaussian_noise};
//!
//! let mut rng = SeededRng::new(2024);
//! let mut sampler = Poisson::with_expected_batch_size(50_000, 500.0)?;
//! let batch = sampler.sample(&mut rng);
//! let (noise_multiplier, max_grad_norm) = (1.1, 1.0);
//! let mut summed_gradient = vec![0.0f32; 10];
//! let report = add_gaussian_noise(
//!     &mut summed_gradient,
//!     noise_multiplier * max_grad_norm,
//!     NoiseMode::Secure,
//!     &mut rng,
//! )?;
//! let event = sampler.step_event(DpEvent::gaussian(noise_multiplier));
//! assert_eq!(event, DpEvent::gaussian(1.1).poisson_sampled(0.01));
//! assert_eq!(report.mode, NoiseMode::Secure);
//! assert!(batch.len() < 700);
//! # Ok::<(), dp_sampler::SamplerError>(())
//! ```

mod batch;
mod error;
mod noise;
mod poisson;
mod rng;
mod shuffle;
mod truncated;
mod user_level;

pub use batch::{Batch, BatchSampler, PrivacyUnit};
pub use error::SamplerError;
pub use noise::{
    DiscreteGaussian, NoiseElement, NoiseMode, NoiseReport, add_gaussian_noise, sample_gaussian,
};
pub use poisson::Poisson;
pub use rng::{DpRng, RngCheckpoint, RngProvenance, SecureRng, SeededRng};
pub use shuffle::Shuffle;
pub use truncated::TruncatedPoisson;
pub use user_level::UserLevelPoisson;
