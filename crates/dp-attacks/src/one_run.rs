//! Auditing with one training run (Steinke, Nasr, Jagielski 2023).
//!
//! `m` canaries are each included in the training set independently with probability 1/2. After
//! one training run the auditor scores every canary, guesses *included* for the `k+` highest
//! scores and *excluded* for the `k-` lowest, and abstains on the rest. For an (ε, δ)-DP
//! mechanism the number `W` of correct guesses among the `r = k+ + k-` made satisfies (the
//! paper's Theorem 3 / Proposition 5.7, computed as in its Appendix D)
//!
//! ```text
//! P[W >= v] <= P[Binomial(r, q) >= v] + 2 m δ · max_{1<=i<=v} P[v - i <= Binomial(r, q) < v] / i,
//! q = e^ε / (1 + e^ε),
//! ```
//!
//! so a count `v` whose right-hand side is below the significance level refutes (ε, δ)-DP. The
//! ε lower bound is the largest ε that is still refuted.

use crate::error::{AttackError, Result};
use crate::stats::ln_binomial_coefficients;
use crate::validate;

/// Bisection steps for the ε search (the bracket is at most 2^10 wide: 2^-50 resolution).
const EPSILON_BISECTION_STEPS: usize = 60;

/// The search never looks beyond this ε; a count that refutes even this much is reported as
/// this value (a lower bound stays valid when made smaller).
pub const MAXIMUM_AUDITED_EPSILON: f64 = 1024.0;

/// The outcome of a one-run audit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneRunAudit {
    /// The ε lower bound (0 when nothing is refuted).
    pub epsilon: f64,
    /// Number of canaries `m`.
    pub canaries: usize,
    /// Guesses made, `r = k+ + k-` (fewer if ties at a boundary forced abstentions).
    pub guesses: usize,
    /// Correct guesses `v`.
    pub correct_guesses: usize,
    /// Guesses of *included* (top scores).
    pub positive_guesses: usize,
    /// Guesses of *excluded* (bottom scores).
    pub negative_guesses: usize,
    /// δ of the null hypothesis.
    pub delta: f64,
    /// Significance level β (the bound holds with probability `>= 1 - β`).
    pub significance: f64,
}

/// The paper's p-value: an upper bound on the probability that an (ε, δ)-DP mechanism lets the
/// auditor make at least `correct_guesses` correct guesses out of `guesses`, with `canaries`
/// canaries. Clamped to 1.
///
/// # Errors
///
/// [`AttackError::InvalidParameter`] unless `correct_guesses <= guesses <= canaries`,
/// `epsilon >= 0` is finite and `0 <= delta < 1`.
///
/// # Examples
///
/// ```
/// // ε = 0: every guess is a fair coin; 10 of 10 correct has probability 2^-10.
/// let p = dp_attacks::one_run_p_value(10, 10, 10, 0.0, 0.0)?;
/// assert!((p - 2f64.powi(-10)).abs() < 1e-15);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn one_run_p_value(
    canaries: usize,
    guesses: usize,
    correct_guesses: usize,
    epsilon: f64,
    delta: f64,
) -> Result<f64> {
    check_counts(canaries, guesses, correct_guesses)?;
    validate::delta(delta)?;
    if !(epsilon >= 0.0 && epsilon.is_finite()) {
        return Err(AttackError::InvalidParameter {
            name: "epsilon",
            value: epsilon,
            reason: "must be finite and non-negative",
        });
    }
    let test = NullHypothesisTest::new(canaries, guesses, correct_guesses, delta);
    Ok(test.p_value(epsilon))
}

/// The largest ε refuted at significance `significance` by `correct_guesses` correct out of
/// `guesses` guesses on `canaries` canaries; 0 if even ε = 0 is not refuted.
///
/// # Privacy
///
/// With probability at least `1 - significance` over the canaries' inclusion and the
/// training randomness, a mechanism that is (ε', `delta`)-DP under add/remove-one neighbours
/// (with respect to the canaries) has ε' >= the returned value, provided the guesses were fixed
/// by rules chosen before looking at which canaries were included. The result is rounded down.
///
/// # Errors
///
/// As [`one_run_p_value`], and for `significance` outside (0, 1).
///
/// # Examples
///
/// ```
/// // All 1000 guesses correct, δ = 0, β = 0.05: q^1000 = 0.05 gives ε = logit(0.05^(1/1000)).
/// let eps = dp_attacks::one_run_epsilon_lower_bound(1000, 1000, 1000, 0.0, 0.05)?;
/// let q = 0.05_f64.powf(1e-3);
/// assert!((eps - (q / (1.0 - q)).ln()).abs() < 1e-9);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn one_run_epsilon_lower_bound(
    canaries: usize,
    guesses: usize,
    correct_guesses: usize,
    delta: f64,
    significance: f64,
) -> Result<f64> {
    check_counts(canaries, guesses, correct_guesses)?;
    validate::delta(delta)?;
    validate::open_unit("significance", significance)?;
    let test = NullHypothesisTest::new(canaries, guesses, correct_guesses, delta);
    // The p-value grows with ε; keep p(lo) < significance <= p(hi).
    if test.p_value(0.0) >= significance {
        return Ok(0.0);
    }
    let mut hi = 1.0;
    while test.p_value(hi) < significance {
        if hi >= MAXIMUM_AUDITED_EPSILON {
            return Ok(MAXIMUM_AUDITED_EPSILON);
        }
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..EPSILON_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if test.p_value(mid) < significance {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Runs the whole audit on one training run: `scores[i]` is the attack's score of canary `i`
/// (higher: more likely included) and `included[i]` whether it was in the training set.
///
/// Guesses: *included* for the `positive_guesses` highest scores, *excluded* for the
/// `negative_guesses` lowest. A group of tied scores that straddles a boundary is abstained on
/// entirely, so the guesses depend on the scores alone (breaking ties by index could leak the
/// inclusion pattern if it correlates with canary order).
///
/// # Privacy
///
/// As [`one_run_epsilon_lower_bound`]. `positive_guesses` and `negative_guesses` must be fixed
/// in advance; to try several, use [`one_run_audit_sweep`], which pays for the search.
///
/// # Errors
///
/// [`AttackError::LengthMismatch`] / [`AttackError::NonFinite`] / [`AttackError::EmptyInput`]
/// for bad inputs, [`AttackError::InvalidParameter`] if `positive_guesses + negative_guesses`
/// exceeds the number of canaries, and the errors of [`one_run_epsilon_lower_bound`].
///
/// # Examples
///
/// ```
/// // A perfect attack on 1000 canaries, alternately included and excluded.
/// let included: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
/// // Distinct scores (tied scores at a boundary would be abstained on).
/// let scores: Vec<f64> = (0..1000).map(|i| f64::from(u8::from(included[i])) + i as f64 * 1e-4).collect();
/// let audit = dp_attacks::one_run_audit(&scores, &included, 100, 100, 0.0, 0.05)?;
/// assert_eq!((audit.guesses, audit.correct_guesses), (200, 200));
/// // Guessing 200 canaries, all right: a logit(0.05^(1/200)) ≈ 4.2 lower bound.
/// assert!(audit.epsilon > 4.0);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn one_run_audit(
    scores: &[f64],
    included: &[bool],
    positive_guesses: usize,
    negative_guesses: usize,
    delta: f64,
    significance: f64,
) -> Result<OneRunAudit> {
    audit_with_significance(
        scores,
        included,
        (positive_guesses, negative_guesses),
        delta,
        significance,
        significance,
    )
}

/// [`one_run_audit`] for several `(positive_guesses, negative_guesses)` choices, reporting the
/// best. Each choice is tested at `significance / choices.len()` (Bonferroni), so the best
/// bound still holds with probability `>= 1 - significance`.
///
/// # Privacy
///
/// As [`one_run_epsilon_lower_bound`], jointly over all choices.
///
/// # Errors
///
/// [`AttackError::EmptyInput`] for no choices, and the errors of [`one_run_audit`].
///
/// # Examples
///
/// ```
/// let included: Vec<bool> = (0..400).map(|i| i % 2 == 0).collect();
/// let scores: Vec<f64> = (0..400).map(|i| f64::from(u8::from(included[i])) + i as f64 * 1e-4).collect();
/// let best = dp_attacks::one_run_audit_sweep(&scores, &included, &[(10, 10), (100, 100)], 0.0, 0.05)?;
/// assert_eq!(best.guesses, 200);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn one_run_audit_sweep(
    scores: &[f64],
    included: &[bool],
    choices: &[(usize, usize)],
    delta: f64,
    significance: f64,
) -> Result<OneRunAudit> {
    validate::open_unit("significance", significance)?;
    let per_choice = significance / choices.len().max(1) as f64;
    let mut best: Option<OneRunAudit> = None;
    for &choice in choices {
        let audit =
            audit_with_significance(scores, included, choice, delta, per_choice, significance)?;
        if best.is_none_or(|b| audit.epsilon > b.epsilon) {
            best = Some(audit);
        }
    }
    best.ok_or(AttackError::EmptyInput { name: "choices" })
}

fn audit_with_significance(
    scores: &[f64],
    included: &[bool],
    (positive_guesses, negative_guesses): (usize, usize),
    delta: f64,
    test_significance: f64,
    reported_significance: f64,
) -> Result<OneRunAudit> {
    validate::finite_nonempty("scores", scores)?;
    validate::same_length("included", scores.len(), included.len())?;
    if positive_guesses + negative_guesses > scores.len() {
        return Err(AttackError::InvalidParameter {
            name: "positive_guesses + negative_guesses",
            value: (positive_guesses + negative_guesses) as f64,
            reason: "cannot exceed the number of canaries",
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let top = whole_tie_groups(&order, scores, positive_guesses);
    let reversed: Vec<usize> = order.iter().rev().copied().collect();
    let bottom = whole_tie_groups(&reversed, scores, negative_guesses);
    let correct = top.iter().filter(|&&i| included[i]).count()
        + bottom.iter().filter(|&&i| !included[i]).count();
    let guesses = top.len() + bottom.len();
    let epsilon =
        one_run_epsilon_lower_bound(scores.len(), guesses, correct, delta, test_significance)?;
    Ok(OneRunAudit {
        epsilon,
        canaries: scores.len(),
        guesses,
        correct_guesses: correct,
        positive_guesses: top.len(),
        negative_guesses: bottom.len(),
        delta,
        significance: reported_significance,
    })
}

/// The first `count` entries of `order`, shortened so that no tie group is split.
fn whole_tie_groups(order: &[usize], scores: &[f64], count: usize) -> Vec<usize> {
    let mut taken = count;
    if let Some(&next) = order.get(count) {
        while taken > 0 && scores[order[taken - 1]] == scores[next] {
            taken -= 1;
        }
    }
    order[..taken].to_vec()
}

fn check_counts(canaries: usize, guesses: usize, correct_guesses: usize) -> Result<()> {
    if correct_guesses <= guesses && guesses <= canaries {
        Ok(())
    } else {
        Err(AttackError::InvalidParameter {
            name: "correct_guesses <= guesses <= canaries",
            value: correct_guesses as f64,
            reason: "counts must be ordered",
        })
    }
}

/// The test statistic of Steinke et al. for fixed counts, evaluated at any ε.
struct NullHypothesisTest {
    canaries: usize,
    correct_guesses: usize,
    delta: f64,
    ln_binomial_coefficients: Vec<f64>,
}

impl NullHypothesisTest {
    fn new(canaries: usize, guesses: usize, correct_guesses: usize, delta: f64) -> Self {
        Self {
            canaries,
            correct_guesses,
            delta,
            ln_binomial_coefficients: ln_binomial_coefficients(guesses as u64),
        }
    }

    /// P[Binomial(r, q) = k] for all k, q = e^ε / (1 + e^ε).
    fn probabilities(&self, epsilon: f64) -> Vec<f64> {
        // ln q = -ln(1 + e^-ε), ln(1 - q) = -ε - ln(1 + e^-ε): no cancellation at any ε.
        let softplus = (-epsilon).exp().ln_1p();
        let (ln_q, ln_not_q) = (-softplus, -epsilon - softplus);
        let guesses = self.ln_binomial_coefficients.len() - 1;
        self.ln_binomial_coefficients
            .iter()
            .enumerate()
            .map(|(k, ln_c)| (ln_c + k as f64 * ln_q + (guesses - k) as f64 * ln_not_q).exp())
            .collect()
    }

    fn p_value(&self, epsilon: f64) -> f64 {
        let pmf = self.probabilities(epsilon);
        let v = self.correct_guesses;
        let tail: f64 = pmf[v..].iter().sum();
        let mut delta_term = 0.0;
        if self.delta > 0.0 {
            let mut window = 0.0;
            for i in 1..=v {
                window += pmf[v - i];
                delta_term = f64::max(delta_term, window / i as f64);
            }
        }
        (tail + 2.0 * self.canaries as f64 * self.delta * delta_term).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_at_a_boundary_are_abstained_on() {
        let scores = [3.0, 2.0, 2.0, 1.0];
        let order = [0, 1, 2, 3];
        assert_eq!(whole_tie_groups(&order, &scores, 2), vec![0]);
        assert_eq!(whole_tie_groups(&order, &scores, 3), vec![0, 1, 2]);
        assert_eq!(whole_tie_groups(&order, &scores, 4), vec![0, 1, 2, 3]);
        // A constant score gives no guesses at all, however the canaries are ordered.
        let included: Vec<bool> = (0..100).map(|i| i < 50).collect();
        let audit = one_run_audit(&[0.5; 100], &included, 50, 50, 0.0, 0.05).unwrap();
        assert_eq!((audit.guesses, audit.epsilon), (0, 0.0));
    }

    #[test]
    fn p_value_grows_with_epsilon_and_delta() {
        let mut previous = 0.0;
        for step in 0..20 {
            let p = one_run_p_value(1000, 100, 80, f64::from(step) * 0.25, 1e-5).unwrap();
            assert!(p >= previous);
            previous = p;
        }
        let without = one_run_p_value(1000, 100, 80, 1.0, 0.0).unwrap();
        let with = one_run_p_value(1000, 100, 80, 1.0, 1e-3).unwrap();
        assert!(with > without);
    }

    /// Relative agreement required with the reference implementation (its bisection stops at
    /// 2^-80 of the bracket, ours at 2^-60; both sum the same binomial terms).
    const REFERENCE_TOLERANCE: f64 = 1e-9;

    /// Reference values: the algorithm of Steinke, Nasr, Jagielski 2023, Appendix D
    /// (`p_value_DP_audit` / `get_eps_audit`), re-evaluated with scipy 1.17 (`binom.sf`,
    /// `binom.pmf`) and 80 bisection steps.
    #[test]
    fn matches_the_papers_algorithm() {
        let bounds = [
            ((1000, 100, 80, 1e-5, 0.05), 0.955_318_534_955_255_8),
            ((1000, 200, 150, 1e-5, 0.05), 0.819_972_912_169_993_7),
            ((10_000, 1000, 700, 1e-6, 0.05), 0.731_740_449_418_691_9),
            ((1000, 100, 100, 0.0, 0.05), 3.492_965_431_152_293_7),
            ((5000, 500, 400, 0.0, 0.01), 1.125_762_715_701_261_3),
            ((1000, 100, 60, 1e-5, 0.05), 0.049_548_660_644_846_33),
        ];
        for ((m, r, v, delta, beta), expected) in bounds {
            let eps = one_run_epsilon_lower_bound(m, r, v, delta, beta).unwrap();
            assert!(
                (eps / expected - 1.0).abs() < REFERENCE_TOLERANCE,
                "{m} {r} {v}: {eps} vs {expected}"
            );
            assert!(eps <= expected * (1.0 + 1e-12), "not rounded down");
        }
        let p_values = [
            ((1000, 100, 80, 1.0, 1e-5), 0.073_009_115_949_177_76),
            ((1000, 100, 80, 2.0, 1e-3), 1.0),
            ((10_000, 1000, 700, 0.5, 1e-6), 0.000_186_755_586_798_042_9),
        ];
        for ((m, r, v, eps, delta), expected) in p_values {
            let p = one_run_p_value(m, r, v, eps, delta).unwrap();
            assert!(
                (p / expected - 1.0).abs() < REFERENCE_TOLERANCE,
                "{p} vs {expected}"
            );
        }
    }

    proptest::proptest! {
        /// The ε search bisects, which presumes (as the paper's Appendix D does) that the
        /// p-value grows with ε also when the δ term is present.
        #[test]
        fn p_value_is_monotone_in_epsilon(
            guesses in 1_usize..300,
            correct_fraction in 0.0_f64..=1.0,
            log_delta in -9.0_f64..-2.0,
        ) {
            let correct = (correct_fraction * guesses as f64).round() as usize;
            let test = NullHypothesisTest::new(10 * guesses, guesses, correct, 10_f64.powf(log_delta));
            let mut previous = 0.0;
            for step in 0..80 {
                let p = test.p_value(f64::from(step) * 0.1);
                proptest::prop_assert!(p >= previous * (1.0 - 1e-12), "step {}: {} < {}", step, p, previous);
                previous = p;
            }
        }
    }

    #[test]
    fn bad_counts_are_rejected() {
        assert!(one_run_p_value(10, 11, 5, 1.0, 0.0).is_err());
        assert!(one_run_p_value(10, 5, 6, 1.0, 0.0).is_err());
        assert!(one_run_epsilon_lower_bound(10, 5, 5, 0.0, 0.0).is_err());
        assert!(one_run_audit(&[1.0, 0.0], &[true, false], 2, 1, 0.0, 0.05).is_err());
    }
}
