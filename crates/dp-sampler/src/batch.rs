//! What every batch sampler shares: the [`Batch`] it returns, the [`BatchSampler`] trait the
//! trainer calls each step, and the geometric-skip Poisson draw.

use dp_accountant::DpEvent;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::DpRng;

/// The indices of one step's batch.
///
/// An empty batch is a normal batch: the step still adds noise and is accounted.
///
/// # Privacy
///
/// The realized size `indices.len()` depends on the data's participation and is not
/// protected: normalize by [`BatchSampler::expected_batch_size`], and do not log it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Example indices in the dataset, ascending for the Poisson samplers.
    pub indices: Vec<usize>,
    /// Padding slots appended after the real examples to reach a fixed shape; the engine must
    /// give them zero weight. Zero except for fixed-shape samplers.
    pub padding: usize,
}

impl Batch {
    /// A batch of real examples without padding.
    pub fn new(indices: Vec<usize>) -> Self {
        Batch {
            indices,
            padding: 0,
        }
    }

    /// Number of real examples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no real example (a normal outcome of Poisson sampling).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Number of slots including padding: the shape an engine executes.
    pub fn padded_len(&self) -> usize {
        self.indices.len() + self.padding
    }
}

/// The unit whose presence or absence the guarantee protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "unit")]
pub enum PrivacyUnit {
    /// One example (add/remove-one example, or replace-one for fixed-size batches).
    Example,
    /// One user, contributing at most `max_examples_per_user` examples to any batch.
    User {
        /// Cap on a sampled user's examples in one batch.
        max_examples_per_user: usize,
    },
}

impl PrivacyUnit {
    /// How many clipped examples one unit can contribute to a batch: the factor by which the
    /// per-example L2 sensitivity (the clip norm) grows for this unit.
    pub fn max_contributions(&self) -> usize {
        match self {
            PrivacyUnit::Example => 1,
            PrivacyUnit::User {
                max_examples_per_user,
            } => *max_examples_per_user,
        }
    }
}

/// A batch sampler: what the trainer calls each step.
///
/// The trait is object safe, so a trainer can hold a `Box<dyn BatchSampler>` chosen from a
/// configuration.
///
/// # Privacy
///
/// [`BatchSampler::step_event`] states what one step costs; the trainer composes it once per
/// step, empty batches included. A mechanism's L2 sensitivity must be the per-example bound
/// times [`PrivacyUnit::max_contributions`], and any [`BatchSampler::overflow_probability`]
/// must be added to δ as its docs say.
pub trait BatchSampler {
    /// Draws the next batch.
    fn sample(&mut self, rng: &mut dyn DpRng) -> Batch;

    /// The event one step justifies when `mechanism` (for instance
    /// `DpEvent::gaussian(noise_multiplier)`) runs on the batch.
    fn step_event(&self, mechanism: DpEvent) -> DpEvent;

    /// The expected number of real examples per batch: the divisor of the noisy sum.
    fn expected_batch_size(&self) -> f64;

    /// Number of privacy units sampled from (examples, or users for user-level sampling).
    fn population_size(&self) -> usize;

    /// The unit the events protect.
    fn privacy_unit(&self) -> PrivacyUnit;

    /// Upper bound on the per-step probability that the sampler departs from the
    /// distribution its event describes (truncation of a fixed-shape batch); zero for exact
    /// samplers. Over `T` steps with final ε, δ grows by at most `(1 + e^ε)·T·p`.
    fn overflow_probability(&self) -> f64;
}

/// Indices `0..population_size` each kept independently with probability
/// `sampling_probability`, ascending.
///
/// Jumps from one kept index to the next with Geometric(q) skips drawn by inversion,
/// `floor(ln U / ln(1 - q))` for U uniform in (0, 1], so the cost is O(expected batch), not
/// O(population). `P[skip = s] = (1-q)^s q` holds up to the rounding of `ln` (relative error
/// near 1e-16); no index is unreachable.
pub(crate) fn poisson_indices<R: Rng + ?Sized>(
    population_size: usize,
    sampling_probability: f64,
    rng: &mut R,
) -> Vec<usize> {
    if sampling_probability >= 1.0 {
        return (0..population_size).collect();
    }
    let log_keep_out = (-sampling_probability).ln_1p();
    let expected = population_size as f64 * sampling_probability;
    // Room for the mean plus four standard deviations avoids regrowth almost always.
    let capacity = (expected + 4.0 * expected.sqrt() + 1.0).min(population_size as f64);
    let mut indices = Vec::with_capacity(capacity as usize);
    let mut next = 0usize;
    while next < population_size {
        let uniform = 1.0 - rng.random::<f64>();
        let skip = (uniform.ln() / log_keep_out).floor();
        // `skip` is +inf or huge when nothing more is kept; compare before converting.
        if skip >= (population_size - next) as f64 {
            break;
        }
        let index = next + skip as usize;
        indices.push(index);
        next = index + 1;
    }
    indices
}
