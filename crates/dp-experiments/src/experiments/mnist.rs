//! Test accuracy against ε on the shipped MNIST subset, with σ calibrated per ε, for an MLP
//! (pure-Rust ndarray engine) and the Opacus CNN (a libtorch engine, `--engine`), next to
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
    /// Ignored by binaries built without the `torch` feature.
    #[cfg(feature = "torch")]
    cnn: crate::torch_training::CnnSpec,
}

/// Opacus MNIST README (full MNIST, 60,000 training images, CNN): (ε, test accuracy).
const OPACUS_PUBLISHED: [(f64, f64); 3] = [(1.16, 0.946), (2.91, 0.968), (6.86, 0.971)];
/// Opacus MNIST README: non-private test accuracy.
const OPACUS_NON_PRIVATE: f64 = 0.989;

/// One training run's figures, for the table and the plot.
struct Outcome {
    /// `MLP` or `CNN`.
    model: &'static str,
    record: RunRecord,
    train_accuracy: f64,
    test_accuracy: f64,
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
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

    let mut outcomes = mlp_runs(context, &parameters, &data, &privacies)?;
    let (cnn_outcomes, cnn_description) = match context.engine.cnn_skip_reason() {
        Some(reason) => (
            Vec::new(),
            format!("**CNN**: not run, because {reason}; only the MLP runs are reported.\n\n"),
        ),
        #[cfg(feature = "torch")]
        None => cnn_runs(context, &parameters, &data, &privacies, privacies.len())?,
        #[cfg(not(feature = "torch"))]
        None => anyhow::bail!("the CNN runs need the `torch` feature"),
    };
    outcomes.extend(cnn_outcomes);
    let mut markdown = format!(
        "**MLP** {:?} (tanh), ndarray book-keeping engine: expected batch {}, {} epochs, SGD \
         (momentum {}, learning rate {}), flat clipping at C = {}.\n\n{cnn_description}",
        parameters.mlp.hidden,
        parameters.mlp.batch_size,
        parameters.mlp.epochs,
        parameters.mlp.momentum,
        parameters.mlp.learning_rate,
        parameters.mlp.max_grad_norm
    );
    markdown.insert_str(
        0,
        &format!(
            "Trained on the {} shipped training images, tested on the {} test images. \
             Private runs: DP-SGD with Poisson sampling, secure noise, σ calibrated with the {} \
             accountant so that ε(δ = {}) at the end of training meets the target. Non-private \
             runs: shuffled mini-batches of the same size, same optimizer. Seeds are in \
             `results.json`.\n\n",
            data.train.len(),
            data.test.len(),
            ACCOUNTANT,
            parameters.delta
        ),
    );

    let rows: Vec<Vec<String>> = outcomes.iter().map(table_row).collect();
    markdown.push_str(&markdown_table(
        &[
            "run",
            "engine",
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
        "\nFor reference, Opacus's MNIST example (the same CNN, but on the full 60,000 training \
         images and with its own hyper-parameters, so not the same data size) reports {}, and \
         {:.1}% non-private. With 7.5 times fewer examples, the same ε needs more noise per \
         step (the sampling probability is higher for the same batch size), so lower accuracy \
         at small ε is expected here.\n\n",
        OPACUS_PUBLISHED
            .iter()
            .map(|(e, a)| format!("{:.1}% at ε = {e}", 100.0 * a))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * OPACUS_NON_PRIVATE
    ));

    let mut series = Vec::new();
    for model in ["MLP", "CNN"] {
        series.extend(model_series(model, &outcomes));
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
        runs: outcomes.into_iter().map(|outcome| outcome.record).collect(),
        markdown,
        plots,
    })
}

/// The MLP runs (seeds `0..privacies.len()`), on the ndarray engine.
fn mlp_runs(
    context: &ExperimentContext,
    parameters: &Parameters,
    data: &dp_data::TrainTest,
    privacies: &[Privacy],
) -> Result<Vec<Outcome>> {
    let train = training::engine_dataset(&data.train)?;
    let test = training::engine_dataset(&data.test)?;
    let num_classes = data.train.num_classes();
    let mut outcomes = Vec::new();
    for (index, &privacy) in privacies.iter().enumerate() {
        let seed = run_seed(context.seed, &context.name, index as u64);
        let label = format!("mlp {}", privacy.label());
        let trained =
            training::train_mlp(&train, num_classes, &parameters.mlp, privacy, seed, &label)?;
        let test_accuracy = training::accuracy(&trained.model, &test)?;
        let train_accuracy = training::accuracy(&trained.model, &train)?;
        outcomes.push(Outcome {
            model: "MLP",
            record: RunRecord {
                experiment: context.name.clone(),
                run: label,
                epsilon: trained.epsilon,
                delta: parameters.delta,
                noise_multiplier: trained.noise_multiplier,
                accountant: ACCOUNTANT.to_string(),
                engine: ENGINE.to_owned(),
                seed,
                steps: trained.steps,
                metrics: accuracy_metrics(train_accuracy, test_accuracy),
                details: training_details(&parameters.mlp, privacy),
                seconds: trained.seconds,
            },
            train_accuracy,
            test_accuracy,
        });
    }
    Ok(outcomes)
}

/// The CNN runs (seeds from `first_seed_index` on), on the `--engine` libtorch engine, and
/// their description for the report.
#[cfg(feature = "torch")]
fn cnn_runs(
    context: &ExperimentContext,
    parameters: &Parameters,
    data: &dp_data::TrainTest,
    privacies: &[Privacy],
    first_seed_index: usize,
) -> Result<(Vec<Outcome>, String)> {
    use crate::torch_training::{self, CnnRun, ImageData, Normalization};

    let device = torch_training::device();
    let images = ImageData::new(data, device)?;
    let spec = &parameters.cnn;
    let mut outcomes = Vec::new();
    let mut engine_name = String::new();
    for (index, &privacy) in privacies.iter().enumerate() {
        let seed = run_seed(
            context.seed,
            &context.name,
            (first_seed_index + index) as u64,
        );
        let label = format!("cnn {}", privacy.label());
        let run = CnnRun {
            data: &images,
            spec,
            normalization: Normalization::None,
            privacy,
            engine: context.engine,
            seed,
            label: &label,
        };
        let trained = run.train()?;
        let train_accuracy = images.train_accuracy(&trained.model)?;
        let test_accuracy = images.test_accuracy(&trained.model)?;
        engine_name = run.engine_name();
        outcomes.push(Outcome {
            model: "CNN",
            record: run.record(
                &context.name,
                parameters.delta,
                &trained,
                accuracy_metrics(train_accuracy, test_accuracy),
            ),
            train_accuracy,
            test_accuracy,
        });
    }
    let description = format!(
        "**CNN**: the Opacus MNIST CNN (two convolutions, 26,010 parameters), libtorch engine \
         `{engine_name}` (`--engine`) on {}; inputs standardized as in the Opacus example; \
         expected batch {}, {} epochs, SGD (momentum {}, learning rate {}, non-private {}), \
         flat clipping at C = {}.\n\n",
        torch_training::device_summary(device),
        spec.batch_size,
        spec.epochs,
        spec.momentum,
        spec.learning_rate,
        spec.non_private_learning_rate.unwrap_or(spec.learning_rate),
        spec.max_grad_norm
    );
    Ok((outcomes, description))
}

fn accuracy_metrics(train_accuracy: f64, test_accuracy: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("test_accuracy".to_owned(), test_accuracy),
        ("train_accuracy".to_owned(), train_accuracy),
    ])
}

fn table_row(outcome: &Outcome) -> Vec<String> {
    let record = &outcome.record;
    vec![
        record.run.clone(),
        record.engine.clone(),
        record
            .epsilon
            .map_or("∞ (not private)".to_owned(), |e| format!("{e:.3}")),
        record
            .noise_multiplier
            .map_or("-".to_owned(), |s| format!("{s:.3}")),
        record.steps.to_string(),
        format!("{:.2}%", 100.0 * outcome.train_accuracy),
        format!("{:.2}%", 100.0 * outcome.test_accuracy),
        format!("{:.0} s", record.seconds),
    ]
}

/// The private accuracy curve of `model` and its non-private accuracy as a flat line over the
/// same ε range (nothing when the model was not run).
fn model_series(model: &str, outcomes: &[Outcome]) -> Vec<Series> {
    let mut private_points: Vec<(f64, f64)> = outcomes
        .iter()
        .filter(|outcome| outcome.model == model)
        .filter_map(|outcome| {
            outcome
                .record
                .epsilon
                .map(|epsilon| (epsilon, outcome.test_accuracy))
        })
        .collect();
    private_points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let non_private = outcomes
        .iter()
        .find(|outcome| outcome.model == model && outcome.record.epsilon.is_none());
    let mut series = Vec::new();
    if let (Some(outcome), Some(first), Some(last)) =
        (non_private, private_points.first(), private_points.last())
    {
        series.push(Series {
            label: format!("non-private {model} (this run)"),
            points: vec![
                (first.0, outcome.test_accuracy),
                (last.0, outcome.test_accuracy),
            ],
        });
    }
    if !private_points.is_empty() {
        series.push(Series {
            label: format!("DP-SGD, {model} (this run)"),
            points: private_points,
        });
    }
    series
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
            } else if spec.adam {
                "adam".to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(model: &'static str, epsilon: Option<f64>, test_accuracy: f64) -> Outcome {
        Outcome {
            model,
            record: RunRecord {
                experiment: "mnist".to_owned(),
                run: "run".to_owned(),
                epsilon,
                delta: 1e-5,
                noise_multiplier: epsilon.map(|_| 1.0),
                accountant: "rdp".to_owned(),
                engine: "test".to_owned(),
                seed: 0,
                steps: 1,
                metrics: BTreeMap::new(),
                details: BTreeMap::new(),
                seconds: 0.0,
            },
            train_accuracy: test_accuracy,
            test_accuracy,
        }
    }

    #[test]
    fn series_are_per_model_sorted_by_epsilon_with_a_flat_non_private_line() {
        let outcomes = [
            outcome("MLP", None, 0.95),
            outcome("MLP", Some(8.0), 0.9),
            outcome("MLP", Some(1.0), 0.8),
            outcome("CNN", Some(3.0), 0.85),
        ];
        let mlp = model_series("MLP", &outcomes);
        assert_eq!(mlp.len(), 2);
        assert_eq!(mlp[0].points, vec![(1.0, 0.95), (8.0, 0.95)]);
        assert_eq!(mlp[1].points, vec![(1.0, 0.8), (8.0, 0.9)]);
        // The CNN has no non-private run here: only its private curve.
        let cnn = model_series("CNN", &outcomes);
        assert_eq!(cnn.len(), 1);
        assert_eq!(cnn[0].points, vec![(3.0, 0.85)]);
        assert!(model_series("LSTM", &outcomes).is_empty());
    }
}
