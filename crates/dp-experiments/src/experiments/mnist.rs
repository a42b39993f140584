//! Test accuracy against ε on the shipped MNIST subset, with σ calibrated per ε, next to
//! Opacus's published full-MNIST figures.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::{ExperimentContext, parameters, run_seed};
use crate::plot::{LineChart, Series};
use crate::report::{ExperimentOutput, RunRecord, markdown_table};
use crate::training::{self, ACCOUNTANT, ENGINE, Privacy, TrainingSpec};

#[derive(Deserialize)]
struct Parameters {
    delta: f64,
    epsilons: Vec<f64>,
    mlp: TrainingSpec,
}

/// Opacus MNIST README (full MNIST, 60,000 training images, CNN): (ε, test accuracy).
const OPACUS_PUBLISHED: [(f64, f64); 3] = [(1.16, 0.946), (2.91, 0.968), (6.86, 0.971)];
/// Opacus MNIST README: non-private test accuracy.
const OPACUS_NON_PRIVATE: f64 = 0.989;

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
    let train = training::engine_dataset(&data.train)?;
    let test = training::engine_dataset(&data.test)?;
    let num_classes = data.train.num_classes();

    let mut privacies = vec![Privacy::NonPrivate];
    privacies.extend(
        parameters
            .epsilons
            .iter()
            .map(|&target_epsilon| Privacy::Private {
                target_epsilon,
                delta: parameters.delta,
            }),
    );
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut private_points = Vec::new();
    let mut non_private_accuracy = None;
    for (index, privacy) in privacies.into_iter().enumerate() {
        let seed = run_seed(context.seed, &context.name, index as u64);
        let label = format!("mlp {}", privacy.label());
        let trained =
            training::train_mlp(&train, num_classes, &parameters.mlp, privacy, seed, &label)?;
        let test_accuracy = training::accuracy(&trained.model, &test)?;
        let train_accuracy = training::accuracy(&trained.model, &train)?;
        match trained.epsilon {
            Some(epsilon) => private_points.push((epsilon, test_accuracy)),
            None => non_private_accuracy = Some(test_accuracy),
        }
        rows.push(vec![
            label.clone(),
            trained
                .epsilon
                .map_or("∞ (not private)".to_owned(), |e| format!("{e:.3}")),
            trained
                .noise_multiplier
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            trained.steps.to_string(),
            format!("{:.2}%", 100.0 * train_accuracy),
            format!("{:.2}%", 100.0 * test_accuracy),
            format!("{:.0} s", trained.seconds),
        ]);
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
            metrics: BTreeMap::from([
                ("test_accuracy".to_owned(), test_accuracy),
                ("train_accuracy".to_owned(), train_accuracy),
            ]),
            details: training_details(&parameters.mlp, privacy),
            seconds: trained.seconds,
        });
    }

    let mut markdown = format!(
        "MLP {:?} (tanh) trained on the 8,000 shipped training images, tested on the 2,000 \
         test images; DP-SGD with Poisson sampling (expected batch {}), flat clipping at C = {}, \
         secure noise, σ calibrated with the {} accountant so that ε(δ = {}) after {} epochs \
         meets the target. Engine: ndarray book-keeping.\n\n",
        parameters.mlp.hidden,
        parameters.mlp.batch_size,
        parameters.mlp.max_grad_norm,
        ACCOUNTANT,
        parameters.delta,
        parameters.mlp.epochs
    );
    markdown.push_str(&markdown_table(
        &[
            "run",
            "ε",
            "σ",
            "steps",
            "train accuracy",
            "test accuracy",
            "time",
        ],
        &rows,
    ));
    markdown.push_str(&format!(
        "\nFor reference, Opacus's MNIST example (a CNN on the full 60,000 images, so not the \
         same data size) reports {}, and {:.1}% non-private.\n\n",
        OPACUS_PUBLISHED
            .iter()
            .map(|(e, a)| format!("{:.1}% at ε = {e}", 100.0 * a))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * OPACUS_NON_PRIVATE
    ));

    let mut series = vec![Series {
        label: "DP-SGD, MLP (this run)".to_owned(),
        points: private_points.clone(),
    }];
    if let Some(accuracy) = non_private_accuracy {
        let (low, high) = private_points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (e, _)| {
                (l.min(*e), h.max(*e))
            });
        if low.is_finite() {
            series.push(Series {
                label: "non-private MLP (this run)".to_owned(),
                points: vec![(low, accuracy), (high, accuracy)],
            });
        }
    }
    series.push(Series {
        label: "Opacus README, CNN, full MNIST".to_owned(),
        points: OPACUS_PUBLISHED.to_vec(),
    });
    let chart = LineChart {
        title: "MNIST test accuracy vs ε".to_owned(),
        x_label: format!("ε at δ = {}", parameters.delta),
        y_label: "test accuracy".to_owned(),
        x_log: true,
        y_log: false,
        series,
    };
    let plots = chart.write(&context.out_dir, "accuracy_vs_epsilon")?;
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots,
    })
}

/// The facts of a training run that are not in [`RunRecord`]'s own fields.
pub fn training_details(spec: &TrainingSpec, privacy: Privacy) -> BTreeMap<String, String> {
    let mut details = BTreeMap::from([
        ("model".to_owned(), format!("mlp {:?} tanh", spec.hidden)),
        ("batch_size".to_owned(), spec.batch_size.to_string()),
        ("epochs".to_owned(), spec.epochs.to_string()),
        ("learning_rate".to_owned(), spec.learning_rate.to_string()),
        (
            "optimizer".to_owned(),
            if spec.weight_decay > 0.0 {
                format!("adamw (weight decay {})", spec.weight_decay)
            } else {
                format!("sgd (momentum {})", spec.momentum)
            },
        ),
    ]);
    match privacy {
        Privacy::NonPrivate => {
            details.insert(
                "sampler".to_owned(),
                "shuffled mini-batches (not private)".to_owned(),
            );
        }
        Privacy::Private { target_epsilon, .. } => {
            details.insert("sampler".to_owned(), "poisson".to_owned());
            details.insert("noise_mode".to_owned(), "secure".to_owned());
            details.insert(
                "clipping".to_owned(),
                format!("{:?} C = {}", spec.clipping, spec.max_grad_norm),
            );
            details.insert("target_epsilon".to_owned(), target_epsilon.to_string());
        }
    }
    details
}
