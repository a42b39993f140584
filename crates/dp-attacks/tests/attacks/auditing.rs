//! ε lower bounds never exceed the ε of the mechanism that generated the scores (at the stated
//! confidence), and reach known values for perfect attacks.

use crate::common;
use dp_attacks::{
    ThresholdSelection, clopper_pearson, epsilon_lower_bound, one_run_audit,
    one_run_epsilon_lower_bound,
};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Independent repetitions of each soundness check.
const REPETITIONS: u64 = 100;
/// Probability that a correct implementation fails a soundness check (violation count beyond
/// the binomial quantile).
const FALSE_FAILURE_RATE: f64 = 1e-4;

/// Scores of the Gaussian mechanism `x + N(0, noise_multiplier²)` with `x = 1` for canaries in
/// the run and `x = 0` for canaries left out: sensitivity 1.
fn gaussian_scores(included: bool, noise_multiplier: f64, rng: &mut impl Rng) -> f64 {
    let noise: f64 = StandardNormal.sample(rng);
    f64::from(u8::from(included)) + noise_multiplier * noise
}

#[test]
fn clopper_pearson_zero_successes_closed_form() {
    for &(n, confidence) in &[(1_u64, 0.95), (30, 0.9), (1000, 0.99)] {
        let alpha: f64 = 1.0 - confidence;
        let ci = clopper_pearson(0, n, confidence).unwrap();
        let expected = 1.0 - (alpha / 2.0).powf(1.0 / n as f64);
        assert_eq!(ci.lower, 0.0);
        assert!(
            (ci.upper - expected).abs() < 1e-10,
            "n = {n}: {} vs {expected}",
            ci.upper
        );
        assert!(ci.upper >= expected);
    }
}

#[test]
fn threshold_audit_never_exceeds_the_gaussian_mechanism_epsilon() {
    // (noise multiplier, δ): a small δ where ε is large and the audit far from tight, and a
    // large δ where the true ε is small and the audit comes close, so that an unsound bound
    // (e.g. plug-in rates without confidence intervals) would show up as violations.
    for (noise_multiplier, delta) in [(0.5, 1e-5), (1.0, 0.1)] {
        let confidence = 0.95;
        let true_epsilon = common::gaussian_mechanism_epsilon(noise_multiplier, delta);
        let grid: Vec<f64> = (0..16).map(|i| f64::from(i) * 0.1).collect();
        let allowed = common::allowed_violations(REPETITIONS, 1.0 - confidence, FALSE_FAILURE_RATE);
        let mut violations = [0_u64; 2];
        let mut best = 0.0_f64;
        for seed in 0..REPETITIONS {
            let mut rng = common::rng(seed);
            // One score per independent "training run": members and non-members alike.
            let members: Vec<f64> = (0..2000)
                .map(|_| gaussian_scores(true, noise_multiplier, &mut rng))
                .collect();
            let nonmembers: Vec<f64> = (0..2000)
                .map(|_| gaussian_scores(false, noise_multiplier, &mut rng))
                .collect();
            let selections = [
                ThresholdSelection::SplitHalf,
                ThresholdSelection::BonferroniGrid(grid.clone()),
            ];
            for (i, selection) in selections.into_iter().enumerate() {
                let bound =
                    epsilon_lower_bound(&members, &nonmembers, delta, confidence, selection)
                        .unwrap();
                best = best.max(bound.epsilon);
                if bound.epsilon > true_epsilon {
                    violations[i] += 1;
                }
            }
        }
        assert!(
            violations.iter().all(|&v| v <= allowed),
            "{violations:?} > {allowed}"
        );
        // The audit is not vacuous: it certifies a good part of the true ε.
        let fraction = if delta > 0.01 { 0.8 } else { 0.3 };
        assert!(
            best > fraction * true_epsilon,
            "best bound {best}, true ε {true_epsilon}"
        );
        eprintln!(
            "σ = {noise_multiplier}, δ = {delta}: true ε {true_epsilon:.4}, best bound {best:.4}, violations {violations:?} (allowed {allowed})"
        );
    }
}

#[test]
fn one_run_perfect_attacker_reaches_the_closed_form_bound() {
    let mut rng = common::rng(77);
    let included: Vec<bool> = (0..1000).map(|_| rng.random_bool(0.5)).collect();
    // Distinct scores: inclusion plus a small jitter that never crosses the gap.
    let scores: Vec<f64> = included
        .iter()
        .map(|&b| f64::from(u8::from(b)) + 0.4 * rng.random::<f64>())
        .collect();
    let audit = one_run_audit(&scores, &included, 150, 150, 0.0, 0.05).unwrap();
    assert_eq!((audit.guesses, audit.correct_guesses), (300, 300));
    // δ = 0, all r guesses right: p(ε) = q^r < β  <=>  ε < logit(β^(1/r)).
    let q = 0.05_f64.powf(1.0 / 300.0);
    let expected = (q / (1.0 - q)).ln();
    assert!(
        (audit.epsilon - expected).abs() < 1e-9,
        "{} vs {expected}",
        audit.epsilon
    );
    // δ > 0 can only lower the bound.
    let with_delta = one_run_audit(&scores, &included, 150, 150, 1e-5, 0.05).unwrap();
    assert!(with_delta.epsilon <= audit.epsilon);
}

#[test]
fn one_run_random_attacker_certifies_nothing_beyond_the_significance() {
    // Scores independent of inclusion: the mechanism is 0-DP, so any ε > 0 is a violation.
    let significance = 0.05;
    let allowed = common::allowed_violations(REPETITIONS, significance, FALSE_FAILURE_RATE);
    let mut violations = 0;
    for seed in 0..REPETITIONS {
        let mut rng = common::rng(10_000 + seed);
        let included: Vec<bool> = (0..1000).map(|_| rng.random_bool(0.5)).collect();
        let scores: Vec<f64> = (0..1000).map(|_| rng.random::<f64>()).collect();
        let audit = one_run_audit(&scores, &included, 100, 100, 0.0, significance).unwrap();
        if audit.epsilon > 0.0 {
            violations += 1;
        }
    }
    assert!(violations <= allowed, "{violations} > {allowed}");
}

#[test]
fn one_run_audit_never_exceeds_the_gaussian_mechanism_epsilon() {
    // Each canary's score is its own Gaussian mechanism (sensitivity 1), so the vector of
    // scores is (ε, δ)-DP with respect to every canary.
    let (noise_multiplier, delta, significance) = (0.5, 1e-5, 0.05);
    let true_epsilon = common::gaussian_mechanism_epsilon(noise_multiplier, delta);
    let allowed = common::allowed_violations(REPETITIONS, significance, FALSE_FAILURE_RATE);
    let mut violations = 0;
    let mut best = 0.0_f64;
    for seed in 0..REPETITIONS {
        let mut rng = common::rng(20_000 + seed);
        let included: Vec<bool> = (0..2000).map(|_| rng.random_bool(0.5)).collect();
        let scores: Vec<f64> = included
            .iter()
            .map(|&b| gaussian_scores(b, noise_multiplier, &mut rng))
            .collect();
        let audit = one_run_audit(&scores, &included, 50, 50, delta, significance).unwrap();
        best = best.max(audit.epsilon);
        if audit.epsilon > true_epsilon {
            violations += 1;
        }
    }
    assert!(violations <= allowed, "{violations} > {allowed}");
    assert!(best > 0.0, "the audit never certified anything");
}

#[test]
fn one_run_bound_grows_with_correct_guesses() {
    let mut previous = 0.0;
    for correct in 50..=100 {
        let eps = one_run_epsilon_lower_bound(1000, 100, correct, 1e-6, 0.05).unwrap();
        assert!(eps >= previous, "{correct}: {eps} < {previous}");
        previous = eps;
    }
}
