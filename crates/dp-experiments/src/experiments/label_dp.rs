//! Label DP by randomized response with a prior (Ghazi et al. 2021) against DP-SGD at the
//! same ε. Label DP protects only the labels (the images are treated as public), a weaker
//! guarantee than DP-SGD's: the comparison shows what that weaker guarantee buys in accuracy.

use std::collections::BTreeMap;

use anyhow::Result;
use dp_engine_ndarray::{ArrayDataset, Mlp};
use dp_sampler::SeededRng;
use dp_trainer::RandomizedResponseWithPrior;
use ndarray::Axis;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use super::mnist::training_details;
use super::{ExperimentContext, parameters, run_seed};
use crate::plot::{LineChart, Series};
use crate::report::{ExperimentOutput, RunRecord, markdown_table};
use crate::training::{self, ACCOUNTANT, ENGINE, Privacy, TrainingSpec};

#[derive(Deserialize)]
struct Parameters {
    epsilons: Vec<f64>,
    /// δ of the DP-SGD runs (randomized response is pure ε-label-DP).
    delta: f64,
    /// Training of the models fitted on noisy labels (not private: the labels already are).
    label_dp: TrainingSpec,
    /// Training of the DP-SGD runs.
    dp_sgd: TrainingSpec,
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
    let train = training::engine_dataset(&data.train)?;
    let test = training::engine_dataset(&data.test)?;
    let num_classes = data.train.num_classes();

    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut label_dp_points = Vec::new();
    let mut dp_sgd_points = Vec::new();
    for (index, &epsilon) in parameters.epsilons.iter().enumerate() {
        let seed = run_seed(context.seed, &context.name, 2 * index as u64);
        let label = format!("RR-with-prior eps={epsilon}");
        let (model, noisy_fraction, seconds) = two_stage_label_dp(
            &train,
            num_classes,
            epsilon,
            &parameters.label_dp,
            seed,
            &label,
        )?;
        let accuracy = training::accuracy(&model, &test)?;
        label_dp_points.push((epsilon, accuracy));
        rows.push(vec![
            label.clone(),
            format!("{epsilon} (label DP, δ = 0)"),
            format!("{:.1}%", 100.0 * noisy_fraction),
            format!("{:.2}%", 100.0 * accuracy),
            format!("{seconds:.0} s"),
        ]);
        let mut details = training_details(&parameters.label_dp, Privacy::NonPrivate);
        details.insert(
            "mechanism".to_owned(),
            "randomized response with prior, two stages".to_owned(),
        );
        details.insert(
            "guarantee".to_owned(),
            "epsilon-label-DP, replace-one-label; features not protected".to_owned(),
        );
        runs.push(RunRecord {
            experiment: context.name.clone(),
            run: label,
            epsilon: Some(epsilon),
            delta: 0.0,
            noise_multiplier: None,
            accountant: "randomized-response (pure epsilon)".to_owned(),
            engine: ENGINE.to_owned(),
            seed,
            steps: 0,
            metrics: BTreeMap::from([
                ("test_accuracy".to_owned(), accuracy),
                ("flipped_label_fraction".to_owned(), noisy_fraction),
            ]),
            details,
            seconds,
        });

        let seed = run_seed(context.seed, &context.name, 2 * index as u64 + 1);
        let label = format!("DP-SGD eps={epsilon}");
        let privacy = Privacy::Private {
            target_epsilon: epsilon,
            delta: parameters.delta,
        };
        let trained = training::train_mlp(
            &train,
            num_classes,
            &parameters.dp_sgd,
            privacy,
            seed,
            &label,
        )?;
        let accuracy = training::accuracy(&trained.model, &test)?;
        dp_sgd_points.push((epsilon, accuracy));
        rows.push(vec![
            label.clone(),
            format!("{epsilon} (DP, δ = {})", parameters.delta),
            "-".to_owned(),
            format!("{:.2}%", 100.0 * accuracy),
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
            metrics: BTreeMap::from([("test_accuracy".to_owned(), accuracy)]),
            details: training_details(&parameters.dp_sgd, privacy),
            seconds: trained.seconds,
        });
    }

    let mut markdown = String::from(
        "Randomized response with a prior (Ghazi et al. 2021), two stages: the labels of a random \
         half of the training set are randomized with a uniform prior (plain K-ary randomized \
         response), a model trained on them gives the prior for the other half, whose labels are \
         then randomized with that prior (keeping the top-k classes); the final model trains \
         non-privately on all noisy labels. Each label is randomized once, so the release is \
         ε-label-DP (pure) under replace-one-label; the images are not protected. DP-SGD \
         protects whole examples at (ε, δ). Same data, same MLP.\n\n",
    );
    markdown.push_str(&markdown_table(
        &["run", "ε", "labels changed", "test accuracy", "time"],
        &rows,
    ));
    let chart = LineChart {
        title: "Label DP vs DP-SGD at the same ε".to_owned(),
        x_label: "ε".to_owned(),
        y_label: "test accuracy".to_owned(),
        x_log: true,
        y_log: false,
        series: vec![
            Series {
                label: "RR with prior (label DP only)".to_owned(),
                points: label_dp_points,
            },
            Series {
                label: "DP-SGD (whole examples)".to_owned(),
                points: dp_sgd_points,
            },
        ],
    };
    let plots = chart.write(&context.out_dir, "label_dp_vs_dp_sgd")?;
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots,
    })
}

/// Two-stage RR-with-prior training; returns the final model, the fraction of labels changed
/// and the seconds taken.
fn two_stage_label_dp(
    train: &ArrayDataset,
    num_classes: usize,
    epsilon: f64,
    spec: &TrainingSpec,
    seed: u64,
    label: &str,
) -> Result<(Mlp, f64, f64)> {
    let started = std::time::Instant::now();
    let mechanism = RandomizedResponseWithPrior::new(epsilon, num_classes)?;
    let mut rng = SeededRng::new(seed);
    let mut order: Vec<usize> = (0..train.labels().len()).collect();
    order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    let (first, second) = order.split_at(order.len() / 2);

    let uniform = vec![1.0 / num_classes as f64; num_classes];
    let first_labels: Vec<usize> = first.iter().map(|&i| train.labels()[i]).collect();
    let (first_noisy, _) =
        mechanism.randomize_labels(&first_labels, |_| uniform.clone(), &mut rng)?;
    let first_data = subset(train, first, first_noisy.clone())?;
    let stage_one = training::train_mlp(
        &first_data,
        num_classes,
        spec,
        Privacy::NonPrivate,
        seed ^ 1,
        &format!("{label} stage 1"),
    )?;

    let second_data = subset(
        train,
        second,
        second.iter().map(|&i| train.labels()[i]).collect(),
    )?;
    let priors = probabilities(&stage_one.model, &second_data)?;
    let (second_noisy, _) =
        mechanism.randomize_labels(second_data.labels(), |i| priors.row(i).to_vec(), &mut rng)?;

    let all_indices: Vec<usize> = first.iter().chain(second).copied().collect();
    let all_noisy: Vec<usize> = first_noisy.into_iter().chain(second_noisy).collect();
    let changed = all_indices
        .iter()
        .zip(&all_noisy)
        .filter(|(i, noisy)| train.labels()[**i] != **noisy)
        .count() as f64
        / all_indices.len() as f64;
    let final_data = subset(train, &all_indices, all_noisy)?;
    let final_model = training::train_mlp(
        &final_data,
        num_classes,
        spec,
        Privacy::NonPrivate,
        seed ^ 2,
        &format!("{label} stage 2"),
    )?;
    Ok((final_model.model, changed, started.elapsed().as_secs_f64()))
}

fn subset(data: &ArrayDataset, indices: &[usize], labels: Vec<usize>) -> Result<ArrayDataset> {
    Ok(ArrayDataset::new(
        data.features().select(Axis(0), indices),
        labels,
    )?)
}

/// Softmax of the model's logits, one row per example.
fn probabilities(model: &Mlp, data: &ArrayDataset) -> Result<ndarray::Array2<f64>> {
    let logits = model.logits(data.features().view())?;
    let mut probabilities = logits.mapv(f64::from);
    for mut row in probabilities.axis_iter_mut(Axis(0)) {
        let max = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
    Ok(probabilities)
}
