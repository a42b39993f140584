//! The likelihood-ratio attack LiRA (Carlini, Chien, Nasr, Song, Terzis, Tramèr 2022).
//!
//! Every value LiRA handles is a *logit-scaled confidence* `φ(p) = ln(p / (1 - p))`, where `p`
//! is the probability the model gives the example's true label. Use [`logit_scale_from_loss`]
//! (from a cross-entropy loss, the most precise route) or [`logit_scale_from_logits`] to produce
//! them; [`logit_scale`] works from a probability but cannot recover precision already lost
//! when `p` rounded to 1.
//!
//! For each example, shadow models trained with it ("in") and without it ("out") give
//! Gaussian fits of φ; the target model's φ is then scored by a likelihood ratio (online) or by
//! a one-sided test against the "out" Gaussian alone (offline).

use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{AttackError, Result};
use crate::stats::mean_and_standard_deviation;
use crate::validate;

/// Floor on every fitted standard deviation of φ, so that shadow models that agree exactly give
/// large but finite scores instead of a division by zero.
pub const MINIMUM_STANDARD_DEVIATION: f64 = 1e-6;

/// `φ(p) = ln(p / (1 - p))` computed as `ln p - ln1p(-p)`.
///
/// # Errors
///
/// [`AttackError::InvalidParameter`] unless `0 < confidence < 1` (φ is infinite at 0 and 1; a
/// softmax that saturates to 1.0 has lost the information; score from the loss instead).
///
/// # Examples
///
/// ```
/// assert!((dp_attacks::logit_scale(0.5)? - 0.0).abs() < 1e-15);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn logit_scale(confidence: f64) -> Result<f64> {
    validate::open_unit("confidence", confidence)?;
    Ok(confidence.ln() - (-confidence).ln_1p())
}

/// φ from the cross-entropy loss `ℓ = -ln p` of the true label: `φ = -ℓ - ln(1 - e^{-ℓ})`, with
/// `ln(-expm1(-ℓ))` so that tiny losses (confident, memorized examples) keep their precision.
///
/// # Errors
///
/// [`AttackError::InvalidParameter`] unless `0 < loss < inf` (a loss of exactly 0 means p = 1).
///
/// # Examples
///
/// ```
/// // p = 1 - 1e-12 is beyond what a probability in f64 can tell apart from nearby values,
/// // but its loss is not: φ ≈ ln(1e12).
/// let phi = dp_attacks::logit_scale_from_loss(1e-12)?;
/// assert!((phi - 1e12_f64.ln()).abs() < 1e-6);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn logit_scale_from_loss(loss: f64) -> Result<f64> {
    if !(loss > 0.0 && loss.is_finite()) {
        return Err(AttackError::InvalidParameter {
            name: "loss",
            value: loss,
            reason: "cross-entropy loss must be positive and finite",
        });
    }
    Ok(-loss - (-(-loss).exp_m1()).ln())
}

/// φ from a logit vector: `z_y - logsumexp_{j != y} z_j`, which equals `ln(p_y / (1 - p_y))`
/// for `p = softmax(z)` without ever forming `p` (Carlini et al. 2022, their stable form).
///
/// # Errors
///
/// [`AttackError::NonFinite`] for a non-finite logit, [`AttackError::InvalidParameter`] if
/// `label` is out of range or there are fewer than two classes.
///
/// # Examples
///
/// ```
/// // Two classes: φ is the logit gap.
/// assert!((dp_attacks::logit_scale_from_logits(&[3.0, 1.0], 0)? - 2.0).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn logit_scale_from_logits(logits: &[f64], label: usize) -> Result<f64> {
    validate::finite("logits", logits)?;
    if logits.len() < 2 || label >= logits.len() {
        return Err(AttackError::InvalidParameter {
            name: "label",
            value: label as f64,
            reason: "needs at least two classes and label < number of classes",
        });
    }
    let others = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != label)
        .map(|(_, &z)| z);
    let max = others.clone().fold(f64::NEG_INFINITY, f64::max);
    let log_sum_exp = max + others.map(|z| (z - max).exp()).sum::<f64>().ln();
    Ok(logits[label] - log_sum_exp)
}

/// How to run a batch of independent jobs (shadow model training).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// One after the other on the calling thread.
    Sequential,
    /// In parallel on rayon's global thread pool (the closure must be `Sync`).
    Parallel,
}

/// φ values of shadow models on the audited examples, with who was "in" each shadow's
/// training set. Stored `[shadow][example]`; every row has the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowObservations {
    scores: Vec<Vec<f64>>,
    in_masks: Vec<Vec<bool>>,
}

impl ShadowObservations {
    /// Wraps precomputed φ values (`scores[s][i]`: shadow `s` on example `i`) and membership
    /// masks (`in_masks[s][i]`: example `i` was in shadow `s`'s training set).
    ///
    /// # Errors
    ///
    /// [`AttackError::EmptyInput`] without shadows or examples, [`AttackError::LengthMismatch`]
    /// for ragged rows, [`AttackError::NonFinite`] for a non-finite φ.
    pub fn new(scores: Vec<Vec<f64>>, in_masks: Vec<Vec<bool>>) -> Result<Self> {
        let examples = scores.first().map_or(0, Vec::len);
        validate::positive_count("number of shadow models", scores.len())
            .and_then(|()| validate::positive_count("number of examples", examples))
            .map_err(|_| AttackError::EmptyInput { name: "scores" })?;
        validate::same_length("in_masks", scores.len(), in_masks.len())?;
        for (row, mask) in scores.iter().zip(&in_masks) {
            validate::same_length("scores row", examples, row.len())?;
            validate::same_length("in_masks row", examples, mask.len())?;
            validate::finite("scores", row)?;
        }
        Ok(Self { scores, in_masks })
    }

    /// Trains one shadow model per mask with the caller's closure and collects its φ values.
    ///
    /// `train(shadow_index, in_mask)` must train a model on exactly the examples `i` with
    /// `in_mask[i]` (plus any data common to all shadows), and return its φ value on every
    /// audited example (length `in_mask.len()`). With [`Execution::Parallel`] the shadows are
    /// trained concurrently on rayon's pool; results are ordered by shadow index either way.
    ///
    /// # Errors
    ///
    /// [`AttackError::ShadowTraining`] with the closure's message if it fails (the first
    /// failing shadow by index), and the errors of [`ShadowObservations::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_attacks::{Execution, ShadowObservations};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let masks = ShadowObservations::balanced_in_masks(4, 3, &mut rng)?;
    /// // A stand-in "model": φ = 2 for examples it trained on, 0 otherwise.
    /// let shadows = ShadowObservations::train(masks, Execution::Parallel, |_, mask| {
    ///     Ok::<_, String>(mask.iter().map(|&m| if m { 2.0 } else { 0.0 }).collect())
    /// })?;
    /// assert_eq!(shadows.shadow_count(), 4);
    /// # Ok::<(), dp_attacks::AttackError>(())
    /// ```
    pub fn train<F, E>(in_masks: Vec<Vec<bool>>, execution: Execution, train: F) -> Result<Self>
    where
        F: Fn(usize, &[bool]) -> std::result::Result<Vec<f64>, E> + Sync,
        E: std::fmt::Display,
    {
        let run = |(shadow, mask): (usize, &Vec<bool>)| {
            train(shadow, mask).map_err(|e| AttackError::ShadowTraining {
                shadow,
                message: e.to_string(),
            })
        };
        let scores: Vec<Result<Vec<f64>>> = match execution {
            Execution::Sequential => in_masks.iter().enumerate().map(run).collect(),
            Execution::Parallel => in_masks.par_iter().enumerate().map(run).collect(),
        };
        let scores = scores.into_iter().collect::<Result<Vec<_>>>()?;
        Self::new(scores, in_masks)
    }

    /// The masks of Carlini et al.'s experiments: every example is "in" exactly half of the
    /// shadows (`shadow_count / 2`, chosen uniformly and independently per example), so each
    /// example has both in and out observations.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] for fewer than 2 shadows or no examples.
    pub fn balanced_in_masks<R: Rng + ?Sized>(
        shadow_count: usize,
        example_count: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<bool>>> {
        if shadow_count < 2 {
            return Err(AttackError::InvalidParameter {
                name: "shadow_count",
                value: shadow_count as f64,
                reason: "need at least 2 shadow models",
            });
        }
        validate::positive_count("example_count", example_count)?;
        // Drawn per example (one shuffle each), then transposed to `[shadow][example]`.
        let mut order: Vec<usize> = (0..shadow_count).collect();
        let chosen: Vec<Vec<usize>> = (0..example_count)
            .map(|_| {
                order.shuffle(rng);
                order[..shadow_count / 2].to_vec()
            })
            .collect();
        Ok((0..shadow_count)
            .map(|shadow| chosen.iter().map(|c| c.contains(&shadow)).collect())
            .collect())
    }

    /// Number of shadow models.
    pub fn shadow_count(&self) -> usize {
        self.scores.len()
    }

    /// Number of audited examples.
    pub fn example_count(&self) -> usize {
        self.scores[0].len()
    }

    /// φ values, `[shadow][example]`.
    pub fn scores(&self) -> &[Vec<f64>] {
        &self.scores
    }

    /// Membership masks, `[shadow][example]`.
    pub fn in_masks(&self) -> &[Vec<bool>] {
        &self.in_masks
    }

    /// Leave-one-out evaluation as in Carlini et al.: takes shadow `index` out to serve as the
    /// target and returns `(target_scores, target_in_mask, remaining_shadows)`.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] if `index` is out of range or fewer than two shadows
    /// exist.
    pub fn leave_one_out(&self, index: usize) -> Result<(Vec<f64>, Vec<bool>, Self)> {
        if index >= self.shadow_count() || self.shadow_count() < 2 {
            return Err(AttackError::InvalidParameter {
                name: "index",
                value: index as f64,
                reason: "must name one of at least two shadow models",
            });
        }
        let mut rest = self.clone();
        let scores = rest.scores.remove(index);
        let mask = rest.in_masks.remove(index);
        Ok((scores, mask, rest))
    }

    /// φ values of example `i` in the shadows where its membership equals `member`.
    fn observations(&self, example: usize, member: bool) -> Vec<f64> {
        self.scores
            .iter()
            .zip(&self.in_masks)
            .filter(|(_, mask)| mask[example] == member)
            .map(|(row, _)| row[example])
            .collect()
    }
}

/// How LiRA estimates the spread of φ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiraVariance {
    /// One standard deviation per example (and per in/out); needs at least 2 observations of
    /// each kind per example. The paper's default with many shadows (64+).
    PerExample,
    /// One global standard deviation per in/out, pooled over examples from the deviations
    /// around each example's own mean. More stable with few shadows (the paper recommends it
    /// below 64); needs at least 1 observation of each kind per example.
    Global,
}

/// One example's Gaussian fit of φ.
#[derive(Debug, Clone, Copy)]
struct Fit {
    mean: f64,
    standard_deviation: f64,
}

/// Per-example fits of φ for `member` ("in") or not ("out") shadows.
fn fit(shadows: &ShadowObservations, member: bool, variance: LiraVariance) -> Result<Vec<Fit>> {
    let membership = if member { "in" } else { "out" };
    let required = match variance {
        LiraVariance::PerExample => 2,
        LiraVariance::Global => 1,
    };
    let mut per_example = Vec::with_capacity(shadows.example_count());
    let (mut pooled_squares, mut pooled_dof) = (0.0, 0.0);
    for example in 0..shadows.example_count() {
        let values = shadows.observations(example, member);
        if values.len() < required {
            return Err(AttackError::TooFewShadowObservations {
                example,
                membership,
                count: values.len(),
                required,
            });
        }
        let (mean, standard_deviation) = mean_and_standard_deviation(&values);
        pooled_squares += standard_deviation.powi(2) * (values.len() - 1) as f64;
        pooled_dof += (values.len() - 1) as f64;
        per_example.push(Fit {
            mean,
            standard_deviation,
        });
    }
    if variance == LiraVariance::Global {
        if pooled_dof == 0.0 {
            return Err(AttackError::TooFewShadowObservations {
                example: 0,
                membership,
                count: 1,
                required: 2,
            });
        }
        let global = (pooled_squares / pooled_dof).sqrt();
        per_example
            .iter_mut()
            .for_each(|f| f.standard_deviation = global);
    }
    per_example
        .iter_mut()
        .for_each(|f| f.standard_deviation = f.standard_deviation.max(MINIMUM_STANDARD_DEVIATION));
    Ok(per_example)
}

fn check_target(target_scores: &[f64], shadows: &ShadowObservations) -> Result<()> {
    validate::same_length(
        "target_scores",
        shadows.example_count(),
        target_scores.len(),
    )?;
    validate::finite("target_scores", target_scores)
}

/// Online LiRA: per example, `ln N(φ; μ_in, σ_in²) - ln N(φ; μ_out, σ_out²)` for the target
/// model's φ. Higher means "member".
///
/// `target_scores[i]` is the target model's φ on example `i`. Feed the result with the
/// examples' true membership to [`crate::RocCurve`] / [`crate::membership_metrics`].
///
/// # Errors
///
/// [`AttackError::LengthMismatch`] / [`AttackError::NonFinite`] for bad target scores,
/// [`AttackError::TooFewShadowObservations`] if an example lacks in or out shadows.
///
/// # Examples
///
/// ```
/// use dp_attacks::{LiraVariance, ShadowObservations, lira_online};
/// // Two examples, four shadows; example 0 is memorized (φ high when in), example 1 is not.
/// let shadows = ShadowObservations::new(
///     vec![vec![4.0, 1.0], vec![4.2, 1.1], vec![0.1, 0.9], vec![-0.1, 1.0]],
///     vec![vec![true, true], vec![true, false], vec![false, true], vec![false, false]],
/// )?;
/// let scores = lira_online(&[4.1, 1.0], &shadows, LiraVariance::Global)?;
/// assert!(scores[0] > 0.0);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn lira_online(
    target_scores: &[f64],
    shadows: &ShadowObservations,
    variance: LiraVariance,
) -> Result<Vec<f64>> {
    check_target(target_scores, shadows)?;
    let fits_in = fit(shadows, true, variance)?;
    let fits_out = fit(shadows, false, variance)?;
    Ok(target_scores
        .iter()
        .zip(fits_in.iter().zip(&fits_out))
        .map(|(&phi, (i, o))| gaussian_log_density(phi, i) - gaussian_log_density(phi, o))
        .collect())
}

/// Offline LiRA: only "out" shadows are needed (they can be trained once, before the target).
/// The score is the one-sided test statistic `(φ - μ_out) / σ_out`, an increasing function of
/// the paper's `1 - Pr[Z > φ]` with `Z ~ N(μ_out, σ_out²)`, so it ranks examples identically while
/// not saturating at 1 for very confident members. Higher means "member".
///
/// In-shadow observations, if present, are ignored.
///
/// # Errors
///
/// As [`lira_online`], for the "out" observations only.
///
/// # Examples
///
/// ```
/// use dp_attacks::{LiraVariance, ShadowObservations, lira_offline};
/// let shadows = ShadowObservations::new(
///     vec![vec![0.0, 1.0], vec![0.2, 1.2], vec![-0.2, 0.8]],
///     vec![vec![false; 2]; 3],
/// )?;
/// let scores = lira_offline(&[3.0, 1.0], &shadows, LiraVariance::PerExample)?;
/// assert!(scores[0] > 10.0 && scores[1].abs() < 1e-9);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn lira_offline(
    target_scores: &[f64],
    shadows: &ShadowObservations,
    variance: LiraVariance,
) -> Result<Vec<f64>> {
    check_target(target_scores, shadows)?;
    let fits_out = fit(shadows, false, variance)?;
    Ok(target_scores
        .iter()
        .zip(&fits_out)
        .map(|(&phi, o)| (phi - o.mean) / o.standard_deviation)
        .collect())
}

/// ln of the normal density, without the constant -ln √(2π) (it cancels in ratios).
fn gaussian_log_density(x: f64, fit: &Fit) -> f64 {
    let z = (x - fit.mean) / fit.standard_deviation;
    -0.5 * z * z - fit.standard_deviation.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn logit_routes_agree() {
        for &p in &[1e-6, 0.01, 0.3, 0.5, 0.9, 0.999_999] {
            let direct = logit_scale(p).unwrap();
            let from_loss = logit_scale_from_loss(-f64::ln(p)).unwrap();
            let from_logits = logit_scale_from_logits(&[direct, 0.0], 0).unwrap();
            assert!(
                (direct - from_loss).abs() < 1e-6 * direct.abs().max(1.0),
                "{p}"
            );
            assert!(
                (direct - from_logits).abs() < 1e-12 * direct.abs().max(1.0),
                "{p}"
            );
        }
        // Three classes: softmax(2, 0, 0) gives p = e²/(e²+2): φ = 2 - ln 2.
        let phi = logit_scale_from_logits(&[2.0, 0.0, 0.0], 0).unwrap();
        assert!((phi - (2.0 - 2_f64.ln())).abs() < 1e-12);
        assert!(logit_scale(1.0).is_err());
        assert!(logit_scale_from_loss(0.0).is_err());
        assert!(logit_scale_from_logits(&[1.0], 0).is_err());
        // Huge logits do not overflow.
        assert!((logit_scale_from_logits(&[1000.0, 990.0], 0).unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn balanced_masks_put_every_example_in_half_the_shadows() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let masks = ShadowObservations::balanced_in_masks(8, 50, &mut rng).unwrap();
        for example in 0..50 {
            assert_eq!(masks.iter().filter(|m| m[example]).count(), 4);
        }
        assert!(ShadowObservations::balanced_in_masks(1, 5, &mut rng).is_err());
    }

    #[test]
    fn missing_out_shadows_are_reported() {
        let shadows = ShadowObservations::new(vec![vec![1.0]; 3], vec![vec![true]; 3]).unwrap();
        let err = lira_offline(&[1.0], &shadows, LiraVariance::PerExample).unwrap_err();
        assert_eq!(
            err,
            AttackError::TooFewShadowObservations {
                example: 0,
                membership: "out",
                count: 0,
                required: 2
            }
        );
    }

    #[test]
    fn failing_shadow_training_is_an_error() {
        let masks = vec![vec![true, false], vec![false, true]];
        let result = ShadowObservations::train(masks, Execution::Sequential, |s, _| {
            if s == 1 {
                Err("out of memory")
            } else {
                Ok(vec![0.0, 0.0])
            }
        });
        assert!(matches!(
            result,
            Err(AttackError::ShadowTraining { shadow: 1, .. })
        ));
    }

    #[test]
    fn leave_one_out_splits_off_the_target() {
        let shadows = ShadowObservations::new(
            vec![vec![1.0], vec![2.0], vec![3.0]],
            vec![vec![true], vec![false], vec![true]],
        )
        .unwrap();
        let (target, mask, rest) = shadows.leave_one_out(1).unwrap();
        assert_eq!((target, mask), (vec![2.0], vec![false]));
        assert_eq!(rest.shadow_count(), 2);
        assert!(shadows.leave_one_out(3).is_err());
    }
}
