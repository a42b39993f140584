//! Cost of privacy in time: a DP-SGD step (per-sample norms, clip factors, clipped sum,
//! noise) against a non-private step (batch gradient) on the same model and batch, measured
//! side by side in one process, per engine.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use dp_clip::{ClipPolicy, FlatClip, NormMatrix};
use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_ndarray::{Activation, Batch, BookKeepingEngine, Mlp, PerExampleReference};
use dp_sampler::{NoiseMode, SeededRng, add_gaussian_noise};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use super::{ExperimentContext, parameters, run_seed};
use crate::progress::RunProgress;
use crate::report::{ExperimentOutput, RunRecord, markdown_table};

#[derive(Deserialize)]
struct Parameters {
    /// Layer widths of the MLP, input to output.
    widths: Vec<usize>,
    batch_size: usize,
    /// Timed repetitions of each step kind (the median is reported).
    repetitions: usize,
    /// Engines to time: `bookkeeping`, `per-example`.
    engines: Vec<String>,
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
    let seed = run_seed(context.seed, &context.name, 0);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let model = Mlp::new(&parameters.widths, Activation::Tanh, &mut rng)?;
    let rows: Vec<usize> = (0..parameters.batch_size.min(data.train.labels().len())).collect();
    let features: Array2<f32> = data.train.features().select(Axis(0), &rows);
    let labels: Vec<usize> = rows.iter().map(|&i| data.train.labels()[i]).collect();
    let batch = Batch::new(features, labels)?;

    let threads = rayon::current_num_threads();
    let mut runs = Vec::new();
    let mut table = Vec::new();
    for engine_name in &parameters.engines {
        let timing = match engine_name.as_str() {
            "bookkeeping" => time_engine(
                BookKeepingEngine::new(),
                model.clone(),
                &batch,
                &parameters,
                engine_name,
            )?,
            "per-example" => time_engine(
                PerExampleReference::new(),
                model.clone(),
                &batch,
                &parameters,
                engine_name,
            )?,
            other => {
                anyhow::bail!("unknown engine `{other}` (expected bookkeeping or per-example)")
            }
        };
        let ratio = timing.dp_seconds / timing.non_private_seconds;
        table.push(vec![
            format!("ndarray {engine_name}"),
            format!("MLP {:?}", parameters.widths),
            parameters.batch_size.to_string(),
            format!("{:.2} ms", 1e3 * timing.non_private_seconds),
            format!("{:.2} ms", 1e3 * timing.dp_seconds),
            format!("{ratio:.2}x"),
        ]);
        runs.push(RunRecord {
            experiment: context.name.clone(),
            run: format!(
                "ndarray {engine_name} mlp {:?} batch {}",
                parameters.widths, parameters.batch_size
            ),
            epsilon: None,
            delta: 0.0,
            noise_multiplier: None,
            accountant: "none".to_owned(),
            engine: format!("ndarray-{engine_name}"),
            seed,
            steps: parameters.repetitions as u64,
            metrics: BTreeMap::from([
                ("dp_step_ms".to_owned(), 1e3 * timing.dp_seconds),
                (
                    "non_private_step_ms".to_owned(),
                    1e3 * timing.non_private_seconds,
                ),
                ("dp_over_non_private".to_owned(), ratio),
            ]),
            details: BTreeMap::from([
                ("threads".to_owned(), threads.to_string()),
                ("noise_mode".to_owned(), "secure".to_owned()),
                (
                    "statistic".to_owned(),
                    format!(
                        "median of {} interleaved repetitions",
                        parameters.repetitions
                    ),
                ),
            ]),
            seconds: timing.total_seconds,
        });
    }
    let mut markdown = format!(
        "Median wall-clock time of one step on the same MNIST batch, DP and non-private steps \
         interleaved in one process ({threads} rayon threads). DP step: per-sample norms, flat \
         clip factors, clipped sum, secure Gaussian noise on every parameter. Non-private step: \
         the batch gradient. The ratio is the cost of privacy in time. The libtorch engines are \
         timed by `cargo xtask bench` (criterion, target/bench/).\n\n"
    );
    markdown.push_str(&markdown_table(
        &[
            "engine",
            "model",
            "batch",
            "non-private step",
            "DP step",
            "DP / non-private",
        ],
        &table,
    ));
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots: Vec::new(),
    })
}

struct Timing {
    dp_seconds: f64,
    non_private_seconds: f64,
    total_seconds: f64,
}

fn time_engine<E>(
    mut engine: E,
    mut model: Mlp,
    batch: &Batch,
    parameters: &Parameters,
    name: &str,
) -> Result<Timing>
where
    E: PerSampleGradEngine<Model = Mlp, Batch = Batch>,
{
    let started = Instant::now();
    let clip = FlatClip::new(1.0)?;
    let mut noise_rng = SeededRng::new(7);
    let progress = RunProgress::new(&format!("ndarray {name}"), parameters.repetitions as u64);
    let (mut dp_times, mut non_private_times) = (Vec::new(), Vec::new());
    for repetition in 0..parameters.repetitions {
        let dp_started = Instant::now();
        engine.zero_grad(&mut model);
        let norms = engine.norms(&model, batch)?;
        let rows = norms.norms.num_examples();
        let outcome = clip.clip(&NormMatrix::new(
            norms.norms.as_slice(),
            rows,
            norms.norms.num_groups(),
        )?)?;
        let factors = (0..rows)
            .map(|i| outcome.scales.get(i, 0).unwrap_or(0.0))
            .collect();
        engine.accumulate_scaled(&mut model, &ScaleVector::new(factors)?)?;
        let mut noise_result = Ok(());
        engine.visit_gradients(&mut model, &mut |_, gradient| {
            if noise_result.is_ok() {
                noise_result = add_gaussian_noise(
                    gradient,
                    outcome.sensitivity,
                    NoiseMode::Secure,
                    &mut noise_rng,
                )
                .map(|_| ());
            }
        })?;
        noise_result.context("noise")?;
        dp_times.push(dp_started.elapsed().as_secs_f64());

        let non_private_started = Instant::now();
        engine.zero_grad(&mut model);
        engine.batch_gradient(&mut model, batch)?;
        non_private_times.push(non_private_started.elapsed().as_secs_f64());
        progress.update(repetition as u64 + 1, "");
    }
    let timing = Timing {
        dp_seconds: median(&mut dp_times),
        non_private_seconds: median(&mut non_private_times),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    progress.finish(&format!(
        "DP {:.2} ms, non-private {:.2} ms",
        1e3 * timing.dp_seconds,
        1e3 * timing.non_private_seconds
    ));
    Ok(timing)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
