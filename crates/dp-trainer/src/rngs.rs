//! The trainer's three random streams.

use dp_sampler::{DpRng, SecureRng, SeededRng};
use rand::Rng;

/// Separate generators for batch sampling, gradient noise and data augmentation, so that
/// changing one (say, the physical chunking or the augmentation) never shifts another's stream.
#[derive(Debug)]
pub struct TrainerRngs<R> {
    /// Draws the Poisson batches.
    pub sampling: R,
    /// Draws the Gaussian noise (and the clip policy's noise).
    pub noise: R,
    /// Drives the caller's augmentation.
    pub augmentation: R,
}

impl TrainerRngs<SeededRng> {
    /// Three reproducible streams derived from one recorded seed (for experiments and tests).
    pub fn seeded(seed: u64) -> Self {
        let mut root = SeededRng::new(seed);
        Self {
            sampling: SeededRng::new(root.random()),
            noise: SeededRng::new(root.random()),
            augmentation: SeededRng::new(root.random()),
        }
    }
}

impl TrainerRngs<SecureRng> {
    /// Three streams keyed by the operating system (production).
    ///
    /// # Errors
    ///
    /// When the operating system's entropy source fails.
    pub fn secure() -> Result<Self, dp_sampler::SamplerError> {
        Ok(Self {
            sampling: SecureRng::new()?,
            noise: SecureRng::new()?,
            augmentation: SecureRng::new()?,
        })
    }
}

impl<R: DpRng> TrainerRngs<R> {
    pub(crate) fn restore(
        sampling: dp_sampler::RngCheckpoint,
        noise: dp_sampler::RngCheckpoint,
        augmentation: dp_sampler::RngCheckpoint,
    ) -> Result<Self, dp_sampler::SamplerError> {
        Ok(Self {
            sampling: R::restore(sampling)?,
            noise: R::restore(noise)?,
            augmentation: R::restore(augmentation)?,
        })
    }
}
