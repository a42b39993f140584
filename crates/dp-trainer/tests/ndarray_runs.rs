//! Runs of the real trainer over the pure-Rust engine on synthetic data: resume from a
//! checkpoint equals the uninterrupted run bit for bit, the budget refuses the step that would
//! exceed it, schedules account each phase's event, augmentation multiplicity trains.

use dp_accountant::{DpEvent, NeighbouringRelation, PrivacyAccountant, RdpAccountant};
use dp_clip::FlatClip;
use dp_engine::ExampleBatch;
use dp_engine_ndarray::{Activation, ArrayDataset, Batch, BookKeepingEngine, Mlp};
use dp_sampler::{NoiseMode, Poisson, SeededRng};
use dp_trainer::{
    Checkpoint, DpSgdConfig, DpTrainer, LearningRateSchedule, Optimizer, TrainerError,
    TrainerParts, TrainerRngs, TrainingPhase,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

type NdarrayTrainer<S> =
    DpTrainer<BookKeepingEngine, ArrayDataset, S, FlatClip, RdpAccountant, SeededRng>;

/// Two Gaussian blobs in 5 dimensions, labels 0 and 1.
fn blobs(n: usize, seed: u64) -> ArrayDataset {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let features = Array2::from_shape_fn((n, 5), |(i, _)| {
        let centre = if labels[i] == 1 { 1.0 } else { -1.0 };
        centre + rng.random_range(-1.0f32..1.0)
    });
    ArrayDataset::new(features, labels).expect("valid test setup")
}

fn parts(
    optimizer: Optimizer,
) -> TrainerParts<BookKeepingEngine, ArrayDataset, FlatClip, RdpAccountant> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    TrainerParts {
        engine: BookKeepingEngine::new(),
        model: Mlp::new(&[5, 8, 2], Activation::Tanh, &mut rng).expect("valid test setup"),
        data: blobs(500, 1),
        clip: FlatClip::new(1.0).expect("valid test setup"),
        accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
        optimizer,
        schedule: LearningRateSchedule::step_decay(0.05, 0.5, 7).expect("valid test setup"),
    }
}

fn config() -> DpSgdConfig {
    DpSgdConfig::new(1.0, 0.05, 20, 1e-5)
        .expect("valid test setup")
        .with_max_physical_batch_size(8)
        .expect("valid test setup")
}

fn trainer(seed: u64) -> NdarrayTrainer<Poisson> {
    DpTrainer::new(
        parts(Optimizer::adamw(0.9, 0.999, 1e-8, 0.01).expect("valid test setup")),
        &config(),
        TrainerRngs::seeded(seed),
    )
    .expect("valid test setup")
}

fn weights(trainer: &NdarrayTrainer<impl dp_sampler::BatchSampler>) -> Vec<f32> {
    trainer
        .model()
        .layers()
        .iter()
        .flat_map(|l| l.weight().iter().chain(l.bias().iter()).copied())
        .collect()
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit() {
    let mut uninterrupted = trainer(5);
    uninterrupted.run().unwrap();

    let mut first_half = trainer(5);
    for _ in 0..9 {
        first_half.step_once().unwrap();
    }
    let path = std::env::temp_dir().join(format!("dp-trainer-resume-{}.json", std::process::id()));
    first_half.checkpoint().unwrap().save(&path).unwrap();
    drop(first_half);

    // A fresh process would build the trainer from the same configuration with any seed.
    let mut resumed = trainer(12345);
    resumed.restore(Checkpoint::load(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(resumed.step_count(), 9);
    resumed.run().unwrap();

    assert_eq!(weights(&resumed), weights(&uninterrupted));
    assert_eq!(
        resumed.epsilon().unwrap().to_bits(),
        uninterrupted.epsilon().unwrap().to_bits()
    );
    assert_eq!(
        resumed.accountant().ledger(),
        uninterrupted.accountant().ledger()
    );
    // And a different seed really gives different weights (the comparison can fail).
    let mut other = trainer(6);
    other.run().unwrap();
    assert_ne!(weights(&other), weights(&uninterrupted));
}

#[test]
fn budget_refuses_the_step_that_would_exceed_it() {
    let budget = 1.0;
    let config = DpSgdConfig::new(2.0, 0.05, 1000, 1e-5)
        .unwrap()
        .with_epsilon_budget(budget)
        .unwrap();
    let mut trainer = DpTrainer::new(
        parts(Optimizer::sgd(0.9).unwrap()),
        &config,
        TrainerRngs::seeded(2),
    )
    .unwrap();
    let error = trainer.run().unwrap_err();
    eprintln!("refused at step {}: {error}", trainer.step_count());
    let TrainerError::BudgetExceeded {
        step,
        epsilon_spent,
        epsilon_after_step,
        epsilon_budget,
        ..
    } = error
    else {
        panic!("expected BudgetExceeded, got {error}")
    };
    assert_eq!(step, trainer.step_count());
    assert!(step > 0 && step < 1000);
    assert!(epsilon_spent <= budget && epsilon_after_step > budget && epsilon_budget == budget);
    assert_eq!(trainer.epsilon().unwrap(), epsilon_spent);
    // Refused again, and nothing changed: same weights, same ledger.
    let before = (weights(&trainer), trainer.accountant().ledger().clone());
    let again = trainer.step_once().unwrap_err();
    assert!(
        again.to_string().contains("privacy budget exhausted"),
        "{again}"
    );
    assert_eq!(
        (weights(&trainer), trainer.accountant().ledger().clone()),
        before
    );
}

#[test]
fn calibrated_config_meets_its_target_and_uses_the_budget() {
    let target = 2.0;
    let config =
        DpSgdConfig::calibrated(dp_accountant::AccountantKind::Rdp, target, 0.05, 60, 1e-5)
            .unwrap();
    let mut trainer = DpTrainer::new(
        parts(Optimizer::sgd(0.0).unwrap()),
        &config,
        TrainerRngs::seeded(4),
    )
    .unwrap();
    trainer.run().unwrap();
    let spent = trainer.epsilon().unwrap();
    // Calibration returns the conservative end, close to the target; secure noise's rounding
    // slack adds a relative 1e-11 or so, which the budget absorbs or refuses.
    assert!(spent <= target && spent > 0.999 * target, "spent {spent}");
}

#[test]
fn batch_size_schedule_accounts_each_phase_exactly() {
    let data_size = 500;
    let phases = vec![
        TrainingPhase::new(Poisson::new(data_size, 0.02).unwrap(), 1.2, 4).unwrap(),
        TrainingPhase::new(Poisson::new(data_size, 0.08).unwrap(), 1.5, 3).unwrap(),
    ];
    let mut trainer: NdarrayTrainer<Poisson> = DpTrainer::with_schedule(
        parts(Optimizer::adam(0.9, 0.999, 1e-8).unwrap()),
        &config(),
        phases,
        TrainerRngs::seeded(8),
    )
    .unwrap();
    assert_eq!(trainer.total_steps(), 7);
    trainer.run().unwrap();
    let mut expected = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
    expected
        .compose(&DpEvent::gaussian(1.2).poisson_sampled(0.02).repeated(4))
        .unwrap();
    expected
        .compose(&DpEvent::gaussian(1.5).poisson_sampled(0.08).repeated(3))
        .unwrap();
    let (got, want) = (
        trainer.epsilon().unwrap(),
        expected.epsilon(1e-5).unwrap().epsilon,
    );
    // Secure noise lowers each step's multiplier by its rounding slack (relative 1e-12 here).
    assert!(got >= want && got < want * (1.0 + 1e-9), "{got} vs {want}");
}

#[test]
fn augmentation_multiplicity_feeds_k_views_per_example() {
    let views = 3;
    let config = config().with_noise_mode(NoiseMode::Fast);
    let mut trainer = DpTrainer::new(
        parts(Optimizer::sgd(0.0).unwrap()),
        &config,
        TrainerRngs::seeded(9),
    )
    .unwrap()
    .with_augmentation(move |batch: &Batch, rng: &mut dyn rand::RngCore| {
        let augmented = batch.augmented(views, |_, row| {
            row.iter_mut()
                .for_each(|v| *v += 0.1 * (rng.next_u32() as f32 / u32::MAX as f32 - 0.5));
        })?;
        assert_eq!(augmented.num_examples() * views, augmented.num_rows());
        Ok(augmented)
    });
    let before = weights(&trainer);
    trainer.run().unwrap();
    assert_ne!(weights(&trainer), before);
    assert!(trainer.epsilon().unwrap().is_finite());
}

#[test]
fn fixed_size_batches_are_accounted_at_replace_one_sensitivity() {
    // Replacing one example moves the clipped sum by up to 2C: under replace-one the step's
    // Gaussian has noise multiplier σ/2 relative to that sensitivity.
    let (data_size, batch_size, sigma, steps) = (500, 25, 1.2, 4);
    let phases = vec![
        TrainingPhase::new(
            dp_sampler::Shuffle::new(data_size, batch_size).unwrap(),
            sigma,
            steps,
        )
        .unwrap(),
    ];
    let mut parts = parts(Optimizer::sgd(0.0).unwrap());
    parts.accountant = RdpAccountant::new(NeighbouringRelation::ReplaceOne);
    let mut trainer: NdarrayTrainer<dp_sampler::Shuffle> =
        DpTrainer::with_schedule(parts, &config(), phases, TrainerRngs::seeded(3)).unwrap();
    trainer.run().unwrap();
    let mut expected = RdpAccountant::new(NeighbouringRelation::ReplaceOne);
    expected
        .compose(
            &DpEvent::gaussian(sigma / 2.0)
                .sampled_without_replacement(data_size as u64, batch_size as u64)
                .repeated(steps),
        )
        .unwrap();
    let (got, want) = (
        trainer.epsilon().unwrap(),
        expected.epsilon(1e-5).unwrap().epsilon,
    );
    assert!(got >= want && got < want * (1.0 + 1e-9), "{got} vs {want}");
}
