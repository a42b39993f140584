//! The practitioners' tips at a fixed ε: larger batches (σ recalibrated), weight decay,
//! augmentation multiplicity and automatic clipping, each changed alone from one baseline
//! (De et al. 2022; Bu et al. 2022; Ponomareva et al. 2023, "How to DP-fy ML").

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::mnist::training_details;
use super::{ExperimentContext, parameters, run_seed};
use crate::plot::{LineChart, Series};
use crate::report::{ExperimentOutput, RunRecord, markdown_table};
use crate::training::{self, ACCOUNTANT, Clipping, ENGINE, Privacy, TrainingSpec};

#[derive(Deserialize)]
struct Parameters {
    /// The ε every variant is calibrated to.
    epsilon: f64,
    delta: f64,
    /// The baseline every variant changes one thing of.
    baseline: TrainingSpec,
    /// Expected batch sizes to compare (same epochs, σ recalibrated for each).
    batch_sizes: Vec<f64>,
    /// Decoupled weight decay of the weight-decay variant (AdamW).
    weight_decay: f64,
    /// Views per example of the augmentation-multiplicity variant.
    augmentation_views: usize,
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
    let train = training::engine_dataset(&data.train)?;
    let test = training::engine_dataset(&data.test)?;
    let privacy = Privacy::Private {
        target_epsilon: parameters.epsilon,
        delta: parameters.delta,
    };

    let baseline = &parameters.baseline;
    let mut variants: Vec<(String, &str, TrainingSpec)> = Vec::new();
    for &batch_size in &parameters.batch_sizes {
        let spec = TrainingSpec {
            batch_size,
            ..baseline.clone()
        };
        variants.push((format!("batch {batch_size}"), "batch size", spec));
    }
    variants.push((
        format!("AdamW, weight decay {}", parameters.weight_decay),
        "weight decay",
        TrainingSpec {
            weight_decay: parameters.weight_decay,
            ..baseline.clone()
        },
    ));
    variants.push((
        format!(
            "augmentation multiplicity K = {}",
            parameters.augmentation_views
        ),
        "augmentation multiplicity",
        TrainingSpec {
            augmentation_views: parameters.augmentation_views,
            ..baseline.clone()
        },
    ));
    variants.push((
        "automatic clipping".to_owned(),
        "clipping",
        TrainingSpec {
            clipping: Clipping::Automatic,
            ..baseline.clone()
        },
    ));

    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut batch_points = Vec::new();
    let baseline_label = format!("baseline (batch {})", baseline.batch_size);
    let mut baseline_accuracy = None;
    for (index, (label, tip, spec)) in
        std::iter::once((baseline_label.clone(), "baseline", baseline.clone()))
            .chain(variants)
            .enumerate()
    {
        let seed = run_seed(context.seed, &context.name, index as u64);
        let trained = training::train_mlp(
            &train,
            data.train.num_classes(),
            &spec,
            privacy,
            seed,
            &label,
        )?;
        let test_accuracy = training::accuracy(&trained.model, &test)?;
        if tip == "baseline" {
            baseline_accuracy = Some(test_accuracy);
        }
        if tip == "batch size" || tip == "baseline" {
            batch_points.push((spec.batch_size, test_accuracy));
        }
        let change = baseline_accuracy.map_or(String::new(), |base| {
            format!("{:+.2} points", 100.0 * (test_accuracy - base))
        });
        rows.push(vec![
            label.clone(),
            tip.to_owned(),
            trained
                .noise_multiplier
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            trained.steps.to_string(),
            format!("{:.2}%", 100.0 * test_accuracy),
            if tip == "baseline" {
                "-".to_owned()
            } else {
                change
            },
            format!("{:.0} s", trained.seconds),
        ]);
        let mut details = training_details(&spec, privacy);
        details.insert("tip".to_owned(), tip.to_owned());
        details.insert(
            "augmentation_views".to_owned(),
            spec.augmentation_views.to_string(),
        );
        runs.push(RunRecord {
            experiment: context.name.clone(),
            run: label,
            epsilon: trained.epsilon,
            delta: parameters.delta,
            noise_multiplier: trained.noise_multiplier,
            accountant: ACCOUNTANT.to_string(),
            engine: ENGINE.to_owned(),
            seed,
            steps: trained.steps,
            metrics: BTreeMap::from([("test_accuracy".to_owned(), test_accuracy)]),
            details,
            seconds: trained.seconds,
        });
    }

    let mut markdown = format!(
        "Every run is DP-SGD on the shipped MNIST subset at ε = {} (δ = {}), σ calibrated per run \
         with the {} accountant, Poisson sampling, secure noise, the ndarray book-keeping engine. \
         The baseline is MLP {:?}, expected batch {}, {} epochs, SGD (momentum {}, learning rate \
         {}), flat clipping at C = {}; each other run changes one thing. Batch sizes keep the \
         epochs fixed (more steps for small batches, σ recalibrated). Weight decay uses AdamW. \
         Augmentation multiplicity averages K randomly shifted copies of each example before \
         clipping, so it costs no privacy. Automatic clipping scales each gradient by \
         C/(‖g‖ + 0.01). GroupNorm vs no normalization needs a convolutional model on the \
         libtorch engine and is not part of this experiment yet.\n\n",
        parameters.epsilon,
        parameters.delta,
        ACCOUNTANT,
        baseline.hidden,
        baseline.batch_size,
        baseline.epochs,
        baseline.momentum,
        baseline.learning_rate,
        baseline.max_grad_norm
    );
    markdown.push_str(&markdown_table(
        &[
            "run",
            "tip",
            "σ",
            "steps",
            "test accuracy",
            "vs baseline",
            "time",
        ],
        &rows,
    ));
    batch_points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chart = LineChart {
        title: format!(
            "Test accuracy vs expected batch size at ε = {}",
            parameters.epsilon
        ),
        x_label: "expected batch size".to_owned(),
        y_label: "test accuracy".to_owned(),
        x_log: true,
        y_log: false,
        series: vec![Series {
            label: "DP-SGD, MLP, fixed epochs".to_owned(),
            points: batch_points,
        }],
    };
    let plots = chart.write(&context.out_dir, "accuracy_vs_batch_size")?;
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots,
    })
}
