//! Membership inference against MNIST MLPs, non-private and at several ε: the LOSS attack
//! (Yeom et al. 2018) and LiRA online and offline (Carlini et al. 2022), with ROC curves.
//!
//! The setup is LiRA's: a pool of training images, `shadow_models` models per privacy level,
//! each trained on a random half of the pool (every image is in exactly half of the models).
//! Each model serves once as the target, attacked with the other models as shadows
//! (leave-one-out), and the scores of all targets are pooled into one ROC curve per attack.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use dp_attacks::{
    Execution, LiraVariance, MembershipMetrics, RocCurve, ShadowObservations, lira_offline,
    lira_online, logit_scale_from_logits, membership_metrics,
};
use dp_engine_ndarray::{ArrayDataset, Mlp};
use ndarray::Axis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use super::mnist::training_details;
use super::{ExperimentContext, parameters, run_seed};
use crate::plot::{LineChart, Series};
use crate::report::{ExperimentOutput, RunRecord, markdown_table};
use crate::training::{self, ACCOUNTANT, ENGINE, Privacy, TrainingSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    /// δ of every private run.
    delta: f64,
    /// Target ε of the private runs (a non-private run always comes first).
    epsilons: Vec<f64>,
    /// Images drawn from the training set; each model trains on a random half.
    pool_size: usize,
    /// Models per privacy level (each is the target once, the others its shadows).
    shadow_models: usize,
    /// Hyper-parameters of the non-private models (chosen to overfit).
    non_private: TrainingSpec,
    /// Hyper-parameters of the DP-SGD models.
    private: TrainingSpec,
}

/// Points of the ROC curves drawn per attack (log-spaced false-positive rates).
const ROC_PLOT_POINTS: usize = 120;

/// The low false-positive rate the report focuses on (Carlini et al. 2022).
const REPORTED_FPR: f64 = 0.001;

/// The three attacks, in report order.
const ATTACKS: [&str; 3] = ["loss", "lira-online", "lira-offline"];

/// What one trained model left behind besides its φ values.
struct ModelSummary {
    losses: Vec<f64>,
    epsilon: Option<f64>,
    noise_multiplier: Option<f64>,
    steps: u64,
    seconds: f64,
    train_accuracy: f64,
    test_accuracy: f64,
}

/// The pooled attack scores of one privacy level.
struct LevelScores {
    members: [Vec<f64>; 3],
    nonmembers: [Vec<f64>; 3],
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    let data = super::load_mnist(context)?;
    let pool_seed = run_seed(context.seed, &context.name, u64::MAX);
    let pool = random_subset(
        &data.train,
        parameters.pool_size,
        &mut ChaCha20Rng::seed_from_u64(pool_seed),
    )?;
    let test = training::engine_dataset(&data.test)?;

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
    let mut attack_rows = Vec::new();
    let mut model_rows = Vec::new();
    let mut curves: [Vec<Series>; 3] = Default::default();
    let mut non_private_lira = None;
    let mut private_lira = Vec::new();
    for (level, privacy) in privacies.into_iter().enumerate() {
        let started = Instant::now();
        let masks_seed = run_seed(context.seed, &context.name, (level as u64) << 32);
        let model_seeds: Vec<u64> = (0..parameters.shadow_models as u64)
            .map(|model| {
                run_seed(
                    context.seed,
                    &context.name,
                    ((level as u64) << 32) + model + 1,
                )
            })
            .collect();
        let spec = spec_for(privacy, &parameters.non_private, &parameters.private);
        let (shadows, summaries) =
            train_models(&parameters, &pool, &test, privacy, masks_seed, &model_seeds)?;
        let scores = attack_scores(&shadows, &summaries)?;
        let seconds = started.elapsed().as_secs_f64();

        let first = &summaries[0];
        let count = summaries.len() as f64;
        let train_accuracy = summaries.iter().map(|s| s.train_accuracy).sum::<f64>() / count;
        let test_accuracy = summaries.iter().map(|s| s.test_accuracy).sum::<f64>() / count;
        let training_seconds = summaries.iter().map(|s| s.seconds).sum::<f64>();
        let epsilon_text = first
            .epsilon
            .map_or("∞ (not private)".to_owned(), |e| format!("{e:.3}"));
        model_rows.push(vec![
            privacy.label(),
            epsilon_text.clone(),
            first
                .noise_multiplier
                .map_or("-".to_owned(), |s| format!("{s:.3}")),
            first.steps.to_string(),
            format!("{:.1}%", 100.0 * train_accuracy),
            format!("{:.1}%", 100.0 * test_accuracy),
            format!("{training_seconds:.0} s"),
        ]);
        for (attack, name) in ATTACKS.iter().enumerate() {
            let (members, nonmembers) = (&scores.members[attack], &scores.nonmembers[attack]);
            let metrics = membership_metrics(members, nonmembers)?;
            let roc = RocCurve::new(members, nonmembers)?;
            curves[attack].push(Series {
                label: privacy.label(),
                points: log_grid_roc(&roc, ROC_PLOT_POINTS)?,
            });
            if attack == 1 {
                match first.epsilon {
                    None => non_private_lira = Some(metrics),
                    Some(epsilon) => private_lira.push((epsilon, metrics)),
                }
            }
            attack_rows.push(vec![
                privacy.label(),
                epsilon_text.clone(),
                (*name).to_owned(),
                format!("{:.3}", metrics.auc),
                percent(metrics.tpr_at_0_1_percent_fpr),
                percent(metrics.tpr_at_1_percent_fpr),
                first.epsilon.map_or("1 (none)".to_owned(), |e| {
                    percent(dp_tpr_bound(e, parameters.delta, REPORTED_FPR))
                }),
            ]);
            runs.push(RunRecord {
                experiment: context.name.clone(),
                run: format!("{name} {}", privacy.label()),
                epsilon: first.epsilon,
                delta: parameters.delta,
                noise_multiplier: first.noise_multiplier,
                accountant: ACCOUNTANT.to_string(),
                engine: ENGINE.to_owned(),
                seed: masks_seed,
                steps: first.steps,
                metrics: metric_map(&metrics, train_accuracy, test_accuracy),
                details: attack_details(&parameters, spec, privacy, name, &model_seeds),
                seconds,
            });
        }
    }

    let mut plots = Vec::new();
    for (attack, series) in curves.into_iter().enumerate() {
        let mut series = series;
        let lowest = 1.0 / (parameters.pool_size as f64 * parameters.shadow_models as f64 / 2.0);
        series.push(Series {
            label: "chance (TPR = FPR)".to_owned(),
            points: vec![(lowest, lowest), (1.0, 1.0)],
        });
        let chart = LineChart {
            title: format!("MNIST membership inference ROC: {}", ATTACKS[attack]),
            x_label: "false-positive rate".to_owned(),
            y_label: "true-positive rate".to_owned(),
            x_log: true,
            y_log: true,
            series,
        };
        plots.extend(chart.write(&context.out_dir, &format!("roc_{}", ATTACKS[attack]))?);
    }
    let markdown = report_markdown(
        &parameters,
        &model_rows,
        &attack_rows,
        non_private_lira,
        &private_lira,
    );
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots,
    })
}

/// LiRA's φ = ln(p / (1 − p)) of the true label for every example, from the logits (finite
/// even when the softmax rounds to 1, unlike a route through the loss).
fn logit_scaled_confidences(model: &Mlp, data: &ArrayDataset) -> Result<Vec<f64>> {
    let logits = model.logits(data.features().view())?;
    logits
        .axis_iter(Axis(0))
        .zip(data.labels())
        .map(|(row, &label)| {
            let row: Vec<f64> = row.iter().map(|&z| f64::from(z)).collect();
            Ok(logit_scale_from_logits(&row, label)?)
        })
        .collect()
}

/// The spec of the non-private or of the private runs.
pub(super) fn spec_for<'a>(
    privacy: Privacy,
    non_private: &'a TrainingSpec,
    private: &'a TrainingSpec,
) -> &'a TrainingSpec {
    match privacy {
        Privacy::NonPrivate => non_private,
        Privacy::Private { .. } => private,
    }
}

/// `size` examples of `data` drawn uniformly without replacement, in their original order.
///
/// # Errors
///
/// If `size` is zero or exceeds the data set.
pub(super) fn random_subset<R: Rng + ?Sized>(
    data: &dp_data::Dataset,
    size: usize,
    rng: &mut R,
) -> Result<dp_data::Dataset> {
    if size == 0 || size > data.len() {
        return Err(anyhow!(
            "cannot draw {size} of the {} training images",
            data.len()
        ));
    }
    let mut indices = rand::seq::index::sample(rng, data.len(), size).into_vec();
    indices.sort_unstable();
    Ok(data.select(&indices)?)
}

/// Trains `model_seeds.len()` models on random halves of `pool` (LiRA's balanced masks drawn
/// from `masks_seed`) and returns their φ on the whole pool with the masks, and what else each
/// model left behind. Models train in parallel on rayon's pool.
fn train_models(
    parameters: &Parameters,
    pool: &dp_data::Dataset,
    test: &ArrayDataset,
    privacy: Privacy,
    masks_seed: u64,
    model_seeds: &[u64],
) -> Result<(ShadowObservations, Vec<ModelSummary>)> {
    let masks = ShadowObservations::balanced_in_masks(
        model_seeds.len(),
        pool.len(),
        &mut ChaCha20Rng::seed_from_u64(masks_seed),
    )?;
    let spec = spec_for(privacy, &parameters.non_private, &parameters.private);
    // σ is calibrated once, for the nominal half-pool; every model is the same mechanism.
    let private_config = match privacy {
        Privacy::NonPrivate => None,
        Privacy::Private {
            target_epsilon,
            delta,
        } => Some(training::private_config(
            spec,
            pool.len() / 2,
            target_epsilon,
            delta,
        )?),
    };
    let pool_engine = training::engine_dataset(pool)?;
    let num_classes = pool.num_classes();
    let summaries: Mutex<Vec<Option<ModelSummary>>> =
        Mutex::new((0..model_seeds.len()).map(|_| None).collect());
    let shadows = ShadowObservations::train(masks, Execution::Parallel, |model, in_mask| {
        let members: Vec<usize> = in_mask
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| i)
            .collect();
        let train = training::engine_dataset(&pool.select(&members)?)?;
        let label = format!("mia {} model {model}", privacy.label());
        let seed = model_seeds[model];
        let trained = match &private_config {
            None => training::train_mlp(&train, num_classes, spec, privacy, seed, &label)?,
            Some(config) => {
                training::train_mlp_private(&train, num_classes, spec, config, seed, &label)?
            }
        };
        let (losses, _) = training::losses_and_confidences(&trained.model, &pool_engine)?;
        let phi = logit_scaled_confidences(&trained.model, &pool_engine)?;
        let summary = ModelSummary {
            losses,
            epsilon: trained.epsilon,
            noise_multiplier: trained.noise_multiplier,
            steps: trained.steps,
            seconds: trained.seconds,
            train_accuracy: training::accuracy(&trained.model, &train)?,
            test_accuracy: training::accuracy(&trained.model, test)?,
        };
        summaries
            .lock()
            .map_err(|_| anyhow!("a shadow training thread panicked"))?[model] = Some(summary);
        Ok::<_, anyhow::Error>(phi)
    })?;
    let summaries = summaries
        .into_inner()
        .map_err(|_| anyhow!("a shadow training thread panicked"))?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("a shadow model left no summary")?;
    Ok((shadows, summaries))
}

/// Leave-one-out over all models: each is the target once; the scores of all targets are
/// pooled per attack (members: the target's training images).
fn attack_scores(shadows: &ShadowObservations, summaries: &[ModelSummary]) -> Result<LevelScores> {
    let mut scores = LevelScores {
        members: Default::default(),
        nonmembers: Default::default(),
    };
    for (target, summary) in summaries.iter().enumerate() {
        let (target_phi, target_mask, others) = shadows.leave_one_out(target)?;
        let loss_scores = dp_attacks::loss_scores(&summary.losses)?;
        let online = lira_online(&target_phi, &others, LiraVariance::Global)?;
        let offline = lira_offline(&target_phi, &others, LiraVariance::Global)?;
        for (attack, attack_scores) in [loss_scores, online, offline].into_iter().enumerate() {
            for (score, member) in attack_scores.into_iter().zip(&target_mask) {
                if *member {
                    scores.members[attack].push(score);
                } else {
                    scores.nonmembers[attack].push(score);
                }
            }
        }
    }
    Ok(scores)
}

/// The ROC curve at log-spaced false-positive rates from `1 / nonmembers` to 1, as
/// (FPR, TPR) points with positive TPR (the chart's axes are logarithmic).
fn log_grid_roc(roc: &RocCurve, points: usize) -> Result<Vec<(f64, f64)>> {
    let lowest = 1.0 / roc.nonmembers() as f64;
    let mut curve = Vec::with_capacity(points);
    for step in 0..points {
        let fpr = lowest.powf(1.0 - step as f64 / (points - 1).max(1) as f64);
        let tpr = roc.tpr_at_fpr(fpr.min(1.0))?;
        if tpr > 0.0 {
            curve.push((fpr, tpr));
        }
    }
    Ok(curve)
}

/// The largest TPR any membership test can reach at false-positive rate `fpr` against an
/// (ε, δ)-DP mechanism: `min(1, e^ε · fpr + δ)` (Kairouz, Oh, Viswanath 2015).
fn dp_tpr_bound(epsilon: f64, delta: f64, fpr: f64) -> f64 {
    (epsilon.exp() * fpr + delta).min(1.0)
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", 100.0 * rate)
}

fn metric_map(
    metrics: &MembershipMetrics,
    train_accuracy: f64,
    test_accuracy: f64,
) -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("auc".to_owned(), metrics.auc),
        (
            "tpr_at_0.001_fpr".to_owned(),
            metrics.tpr_at_0_1_percent_fpr,
        ),
        ("tpr_at_0.01_fpr".to_owned(), metrics.tpr_at_1_percent_fpr),
        ("balanced_accuracy".to_owned(), metrics.balanced_accuracy),
        ("advantage".to_owned(), metrics.advantage),
        ("members_scored".to_owned(), metrics.members as f64),
        ("nonmembers_scored".to_owned(), metrics.nonmembers as f64),
        ("mean_train_accuracy".to_owned(), train_accuracy),
        ("mean_test_accuracy".to_owned(), test_accuracy),
    ])
}

fn attack_details(
    parameters: &Parameters,
    spec: &TrainingSpec,
    privacy: Privacy,
    attack: &str,
    model_seeds: &[u64],
) -> BTreeMap<String, String> {
    let mut details = training_details(spec, privacy);
    details.insert("attack".to_owned(), attack.to_owned());
    details.insert("pool_size".to_owned(), parameters.pool_size.to_string());
    details.insert("models".to_owned(), parameters.shadow_models.to_string());
    details.insert(
        "evaluation".to_owned(),
        "leave-one-out over all models, scores pooled".to_owned(),
    );
    details.insert("lira_variance".to_owned(), "global".to_owned());
    details.insert(
        "model_seeds".to_owned(),
        model_seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    details
}

fn report_markdown(
    parameters: &Parameters,
    model_rows: &[Vec<String>],
    attack_rows: &[Vec<String>],
    non_private_lira: Option<MembershipMetrics>,
    private_lira: &[(f64, MembershipMetrics)],
) -> String {
    let half = parameters.pool_size / 2;
    let mut markdown = format!(
        "**Setup.** A pool of {pool} images drawn (seeded) from the shipped training set; per \
         privacy level {models} MLPs, each trained on a random half of the pool (every image is \
         in exactly {in_models} of the models, LiRA's balanced masks). Each model is attacked \
         once as the target with the other {others} as shadows (leave-one-out) and the scores \
         of all targets are pooled: {members} member and about as many non-member scores per \
         attack, so 0.1% FPR allows about {tail} false positives.\n\n\
         Non-private models: MLP {np_hidden:?}, {np_epochs} epochs of shuffled mini-batches of \
         {np_batch}, SGD (learning rate {np_lr}, momentum {np_momentum}), no weight decay: a \
         setting chosen to overfit, so the attack has something to find. DP-SGD models: MLP \
         {p_hidden:?}, Poisson sampling with expected batch {p_batch} (sampling probability \
         {q:.3} of a {half}-image half), {p_epochs} epochs, flat clipping at C = {p_clip}, \
         secure noise, σ calibrated once per ε with the {accountant} accountant (δ = {delta}) \
         and shared by all models of that ε. Engine: ndarray book-keeping.\n\n\
         **Attacks.** LOSS (Yeom et al. 2018): score = −loss of the target. LiRA (Carlini et \
         al. 2022) on logit-scaled confidences φ = ln(p / (1 − p)) of the true label: online \
         (Gaussian likelihood ratio of in vs out shadows) and offline (one-sided test against \
         the out shadows only), both with a global variance (fewer than 64 shadows). One query \
         per image, no augmentation.\n\n",
        pool = parameters.pool_size,
        models = parameters.shadow_models,
        in_models = parameters.shadow_models / 2,
        others = parameters.shadow_models.saturating_sub(1),
        members = parameters.shadow_models * half,
        tail = (parameters.shadow_models * half) as f64 * REPORTED_FPR,
        np_hidden = parameters.non_private.hidden,
        np_epochs = parameters.non_private.epochs,
        np_batch = parameters.non_private.batch_size,
        np_lr = parameters.non_private.learning_rate,
        np_momentum = parameters.non_private.momentum,
        p_hidden = parameters.private.hidden,
        p_batch = parameters.private.batch_size,
        q = parameters.private.batch_size / half as f64,
        p_epochs = parameters.private.epochs,
        p_clip = parameters.private.max_grad_norm,
        accountant = ACCOUNTANT,
        delta = parameters.delta,
    );
    markdown.push_str(
        "Models (means over the models of each level; time is the sum of their training \
         times):\n\n",
    );
    markdown.push_str(&markdown_table(
        &[
            "privacy",
            "ε",
            "σ",
            "steps",
            "train accuracy",
            "test accuracy",
            "training time",
        ],
        model_rows,
    ));
    markdown.push_str(
        "\nAttacks (pooled over all targets). The last column is the largest TPR at 0.1% FPR \
         that any test can reach against an (ε, δ)-DP mechanism, e^ε · 0.001 + δ:\n\n",
    );
    markdown.push_str(&markdown_table(
        &[
            "privacy",
            "ε",
            "attack",
            "AUC",
            "TPR @ 0.1% FPR",
            "TPR @ 1% FPR",
            "DP bound on TPR @ 0.1%",
        ],
        attack_rows,
    ));
    markdown.push_str("\n**Against the targets.** ");
    if let Some(metrics) = non_private_lira {
        markdown.push_str(&format!(
            "Non-private LiRA (online): TPR {} at 0.1% FPR, {:.1}× chance (target: clearly above \
             0.1%), AUC {:.3}. ",
            percent(metrics.tpr_at_0_1_percent_fpr),
            metrics.tpr_at_0_1_percent_fpr / REPORTED_FPR,
            metrics.auc
        ));
    }
    for (epsilon, metrics) in private_lira {
        markdown.push_str(&format!(
            "ε = {epsilon:.2}: TPR {} at 0.1% FPR ({:.1}× chance), AUC {:.3}. ",
            percent(metrics.tpr_at_0_1_percent_fpr),
            metrics.tpr_at_0_1_percent_fpr / REPORTED_FPR,
            metrics.auc
        ));
    }
    let members = (parameters.shadow_models * half) as f64;
    let spread = 2.0 * (REPORTED_FPR * (1.0 - REPORTED_FPR) / members).sqrt();
    markdown.push_str(&format!(
        "The target at ε <= 3 is a TPR close to 0.1% (chance). An attack that guesses at random \
         flags Binomial({members}, 0.001) members at 0.1% FPR: a TPR of 0.1% ± {} (two standard \
         deviations; the pooled targets share shadows, so the true spread is somewhat larger). \
         The ROC plots are log-log, one curve per privacy level, with the diagonal (chance) for \
         reference.\n\n",
        percent(spread)
    ));
    markdown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding slack for rates computed from counts.
    const RATE_TOLERANCE: f64 = 1e-12;

    #[test]
    fn dp_tpr_bound_is_the_hypothesis_testing_region() {
        // ε = 0, δ = 0: no test beats chance.
        assert!((dp_tpr_bound(0.0, 0.0, 0.01) - 0.01).abs() < RATE_TOLERANCE);
        // ε = ln 2: at most twice the FPR, plus δ; capped at 1.
        assert!((dp_tpr_bound(2f64.ln(), 1e-5, 0.001) - 0.00201).abs() < RATE_TOLERANCE);
        assert_eq!(dp_tpr_bound(8.0, 1e-5, 0.001), 1.0);
    }

    #[test]
    fn log_grid_roc_spans_the_resolution_and_keeps_the_curve_monotone() {
        // 4 members, 1000 non-members; members score above every non-member but one.
        let members = [10.0, 11.0, 12.0, 0.5];
        let nonmembers: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let roc = RocCurve::new(&members, &nonmembers).expect("valid scores");
        let curve = log_grid_roc(&roc, 50).expect("valid grid");
        let (first_fpr, first_tpr) = curve[0];
        assert!((first_fpr - 1e-3).abs() < RATE_TOLERANCE);
        assert!((first_tpr - 0.75).abs() < RATE_TOLERANCE);
        let (last_fpr, last_tpr) = curve[curve.len() - 1];
        assert!((last_fpr - 1.0).abs() < RATE_TOLERANCE && last_tpr == 1.0);
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn logit_scaled_confidences_stay_finite_for_memorized_examples() {
        use dp_engine_ndarray::{Activation, Linear};
        use ndarray::{Array1, array};
        // Logistic regression on one feature: logits (50 x, -50 x). At x = 1 the softmax of the
        // true class rounds to 1 in f64 (the loss is 0), yet φ = 100 exactly (reference: the
        // definition φ = z_y - ln Σ_{j≠y} e^{z_j} for two classes).
        let layer =
            Linear::from_parts(array![[50.0_f32, -50.0]], Array1::zeros(2)).expect("shapes");
        let model = Mlp::from_layers(vec![layer], Activation::Tanh).expect("one layer");
        let data = ArrayDataset::new(array![[1.0_f32], [1.0], [0.0]], vec![0, 1, 0]).expect("rows");
        let phi = logit_scaled_confidences(&model, &data).expect("finite logits");
        assert!((phi[0] - 100.0).abs() < RATE_TOLERANCE);
        assert!((phi[1] + 100.0).abs() < RATE_TOLERANCE);
        assert!(phi[2].abs() < RATE_TOLERANCE);
    }

    #[test]
    fn log_grid_roc_drops_zero_tpr_points() {
        // Every member below every non-member: TPR stays 0 until FPR = 1.
        let roc = RocCurve::new(&[0.0, 0.1], &[1.0, 2.0, 3.0]).expect("valid scores");
        let curve = log_grid_roc(&roc, 10).expect("valid grid");
        assert_eq!(curve, vec![(1.0, 1.0)]);
    }
}
