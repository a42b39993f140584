//! RMIA, the robust membership inference attack (Zarifzadeh, Liu, Mittal, Shokri 2024).
//!
//! RMIA compares the target model's likelihood ratio `Pr(x | θ) / Pr(x)` on the audited
//! example `x` with the same ratio on population examples `z` known to be non-members: the
//! score of `x` is the fraction of `z` it dominates by a factor `γ`,
//! `score(x) = |{z : (Pr(x|θ)/Pr(x)) / (Pr(z|θ)/Pr(z)) >= γ}| / |Z|`. `Pr(x)` is the average of
//! `Pr(x | θ')` over reference models. Inputs are *probabilities of the true label*
//! (confidences), not logit-scaled values.

use crate::error::{AttackError, Result};
use crate::validate;

/// How RMIA estimates `Pr(x)` from its reference models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RmiaReference {
    /// Reference models trained on random halves of the data (each example "in" about half of
    /// them): `Pr(x)` is the plain average.
    Online,
    /// Reference models that never saw the audited examples: `Pr(x) = ((1 + a) p_out + 1 - a) / 2`
    /// with `p_out` the average over them and `a` in [0, 1] the paper's offline scaling
    /// parameter (tuned on reference models; `a = 1` uses `p_out` unchanged).
    Offline {
        /// The scaling parameter `a`.
        a: f64,
    },
}

/// Confidences of one model set on the audited examples and on the population.
#[derive(Debug, Clone, Copy)]
pub struct RmiaInputs<'a> {
    /// The target model's confidence on each audited example.
    pub target_on_examples: &'a [f64],
    /// The target model's confidence on each population example (non-members).
    pub target_on_population: &'a [f64],
    /// `[model][example]`: each reference model's confidence on the audited examples.
    pub references_on_examples: &'a [Vec<f64>],
    /// `[model][population example]`: each reference model's confidence on the population.
    pub references_on_population: &'a [Vec<f64>],
}

/// RMIA scores of the audited examples (higher: more likely a member), in [0, 1].
///
/// # Errors
///
/// [`AttackError::EmptyInput`] / [`AttackError::LengthMismatch`] for inconsistent inputs,
/// [`AttackError::InvalidParameter`] for a confidence outside [0, 1], `gamma <= 0`, `a` outside
/// [0, 1], or an example to which every reference model gives probability 0.
///
/// # Examples
///
/// ```
/// use dp_attacks::{RmiaInputs, RmiaReference, rmia_scores};
/// // The target is much more confident on example 0 than the reference models are.
/// let scores = rmia_scores(
///     &RmiaInputs {
///         target_on_examples: &[0.99, 0.5],
///         target_on_population: &[0.5, 0.6, 0.4],
///         references_on_examples: &[vec![0.5, 0.5], vec![0.6, 0.5]],
///         references_on_population: &[vec![0.5, 0.6, 0.4], vec![0.5, 0.6, 0.4]],
///     },
///     RmiaReference::Online,
///     1.5,
/// )?;
/// // Example 0: ratio 0.99 / 0.55 = 1.8 beats every population ratio (all 1) by 1.5; example 1
/// // (ratio 1) beats none.
/// assert_eq!(scores, vec![1.0, 0.0]);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn rmia_scores(
    inputs: &RmiaInputs<'_>,
    reference: RmiaReference,
    gamma: f64,
) -> Result<Vec<f64>> {
    if !(gamma > 0.0 && gamma.is_finite()) {
        return Err(AttackError::InvalidParameter {
            name: "gamma",
            value: gamma,
            reason: "must be positive and finite",
        });
    }
    let examples = likelihood_ratios(
        inputs.target_on_examples,
        inputs.references_on_examples,
        reference,
        "target_on_examples",
    )?;
    let mut population = likelihood_ratios(
        inputs.target_on_population,
        inputs.references_on_population,
        reference,
        "target_on_population",
    )?;
    population.sort_by(f64::total_cmp);
    let size = population.len() as f64;
    // ratio_x / ratio_z >= γ  <=>  ratio_z <= ratio_x / γ.
    Ok(examples
        .iter()
        .map(|&ratio| population.partition_point(|&z| z <= ratio / gamma) as f64 / size)
        .collect())
}

/// `Pr(x | θ) / Pr(x)` for each example.
fn likelihood_ratios(
    target: &[f64],
    references: &[Vec<f64>],
    reference: RmiaReference,
    name: &'static str,
) -> Result<Vec<f64>> {
    validate::finite_nonempty(name, target)?;
    if references.is_empty() {
        return Err(AttackError::EmptyInput {
            name: "reference models",
        });
    }
    let probability = |value: f64| {
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(AttackError::InvalidParameter {
                name: "confidence",
                value,
                reason: "must be a probability in [0, 1]",
            })
        }
    };
    for row in references {
        validate::same_length("reference confidences", target.len(), row.len())?;
        row.iter().try_for_each(|&p| probability(p).map(|_| ()))?;
    }
    let a = match reference {
        RmiaReference::Online => None,
        RmiaReference::Offline { a } => Some(probability(a)?),
    };
    target
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let p = probability(p)?;
            let average =
                references.iter().map(|row| row[i]).sum::<f64>() / references.len() as f64;
            let marginal = a.map_or(average, |a| 0.5 * ((1.0 + a) * average + 1.0 - a));
            if marginal <= 0.0 {
                return Err(AttackError::InvalidParameter {
                    name: "reference confidences",
                    value: marginal,
                    reason: "every reference model gives this example probability 0",
                });
            }
            Ok(p / marginal)
        })
        .collect()
}
