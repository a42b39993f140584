//! The practitioners' tips at a fixed ε: larger batches (σ recalibrated), weight decay,
//! augmentation multiplicity and automatic clipping, each changed alone from one MLP baseline,
//! and GroupNorm vs no normalization on a CNN (libtorch engine, `--engine`) (De et al. 2022;
//! Bu et al. 2022; Ponomareva et al. 2023, "How to DP-fy ML").

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
    /// Decoupled weight decay of the weight-decay variant (AdamW, compared with Adam).
    weight_decay: f64,
    /// Learning rate of the Adam and AdamW variants (SGD's rate does not suit Adam).
    adam_learning_rate: f64,
    /// Views per example of the augmentation-multiplicity variant.
    augmentation_views: usize,
    /// The CNN of the normalization comparison (ignored without the `torch` feature).
    #[cfg(feature = "torch")]
    cnn: crate::torch_training::CnnSpec,
    /// Groups of each GroupNorm layer of the normalization comparison.
    #[cfg(feature = "torch")]
    group_norm_groups: i64,
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
    let adam = TrainingSpec {
        adam: true,
        learning_rate: parameters.adam_learning_rate,
        ..baseline.clone()
    };
    variants.push((
        format!("Adam, learning rate {}", parameters.adam_learning_rate),
        "weight decay (Adam reference)",
        adam.clone(),
    ));
    variants.push((
        format!(
            "AdamW, learning rate {}, weight decay {}",
            parameters.adam_learning_rate, parameters.weight_decay
        ),
        "weight decay",
        TrainingSpec {
            weight_decay: parameters.weight_decay,
            ..adam
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
            ENGINE.to_owned(),
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

    let normalization_description = match context.engine.cnn_skip_reason() {
        Some(reason) => format!(
            "GroupNorm vs no normalization (a CNN on a libtorch engine) was not run, because \
             {reason}.\n\n"
        ),
        #[cfg(feature = "torch")]
        None => normalization_runs(context, &parameters, &data, privacy, &mut rows, &mut runs)?,
        #[cfg(not(feature = "torch"))]
        None => anyhow::bail!("the CNN runs need the `torch` feature"),
    };

    let mut markdown = format!(
        "Every run is DP-SGD on the shipped MNIST subset at ε = {} (δ = {}), σ calibrated per run \
         with the {} accountant, Poisson sampling, secure noise; the MLP runs use the ndarray \
         book-keeping engine. The baseline is MLP {:?}, expected batch {}, {} epochs, SGD (momentum {}, learning rate \
         {}), flat clipping at C = {}; each other run changes one thing. Batch sizes keep the \
         epochs fixed (more steps for small batches, σ recalibrated). Weight decay is AdamW against Adam at the same learning rate (SGD's rate does not suit Adam). \
         Augmentation multiplicity averages K randomly shifted copies of each example before \
         clipping, so it costs no privacy. Automatic clipping scales each gradient by \
         C/(‖g‖ + 0.01).\n\n{normalization_description}",
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
            "engine",
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

/// GroupNorm vs no normalization: the CNN trained twice at the experiment's ε, once as is and
/// once with GroupNorm after each convolution (seeds after the MLP runs'). Adds table rows and
/// results; returns the report's paragraph.
#[cfg(feature = "torch")]
fn normalization_runs(
    context: &ExperimentContext,
    parameters: &Parameters,
    data: &dp_data::TrainTest,
    privacy: Privacy,
    rows: &mut Vec<Vec<String>>,
    runs: &mut Vec<RunRecord>,
) -> Result<String> {
    use crate::torch_training::{self, CnnRun, ImageData, Normalization};

    let device = torch_training::device();
    let images = ImageData::new(data, device)?;
    let normalizations = [
        Normalization::None,
        Normalization::GroupNorm {
            groups: parameters.group_norm_groups,
        },
    ];
    let mut without_normalization = None;
    let mut engine_name = String::new();
    for normalization in normalizations {
        let seed = run_seed(context.seed, &context.name, runs.len() as u64);
        let label = format!("cnn, normalization {}", normalization.describe());
        let run = CnnRun {
            data: &images,
            spec: &parameters.cnn,
            normalization,
            privacy,
            engine: context.engine,
            seed,
            label: &label,
        };
        let trained = run.train()?;
        let test_accuracy = images.test_accuracy(&trained.model)?;
        let change = match without_normalization {
            None => {
                without_normalization = Some(test_accuracy);
                "-".to_owned()
            }
            Some(base) => format!("{:+.2} points", 100.0 * (test_accuracy - base)),
        };
        engine_name = run.engine_name();
        rows.push(vec![
            label.clone(),
            engine_name.clone(),
            "normalization".to_owned(),
            trained
                .noise_multiplier
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            trained.steps.to_string(),
            format!("{:.2}%", 100.0 * test_accuracy),
            change,
            format!("{:.0} s", trained.seconds),
        ]);
        let mut record = run.record(
            &context.name,
            parameters.delta,
            &trained,
            BTreeMap::from([("test_accuracy".to_owned(), test_accuracy)]),
        );
        record
            .details
            .insert("tip".to_owned(), "normalization".to_owned());
        runs.push(record);
    }
    let spec = &parameters.cnn;
    Ok(format!(
        "Normalization: the Opacus MNIST CNN without normalization against the same CNN with \
         GroupNorm ({} groups) after each convolution, both at the ε above, engine \
         `{engine_name}` on {}, expected batch {}, {} epochs, SGD (momentum {}, learning rate \
         {}), flat clipping at C = {}; its \"vs baseline\" is against the CNN without \
         normalization. BatchNorm is not among the variants because it mixes the examples of \
         a batch, so per-example gradients (and the privacy analysis) do not exist for it: the \
         model validator refuses it before training. Asked to wrap the CNN with a BatchNorm \
         layer, it answers: \"{}\"\n\n",
        parameters.group_norm_groups,
        torch_training::device_summary(device),
        spec.batch_size,
        spec.epochs,
        spec.momentum,
        spec.learning_rate,
        spec.max_grad_norm,
        torch_training::batch_norm_refusal()?
    ))
}
