//! The conformance checks, written against the engine trait alone.

use crate::{ConformanceFailure, ConformanceFixture, EXACT, SplitMix64, Tolerance};
use dp_engine::{EngineError, ExampleBatch, PerSampleGradEngine, ScaleVector};

/// Per example, per parameter group, the flattened gradient.
type PerSampleGradients = Vec<GroupBuffers>;

/// Per parameter group, a flattened buffer (values or gradient).
type GroupBuffers = Vec<Vec<f32>>;

fn engine_failure(check: &'static str) -> impl Fn(EngineError) -> ConformanceFailure {
    move |error| ConformanceFailure::new(check, format!("engine error: {error}"))
}

/// The gradient buffers, per parameter group.
fn gradient_buffers<E: PerSampleGradEngine>(
    engine: &mut E,
    model: &mut E::Model,
) -> Result<GroupBuffers, EngineError> {
    let mut buffers = Vec::new();
    engine.visit_gradients(model, &mut |_, gradient| buffers.push(gradient.to_vec()))?;
    Ok(buffers)
}

/// The buffers left by `accumulate_scaled(scales)` on zeroed gradients (after `norms`).
fn scaled_sum<E: PerSampleGradEngine>(
    engine: &mut E,
    model: &mut E::Model,
    scales: Vec<f64>,
) -> Result<GroupBuffers, EngineError> {
    scaled_sum_with(engine, model, &ScaleVector::new(scales)?)
}

fn scaled_sum_with<E: PerSampleGradEngine>(
    engine: &mut E,
    model: &mut E::Model,
    scales: &ScaleVector,
) -> Result<GroupBuffers, EngineError> {
    engine.zero_grad(model);
    engine.accumulate_scaled(model, scales)?;
    gradient_buffers(engine, model)
}

fn flatten(groups: &[Vec<f32>]) -> impl Iterator<Item = f64> + '_ {
    groups.iter().flatten().map(|&v| f64::from(v))
}

/// Each example's gradient, materialized through the trait: `norms`, then `accumulate_scaled`
/// with one-hot scales on zeroed buffers. Leaves the gradient buffers holding g_last.
///
/// # Errors
///
/// Any engine error.
pub fn per_sample_gradients<E: PerSampleGradEngine>(
    engine: &mut E,
    model: &mut E::Model,
    batch: &E::Batch,
) -> Result<PerSampleGradients, EngineError> {
    let n = batch.num_examples();
    engine.norms(model, batch)?;
    (0..n)
        .map(|i| {
            let mut one_hot = vec![0.0; n];
            one_hot[i] = 1.0;
            scaled_sum(engine, model, one_hot)
        })
        .collect()
}

fn batch_size(rng: &mut SplitMix64) -> usize {
    1 + rng.below(7)
}

/// sum_i g_i (via `accumulate_scaled` with unit scales) equals `batch_gradient`, and the losses
/// of both paths agree.
///
/// # Errors
///
/// A [`ConformanceFailure`] naming the first differing entry.
pub fn check_sum_equals_batch_gradient<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
    tolerance: Tolerance,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "sum of per-sample gradients equals the batch gradient";
    let mut rng = SplitMix64::new(seed);
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, batch_size(&mut rng), seed ^ 1);
    let mut engine = fixture.engine();
    let phase1 = engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    let summed = scaled_sum(&mut engine, &mut model, vec![1.0; batch.num_examples()])
        .map_err(engine_failure(CHECK))?;
    engine.zero_grad(&mut model);
    let losses = engine
        .batch_gradient(&mut model, &batch)
        .map_err(engine_failure(CHECK))?;
    let batch_gradient =
        gradient_buffers(&mut engine, &mut model).map_err(engine_failure(CHECK))?;
    tolerance.compare(CHECK, flatten(&summed), flatten(&batch_gradient))?;
    tolerance.compare(CHECK, phase1.losses, losses)
}

/// g_i for i != j is the same whether example j is one example or another.
///
/// # Errors
///
/// A [`ConformanceFailure`] naming the first differing entry.
pub fn check_example_independence<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
    tolerance: Tolerance,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "g_i does not depend on example j";
    let mut rng = SplitMix64::new(seed);
    let mut model = fixture.random_model(seed);
    let n = 1 + batch_size(&mut rng);
    let batch = fixture.random_batch(&model, n, seed ^ 2);
    let j = rng.below(n);
    let other = fixture.replace_example(&model, &batch, j, seed ^ 3);
    let mut engine = fixture.engine();
    let original =
        per_sample_gradients(&mut engine, &mut model, &batch).map_err(engine_failure(CHECK))?;
    let changed =
        per_sample_gradients(&mut engine, &mut model, &other).map_err(engine_failure(CHECK))?;
    for i in (0..n).filter(|&i| i != j) {
        tolerance.compare(CHECK, flatten(&changed[i]), flatten(&original[i]))?;
    }
    Ok(())
}

/// The norm matrix from `norms` equals the per-group norms of the materialized g_i.
///
/// # Errors
///
/// A [`ConformanceFailure`] naming the first differing entry.
pub fn check_norms_match_materialized<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
    tolerance: Tolerance,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "norms agree with materialized per-sample gradients";
    let mut rng = SplitMix64::new(seed);
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, batch_size(&mut rng), seed ^ 4);
    let mut engine = fixture.engine();
    let reported = engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?
        .norms;
    let gradients =
        per_sample_gradients(&mut engine, &mut model, &batch).map_err(engine_failure(CHECK))?;
    let materialized = gradients.iter().flat_map(|groups| {
        groups
            .iter()
            .map(|g| g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
    });
    if reported.num_groups() != engine.parameter_groups(&model).len() {
        return Err(ConformanceFailure::new(
            CHECK,
            "norm matrix columns differ from parameter groups",
        ));
    }
    tolerance.compare(CHECK, reported.as_slice().iter().copied(), materialized)
}

/// With s_j = 0, the scaled sum is bit for bit the same whatever example j is.
///
/// # Errors
///
/// A [`ConformanceFailure`] naming the first differing entry.
pub fn check_zero_scale_drops_example<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "scale 0 drops an example exactly";
    let mut rng = SplitMix64::new(seed);
    let mut model = fixture.random_model(seed);
    let n = 1 + batch_size(&mut rng);
    let batch = fixture.random_batch(&model, n, seed ^ 5);
    let j = rng.below(n);
    let other = fixture.replace_example(&model, &batch, j, seed ^ 6);
    let mut scales: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
    scales[j] = 0.0;
    let mut engine = fixture.engine();
    let mut run = |batch: &F::Batch| {
        engine.norms(&model, batch)?;
        scaled_sum(&mut engine, &mut model, scales.clone())
    };
    let with_original = run(&batch).map_err(engine_failure(CHECK))?;
    let with_other = run(&other).map_err(engine_failure(CHECK))?;
    EXACT.compare(CHECK, flatten(&with_other), flatten(&with_original))
}

/// Losses, norms and a randomly scaled sum agree with the fixture's reference engine.
///
/// # Errors
///
/// A [`ConformanceFailure`] naming the first differing entry.
pub fn check_matches_reference<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
    tolerance: Tolerance,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "agreement with the per-example reference";
    let mut rng = SplitMix64::new(seed);
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, batch_size(&mut rng) * 2, seed ^ 7);
    let scales: Vec<f64> = (0..batch.num_examples())
        .map(|_| 2.0 * rng.next_f64())
        .collect();
    let mut engine = fixture.engine();
    let mut reference = fixture.reference();
    let got = engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    let want = reference
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    tolerance.compare(CHECK, got.losses, want.losses)?;
    tolerance.compare(
        CHECK,
        got.norms.as_slice().iter().copied(),
        want.norms.as_slice().iter().copied(),
    )?;
    let got_sum =
        scaled_sum(&mut engine, &mut model, scales.clone()).map_err(engine_failure(CHECK))?;
    let want_sum = scaled_sum(&mut reference, &mut model, scales).map_err(engine_failure(CHECK))?;
    tolerance.compare(CHECK, flatten(&got_sum), flatten(&want_sum))?;
    // Per-group factors, as per-layer clipping produces.
    let groups = engine.parameter_groups(&model).len();
    let factors = (0..batch.num_examples() * groups)
        .map(|_| 2.0 * rng.next_f64())
        .collect();
    let per_group = ScaleVector::per_group(factors, groups).map_err(engine_failure(CHECK))?;
    let got_groups =
        scaled_sum_with(&mut engine, &mut model, &per_group).map_err(engine_failure(CHECK))?;
    let want_groups =
        scaled_sum_with(&mut reference, &mut model, &per_group).map_err(engine_failure(CHECK))?;
    tolerance.compare(CHECK, flatten(&got_groups), flatten(&want_groups))
}

/// An empty batch gives no losses, an empty norm matrix and zero gradients in both paths.
///
/// # Errors
///
/// A [`ConformanceFailure`] if any of these fails or the engine errs.
pub fn check_empty_batch<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "an empty batch works";
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, 0, seed ^ 8);
    let mut engine = fixture.engine();
    let phase1 = engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    if !phase1.losses.is_empty() || phase1.norms.num_examples() != 0 {
        return Err(ConformanceFailure::new(
            CHECK,
            "norms of an empty batch are not empty",
        ));
    }
    let summed = scaled_sum(&mut engine, &mut model, Vec::new()).map_err(engine_failure(CHECK))?;
    engine.zero_grad(&mut model);
    engine
        .batch_gradient(&mut model, &batch)
        .map_err(engine_failure(CHECK))?;
    let batch_gradient =
        gradient_buffers(&mut engine, &mut model).map_err(engine_failure(CHECK))?;
    EXACT.compare(CHECK, flatten(&summed), flatten(&summed).map(|_| 0.0))?;
    EXACT.compare(
        CHECK,
        flatten(&batch_gradient),
        flatten(&batch_gradient).map(|_| 0.0),
    )
}

/// `accumulate_scaled` before any `norms` and with a wrong number of scales is an error.
///
/// # Errors
///
/// A [`ConformanceFailure`] if the engine accepts either call.
pub fn check_contract_errors<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "phase 2 without phase 1 or with wrong scales is an error";
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, 3, seed ^ 9);
    let mut engine = fixture.engine();
    if engine
        .accumulate_scaled(&mut model, &ScaleVector::ones(3))
        .is_ok()
    {
        return Err(ConformanceFailure::new(
            CHECK,
            "accumulate_scaled without a tape succeeded",
        ));
    }
    engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    if engine
        .accumulate_scaled(&mut model, &ScaleVector::ones(2))
        .is_ok()
    {
        return Err(ConformanceFailure::new(
            CHECK,
            "accumulate_scaled accepted 2 scales for 3 examples",
        ));
    }
    Ok(())
}

/// `visit_gradients` reaches the buffers `visit_parameters` shows, group by group, and what it
/// writes there stays (the values untouched).
///
/// # Errors
///
/// A [`ConformanceFailure`] if the two visits disagree, a write is lost or changes the values,
/// or the engine errs.
pub fn check_gradient_access<F: ConformanceFixture>(
    fixture: &F,
    seed: u64,
) -> Result<(), ConformanceFailure> {
    const CHECK: &str = "visit_gradients reaches the gradient buffers";
    let mut model = fixture.random_model(seed);
    let batch = fixture.random_batch(&model, 3, seed ^ 10);
    let mut engine = fixture.engine();
    engine
        .norms(&model, &batch)
        .map_err(engine_failure(CHECK))?;
    let summed =
        scaled_sum(&mut engine, &mut model, vec![1.0; 3]).map_err(engine_failure(CHECK))?;
    let (values, through_parameters) =
        parameter_buffers(&mut engine, &mut model).map_err(engine_failure(CHECK))?;
    EXACT.compare(CHECK, flatten(&summed), flatten(&through_parameters))?;
    // Each gradient becomes its group index plus its position, which no mix-up preserves.
    let mut visited = Vec::new();
    engine
        .visit_gradients(&mut model, &mut |group, gradient| {
            visited.push(group);
            for (position, value) in gradient.iter_mut().enumerate() {
                *value = (group + position) as f32;
            }
        })
        .map_err(engine_failure(CHECK))?;
    if visited != (0..summed.len()).collect::<Vec<_>>() {
        return Err(ConformanceFailure::new(
            CHECK,
            format!("groups visited {visited:?}, {} expected", summed.len()),
        ));
    }
    let (values_after, written) =
        parameter_buffers(&mut engine, &mut model).map_err(engine_failure(CHECK))?;
    let expected = summed
        .iter()
        .enumerate()
        .map(|(group, buffer)| {
            (0..buffer.len())
                .map(|position| (group + position) as f32)
                .collect()
        })
        .collect::<GroupBuffers>();
    EXACT.compare(CHECK, flatten(&written), flatten(&expected))?;
    EXACT.compare(CHECK, flatten(&values_after), flatten(&values))
}

/// Values and gradient buffers per parameter group, read through `visit_parameters`.
fn parameter_buffers<E: PerSampleGradEngine>(
    engine: &mut E,
    model: &mut E::Model,
) -> Result<(GroupBuffers, GroupBuffers), EngineError> {
    let (mut values, mut gradients) = (Vec::new(), Vec::new());
    engine.visit_parameters(model, &mut |view| {
        values.push(view.values.to_vec());
        gradients.push(view.gradient.to_vec());
    })?;
    Ok((values, gradients))
}

/// Every check, for every seed.
///
/// # Errors
///
/// The first [`ConformanceFailure`], with the seed in its detail.
pub fn run_conformance_suite<F: ConformanceFixture>(
    fixture: &F,
    seeds: impl IntoIterator<Item = u64>,
    tolerance: Tolerance,
) -> Result<(), ConformanceFailure> {
    for seed in seeds {
        let with_seed = |failure: ConformanceFailure| {
            ConformanceFailure::new(failure.check, format!("seed {seed}: {}", failure.detail))
        };
        check_sum_equals_batch_gradient(fixture, seed, tolerance).map_err(with_seed)?;
        check_example_independence(fixture, seed, tolerance).map_err(with_seed)?;
        check_norms_match_materialized(fixture, seed, tolerance).map_err(with_seed)?;
        check_zero_scale_drops_example(fixture, seed).map_err(with_seed)?;
        check_matches_reference(fixture, seed, tolerance).map_err(with_seed)?;
        check_empty_batch(fixture, seed).map_err(with_seed)?;
        check_contract_errors(fixture, seed).map_err(with_seed)?;
        check_gradient_access(fixture, seed).map_err(with_seed)?;
    }
    Ok(())
}
