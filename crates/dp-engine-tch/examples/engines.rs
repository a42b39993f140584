//! Trains the Opacus MNIST CNN on the shipped MNIST subset for a few DP-SGD steps with each
//! engine from the same seed, and prints per engine the largest relative difference of the
//! clipped noisy update against `Microbatch` (the per-example reference) and the step time.
//!
//! `cargo run -p dp-engine-tch --example engines --release` (device: CUDA when available,
//! unless `DP_RS_DEVICE=cpu`; threads: `OMP_NUM_THREADS`, default 1 here; data: the shipped
//! subset, or the IDX files in `DP_RS_MNIST_DIR`).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use dp_engine::{ExampleBatch, PerSampleGradEngine, ScaleVector};
use dp_engine_tch::{
    BookKeeping, DpModel, Ghost, Loss, Materialized, Microbatch, TensorBatch, models,
};
use tch::{Device, Tensor, nn};

const SEED: i64 = 42;
const STEPS: usize = 4;
const BATCH_SIZE: usize = 64;
const MAX_GRAD_NORM: f64 = 1.0;
const NOISE_MULTIPLIER: f64 = 1.1;
const LEARNING_RATE: f64 = 0.5;
/// MNIST pixel mean and standard deviation (of the full training set), as in the Opacus example.
const MNIST_MEAN: f64 = 0.1307;
const MNIST_STD: f64 = 0.3081;

fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

/// The first `STEPS` batches of the shipped training split, normalized.
fn batches(device: Device) -> anyhow::Result<Vec<TensorBatch>> {
    // `DP_RS_MNIST_DIR` points at a copy of `data/mnist` (the GPU bundle ships one).
    let data = match std::env::var_os("DP_RS_MNIST_DIR") {
        Some(dir) => dp_data::load_mnist(&dir)
            .with_context(|| format!("loading MNIST from DP_RS_MNIST_DIR={}", dir.display()))?,
        None => dp_data::load_shipped_mnist().context("loading the shipped MNIST subset")?,
    };
    let features = data.train.features();
    let labels = data.train.labels();
    (0..STEPS)
        .map(|step| {
            let rows = step * BATCH_SIZE..(step + 1) * BATCH_SIZE;
            let pixels: Vec<f32> = rows
                .clone()
                .flat_map(|row| features.row(row).to_vec())
                .collect();
            let targets: Vec<i64> = labels[rows].iter().map(|&label| label as i64).collect();
            let inputs = Tensor::from_slice(&pixels)
                .f_reshape([BATCH_SIZE as i64, 1, 28, 28])?
                .f_sub_scalar(MNIST_MEAN)?
                .f_div_scalar(MNIST_STD)?
                .f_to_device(device)?;
            Ok(TensorBatch::new(
                inputs,
                Tensor::from_slice(&targets).f_to_device(device)?,
            )?)
        })
        .collect()
}

/// The updates of every step and the mean step time (norms, clipping, clipped sum, noise).
fn train<E>(
    mut engine: E,
    batches: &[TensorBatch],
    device: Device,
) -> anyhow::Result<(Vec<Tensor>, Duration)>
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    tch::manual_seed(SEED);
    let store = nn::VarStore::new(device);
    let mut model = DpModel::new(
        &store,
        models::mnist_cnn(&store.root())?,
        Loss::CrossEntropy,
    )?;
    let mut updates = Vec::new();
    let mut elapsed = Duration::ZERO;
    for (step, batch) in batches.iter().enumerate() {
        let start = Instant::now();
        engine.zero_grad(&mut model);
        let phase1 = engine.norms(&model, batch)?;
        let scales = phase1
            .norms
            .flat_norms()
            .iter()
            .map(|norm| {
                if norm.is_finite() {
                    (MAX_GRAD_NORM / norm).min(1.0)
                } else {
                    0.0
                }
            })
            .collect();
        engine.accumulate_scaled(&mut model, &ScaleVector::new(scales)?)?;
        // The same noise for every engine: seeded per step.
        tch::manual_seed(SEED + 1 + step as i64);
        let mut flat = Vec::new();
        for (gradient, parameter) in model.gradients().iter().zip(model.parameters()) {
            let noise = gradient
                .f_randn_like()?
                .f_mul_scalar(NOISE_MULTIPLIER * MAX_GRAD_NORM)?;
            let update = gradient
                .f_add(&noise)?
                .f_div_scalar(batch.num_examples() as f64)?;
            tch::no_grad(|| {
                let mut parameter = parameter.tensor.shallow_clone();
                parameter.f_sub_(&update.f_mul_scalar(LEARNING_RATE)?)
            })
            .map(drop)?;
            flat.push(update.f_reshape([-1])?);
        }
        if let Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
        elapsed += start.elapsed();
        updates.push(Tensor::f_cat(&flat, 0)?);
    }
    Ok((updates, elapsed / batches.len() as u32))
}

fn max_relative_difference(updates: &[Tensor], reference: &[Tensor]) -> anyhow::Result<f64> {
    let mut worst: f64 = 0.0;
    for (update, expected) in updates.iter().zip(reference) {
        let difference = update
            .f_sub(expected)?
            .f_abs()?
            .f_max()?
            .f_double_value(&[])?;
        let scale = expected.f_abs()?.f_max()?.f_double_value(&[])?;
        worst = worst.max(difference / scale);
    }
    Ok(worst)
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        tch::set_num_threads(1);
    }
    let device = device();
    let batches = batches(device)?;
    println!(
        "Opacus MNIST CNN, {STEPS} steps of batch {BATCH_SIZE}, max_grad_norm {MAX_GRAD_NORM}, \
         noise_multiplier {NOISE_MULTIPLIER}, seed {SEED}, device {device:?}, {} threads",
        tch::get_num_threads()
    );
    let (reference, reference_time) = train(Microbatch::new(), &batches, device)?;
    println!(
        "{:<13} {:>12} {:>14}",
        "engine", "step (ms)", "max rel. diff"
    );
    println!(
        "{:<13} {:>12.1} {:>14}",
        "Microbatch",
        reference_time.as_secs_f64() * 1e3,
        "(reference)"
    );
    let runs = [
        (
            "Materialized",
            train(Materialized::new(), &batches, device)?,
        ),
        ("Ghost", train(Ghost::new(), &batches, device)?),
        ("BookKeeping", train(BookKeeping::new(), &batches, device)?),
    ];
    for (name, (updates, time)) in runs {
        println!(
            "{name:<13} {:>12.1} {:>14.2e}",
            time.as_secs_f64() * 1e3,
            max_relative_difference(&updates, &reference)?
        );
    }
    Ok(())
}
