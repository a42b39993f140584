//! ROC curve, AUC, TPR at a fixed FPR and balanced accuracy of a membership score.
//!
//! Convention used everywhere in this crate: **members are the positive class**, a higher score
//! means "more likely a member", and the attack at threshold `t` predicts *member* exactly when
//! `score >= t`.

use crate::error::{AttackError, Result};
use crate::validate;

/// One operating point of a thresholded attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// The attack predicts *member* when `score >= threshold` (`+inf`: nobody).
    pub threshold: f64,
    /// Non-members predicted *member*.
    pub false_positives: usize,
    /// Members predicted *member*.
    pub true_positives: usize,
    /// `false_positives / nonmembers`.
    pub false_positive_rate: f64,
    /// `true_positives / members`.
    pub true_positive_rate: f64,
}

/// The exact empirical ROC curve of a score, members positive.
///
/// Points are sorted by decreasing threshold, from (0, 0) at threshold `+inf` to (1, 1) at the
/// smallest score. Ties are handled exactly: all examples sharing a score change class together,
/// so a tie between members and non-members is one diagonal step (the trapezoid under it is
/// what gives tied pairs the weight 1/2 in the AUC).
///
/// # Examples
///
/// ```
/// use dp_attacks::RocCurve;
/// let roc = RocCurve::new(&[0.9, 0.8, 0.4], &[0.7, 0.3, 0.2, 0.1])?;
/// assert_eq!(roc.points().first().map(|p| p.true_positives), Some(0));
/// assert!((roc.auc() - 11.0 / 12.0).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    points: Vec<RocPoint>,
    members: usize,
    nonmembers: usize,
}

impl RocCurve {
    /// Builds the curve from the scores of members (positives) and non-members (negatives).
    ///
    /// # Errors
    ///
    /// [`AttackError::EmptyInput`] if either slice is empty, [`AttackError::NonFinite`] for a
    /// NaN or infinite score.
    pub fn new(member_scores: &[f64], nonmember_scores: &[f64]) -> Result<Self> {
        validate::finite_nonempty("member_scores", member_scores)?;
        validate::finite_nonempty("nonmember_scores", nonmember_scores)?;
        let mut labelled: Vec<(f64, bool)> = member_scores
            .iter()
            .map(|&s| (s, true))
            .chain(nonmember_scores.iter().map(|&s| (s, false)))
            .collect();
        labelled.sort_by(|a, b| b.0.total_cmp(&a.0));
        let members = member_scores.len();
        let nonmembers = nonmember_scores.len();
        let point = |threshold, true_positives, false_positives| RocPoint {
            threshold,
            false_positives,
            true_positives,
            false_positive_rate: false_positives as f64 / nonmembers as f64,
            true_positive_rate: true_positives as f64 / members as f64,
        };
        let mut points = vec![point(f64::INFINITY, 0, 0)];
        let (mut tp, mut fp) = (0, 0);
        for group in labelled.chunk_by(|a, b| a.0 == b.0) {
            let positives = group.iter().filter(|(_, is_member)| *is_member).count();
            tp += positives;
            fp += group.len() - positives;
            points.push(point(group[0].0, tp, fp));
        }
        Ok(Self {
            points,
            members,
            nonmembers,
        })
    }

    /// The operating points, by decreasing threshold.
    pub fn points(&self) -> &[RocPoint] {
        &self.points
    }

    /// Number of members (positives).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Number of non-members (negatives).
    pub fn nonmembers(&self) -> usize {
        self.nonmembers
    }

    /// Area under the curve: the probability that a random member scores above a random
    /// non-member, ties counting 1/2 (the Mann-Whitney U statistic divided by `members *
    /// nonmembers`). 0.5 is chance, 1.0 a perfect attack.
    pub fn auc(&self) -> f64 {
        // Twice the trapezoid area in integer units keeps the sum exact up to 2^53.
        let doubled: u128 = self
            .points
            .windows(2)
            .map(|w| {
                let width = (w[1].false_positives - w[0].false_positives) as u128;
                width * (w[0].true_positives + w[1].true_positives) as u128
            })
            .sum();
        doubled as f64 / (2.0 * self.members as f64 * self.nonmembers as f64)
    }

    /// TPR at a fixed FPR: the largest true-positive rate over the thresholds whose
    /// false-positive rate is at most `max_false_positive_rate`.
    ///
    /// No interpolation: only deterministic thresholds of the empirical curve count (a
    /// randomized threshold could reach the segment between two points; we do not credit it).
    /// The rate resolution is `1 / nonmembers`, so with fewer than `1 / max_false_positive_rate`
    /// non-members only FPR = 0 qualifies and the value is the TPR at zero false positives.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] unless `0 <= max_false_positive_rate <= 1`.
    pub fn tpr_at_fpr(&self, max_false_positive_rate: f64) -> Result<f64> {
        if !(0.0..=1.0).contains(&max_false_positive_rate) {
            return Err(AttackError::InvalidParameter {
                name: "max_false_positive_rate",
                value: max_false_positive_rate,
                reason: "must lie in [0, 1]",
            });
        }
        // TPR is non-decreasing along the curve, so the last admissible point is the best.
        Ok(self
            .points
            .iter()
            .take_while(|p| p.false_positive_rate <= max_false_positive_rate)
            .last()
            .map_or(0.0, |p| p.true_positive_rate))
    }

    /// The best balanced accuracy over thresholds, `max_t (TPR + 1 - FPR) / 2`; at least 0.5.
    pub fn best_balanced_accuracy(&self) -> f64 {
        0.5 * (1.0 + self.best_advantage())
    }

    /// The best membership advantage over thresholds, `max_t (TPR - FPR)` (Yeom et al. 2018);
    /// in [0, 1].
    pub fn best_advantage(&self) -> f64 {
        self.points
            .iter()
            .map(|p| p.true_positive_rate - p.false_positive_rate)
            .fold(0.0, f64::max)
    }
}

/// AUC of a membership score (members positive, ties 1/2); see [`RocCurve::auc`].
///
/// # Errors
///
/// As [`RocCurve::new`].
///
/// # Examples
///
/// ```
/// let auc = dp_attacks::auc(&[1.0, 1.0], &[1.0, 0.0])?;
/// assert_eq!(auc, 0.75);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn auc(member_scores: &[f64], nonmember_scores: &[f64]) -> Result<f64> {
    Ok(RocCurve::new(member_scores, nonmember_scores)?.auc())
}

/// The headline numbers of a membership-inference attack (members positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MembershipMetrics {
    /// Area under the ROC curve (0.5 is chance).
    pub auc: f64,
    /// TPR at FPR <= 1% ([`RocCurve::tpr_at_fpr`]).
    pub tpr_at_1_percent_fpr: f64,
    /// TPR at FPR <= 0.1%.
    pub tpr_at_0_1_percent_fpr: f64,
    /// Best balanced accuracy over thresholds.
    pub balanced_accuracy: f64,
    /// Best advantage `TPR - FPR` over thresholds.
    pub advantage: f64,
    /// Number of members scored.
    pub members: usize,
    /// Number of non-members scored.
    pub nonmembers: usize,
}

/// All of [`MembershipMetrics`] from one ROC curve.
///
/// # Errors
///
/// As [`RocCurve::new`].
///
/// # Examples
///
/// ```
/// let m = dp_attacks::membership_metrics(&[0.9, 0.8], &[0.1, 0.85])?;
/// assert_eq!(m.auc, 0.75);
/// assert_eq!(m.balanced_accuracy, 0.75);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn membership_metrics(
    member_scores: &[f64],
    nonmember_scores: &[f64],
) -> Result<MembershipMetrics> {
    let roc = RocCurve::new(member_scores, nonmember_scores)?;
    Ok(MembershipMetrics {
        auc: roc.auc(),
        tpr_at_1_percent_fpr: roc.tpr_at_fpr(0.01)?,
        tpr_at_0_1_percent_fpr: roc.tpr_at_fpr(0.001)?,
        balanced_accuracy: roc.best_balanced_accuracy(),
        advantage: roc.best_advantage(),
        members: roc.members(),
        nonmembers: roc.nonmembers(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute-force Mann-Whitney: pairs won count 1, ties 1/2.
    fn pairwise_auc(members: &[f64], nonmembers: &[f64]) -> f64 {
        let mut wins = 0.0;
        for m in members {
            for n in nonmembers {
                wins += if m > n {
                    1.0
                } else if m == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (members.len() * nonmembers.len()) as f64
    }

    #[test]
    fn all_tied_scores_give_one_diagonal_step() {
        let roc = RocCurve::new(&[2.0; 3], &[2.0; 5]).unwrap();
        assert_eq!(roc.points().len(), 2);
        assert_eq!(roc.auc(), 0.5);
        assert_eq!(roc.tpr_at_fpr(0.99).unwrap(), 0.0);
        assert_eq!(roc.tpr_at_fpr(1.0).unwrap(), 1.0);
        assert_eq!(roc.best_advantage(), 0.0);
    }

    #[test]
    fn tpr_at_fpr_takes_largest_admissible_tpr() {
        // Non-members: one high outlier. At FPR 0 the attack gets members above 0.95 only.
        let members = [0.99, 0.97, 0.9, 0.5];
        let nonmembers = [0.95, 0.1, 0.2, 0.3];
        let roc = RocCurve::new(&members, &nonmembers).unwrap();
        assert_eq!(roc.tpr_at_fpr(0.0).unwrap(), 0.5);
        assert_eq!(roc.tpr_at_fpr(0.25).unwrap(), 1.0);
        assert_eq!(roc.tpr_at_fpr(0.24).unwrap(), 0.5);
        assert_eq!(roc.best_advantage(), 0.75);
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert!(matches!(
            RocCurve::new(&[], &[1.0]),
            Err(AttackError::EmptyInput { .. })
        ));
        assert!(matches!(
            RocCurve::new(&[f64::NAN], &[1.0]),
            Err(AttackError::NonFinite { index: 0, .. })
        ));
        let roc = RocCurve::new(&[1.0], &[0.0]).unwrap();
        assert!(roc.tpr_at_fpr(1.5).is_err());
    }

    proptest! {
        #[test]
        fn auc_equals_pairwise_mann_whitney(
            members in prop::collection::vec(0_u8..6, 1..30),
            nonmembers in prop::collection::vec(0_u8..6, 1..30),
        ) {
            // Small integer scores force many ties.
            let m: Vec<f64> = members.iter().map(|&x| f64::from(x)).collect();
            let n: Vec<f64> = nonmembers.iter().map(|&x| f64::from(x)).collect();
            let roc = RocCurve::new(&m, &n).unwrap();
            prop_assert!((roc.auc() - pairwise_auc(&m, &n)).abs() < 1e-12);
            // Swapping the classes mirrors the AUC.
            prop_assert!((auc(&n, &m).unwrap() - (1.0 - roc.auc())).abs() < 1e-12);
            let rates: Vec<(f64, f64)> = roc
                .points()
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate))
                .collect();
            prop_assert!(rates.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
            prop_assert_eq!(rates.last().copied(), Some((1.0, 1.0)));
        }

        #[test]
        fn tpr_at_fpr_is_monotone_in_the_target(
            members in prop::collection::vec(-3.0_f64..3.0, 1..40),
            nonmembers in prop::collection::vec(-3.0_f64..3.0, 1..40),
            a in 0.0_f64..1.0,
            b in 0.0_f64..1.0,
        ) {
            let roc = RocCurve::new(&members, &nonmembers).unwrap();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(roc.tpr_at_fpr(lo).unwrap() <= roc.tpr_at_fpr(hi).unwrap());
            let ba = roc.best_balanced_accuracy();
            prop_assert!((0.5..=1.0).contains(&ba));
        }
    }
}
