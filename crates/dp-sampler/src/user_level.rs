//! User-level Poisson sampling: the privacy unit is a user, a group of examples.

use dp_accountant::DpEvent;
use rand::seq::index;

use crate::batch::poisson_indices;
use crate::error::{
    check_positive_count, check_sampling_probability, probability_from_expected_batch_size,
};
use crate::{Batch, BatchSampler, DpRng, PrivacyUnit, SamplerError};

/// Poisson sampling of users: each user joins a batch independently with probability
/// `sampling_probability`, contributing at most `max_examples_per_user` of its examples
/// (a uniformly random subset when it has more).
///
/// # Privacy
///
/// The guarantee protects a whole user: a step is `mechanism.poisson_sampled(q)` under
/// add/remove of one user, where `q` is the user sampling probability. A user brings up to
/// `k = max_examples_per_user` clipped examples to the sum, so the mechanism's L2
/// sensitivity is `k·C` for per-example clip norm `C` ([`PrivacyUnit::max_contributions`]);
/// the noise must be calibrated to it.
///
/// # Examples
///
/// ```
/// use dp_sampler::{BatchSampler, PrivacyUnit, SeededRng, UserLevelPoisson};
///
/// let users = vec![vec![0, 1, 2, 3], vec![4], vec![5, 6]];
/// let mut sampler = UserLevelPoisson::new(users, 1.0, 2)?;
/// let batch = sampler.sample(&mut SeededRng::new(3));
/// assert_eq!(batch.len(), 2 + 1 + 2);
/// assert_eq!(sampler.privacy_unit(), PrivacyUnit::User { max_examples_per_user: 2 });
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct UserLevelPoisson {
    users: Vec<Vec<usize>>,
    sampling_probability: f64,
    max_examples_per_user: usize,
}

impl UserLevelPoisson {
    /// User-level sampling over `users` (each the example ids of one user).
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for no users, a probability outside (0, 1] or a
    /// zero cap; [`SamplerError::DuplicateExample`] when an example id is listed twice.
    pub fn new(
        users: Vec<Vec<usize>>,
        sampling_probability: f64,
        max_examples_per_user: usize,
    ) -> Result<Self, SamplerError> {
        check_positive_count("users", users.len())?;
        let sampling_probability = check_sampling_probability(sampling_probability)?;
        let max_examples_per_user =
            check_positive_count("max_examples_per_user", max_examples_per_user)?;
        let mut all: Vec<usize> = users.iter().flatten().copied().collect();
        all.sort_unstable();
        if let Some(pair) = all.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(SamplerError::DuplicateExample { example: pair[0] });
        }
        Ok(UserLevelPoisson {
            users,
            sampling_probability,
            max_examples_per_user,
        })
    }

    /// User-level sampling with `q = expected_users_per_batch / users.len()`.
    ///
    /// # Errors
    ///
    /// As [`UserLevelPoisson::new`], and for an expected count outside (0, users.len()].
    pub fn with_expected_users(
        users: Vec<Vec<usize>>,
        expected_users_per_batch: f64,
        max_examples_per_user: usize,
    ) -> Result<Self, SamplerError> {
        let q = probability_from_expected_batch_size(users.len(), expected_users_per_batch)?;
        UserLevelPoisson::new(users, q, max_examples_per_user)
    }

    /// The user inclusion probability q.
    pub fn sampling_probability(&self) -> f64 {
        self.sampling_probability
    }
}

impl BatchSampler for UserLevelPoisson {
    fn sample(&mut self, rng: &mut dyn DpRng) -> Batch {
        let sampled = poisson_indices(self.users.len(), self.sampling_probability, rng);
        let mut indices = Vec::new();
        for user in sampled {
            let examples = &self.users[user];
            if examples.len() <= self.max_examples_per_user {
                indices.extend_from_slice(examples);
            } else {
                let chosen = index::sample(rng, examples.len(), self.max_examples_per_user);
                indices.extend(chosen.iter().map(|position| examples[position]));
            }
        }
        indices.sort_unstable();
        Batch::new(indices)
    }

    fn step_event(&self, mechanism: DpEvent) -> DpEvent {
        mechanism.poisson_sampled(self.sampling_probability)
    }

    fn expected_batch_size(&self) -> f64 {
        let capped: usize = self
            .users
            .iter()
            .map(|user| user.len().min(self.max_examples_per_user))
            .sum();
        capped as f64 * self.sampling_probability
    }

    fn population_size(&self) -> usize {
        self.users.len()
    }

    fn privacy_unit(&self) -> PrivacyUnit {
        PrivacyUnit::User {
            max_examples_per_user: self.max_examples_per_user,
        }
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
    fn caps_each_user_and_keeps_ids_of_that_user() {
        let users: Vec<Vec<usize>> = (0..20)
            .map(|u| (u * 10..u * 10 + u % 7).collect())
            .collect();
        let mut sampler = UserLevelPoisson::new(users.clone(), 0.5, 3).expect("valid");
        let mut rng = SeededRng::new(8);
        for _ in 0..50 {
            let batch = sampler.sample(&mut rng);
            for user in &users {
                let taken = batch.indices.iter().filter(|i| user.contains(i)).count();
                assert!(taken <= 3);
                assert!(taken == 0 || taken == user.len().min(3));
            }
        }
    }

    #[test]
    fn refuses_duplicates_and_degenerate_inputs() {
        let err = UserLevelPoisson::new(vec![vec![1, 2], vec![2]], 0.5, 1).expect_err("dup");
        assert_eq!(err, SamplerError::DuplicateExample { example: 2 });
        assert!(UserLevelPoisson::new(vec![], 0.5, 1).is_err());
        assert!(UserLevelPoisson::new(vec![vec![0]], 0.0, 1).is_err());
        assert!(UserLevelPoisson::new(vec![vec![0]], 0.5, 0).is_err());
        assert!(UserLevelPoisson::with_expected_users(vec![vec![0]], 2.0, 1).is_err());
    }

    #[test]
    fn users_without_examples_are_allowed() {
        let mut sampler = UserLevelPoisson::new(vec![vec![], vec![0]], 1.0, 1).expect("valid");
        assert_eq!(sampler.sample(&mut SeededRng::new(0)).indices, vec![0]);
        assert_eq!(sampler.expected_batch_size(), 1.0);
    }
}
