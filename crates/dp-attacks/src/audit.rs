//! Empirical ε lower bounds from a membership test's errors (Jagielski, Ullman, Oprea 2020).
//!
//! If a mechanism is (ε, δ)-DP, every test that tells apart a run *with* a canary from a run
//! *without* it has false-positive rate `α` and false-negative rate `β` with
//! `α + e^ε β >= 1 - δ` and `e^ε α + β >= 1 - δ` (Kairouz, Oh, Viswanath 2015). Observed error
//! counts give Clopper-Pearson upper bounds `ᾱ`, `β̄` on the true rates, hence
//! `ε >= max(ln((1 - δ - β̄) / ᾱ), ln((1 - δ - ᾱ) / β̄))` with the stated confidence.

use crate::error::{AttackError, Result};
use crate::metrics::RocCurve;
use crate::stats::{clopper_pearson_lower, clopper_pearson_upper};
use crate::validate;

/// A two-sided confidence interval for a binomial proportion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceInterval {
    /// Lower end (0 when no successes).
    pub lower: f64,
    /// Upper end (1 when all trials succeed).
    pub upper: f64,
}

/// The exact (Clopper-Pearson 1934) two-sided interval for `successes` out of `trials` at the
/// given `confidence` (e.g. 0.95): each end leaves `(1 - confidence) / 2` in its tail.
///
/// Both ends are found by bisection on the exact binomial tail and rounded outward, so the
/// coverage is at least `confidence` up to the accuracy of the incomplete beta function.
///
/// # Errors
///
/// [`AttackError::InvalidParameter`] if `trials == 0`, `successes > trials`, or `confidence`
/// is not in (0, 1).
///
/// # Examples
///
/// ```
/// // 0 successes of 10 at 95%: upper = 1 - 0.025^(1/10).
/// let ci = dp_attacks::clopper_pearson(0, 10, 0.95)?;
/// assert_eq!(ci.lower, 0.0);
/// assert!((ci.upper - (1.0 - 0.025_f64.powf(0.1))).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> Result<ConfidenceInterval> {
    validate::open_unit("confidence", confidence)?;
    check_counts(successes, trials)?;
    let tail = 0.5 * (1.0 - confidence);
    Ok(ConfidenceInterval {
        lower: clopper_pearson_lower(successes, trials, tail)?,
        upper: clopper_pearson_upper(successes, trials, tail)?,
    })
}

fn check_counts(successes: u64, trials: u64) -> Result<()> {
    validate::positive_count("trials", usize::try_from(trials).unwrap_or(usize::MAX))?;
    if successes > trials {
        return Err(AttackError::InvalidParameter {
            name: "successes",
            value: successes as f64,
            reason: "cannot exceed trials",
        });
    }
    Ok(())
}

/// How the decision threshold is chosen, and how that choice is paid for in confidence.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdSelection {
    /// One threshold fixed before seeing the scores; the whole confidence goes to it.
    Fixed(f64),
    /// Every threshold of a grid fixed before seeing the scores; the best bound is reported and
    /// the search is paid for by a Bonferroni split (each threshold gets `(1 - confidence) /
    /// grid.len()`).
    BonferroniGrid(Vec<f64>),
    /// The scores at even positions (0, 2, 4, ... of each slice) choose the threshold with the
    /// best point estimate of ε; the scores at odd positions alone give the bound, at the full
    /// confidence. Requires that the order of each slice is independent of the scores (e.g.
    /// canary id order), which the caller guarantees.
    SplitHalf,
}

/// An empirical ε lower bound and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpsilonLowerBound {
    /// The bound (0 when the test shows nothing).
    pub epsilon: f64,
    /// The threshold that achieved it (*member* iff `score >= threshold`).
    pub threshold: f64,
    /// Clopper-Pearson upper bound on the false-positive rate at that threshold.
    pub false_positive_rate_upper: f64,
    /// Clopper-Pearson upper bound on the false-negative rate at that threshold.
    pub false_negative_rate_upper: f64,
    /// δ assumed for the mechanism.
    pub delta: f64,
    /// Joint confidence of the bound over everything searched.
    pub confidence: f64,
    /// Number of thresholds the confidence was split over.
    pub thresholds_tested: usize,
}

/// Lower-bounds the ε of the training mechanism from the scores of canaries that were inserted
/// (`member_scores`) and held out (`nonmember_scores`), maximized over thresholds as
/// `selection` says.
///
/// At each threshold, the false-positive and false-negative counts get one-sided
/// Clopper-Pearson upper bounds at `(1 - confidence) / (2 · thresholds)` each, so all bounds
/// hold jointly with probability `>= confidence`.
///
/// # Privacy
///
/// The result is a *lower* bound: with probability at least `confidence` over the randomness of
/// the runs, a mechanism that is (ε', `delta`)-DP under add/remove-one neighbours has
/// ε' >= `epsilon`. It is valid only if each score comes from an independent run of the
/// mechanism (one canary per training run, as in Jagielski et al. 2020); for many canaries in
/// one run use [`crate::one_run_audit`]. It says nothing about an upper bound.
///
/// # Errors
///
/// [`AttackError::EmptyInput`] / [`AttackError::NonFinite`] for bad scores (each half must
/// be non-empty under [`ThresholdSelection::SplitHalf`]), [`AttackError::InvalidParameter`] for
/// `delta` outside [0, 1), `confidence` outside (0, 1), or an empty or non-finite grid.
///
/// # Examples
///
/// ```
/// use dp_attacks::{ThresholdSelection, epsilon_lower_bound};
/// // A perfect attack on 1000 + 1000 canaries.
/// let members = vec![1.0; 1000];
/// let nonmembers = vec![0.0; 1000];
/// let bound = epsilon_lower_bound(&members, &nonmembers, 0.0, 0.95, ThresholdSelection::Fixed(0.5))?;
/// // No errors: ᾱ = β̄ = 1 - 0.025^(1/1000) ≈ 0.00368, so ε >= ln((1 - β̄) / ᾱ) ≈ 5.60.
/// let rate = 1.0 - 0.025_f64.powf(1e-3);
/// assert!((bound.epsilon - ((1.0 - rate) / rate).ln()).abs() < 1e-9);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn epsilon_lower_bound(
    member_scores: &[f64],
    nonmember_scores: &[f64],
    delta: f64,
    confidence: f64,
    selection: ThresholdSelection,
) -> Result<EpsilonLowerBound> {
    validate::finite_nonempty("member_scores", member_scores)?;
    validate::finite_nonempty("nonmember_scores", nonmember_scores)?;
    validate::delta(delta)?;
    validate::open_unit("confidence", confidence)?;
    match selection {
        ThresholdSelection::Fixed(threshold) => best_over(
            &[threshold],
            member_scores,
            nonmember_scores,
            delta,
            confidence,
        ),
        ThresholdSelection::BonferroniGrid(grid) => {
            if grid.is_empty() {
                return Err(AttackError::EmptyInput { name: "grid" });
            }
            validate::finite("grid", &grid)?;
            best_over(&grid, member_scores, nonmember_scores, delta, confidence)
        }
        ThresholdSelection::SplitHalf => {
            let (choose_members, audit_members) = split(member_scores);
            let (choose_nonmembers, audit_nonmembers) = split(nonmember_scores);
            validate::finite_nonempty("member_scores (odd positions)", &audit_members)?;
            validate::finite_nonempty("nonmember_scores (odd positions)", &audit_nonmembers)?;
            let threshold = best_point_estimate(&choose_members, &choose_nonmembers, delta)?;
            best_over(
                &[threshold],
                &audit_members,
                &audit_nonmembers,
                delta,
                confidence,
            )
        }
    }
}

/// Even and odd positions.
fn split(scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let even = scores.iter().step_by(2).copied().collect();
    let odd = scores.iter().skip(1).step_by(2).copied().collect();
    (even, odd)
}

/// Error counts of the rule *member* iff `score >= threshold`.
fn error_counts(threshold: f64, members: &[f64], nonmembers: &[f64]) -> (u64, u64) {
    let false_positives = nonmembers.iter().filter(|&&s| s >= threshold).count() as u64;
    let false_negatives = members.iter().filter(|&&s| s < threshold).count() as u64;
    (false_positives, false_negatives)
}

/// `max(ln((1 - δ - β) / α), ln((1 - δ - α) / β), 0)`, with `ln(x / 0) = +inf` for `x > 0`.
fn epsilon_from_rates(alpha: f64, beta: f64, delta: f64) -> f64 {
    let one_side = |a: f64, b: f64| {
        let numerator = 1.0 - delta - b;
        if numerator <= 0.0 {
            0.0
        } else {
            (numerator / a).ln()
        }
    };
    one_side(alpha, beta).max(one_side(beta, alpha)).max(0.0)
}

/// The threshold of the empirical ROC curve with the best plug-in ε (empirical rates, no
/// confidence), the rates floored at one error so that a perfect split is not infinitely good.
fn best_point_estimate(members: &[f64], nonmembers: &[f64], delta: f64) -> Result<f64> {
    let roc = RocCurve::new(members, nonmembers)?;
    let floor_rate = |errors: usize, total: usize| errors.max(1) as f64 / total as f64;
    let mut best = (f64::NEG_INFINITY, f64::INFINITY);
    for point in &roc.points()[1..] {
        let alpha = floor_rate(point.false_positives, roc.nonmembers());
        let beta = floor_rate(roc.members() - point.true_positives, roc.members());
        let epsilon = epsilon_from_rates(alpha, beta, delta);
        if epsilon > best.0 {
            best = (epsilon, point.threshold);
        }
    }
    Ok(best.1)
}

/// The best certified bound over `thresholds`, splitting `1 - confidence` evenly over them and
/// over the two error rates.
fn best_over(
    thresholds: &[f64],
    members: &[f64],
    nonmembers: &[f64],
    delta: f64,
    confidence: f64,
) -> Result<EpsilonLowerBound> {
    let tail = (1.0 - confidence) / (2.0 * thresholds.len() as f64);
    let mut best: Option<EpsilonLowerBound> = None;
    for &threshold in thresholds {
        let (fp, fn_) = error_counts(threshold, members, nonmembers);
        let alpha = clopper_pearson_upper(fp, nonmembers.len() as u64, tail)?;
        let beta = clopper_pearson_upper(fn_, members.len() as u64, tail)?;
        let epsilon = epsilon_from_rates(alpha, beta, delta);
        if best.is_none_or(|b| epsilon > b.epsilon) {
            best = Some(EpsilonLowerBound {
                epsilon,
                threshold,
                false_positive_rate_upper: alpha,
                false_negative_rate_upper: beta,
                delta,
                confidence,
                thresholds_tested: thresholds.len(),
            });
        }
    }
    best.ok_or(AttackError::EmptyInput { name: "thresholds" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tolerance for closed-form comparisons of interval ends.
    const INTERVAL_TOLERANCE: f64 = 1e-10;

    #[test]
    fn clopper_pearson_matches_reference_values() {
        // All successes: lower = (α/2)^(1/n).
        let ci = clopper_pearson(20, 20, 0.95).unwrap();
        assert_eq!(ci.upper, 1.0);
        assert!((ci.lower - 0.025_f64.powf(1.0 / 20.0)).abs() < INTERVAL_TOLERANCE);
        // 5 of 10 at 95%: scipy 1.17 `beta.ppf` gives 0.18708602844739855, 0.8129139715526015.
        let ci = clopper_pearson(5, 10, 0.95).unwrap();
        assert!((ci.lower - 0.187_086_028_44).abs() < 1e-9, "{}", ci.lower);
        assert!((ci.upper - 0.812_913_971_56).abs() < 1e-9, "{}", ci.upper);
        // scipy 1.17 `beta.ppf(0.025, k, n - k + 1)` / `beta.ppf(0.975, k + 1, n - k)`.
        for (k, n, lower, upper) in [
            (
                1,
                100,
                0.000_253_146_032_977_420_6,
                0.054_459_385_392_080_645,
            ),
            (37, 250, 0.106_395_231_507_910_43, 0.198_182_036_359_159_7),
        ] {
            let ci = clopper_pearson(k, n, 0.95).unwrap();
            assert!(
                (ci.lower / lower - 1.0).abs() < 1e-9,
                "{} vs {lower}",
                ci.lower
            );
            assert!(
                (ci.upper / upper - 1.0).abs() < 1e-9,
                "{} vs {upper}",
                ci.upper
            );
        }
    }

    #[test]
    fn clopper_pearson_rejects_bad_input() {
        assert!(clopper_pearson(0, 0, 0.95).is_err());
        assert!(clopper_pearson(3, 2, 0.95).is_err());
        assert!(clopper_pearson(1, 2, 1.0).is_err());
    }

    #[test]
    fn perfect_attack_matches_closed_form() {
        let n = 500;
        let bound = epsilon_lower_bound(
            &vec![1.0; n],
            &vec![0.0; n],
            1e-5,
            0.9,
            ThresholdSelection::Fixed(0.5),
        )
        .unwrap();
        let rate = 1.0 - 0.05_f64.powf(1.0 / n as f64);
        let expected = ((1.0 - 1e-5 - rate) / rate).ln();
        assert!(
            (bound.epsilon - expected).abs() < 1e-8,
            "{} {expected}",
            bound.epsilon
        );
    }

    #[test]
    fn useless_attack_gives_zero() {
        let scores = vec![0.0; 100];
        let bound = epsilon_lower_bound(&scores, &scores, 0.0, 0.95, ThresholdSelection::SplitHalf)
            .unwrap();
        assert_eq!(bound.epsilon, 0.0);
    }

    #[test]
    fn bonferroni_grid_costs_confidence() {
        let members = vec![1.0; 200];
        let nonmembers = vec![0.0; 200];
        let fixed = epsilon_lower_bound(
            &members,
            &nonmembers,
            0.0,
            0.95,
            ThresholdSelection::Fixed(0.5),
        )
        .unwrap();
        let grid = ThresholdSelection::BonferroniGrid(vec![0.25, 0.5, 0.75, 2.0]);
        let searched = epsilon_lower_bound(&members, &nonmembers, 0.0, 0.95, grid).unwrap();
        assert!(searched.epsilon < fixed.epsilon);
        assert_eq!(searched.thresholds_tested, 4);
        assert!(
            epsilon_lower_bound(
                &members,
                &nonmembers,
                0.0,
                0.95,
                ThresholdSelection::BonferroniGrid(vec![])
            )
            .is_err()
        );
    }
}
