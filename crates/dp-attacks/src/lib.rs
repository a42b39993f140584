//! Attacks and audits that measure what a trained model leaks: membership inference (LOSS,
//! LiRA, RMIA), ROC metrics, Secret Sharer exposure, secret extraction, and empirical ε lower bounds.
//!
//! Everything works on plain numbers and closures: per-example scores or losses, shadow-model
//! confidences, and a next-token scorer for sequence models. No tensor library is involved, so
//! the attacks serve both of the project's engines and any model of your own.
//!
//! **Members are the positive class throughout**: a higher score means "more likely a member
//! of the training set", and a threshold attack predicts *member* when `score >= threshold`.
//!
//! ```
//! use dp_attacks::{ThresholdSelection, epsilon_lower_bound, loss_attack_metrics};
//! // Per-example losses of the target model on training and held-out examples.
//! let member_losses = [0.05, 0.10, 0.02, 0.60];
//! let nonmember_losses = [0.90, 0.40, 1.30, 0.70];
//! let metrics = loss_attack_metrics(&member_losses, &nonmember_losses)?;
//! assert_eq!(metrics.auc, 0.9375);
//! // The same scores as an audit: a (very weak) ε lower bound at 95% confidence.
//! let members = dp_attacks::loss_scores(&member_losses)?;
//! let nonmembers = dp_attacks::loss_scores(&nonmember_losses)?;
//! let bound = epsilon_lower_bound(&members, &nonmembers, 1e-5, 0.95, ThresholdSelection::Fixed(-0.5))?;
//! assert!(bound.epsilon >= 0.0);
//! # Ok::<(), dp_attacks::AttackError>(())
//! ```
//!
//! | module | what | reference |
//! |---|---|---|
//! | [`RocCurve`], [`membership_metrics`] | ROC, AUC, TPR at fixed FPR, balanced accuracy | |
//! | [`loss_scores`], [`LossThresholdAttack`] | LOSS attack | Yeom et al. 2018 |
//! | [`lira_online`], [`lira_offline`], [`ShadowObservations`] | LiRA | Carlini et al. 2022 |
//! | [`rmia_scores`] | RMIA | Zarifzadeh et al. 2024 |
//! | [`log_perplexity`], [`canary_exposure`] | exposure | Carlini et al. 2019 |
//! | [`extract_secret`] | greedy / beam-search extraction | Carlini et al. 2019; Stock et al. 2022 |
//! | [`clopper_pearson`], [`epsilon_lower_bound`] | ε lower bounds | Jagielski et al. 2020 |
//! | [`one_run_audit`] | auditing with one training run | Steinke, Nasr, Jagielski 2023 |
//!
//! Siblings: `dp-accountant` gives the ε *upper* bound that these lower bounds are compared
//! with; `dp-data` inserts canaries; `dp-experiments` runs these attacks on trained models.
//! This crate depends on none of them. `docs/attacks.md` explains each attack, its numbers and
//! its limits.

mod audit;
mod error;
mod exposure;
mod extraction;
mod lira;
mod loss;
mod metrics;
mod one_run;
mod rmia;
mod sequence;
mod stats;
mod validate;

pub use audit::{
    ConfidenceInterval, EpsilonLowerBound, ThresholdSelection, clopper_pearson, epsilon_lower_bound,
};
pub use error::{AttackError, Result};
pub use exposure::{
    Exposure, ExposureConfig, ExposureMethod, Extrapolation, canary_exposure, exact_exposure,
    exposure_from_rank, sampled_exposure,
};
pub use extraction::{ExtractionOutcome, ExtractionSearch, ScoredCandidate, extract_secret};
pub use lira::{
    Execution, LiraVariance, MINIMUM_STANDARD_DEVIATION, ShadowObservations, lira_offline,
    lira_online, logit_scale, logit_scale_from_logits, logit_scale_from_loss,
};
pub use loss::{LossThresholdAttack, ThresholdOutcome, loss_attack_metrics, loss_scores};
pub use metrics::{MembershipMetrics, RocCurve, RocPoint, auc, membership_metrics};
pub use one_run::{
    MAXIMUM_AUDITED_EPSILON, OneRunAudit, one_run_audit, one_run_audit_sweep,
    one_run_epsilon_lower_bound, one_run_p_value,
};
pub use rmia::{RmiaInputs, RmiaReference, rmia_scores};
pub use sequence::{LOG_PROBABILITY_SLACK, NextTokenScorer, RandomnessSpace, log_perplexity};
