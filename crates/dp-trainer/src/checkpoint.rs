//! Checkpoints: everything a run needs to continue exactly where it stopped.

use crate::{Optimizer, TrainerError};
use dp_accountant::Ledger;
use dp_sampler::RngCheckpoint;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The state of a DP-SGD run after some logical steps: parameters, optimizer moments, the
/// privacy ledger and the random streams.
///
/// Restoring it into a trainer built with the same configuration, data and engine continues
/// the run bit for bit (on CPU, with seeded generators): same weights, same ε.
///
/// # Privacy
///
/// The ledger restores exactly the privacy already spent. Seeded generator checkpoints hold their
/// keys: whoever reads them can recompute the noise, so treat such files as secrets. Secure
/// generators checkpoint no key and are re-keyed from the operating system on restore.
/// Stateful clip policies (adaptive clipping) are not included: save and restore them yourself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Logical steps completed.
    pub step: u64,
    /// Parameter values per group, in the engine's group order.
    pub parameters: Vec<Vec<f32>>,
    /// Optimizer state.
    pub optimizer: Optimizer,
    /// Every privacy event composed so far.
    pub ledger: Ledger,
    /// Batch-sampling stream.
    pub sampling_rng: RngCheckpoint,
    /// Noise stream.
    pub noise_rng: RngCheckpoint,
    /// Augmentation stream.
    pub augmentation_rng: RngCheckpoint,
}

fn checkpoint_error(reason: impl ToString) -> TrainerError {
    TrainerError::Checkpoint {
        reason: reason.to_string(),
    }
}

impl Checkpoint {
    /// Writes the checkpoint as JSON (f32 and f64 values round-trip exactly).
    ///
    /// # Errors
    ///
    /// [`TrainerError::Checkpoint`] on I/O or serialization failure.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TrainerError> {
        let text = serde_json::to_string(self).map_err(checkpoint_error)?;
        std::fs::write(path, text).map_err(checkpoint_error)
    }

    /// Reads a checkpoint written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`TrainerError::Checkpoint`] on I/O or parse failure.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TrainerError> {
        let text = std::fs::read_to_string(path).map_err(checkpoint_error)?;
        serde_json::from_str(&text).map_err(checkpoint_error)
    }
}
