//! The LOSS threshold attack (Yeom, Giacomelli, Fredrikson, Jha 2018): training examples tend to
//! have lower loss, so `-loss` is a membership score.

use crate::error::{AttackError, Result};
use crate::metrics::{MembershipMetrics, membership_metrics};
use crate::validate;

/// Membership scores from per-example losses: `score = -loss`, so that members (low loss) score
/// high, as [`crate::RocCurve`] expects.
///
/// # Errors
///
/// [`AttackError::NonFinite`] for a NaN or infinite loss.
///
/// # Examples
///
/// ```
/// assert_eq!(dp_attacks::loss_scores(&[0.1, 2.0])?, vec![-0.1, -2.0]);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn loss_scores(losses: &[f64]) -> Result<Vec<f64>> {
    validate::finite("losses", losses)?;
    Ok(losses.iter().map(|l| -l).collect())
}

/// All threshold metrics of the LOSS attack at once (every threshold is tried; see
/// [`MembershipMetrics`]).
///
/// # Errors
///
/// As [`crate::RocCurve::new`].
///
/// # Examples
///
/// ```
/// let m = dp_attacks::loss_attack_metrics(&[0.01, 0.02], &[0.5, 1.5])?;
/// assert_eq!(m.auc, 1.0);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn loss_attack_metrics(
    member_losses: &[f64],
    nonmember_losses: &[f64],
) -> Result<MembershipMetrics> {
    membership_metrics(
        &loss_scores(member_losses)?,
        &loss_scores(nonmember_losses)?,
    )
}

/// Yeom et al.'s single-threshold attack: *member* iff `loss <= threshold`, with the threshold
/// usually the model's mean training loss (known to the attacker in their threat model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossThresholdAttack {
    threshold: f64,
}

/// Rates of one fixed-threshold decision rule (members positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdOutcome {
    /// Fraction of members predicted *member*.
    pub true_positive_rate: f64,
    /// Fraction of non-members predicted *member*.
    pub false_positive_rate: f64,
    /// `(TPR + 1 - FPR) / 2`.
    pub balanced_accuracy: f64,
    /// `TPR - FPR` (may be negative for a bad threshold).
    pub advantage: f64,
}

impl LossThresholdAttack {
    /// An attack with an explicit loss threshold.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] for a non-finite threshold.
    pub fn new(threshold: f64) -> Result<Self> {
        if threshold.is_finite() {
            Ok(Self { threshold })
        } else {
            Err(AttackError::InvalidParameter {
                name: "threshold",
                value: threshold,
                reason: "must be finite",
            })
        }
    }

    /// The attack of Yeom et al.: threshold = mean of the given training losses.
    ///
    /// # Errors
    ///
    /// [`AttackError::EmptyInput`] or [`AttackError::NonFinite`] for bad losses.
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_attacks::LossThresholdAttack;
    /// let attack = LossThresholdAttack::from_mean_training_loss(&[0.1, 0.3])?;
    /// assert!(attack.is_member(0.2));
    /// let outcome = attack.evaluate(&[0.05, 0.5], &[1.0, 0.15])?;
    /// assert_eq!(outcome.true_positive_rate, 0.5);
    /// assert_eq!(outcome.false_positive_rate, 0.5);
    /// # Ok::<(), dp_attacks::AttackError>(())
    /// ```
    pub fn from_mean_training_loss(training_losses: &[f64]) -> Result<Self> {
        validate::finite_nonempty("training_losses", training_losses)?;
        Self::new(training_losses.iter().sum::<f64>() / training_losses.len() as f64)
    }

    /// The loss threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The attack's guess for one loss.
    pub fn is_member(&self, loss: f64) -> bool {
        loss <= self.threshold
    }

    /// TPR, FPR, balanced accuracy and advantage of this threshold.
    ///
    /// # Errors
    ///
    /// [`AttackError::EmptyInput`] or [`AttackError::NonFinite`] for bad losses.
    pub fn evaluate(
        &self,
        member_losses: &[f64],
        nonmember_losses: &[f64],
    ) -> Result<ThresholdOutcome> {
        validate::finite_nonempty("member_losses", member_losses)?;
        validate::finite_nonempty("nonmember_losses", nonmember_losses)?;
        let rate = |losses: &[f64]| {
            losses.iter().filter(|&&l| self.is_member(l)).count() as f64 / losses.len() as f64
        };
        let true_positive_rate = rate(member_losses);
        let false_positive_rate = rate(nonmember_losses);
        Ok(ThresholdOutcome {
            true_positive_rate,
            false_positive_rate,
            balanced_accuracy: 0.5 * (true_positive_rate + 1.0 - false_positive_rate),
            advantage: true_positive_rate - false_positive_rate,
        })
    }
}
