//! Membership-inference attacks on synthetic score distributions with known answers.

use crate::common;
use dp_attacks::{
    Execution, LiraVariance, RmiaInputs, RmiaReference, ShadowObservations, auc, lira_offline,
    lira_online, membership_metrics, rmia_scores,
};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Number of standard errors allowed between an AUC and its known value. For a normal statistic,
/// 5 standard errors give a false-failure rate below 6e-7 per check (fixed seeds make the tests
/// deterministic; this is the rate at which a new seed would fail).
const STANDARD_ERRORS: f64 = 5.0;

#[test]
fn auc_of_identical_distributions_is_one_half() {
    let (members, nonmembers) = (2000, 3000);
    // Standard error of the Mann-Whitney AUC under the null: sqrt((m + n + 1) / (12 m n)).
    let standard_error =
        (((members + nonmembers + 1) as f64) / (12.0 * (members * nonmembers) as f64)).sqrt();
    for seed in 0..20 {
        let mut rng = common::rng(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let m: Vec<f64> = (0..members).map(|_| normal.sample(&mut rng)).collect();
        let n: Vec<f64> = (0..nonmembers).map(|_| normal.sample(&mut rng)).collect();
        let value = auc(&m, &n).unwrap();
        assert!(
            (value - 0.5).abs() < STANDARD_ERRORS * standard_error,
            "seed {seed}: AUC {value}"
        );
        // Discretized scores (many ties) must stay centred too.
        let rounded = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<f64>>();
        let tied = auc(&rounded(&m), &rounded(&n)).unwrap();
        assert!(
            (tied - 0.5).abs() < STANDARD_ERRORS * standard_error,
            "seed {seed}: {tied}"
        );
    }
}

#[test]
fn auc_of_shifted_gaussians_matches_the_binormal_formula() {
    // Members ~ N(d, 1), non-members ~ N(0, 1): AUC = Φ(d / √2). For d = 1: Φ(0.70710678) =
    // 0.76024993890652326 (standard normal table / erfc).
    let expected = 0.760_249_938_906_523_3;
    let (count, d) = (4000, 1.0);
    let standard_error = 0.0075; // upper bound of the Hanley-McNeil SE at AUC 0.76, n = m = 4000
    let mut rng = common::rng(11);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let m: Vec<f64> = (0..count).map(|_| d + normal.sample(&mut rng)).collect();
    let n: Vec<f64> = (0..count).map(|_| normal.sample(&mut rng)).collect();
    let metrics = membership_metrics(&m, &n).unwrap();
    assert!((metrics.auc - expected).abs() < STANDARD_ERRORS * standard_error / 2.0);
    // Best advantage of two unit Gaussians at distance 1: 2Φ(1/2) - 1 = 0.38292492254802624.
    assert!((metrics.advantage - 0.382_924_922_548_026_2).abs() < 0.05);
    assert!(metrics.tpr_at_1_percent_fpr < metrics.balanced_accuracy);
}

/// Synthetic population: example i has a difficulty `d_i ~ N(0, 3²)` shared by all models, and a
/// model's φ on it is `N(d_i + in, 1)`. A global threshold on φ barely beats chance (the
/// difficulty spread hides the shift), while LiRA, which calibrates per example, approaches the
/// optimal AUC Φ(1/√2) = 0.7602.
#[test]
fn lira_calibrates_per_example_difficulty() {
    const EXAMPLES: usize = 2000;
    const SHADOWS: usize = 32;
    let mut rng = common::rng(5);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let difficulty: Vec<f64> = (0..EXAMPLES)
        .map(|_| 3.0 * noise.sample(&mut rng))
        .collect();
    let masks = ShadowObservations::balanced_in_masks(SHADOWS, EXAMPLES, &mut rng).unwrap();
    let model = |seed: u64, mask: &[bool]| -> Vec<f64> {
        let mut rng = common::rng(1000 + seed);
        mask.iter()
            .zip(&difficulty)
            .map(|(&m, d)| d + f64::from(u8::from(m)) + noise.sample(&mut rng))
            .collect()
    };
    let shadows = ShadowObservations::train(masks, Execution::Parallel, |s, mask| {
        Ok::<_, std::convert::Infallible>(model(s as u64, mask))
    })
    .unwrap();
    let target_mask: Vec<bool> = (0..EXAMPLES).map(|_| rng.random_bool(0.5)).collect();
    let target = model(999, &target_mask);
    let split = |scores: &[f64]| {
        let members: Vec<f64> = scores
            .iter()
            .zip(&target_mask)
            .filter(|(_, m)| **m)
            .map(|(s, _)| *s)
            .collect();
        let nonmembers: Vec<f64> = scores
            .iter()
            .zip(&target_mask)
            .filter(|(_, m)| !**m)
            .map(|(s, _)| *s)
            .collect();
        auc(&members, &nonmembers).unwrap()
    };
    let global = split(&target);
    let optimal = 0.760_249_938_906_523_3;
    assert!(global < 0.62, "global threshold AUC {global}");
    for variance in [LiraVariance::Global, LiraVariance::PerExample] {
        let online = split(&lira_online(&target, &shadows, variance).unwrap());
        let offline = split(&lira_offline(&target, &shadows, variance).unwrap());
        // Sampling error of the AUC with 2000 examples is about 0.011; fitting adds a little.
        assert!(
            (online - optimal).abs() < 0.05,
            "{variance:?} online AUC {online}"
        );
        assert!(
            (offline - optimal).abs() < 0.05,
            "{variance:?} offline AUC {offline}"
        );
    }
    // Sequential and parallel training give the same observations.
    let sequential = ShadowObservations::train(
        shadows.in_masks().to_vec(),
        Execution::Sequential,
        |s, mask| Ok::<_, std::convert::Infallible>(model(s as u64, mask)),
    )
    .unwrap();
    assert_eq!(sequential, shadows);
}

/// RMIA on the same kind of population: audited examples plus a population that the target
/// never trained on; reference models trained on random halves of both. Confidences are
/// `sigmoid(φ)`.
#[test]
fn rmia_beats_a_global_threshold() {
    const EXAMPLES: usize = 1000;
    const POPULATION: usize = 1000;
    const REFERENCES: usize = 16;
    let mut rng = common::rng(8);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let total = EXAMPLES + POPULATION;
    let difficulty: Vec<f64> = (0..total).map(|_| 3.0 * noise.sample(&mut rng)).collect();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let model = |seed: u64, mask: &[bool]| -> Vec<f64> {
        let mut rng = common::rng(5000 + seed);
        mask.iter()
            .zip(&difficulty)
            .map(|(&m, d)| sigmoid(d + f64::from(u8::from(m)) + noise.sample(&mut rng)))
            .collect()
    };
    let masks = ShadowObservations::balanced_in_masks(REFERENCES, total, &mut rng).unwrap();
    let references: Vec<Vec<f64>> = masks
        .iter()
        .enumerate()
        .map(|(s, mask)| model(s as u64, mask))
        .collect();
    let target_mask: Vec<bool> = (0..total)
        .map(|i| i < EXAMPLES && rng.random_bool(0.5))
        .collect();
    let target = model(999, &target_mask);
    let (on_examples, on_population) = target.split_at(EXAMPLES);
    let split_rows = |rows: &[Vec<f64>], first: bool| -> Vec<Vec<f64>> {
        rows.iter()
            .map(|r| {
                if first {
                    r[..EXAMPLES].to_vec()
                } else {
                    r[EXAMPLES..].to_vec()
                }
            })
            .collect()
    };
    let scores = rmia_scores(
        &RmiaInputs {
            target_on_examples: on_examples,
            target_on_population: on_population,
            references_on_examples: &split_rows(&references, true),
            references_on_population: &split_rows(&references, false),
        },
        RmiaReference::Online,
        1.0,
    )
    .unwrap();
    let by_membership = |values: &[f64], member: bool| -> Vec<f64> {
        values
            .iter()
            .zip(&target_mask)
            .filter(|(_, m)| **m == member)
            .map(|(v, _)| *v)
            .collect()
    };
    let rmia = auc(
        &by_membership(&scores, true),
        &by_membership(&scores, false),
    )
    .unwrap();
    let global = auc(
        &by_membership(on_examples, true),
        &by_membership(on_examples, false),
    )
    .unwrap();
    // Optimal AUC 0.760; the global threshold sits near 0.59 (sampling error ~0.02 each).
    assert!(rmia > 0.68, "RMIA AUC {rmia}");
    assert!(rmia > global + 0.05, "RMIA {rmia} vs global {global}");
}
