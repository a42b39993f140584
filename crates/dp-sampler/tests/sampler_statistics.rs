//! Statistical tests of the batch samplers (fixed seeds; false-failure rate in `common`).

mod common;

use common::{bonferroni_z, chi_square};
use dp_sampler::{BatchSampler, Poisson, SeededRng, Shuffle, UserLevelPoisson};
use statrs::distribution::{Binomial, Discrete};

/// Batch sizes of Poisson sampling follow Binomial(N, q).
#[test]
fn poisson_batch_sizes_are_binomial() {
    let (dataset_size, q, batches) = (1000u64, 0.05, 20_000u64);
    let mut sampler = Poisson::new(dataset_size as usize, q).expect("valid");
    let mut rng = SeededRng::new(101);
    let mut counts = vec![0u64; dataset_size as usize + 1];
    for _ in 0..batches {
        counts[sampler.sample(&mut rng).len()] += 1;
    }
    let binomial = Binomial::new(q, dataset_size).expect("valid");
    let pmf: Vec<f64> = (0..=dataset_size).map(|k| binomial.pmf(k)).collect();
    let (statistic, critical) = chi_square(&counts, &pmf, batches);
    assert!(statistic < critical, "chi-square {statistic} >= {critical}");
}

/// Each index is included with frequency q (two-sided z-test per index, Bonferroni over
/// indices).
#[test]
fn poisson_inclusion_frequency_is_q_for_every_index() {
    let (dataset_size, q, batches) = (200usize, 0.1, 20_000usize);
    let mut sampler = Poisson::new(dataset_size, q).expect("valid");
    let mut rng = SeededRng::new(202);
    let mut included = vec![0u64; dataset_size];
    for _ in 0..batches {
        for index in sampler.sample(&mut rng).indices {
            included[index] += 1;
        }
    }
    let z_limit = bonferroni_z(dataset_size);
    let mean = batches as f64 * q;
    let sd = (batches as f64 * q * (1.0 - q)).sqrt();
    for (index, &count) in included.iter().enumerate() {
        let z = (count as f64 - mean) / sd;
        assert!(z.abs() < z_limit, "index {index}: z = {z}");
    }
}

/// Small q on a huge dataset: the mean batch size is N·q (z-test on the mean of 200 batches).
#[test]
fn poisson_on_a_billion_examples_has_the_expected_mean() {
    let (dataset_size, q, batches) = (1_000_000_000usize, 1e-5, 200usize);
    let mut sampler = Poisson::new(dataset_size, q).expect("valid");
    let mut rng = SeededRng::new(303);
    let total: usize = (0..batches).map(|_| sampler.sample(&mut rng).len()).sum();
    let mean = dataset_size as f64 * q;
    let sd_of_mean = (mean * (1.0 - q) / batches as f64).sqrt();
    let z = (total as f64 / batches as f64 - mean) / sd_of_mean;
    assert!(z.abs() < bonferroni_z(1), "z = {z}");
}

/// Each index appears in a shuffled batch with frequency B/N.
#[test]
fn shuffle_inclusion_frequency_is_batch_over_dataset() {
    let (dataset_size, batch_size, steps) = (50usize, 10usize, 10_000usize);
    let mut sampler = Shuffle::new(dataset_size, batch_size).expect("valid");
    let mut rng = SeededRng::new(404);
    let mut included = vec![0u64; dataset_size];
    for _ in 0..steps {
        let batch = sampler.sample(&mut rng);
        assert_eq!(batch.len(), batch_size);
        for index in batch.indices {
            included[index] += 1;
        }
    }
    // Exactly steps·B/N per index when N is a multiple of B: every epoch is a partition.
    assert!(
        included
            .iter()
            .all(|&count| count == (steps * batch_size / dataset_size) as u64)
    );
}

/// Users are sampled with probability q (z-test per user, Bonferroni).
#[test]
fn user_level_inclusion_frequency_is_q_per_user() {
    let users: Vec<Vec<usize>> = (0..40)
        .map(|u| (u * 5..u * 5 + 1 + u % 5).collect())
        .collect();
    let (q, batches) = (0.2, 10_000usize);
    let mut sampler = UserLevelPoisson::new(users.clone(), q, 2).expect("valid");
    let mut rng = SeededRng::new(505);
    let mut included = vec![0u64; users.len()];
    for _ in 0..batches {
        let batch = sampler.sample(&mut rng);
        for (user, examples) in users.iter().enumerate() {
            if batch.indices.iter().any(|i| examples.contains(i)) {
                included[user] += 1;
            }
        }
    }
    let z_limit = bonferroni_z(users.len());
    let sd = (batches as f64 * q * (1.0 - q)).sqrt();
    for (user, &count) in included.iter().enumerate() {
        let z = (count as f64 - batches as f64 * q) / sd;
        assert!(z.abs() < z_limit, "user {user}: z = {z}");
    }
}
