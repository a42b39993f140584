//! Shuffling: fixed-size batches from a fresh permutation each epoch.

use dp_accountant::DpEvent;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{check_positive_count, invalid};
use crate::rng::{derive_stream_key, derived_stream};
use crate::{Batch, BatchSampler, DpRng, PrivacyUnit, SamplerError};

/// Fixed-size batches cut from a uniformly random permutation drawn at the start of each
/// epoch; the `dataset_size % batch_size` examples left over at the end of an epoch are not
/// used in that epoch.
///
/// # Privacy
///
/// Shuffling is not Poisson sampling, and accounting it as such can under-report ε
/// (Chua et al. 2024). A step is therefore accounted as
/// `mechanism.sampled_without_replacement(N, B)`: each batch is, on its own, a uniformly
/// random subset of exactly `B` examples, under the replace-one neighbouring relation. The
/// event makes the choice visible in the ledger. Composing it over steps treats batches as
/// independent, which the batches of one epoch are not (each example appears in exactly one);
/// this crate offers no tighter accountant for shuffled batches, so prefer [`crate::Poisson`]
/// when the guarantee matters.
///
/// The serialized state (for checkpoints) holds the current epoch's permutation key; treat it
/// as confidential as the data.
///
/// # Examples
///
/// ```
/// use dp_accountant::DpEvent;
/// use dp_sampler::{BatchSampler, SeededRng, Shuffle};
///
/// let mut sampler = Shuffle::new(10, 3)?;
/// let mut rng = SeededRng::new(9);
/// let epoch: Vec<usize> = (0..3).flat_map(|_| sampler.sample(&mut rng).indices).collect();
/// let mut distinct = epoch.clone();
/// distinct.sort();
/// distinct.dedup();
/// assert_eq!(distinct.len(), 9);
/// assert_eq!(
///     sampler.step_event(DpEvent::gaussian(1.0)),
///     DpEvent::gaussian(1.0).sampled_without_replacement(10, 3),
/// );
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "ShuffleState", into = "ShuffleState")]
pub struct Shuffle {
    state: ShuffleState,
    /// The current epoch's permutation, rebuilt from `state.epoch_key` when empty.
    permutation: Vec<usize>,
}

/// The serialized form of a [`Shuffle`]: validated again when deserialized.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ShuffleState {
    dataset_size: usize,
    batch_size: usize,
    /// Key of the current epoch's permutation; `None` before the first batch.
    epoch_key: Option<[u8; 32]>,
    /// Batches already taken from the current epoch.
    position: usize,
}

impl TryFrom<ShuffleState> for Shuffle {
    type Error = SamplerError;

    fn try_from(state: ShuffleState) -> Result<Self, SamplerError> {
        let mut shuffle = Shuffle::new(state.dataset_size, state.batch_size)?;
        if state.position > shuffle.batches_per_epoch() {
            return Err(invalid(
                "position",
                state.position as f64,
                "beyond the end of the epoch",
            ));
        }
        shuffle.state = state;
        Ok(shuffle)
    }
}

impl From<Shuffle> for ShuffleState {
    fn from(shuffle: Shuffle) -> Self {
        shuffle.state
    }
}

impl Shuffle {
    /// Batches of exactly `batch_size` out of `dataset_size` examples.
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for an empty dataset, a zero batch size or a batch
    /// larger than the dataset.
    pub fn new(dataset_size: usize, batch_size: usize) -> Result<Self, SamplerError> {
        let dataset_size = check_positive_count("dataset_size", dataset_size)?;
        let batch_size = check_positive_count("batch_size", batch_size)?;
        if batch_size > dataset_size {
            return Err(invalid(
                "batch_size",
                batch_size as f64,
                "must not exceed dataset_size",
            ));
        }
        Ok(Shuffle {
            state: ShuffleState {
                dataset_size,
                batch_size,
                epoch_key: None,
                position: 0,
            },
            permutation: Vec::new(),
        })
    }

    /// Number of batches in one epoch, `floor(N / B)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.state.dataset_size / self.state.batch_size
    }

    fn build_permutation(&mut self, key: [u8; 32]) {
        let mut permutation: Vec<usize> = (0..self.state.dataset_size).collect();
        permutation.shuffle(&mut derived_stream(key, 0));
        self.permutation = permutation;
    }
}

impl BatchSampler for Shuffle {
    fn sample(&mut self, rng: &mut dyn DpRng) -> Batch {
        let key = match self.state.epoch_key {
            Some(key) if self.state.position < self.batches_per_epoch() => key,
            _ => {
                let key = derive_stream_key(rng);
                self.state.epoch_key = Some(key);
                self.state.position = 0;
                self.permutation.clear();
                key
            }
        };
        if self.permutation.is_empty() {
            self.build_permutation(key);
        }
        let start = self.state.position * self.state.batch_size;
        let mut indices = self.permutation[start..start + self.state.batch_size].to_vec();
        indices.sort_unstable();
        self.state.position += 1;
        Batch::new(indices)
    }

    fn step_event(&self, mechanism: DpEvent) -> DpEvent {
        mechanism.sampled_without_replacement(
            self.state.dataset_size as u64,
            self.state.batch_size as u64,
        )
    }

    fn expected_batch_size(&self) -> f64 {
        self.state.batch_size as f64
    }

    fn population_size(&self) -> usize {
        self.state.dataset_size
    }

    fn privacy_unit(&self) -> PrivacyUnit {
        PrivacyUnit::Example
    }

    fn overflow_probability(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    #[test]
    fn each_epoch_is_a_partition() {
        let mut sampler = Shuffle::new(103, 10).expect("valid");
        let mut rng = SeededRng::new(11);
        for _ in 0..3 {
            let mut seen: Vec<usize> = (0..10)
                .flat_map(|_| sampler.sample(&mut rng).indices)
                .collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 100);
        }
    }

    #[test]
    fn checkpoint_resumes_mid_epoch() {
        let mut sampler = Shuffle::new(50, 7).expect("valid");
        let mut rng = SeededRng::new(4);
        sampler.sample(&mut rng);
        sampler.sample(&mut rng);
        let saved = serde_json::to_string(&sampler).expect("serializes");
        let rng_saved = serde_json::to_string(&rng).expect("serializes");
        let expected: Vec<Batch> = (0..12).map(|_| sampler.sample(&mut rng)).collect();
        let mut resumed: Shuffle = serde_json::from_str(&saved).expect("deserializes");
        let mut rng: SeededRng = serde_json::from_str(&rng_saved).expect("deserializes");
        let got: Vec<Batch> = (0..12).map(|_| resumed.sample(&mut rng)).collect();
        assert_eq!(expected, got);
    }

    #[test]
    fn invalid_state_is_refused() {
        let bad = r#"{"dataset_size":5,"batch_size":9,"epoch_key":null,"position":0}"#;
        assert!(serde_json::from_str::<Shuffle>(bad).is_err());
        let bad = r#"{"dataset_size":10,"batch_size":5,"epoch_key":null,"position":3}"#;
        assert!(serde_json::from_str::<Shuffle>(bad).is_err());
        assert!(Shuffle::new(0, 1).is_err());
        assert!(Shuffle::new(4, 0).is_err());
    }
}
