//! Secret Sharer exposure (Carlini, Liu, Erlingsson, Kos, Song 2019).
//!
//! A canary `prefix + secret` with the secret drawn uniformly from a randomness space R is
//! inserted into the training data. Its **rank** is its position when all of R is sorted by
//! log-perplexity (most likely first), and its **exposure** is `log2 |R| - log2 rank`: from 0
//! (no more likely than a typical candidate) to `log2 |R|` (the most likely sequence of all,
//! so greedy guessing finds it first).

use rand::Rng;

use crate::error::{AttackError, Result};
use crate::sequence::{NextTokenScorer, RandomnessSpace, checked_log_probability, log_perplexity};
use crate::stats::{mean_and_standard_deviation, normal_log_cdf};
use crate::validate;

/// Exposure from a rank: `log2 |R| - log2 rank`.
///
/// # Errors
///
/// [`AttackError::InvalidParameter`] unless `1 <= rank <= 2^log2_space_size` and the size is
/// finite and non-negative.
///
/// # Examples
///
/// ```
/// // Rank 1 among 10^6 candidates: the maximum, log2(10^6).
/// let e = dp_attacks::exposure_from_rank(1.0, 1e6_f64.log2())?;
/// assert!((e - 1e6_f64.log2()).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn exposure_from_rank(rank: f64, log2_space_size: f64) -> Result<f64> {
    if !(log2_space_size.is_finite() && log2_space_size >= 0.0) {
        return Err(AttackError::InvalidParameter {
            name: "log2_space_size",
            value: log2_space_size,
            reason: "must be finite and non-negative",
        });
    }
    if !(rank >= 1.0 && rank.log2() <= log2_space_size) {
        return Err(AttackError::InvalidParameter {
            name: "rank",
            value: rank,
            reason: "must lie between 1 and the size of the randomness space",
        });
    }
    Ok(log2_space_size - rank.log2())
}

/// How an exposure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExposureMethod {
    /// Exact rank over the whole randomness space.
    Exact,
    /// Extrapolated from a uniform sample of the space; see [`Extrapolation`].
    Sampled(Extrapolation),
}

/// How a sample of candidates is turned into an exposure when R is too large to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extrapolation {
    /// Rank-in-sample scaling: the fraction of R at least as likely as the canary is estimated
    /// by `(1 + k) / (1 + n)`, with `k` of the `n` sampled candidates having log-perplexity
    /// `<=` the canary's. Distribution-free but capped at `log2(n + 1)` bits: it cannot see
    /// exposures beyond what the sample resolves.
    SampleRank,
    /// Carlini et al. 2019, section 4.3 (with a normal in place of their skew-normal): fit a
    /// normal `N(μ, σ²)` to the sampled log-perplexities and take `exposure = -log2 Φ((x - μ) /
    /// σ)` for the canary's log-perplexity `x`, clamped to `[0, log2 |R|]`. Reaches exposures far
    /// beyond the sample size, but only as accurately as the normal describes the far left tail.
    NormalFit,
}

/// An exposure measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    /// `log2 |R| - log2 rank`, in bits.
    pub exposure: f64,
    /// The canary's rank (estimated unless the method is exact; may be fractional then).
    pub rank: f64,
    /// `log2 |R|`.
    pub log2_space_size: f64,
    /// The canary's log-perplexity in bits.
    pub canary_log_perplexity: f64,
    /// How many candidate sequences were scored.
    pub candidates_scored: usize,
    /// How the rank was obtained.
    pub method: ExposureMethod,
}

/// Exact exposure from the log-perplexities of **every** sequence of R (the canary included).
///
/// Rank = number of sequences with log-perplexity `<=` the canary's (the canary counts itself).
/// Ties are resolved against the canary, i.e. the tied candidates rank ahead of it: exposure is
/// never overstated.
///
/// # Errors
///
/// [`AttackError::EmptyInput`] / [`AttackError::NonFinite`] for bad values,
/// [`AttackError::InvalidParameter`] if the canary's log-perplexity does not occur among them.
///
/// # Examples
///
/// ```
/// let space = [3.0, 1.0, 2.0, 5.0]; // the canary is the sequence with 2.0
/// let e = dp_attacks::exact_exposure(2.0, &space)?;
/// assert_eq!(e.rank, 2.0);
/// assert!((e.exposure - 1.0).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn exact_exposure(
    canary_log_perplexity: f64,
    space_log_perplexities: &[f64],
) -> Result<Exposure> {
    validate::finite_nonempty("space_log_perplexities", space_log_perplexities)?;
    validate::finite(
        "canary_log_perplexity",
        std::slice::from_ref(&canary_log_perplexity),
    )?;
    if !space_log_perplexities.contains(&canary_log_perplexity) {
        return Err(AttackError::InvalidParameter {
            name: "canary_log_perplexity",
            value: canary_log_perplexity,
            reason: "the canary must be one of the sequences of the space",
        });
    }
    let rank = space_log_perplexities
        .iter()
        .filter(|&&lp| lp <= canary_log_perplexity)
        .count();
    let log2_space_size = (space_log_perplexities.len() as f64).log2();
    Ok(Exposure {
        exposure: exposure_from_rank(rank as f64, log2_space_size)?,
        rank: rank as f64,
        log2_space_size,
        canary_log_perplexity,
        candidates_scored: space_log_perplexities.len(),
        method: ExposureMethod::Exact,
    })
}

/// Exposure estimated from the log-perplexities of a uniform sample of R (drawn independently
/// of the canary; the canary itself need not be among them).
///
/// # Errors
///
/// [`AttackError::EmptyInput`] / [`AttackError::NonFinite`] for bad values;
/// [`AttackError::InvalidParameter`] for a bad space size, and for
/// [`Extrapolation::NormalFit`] with fewer than 2 samples or zero spread.
///
/// # Examples
///
/// ```
/// use dp_attacks::{Extrapolation, sampled_exposure};
/// // The canary is more likely than all 999 sampled candidates of a space of 10^9.
/// let sample: Vec<f64> = (0..999).map(|i| 20.0 + f64::from(i) / 100.0).collect();
/// let e = sampled_exposure(5.0, &sample, 1e9_f64.log2(), Extrapolation::SampleRank)?;
/// assert!((e.exposure - 1000_f64.log2()).abs() < 1e-9); // capped at log2(n + 1)
/// let e = sampled_exposure(5.0, &sample, 1e9_f64.log2(), Extrapolation::NormalFit)?;
/// assert!(e.exposure > 1000_f64.log2());
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn sampled_exposure(
    canary_log_perplexity: f64,
    sample_log_perplexities: &[f64],
    log2_space_size: f64,
    extrapolation: Extrapolation,
) -> Result<Exposure> {
    validate::finite_nonempty("sample_log_perplexities", sample_log_perplexities)?;
    validate::finite(
        "canary_log_perplexity",
        std::slice::from_ref(&canary_log_perplexity),
    )?;
    // Validates the space size (rank 1 is always admissible).
    exposure_from_rank(1.0, log2_space_size)?;
    let n = sample_log_perplexities.len();
    let log2_fraction = match extrapolation {
        Extrapolation::SampleRank => {
            let at_least_as_likely = sample_log_perplexities
                .iter()
                .filter(|&&lp| lp <= canary_log_perplexity)
                .count();
            ((1 + at_least_as_likely) as f64).log2() - ((1 + n) as f64).log2()
        }
        Extrapolation::NormalFit => {
            let (mean, standard_deviation) = mean_and_standard_deviation(sample_log_perplexities);
            if n < 2 || standard_deviation <= 0.0 {
                return Err(AttackError::InvalidParameter {
                    name: "sample_log_perplexities",
                    value: n as f64,
                    reason: "a normal fit needs at least 2 distinct values",
                });
            }
            let z = (canary_log_perplexity - mean) / standard_deviation;
            normal_log_cdf(z) / std::f64::consts::LN_2
        }
    };
    let exposure = (-log2_fraction).clamp(0.0, log2_space_size);
    Ok(Exposure {
        exposure,
        rank: (log2_space_size - exposure).exp2(),
        log2_space_size,
        canary_log_perplexity,
        candidates_scored: n,
        method: ExposureMethod::Sampled(extrapolation),
    })
}

/// When [`canary_exposure`] enumerates R and how it samples otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExposureConfig {
    /// Enumerate R exactly when `|R| <=` this (memory: 8 bytes per sequence).
    pub max_exact_space_size: u128,
    /// Number of uniformly sampled candidates when R is larger.
    pub sample_size: usize,
    /// How to turn the sample into an exposure.
    pub extrapolation: Extrapolation,
}

/// Scores the canary `prefix + secret` with the caller's model and measures its exposure:
/// exactly by enumerating R (sharing each prefix's scorer call among its children, so a model
/// is called once per internal node of the tree of R) when it is small enough, otherwise from
/// `sample_size` uniform draws of R.
///
/// # Errors
///
/// [`AttackError::NotInSpace`] if `secret` is not in `space`, [`AttackError::InvalidParameter`]
/// for a sample size of 0, and the scorer errors of [`log_perplexity`].
///
/// # Examples
///
/// ```
/// use dp_attacks::{ExposureConfig, Extrapolation, RandomnessSpace, canary_exposure};
/// use rand::SeedableRng;
/// let space = RandomnessSpace::new(b"0123456789".to_vec(), 3)?;
/// // A model that has memorized the secret "042": it puts 0.9 on each next secret digit.
/// let secret = b"042".to_vec();
/// let model = |context: &[u8], next: &u8| {
///     let position = context.len() - 4; // after the prefix "pin "
///     if *next == secret[position] { 0.9_f64.ln() } else { (0.1_f64 / 9.0).ln() }
/// };
/// let config = ExposureConfig {
///     max_exact_space_size: 1_000_000,
///     sample_size: 1_000,
///     extrapolation: Extrapolation::SampleRank,
/// };
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let e = canary_exposure(&model, b"pin ", &secret, &space, &config, &mut rng)?;
/// assert_eq!(e.rank, 1.0);
/// assert!((e.exposure - 1000_f64.log2()).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn canary_exposure<T, S, R>(
    scorer: &S,
    prefix: &[T],
    secret: &[T],
    space: &RandomnessSpace<T>,
    config: &ExposureConfig,
    rng: &mut R,
) -> Result<Exposure>
where
    T: Clone + PartialEq,
    S: NextTokenScorer<T> + ?Sized,
    R: Rng + ?Sized,
{
    let positions = space.positions_of(secret)?;
    match space.size() {
        Some(size) if size <= config.max_exact_space_size => {
            let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            let mut context = prefix.to_vec();
            enumerate(
                scorer,
                space,
                &mut context,
                space.length(),
                0.0,
                &mut leaves,
            )?;
            let base = space.alphabet().len();
            let index = positions.iter().fold(0_usize, |acc, &p| acc * base + p);
            exact_exposure(leaves[index], &leaves)
        }
        _ => {
            validate::positive_count("sample_size", config.sample_size)?;
            let canary = log_perplexity(scorer, prefix, secret)?;
            let sample = (0..config.sample_size)
                .map(|_| log_perplexity(scorer, prefix, &space.sample(rng)))
                .collect::<Result<Vec<f64>>>()?;
            sampled_exposure(canary, &sample, space.log2_size(), config.extrapolation)
        }
    }
}

/// Depth-first walk of R in index order, pushing each leaf's log-perplexity in bits.
fn enumerate<T, S>(
    scorer: &S,
    space: &RandomnessSpace<T>,
    context: &mut Vec<T>,
    remaining: usize,
    nats: f64,
    leaves: &mut Vec<f64>,
) -> Result<()>
where
    T: Clone + PartialEq,
    S: NextTokenScorer<T> + ?Sized,
{
    if remaining == 0 {
        leaves.push(nats / std::f64::consts::LN_2);
        return Ok(());
    }
    let log_probabilities = scorer.log_probabilities(context, space.alphabet());
    validate::same_length(
        "log_probabilities from the scorer",
        space.alphabet().len(),
        log_probabilities.len(),
    )?;
    let position = space.length() - remaining;
    for (token, &lp) in space.alphabet().iter().zip(&log_probabilities) {
        let lp = checked_log_probability(lp, position)?;
        context.push(token.clone());
        enumerate(scorer, space, context, remaining - 1, nats - lp, leaves)?;
        context.pop();
    }
    Ok(())
}
