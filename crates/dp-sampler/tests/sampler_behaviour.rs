//! Events, edge cases and adversarial inputs of the batch samplers; property tests.

use dp_accountant::DpEvent;
use dp_sampler::{
    BatchSampler, DpRng, Poisson, PrivacyUnit, SamplerError, SecureRng, SeededRng, Shuffle,
    TruncatedPoisson, UserLevelPoisson,
};
use proptest::prelude::*;

#[test]
fn events_name_what_each_sampler_does() {
    let gaussian = DpEvent::gaussian(1.1);
    let poisson = Poisson::new(1000, 0.01).expect("valid");
    assert_eq!(
        poisson.step_event(gaussian.clone()),
        gaussian.clone().poisson_sampled(0.01)
    );
    let shuffle = Shuffle::new(1000, 10).expect("valid");
    let event = shuffle.step_event(gaussian.clone());
    assert_eq!(
        event,
        gaussian.clone().sampled_without_replacement(1000, 10)
    );
    // The ledger shows the non-Poisson accounting by name.
    let ledger = serde_json::to_string(&event.repeated(100)).expect("serializes");
    assert!(ledger.contains("sampled_without_replacement"), "{ledger}");
    assert!(!ledger.contains("poisson"), "{ledger}");
    let user = UserLevelPoisson::new(vec![vec![0, 1], vec![2]], 0.5, 1).expect("valid");
    assert_eq!(
        user.step_event(gaussian.clone()),
        gaussian.poisson_sampled(0.5)
    );
    assert_eq!(user.privacy_unit().max_contributions(), 1);
    assert_eq!(poisson.privacy_unit(), PrivacyUnit::Example);
}

#[test]
fn adversarial_parameters_are_errors() {
    for q in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        assert!(Poisson::new(10, q).is_err(), "q = {q}");
    }
    assert!(matches!(
        Poisson::new(0, 0.5),
        Err(SamplerError::InvalidParameter {
            name: "dataset_size",
            ..
        })
    ));
    for expected in [0.0, -1.0, 11.0, f64::NAN] {
        assert!(
            Poisson::with_expected_batch_size(10, expected).is_err(),
            "{expected}"
        );
    }
    assert!(Poisson::with_expected_batch_size(0, 1.0).is_err());
    assert!(TruncatedPoisson::new(0, 0.5, 1, 0.1).is_err());
}

#[test]
fn q_equal_to_one_takes_everything() {
    let mut sampler = Poisson::new(17, 1.0).expect("valid");
    let batch = sampler.sample(&mut SeededRng::new(0));
    assert_eq!(batch.indices, (0..17).collect::<Vec<_>>());
    assert_eq!(sampler.expected_batch_size(), 17.0);
}

#[test]
fn empty_batches_happen_and_are_normal() {
    let mut sampler = Poisson::new(10, 1e-3).expect("valid");
    let mut rng = SeededRng::new(1);
    let empty = (0..100)
        .filter(|_| sampler.sample(&mut rng).is_empty())
        .count();
    // P[empty] = 0.999^10 ≈ 0.99: nearly all of them.
    assert!(empty > 90);
}

#[test]
fn samplers_work_behind_dyn() {
    let mut samplers: Vec<Box<dyn BatchSampler>> = vec![
        Box::new(Poisson::new(100, 0.1).expect("valid")),
        Box::new(Shuffle::new(100, 10).expect("valid")),
        Box::new(TruncatedPoisson::new(100, 0.1, 40, 1e-6).expect("valid")),
    ];
    let mut rng = SecureRng::new().expect("os entropy");
    let rng: &mut dyn DpRng = &mut rng;
    for sampler in &mut samplers {
        let batch = sampler.sample(rng);
        assert!(batch.indices.iter().all(|&i| i < sampler.population_size()));
    }
}

#[test]
fn truncation_keeps_a_random_subset_when_forced() {
    // P[Binomial(100, 0.5) > 55] ≈ 0.14, so the cut happens; its Chernoff bound 0.49 is
    // accepted by the loose tolerance 0.999 used only to exercise it.
    let mut sampler = TruncatedPoisson::new(100, 0.5, 55, 0.999).expect("valid");
    let mut rng = SeededRng::new(6);
    let batches: Vec<_> = (0..50).map(|_| sampler.sample(&mut rng)).collect();
    assert!(batches.iter().all(|batch| batch.padded_len() == 55));
    assert!(batches.iter().any(|batch| batch.padding == 0));
    assert!(
        batches
            .iter()
            .all(|batch| batch.indices.windows(2).all(|w| w[0] < w[1]))
    );
}

proptest! {
    #[test]
    fn poisson_indices_are_sorted_distinct_and_in_range(
        dataset_size in 1usize..100_000,
        q in 1e-6f64..=1.0,
        seed in any::<u64>(),
    ) {
        let mut sampler = Poisson::new(dataset_size, q).expect("valid");
        let batch = sampler.sample(&mut SeededRng::new(seed));
        prop_assert!(batch.indices.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(batch.indices.iter().all(|&i| i < dataset_size));
        prop_assert_eq!(batch.padding, 0);
    }

    #[test]
    fn truncated_batches_have_a_fixed_shape(
        dataset_size in 1usize..10_000,
        q in 1e-4f64..=1.0,
        max_batch_size in 1usize..2_000,
        seed in any::<u64>(),
    ) {
        // Tolerance just below one accepts every shape but the hopeless ones.
        if let Ok(mut sampler) = TruncatedPoisson::new(dataset_size, q, max_batch_size, 0.999_999) {
            let batch = sampler.sample(&mut SeededRng::new(seed));
            prop_assert_eq!(batch.padded_len(), max_batch_size);
            prop_assert!(batch.indices.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(batch.indices.iter().all(|&i| i < dataset_size));
            prop_assert!(sampler.overflow_probability() <= 0.999_999);
        }
    }

    #[test]
    fn user_level_never_exceeds_the_cap(
        sizes in prop::collection::vec(0usize..12, 1..30),
        cap in 1usize..5,
        seed in any::<u64>(),
    ) {
        let mut next = 0;
        let users: Vec<Vec<usize>> = sizes
            .iter()
            .map(|&size| { let ids = (next..next + size).collect(); next += size; ids })
            .collect();
        let mut sampler = UserLevelPoisson::new(users.clone(), 0.7, cap).expect("valid");
        let batch = sampler.sample(&mut SeededRng::new(seed));
        for user in &users {
            let taken = batch.indices.iter().filter(|i| user.contains(i)).count();
            prop_assert!(taken <= cap);
        }
    }
}
