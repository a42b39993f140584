//! Trainer logic against a recording mock engine: the noise std is σ·C, the noisy sum is divided
//! by the expected batch size q·N (even for an empty batch), the clipped sum uses the clip
//! factors, virtual steps draw noise once per logical step, and the accountant composes exactly
//! one event per logical step; user-level sampling with one example per user divides by q·users.

use dp_accountant::{DpEvent, NeighbouringRelation, PrivacyAccountant, RdpAccountant};
use dp_clip::FlatClip;
use dp_engine::{
    EngineError, ExampleBatch, ExampleSource, NormMatrix, ParameterGroup, ParameterView,
    PerSampleGradEngine, PerSampleNorms, ScaleVector,
};
use dp_sampler::{BatchSampler, NoiseMode, PrivacyUnit, UserLevelPoisson};
use dp_trainer::{
    DpSgdConfig, DpTrainer, LearningRateSchedule, Optimizer, TrainerParts, TrainerRngs,
    TrainingPhase,
};
use std::cell::RefCell;
use std::rc::Rc;

/// Number of parameters: large, so the empirical noise std is sharp (relative standard error
/// 1/sqrt(2·DIM) ≈ 0.35%).
const DIM: usize = 40_000;
/// Tolerance on the empirical std: 2% is more than 5 standard errors (false-failure rate below
/// 1e-6 for a fresh seed; the seeds here are fixed).
const STD_RELATIVE_TOLERANCE: f64 = 0.02;

#[derive(Debug, Default)]
struct Log {
    norms_calls: Vec<usize>,
    accumulated_scales: Vec<Vec<f64>>,
}

struct MockModel {
    values: Vec<f32>,
    gradient: Vec<f32>,
}

struct MockBatch(Vec<usize>);

impl ExampleBatch for MockBatch {
    fn num_examples(&self) -> usize {
        self.0.len()
    }
}

struct MockData(usize);

impl ExampleSource for MockData {
    type Batch = MockBatch;
    fn num_examples(&self) -> usize {
        self.0
    }
    fn gather(&self, indices: &[usize]) -> Result<MockBatch, EngineError> {
        Ok(MockBatch(indices.to_vec()))
    }
}

/// Every example's gradient is the constant vector with L2 norm `gradient_norm`.
struct RecordingEngine {
    gradient_norm: f64,
    log: Rc<RefCell<Log>>,
    last_batch: Option<usize>,
}

impl RecordingEngine {
    fn coordinate(&self) -> f32 {
        (self.gradient_norm / (DIM as f64).sqrt()) as f32
    }
}

impl PerSampleGradEngine for RecordingEngine {
    type Model = MockModel;
    type Batch = MockBatch;

    fn parameter_groups(&self, _: &MockModel) -> Vec<ParameterGroup> {
        vec![ParameterGroup {
            name: "w".into(),
            len: DIM,
        }]
    }

    fn norms(&mut self, _: &MockModel, batch: &MockBatch) -> Result<PerSampleNorms, EngineError> {
        let n = batch.num_examples();
        self.log.borrow_mut().norms_calls.push(n);
        self.last_batch = Some(n);
        Ok(PerSampleNorms {
            losses: vec![1.0; n],
            norms: NormMatrix::new(n, 1, vec![self.gradient_norm; n])?,
        })
    }

    fn accumulate_scaled(
        &mut self,
        model: &mut MockModel,
        scales: &ScaleVector,
    ) -> Result<(), EngineError> {
        let n = self.last_batch.ok_or(EngineError::MissingTape)?;
        scales.check_shape(n, 1)?;
        let total: f64 = (0..n).map(|i| scales.factor(i, 0)).sum();
        let coordinate = self.coordinate();
        model
            .gradient
            .iter_mut()
            .for_each(|g| *g += total as f32 * coordinate);
        self.log
            .borrow_mut()
            .accumulated_scales
            .push((0..n).map(|i| scales.factor(i, 0)).collect());
        Ok(())
    }

    fn batch_gradient(
        &mut self,
        model: &mut MockModel,
        batch: &MockBatch,
    ) -> Result<Vec<f64>, EngineError> {
        let coordinate = self.coordinate() * batch.num_examples() as f32;
        model.gradient.iter_mut().for_each(|g| *g += coordinate);
        Ok(vec![1.0; batch.num_examples()])
    }

    fn zero_grad(&mut self, model: &mut MockModel) {
        model.gradient.fill(0.0);
    }

    fn visit_parameters(
        &mut self,
        model: &mut MockModel,
        visit: &mut dyn FnMut(ParameterView<'_>),
    ) -> Result<(), EngineError> {
        visit(ParameterView {
            group: 0,
            values: &mut model.values,
            gradient: &mut model.gradient,
        });
        Ok(())
    }
}

type MockTrainer = DpTrainer<
    RecordingEngine,
    MockData,
    dp_sampler::Poisson,
    FlatClip,
    RdpAccountant,
    dp_sampler::SeededRng,
>;

type MockParts = TrainerParts<RecordingEngine, MockData, FlatClip, RdpAccountant>;

fn trainer(
    gradient_norm: f64,
    max_grad_norm: f64,
    config: &DpSgdConfig,
    dataset_size: usize,
    seed: u64,
) -> (MockTrainer, Rc<RefCell<Log>>) {
    let (parts, log) = parts(gradient_norm, max_grad_norm, dataset_size);
    (
        DpTrainer::new(parts, config, TrainerRngs::seeded(seed)).expect("valid test setup"),
        log,
    )
}

fn parts(
    gradient_norm: f64,
    max_grad_norm: f64,
    dataset_size: usize,
) -> (MockParts, Rc<RefCell<Log>>) {
    let log = Rc::new(RefCell::new(Log::default()));
    let parts = TrainerParts {
        engine: RecordingEngine {
            gradient_norm,
            log: log.clone(),
            last_batch: None,
        },
        model: MockModel {
            values: vec![0.0; DIM],
            gradient: vec![0.0; DIM],
        },
        data: MockData(dataset_size),
        clip: FlatClip::new(max_grad_norm).expect("valid test setup"),
        accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
        optimizer: Optimizer::sgd(0.0).expect("valid test setup"),
        schedule: LearningRateSchedule::constant(1.0).expect("valid test setup"),
    };
    (parts, log)
}

/// With SGD at learning rate 1 the update is minus the noisy mean gradient.
fn update_stats<S: BatchSampler>(
    trainer: &DpTrainer<
        RecordingEngine,
        MockData,
        S,
        FlatClip,
        RdpAccountant,
        dp_sampler::SeededRng,
    >,
) -> (f64, f64) {
    let values = &trainer.model().values;
    let mean = values.iter().map(|&v| -f64::from(v)).sum::<f64>() / DIM as f64;
    let var = values
        .iter()
        .map(|&v| (-f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (DIM - 1) as f64;
    (mean, var.sqrt())
}

/// Checks the update's coordinate (mean, std) from [`update_stats`]: mean
/// `realized·C/sqrt(DIM)/expected_batch` (each of the `realized` contributions clipped to C,
/// divided by the expected batch size) within six standard errors, std `σ·C/expected_batch`
/// within [`STD_RELATIVE_TOLERANCE`].
fn assert_noisy_mean(
    (mean, std): (f64, f64),
    realized: usize,
    expected_batch: f64,
    sigma: f64,
    clip_norm: f64,
) {
    let expected_mean = realized as f64 * clip_norm / (DIM as f64).sqrt() / expected_batch;
    let expected_std = sigma * clip_norm / expected_batch;
    assert!(
        (std / expected_std - 1.0).abs() < STD_RELATIVE_TOLERANCE,
        "std {std} vs {expected_std}"
    );
    let mean_tolerance = 6.0 * expected_std / (DIM as f64).sqrt();
    assert!(
        (mean - expected_mean).abs() < mean_tolerance,
        "mean {mean} vs {expected_mean}"
    );
}

fn total_count(accountant: &RdpAccountant) -> u64 {
    accountant.ledger().entries().iter().map(|e| e.count).sum()
}

#[test]
fn noise_std_is_sigma_times_clip_norm_over_expected_batch_size() {
    let (sigma, clip_norm, n, q) = (1.3, 0.5, 1000, 0.02);
    let config = DpSgdConfig::new(sigma, q, 1, 1e-5)
        .unwrap()
        .with_noise_mode(NoiseMode::Fast);
    // Gradients of norm 4 are clipped to 0.5 by factor 1/8.
    let (mut trainer, log) = trainer(4.0, clip_norm, &config, n, 7);
    trainer.step_once().unwrap();
    let log = log.borrow();
    let realized = log.norms_calls[0];
    assert!(
        log.accumulated_scales[0]
            .iter()
            .all(|&s| (s - 0.125).abs() < 1e-12)
    );
    // Mean: realized·C/sqrt(DIM) per coordinate, divided by q·N (not by the realized size).
    assert_noisy_mean(
        update_stats(&trainer),
        realized,
        q * n as f64,
        sigma,
        clip_norm,
    );
}

#[test]
fn empty_batch_still_adds_noise_divided_by_expected_batch_size_and_is_accounted() {
    // q·N = 1e-4: the seeded batch is empty (asserted below).
    let (sigma, clip_norm, n, q) = (2.0, 1.0, 10, 1e-5);
    let config = DpSgdConfig::new(sigma, q, 1, 1e-5)
        .unwrap()
        .with_noise_mode(NoiseMode::Fast);
    let (mut trainer, log) = trainer(3.0, clip_norm, &config, n, 3);
    let report = trainer.step_once().unwrap();
    assert!(
        log.borrow().norms_calls.iter().all(|&b| b == 0),
        "the batch was not empty"
    );
    assert!(report.mean_loss.is_nan());
    let (_, std) = update_stats(&trainer);
    let expected_std = sigma * clip_norm / (q * n as f64);
    assert!(
        (std / expected_std - 1.0).abs() < STD_RELATIVE_TOLERANCE,
        "std {std} vs {expected_std}"
    );
    assert_eq!(total_count(trainer.accountant()), 1);
    assert_eq!(
        trainer.accountant().ledger().entries()[0].event,
        DpEvent::gaussian(sigma).poisson_sampled(q)
    );
}

#[test]
fn virtual_steps_draw_noise_once_and_compose_once_per_logical_step() {
    let (sigma, clip_norm, n, q, steps) = (1.0, 1.0, 2000, 0.01, 3);
    let config = DpSgdConfig::new(sigma, q, steps, 1e-5)
        .unwrap()
        .with_noise_mode(NoiseMode::Fast)
        .with_max_physical_batch_size(4)
        .unwrap();
    let (mut trainer, log) = trainer(0.0, clip_norm, &config, n, 11);
    trainer.step_once().unwrap();
    {
        let log = log.borrow();
        assert!(log.norms_calls.len() > 1, "the batch was not split");
        assert!(log.norms_calls.iter().all(|&b| b <= 4));
    }
    // Zero gradients: the update is pure noise; several draws would inflate its std.
    let (_, std) = update_stats(&trainer);
    let expected_std = sigma * clip_norm / (q * n as f64);
    assert!(
        (std / expected_std - 1.0).abs() < STD_RELATIVE_TOLERANCE,
        "std {std} vs {expected_std}"
    );
    trainer.run().unwrap();
    assert_eq!(trainer.step_count(), steps);
    assert_eq!(total_count(trainer.accountant()), steps);
    assert!(
        trainer.step_once().is_err(),
        "a step past the schedule must be refused"
    );
}

#[test]
fn user_level_sampling_with_one_example_per_user_divides_by_q_times_users() {
    // 300 users of 5 examples each: a sampled user brings one of them, so a whole user moves the
    // clipped sum by at most C, and the expected batch is q·users, not q·examples.
    let (sigma, clip_norm, users, per_user) = (1.3, 0.5, 300, 5);
    let population: Vec<Vec<usize>> = (0..users)
        .map(|user| (user * per_user..(user + 1) * per_user).collect())
        .collect();
    let step = |q: f64, seed: u64| {
        let config = DpSgdConfig::new(sigma, q, 1, 1e-5)
            .unwrap()
            .with_noise_mode(NoiseMode::Fast);
        let sampler = UserLevelPoisson::new(population.clone(), q, 1).unwrap();
        assert_eq!(
            sampler.privacy_unit(),
            PrivacyUnit::User {
                max_examples_per_user: 1
            }
        );
        assert_eq!(sampler.expected_batch_size(), q * users as f64);
        let phase = TrainingPhase::new(sampler, sigma, 1).unwrap();
        let (parts, log) = parts(4.0, clip_norm, users * per_user);
        let mut trainer =
            DpTrainer::with_schedule(parts, &config, vec![phase], TrainerRngs::seeded(seed))
                .unwrap();
        trainer.step_once().unwrap();
        let realized = log.borrow().norms_calls.iter().sum::<usize>();
        (trainer, realized)
    };
    // Every user sampled: one example each.
    let (_, realized) = step(1.0, 1);
    assert_eq!(realized, users);

    let q = 0.2;
    let (trainer, realized) = step(q, 9);
    assert!(realized > 0 && realized < users, "{realized}");
    assert_noisy_mean(
        update_stats(&trainer),
        realized,
        q * users as f64,
        sigma,
        clip_norm,
    );
    // The step is accounted at the user sampling probability.
    assert_eq!(
        trainer.accountant().ledger().entries()[0].event,
        DpEvent::gaussian(sigma).poisson_sampled(q)
    );
}
