//! The privacy loss distribution accountant (Koskela, Jälkö, Honkela 2020; Doroshenko et al.
//! 2022; as dp_accounting's `PLDAccountant`).

mod mechanism;
mod pmf;

use std::sync::{Arc, OnceLock};

use mechanism::{Direction, Elementary, MAX_GRID_POINTS};
use pmf::DiscretePmf;

use crate::accountant::{check_ledger, unsupported};
use crate::error::{check_non_negative, check_open_unit};
use crate::{
    AccountantError, AccountantKind, DeltaReport, DpEvent, EpsilonReport, Guarantee, Ledger,
    NeighbouringRelation, PrivacyAccountant,
};

/// The default grid step of the privacy loss (as dp_accounting).
pub const DEFAULT_VALUE_DISCRETIZATION_INTERVAL: f64 = 1e-4;

/// Privacy loss distribution accounting: each mechanism's PLD discretized pessimistically
/// on a grid of step `value_discretization_interval`, all composed by FFT, and ε read off
/// the composed distribution's hockey-stick divergence.
///
/// Events: `NoOp`, `NonPrivate`, `Gaussian`, `Laplace`, `PoissonSampled` of a Gaussian (or
/// a composition of Gaussians on the same sample) or of a Laplace under add/remove-one,
/// `RandomizedResponse` under replace-one, and their (self-)compositions, with any mix of
/// noise multipliers and sampling probabilities (heterogeneous composition).
///
/// # Privacy
///
/// The reported ε (δ) is an upper bound on the true ε (δ) of the composed mechanisms
/// under the accountant's neighbouring relation: the discretization dominates each
/// mechanism, mass cut from the composition goes to infinite loss, and an estimate of the
/// floating-point error is added. `epsilon_lower` in the report is a lower bound on the true
/// ε (so the truth lies in between); the gap shrinks with the interval. ε is computed
/// lazily from the ledger at the first query after a composition.
///
/// # Examples
///
/// ```
/// use dp_accountant::{DpEvent, NeighbouringRelation, PldAccountant, PrivacyAccountant};
///
/// let mut accountant = PldAccountant::new(NeighbouringRelation::AddOrRemoveOne);
/// accountant.compose(&DpEvent::gaussian(1.1).poisson_sampled(256.0 / 60000.0).repeated(1000))?;
/// let report = accountant.epsilon(1e-5)?;
/// let lower = report.epsilon_lower.expect("PLD reports a lower bound");
/// assert!(lower <= report.epsilon);
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
#[derive(Debug)]
pub struct PldAccountant {
    value_discretization_interval: f64,
    ledger: Ledger,
    composed: OnceLock<Result<Arc<Composed>, AccountantError>>,
}

impl Clone for PldAccountant {
    fn clone(&self) -> Self {
        let composed = OnceLock::new();
        if let Some(value) = self.composed.get() {
            // A fresh lock that is empty cannot be full: `set` succeeds.
            let _ = composed.set(value.clone());
        }
        PldAccountant {
            value_discretization_interval: self.value_discretization_interval,
            ledger: self.ledger.clone(),
            composed,
        }
    }
}

/// The composed PLDs: one per direction of add/remove-one (one if all are symmetric).
#[derive(Debug)]
struct Composed {
    directions: Vec<DiscretePmf>,
}

impl PldAccountant {
    /// An empty accountant with the default interval 1e-4.
    pub fn new(neighbouring_relation: NeighbouringRelation) -> Self {
        PldAccountant {
            value_discretization_interval: DEFAULT_VALUE_DISCRETIZATION_INTERVAL,
            ledger: Ledger::new(neighbouring_relation),
            composed: OnceLock::new(),
        }
    }

    /// This accountant with grid step `interval` for the privacy loss (finite, in
    /// [1e-7, 0.1]); smaller is tighter and slower.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] outside that range, or whatever the ledger's
    /// events raise at the new interval.
    pub fn with_value_discretization_interval(
        self,
        interval: f64,
    ) -> Result<Self, AccountantError> {
        if !(interval.is_finite() && (1e-7..=0.1).contains(&interval)) {
            return Err(AccountantError::invalid(
                "value_discretization_interval",
                interval,
                "must lie in [1e-7, 0.1]",
            ));
        }
        let mut rebuilt = PldAccountant {
            value_discretization_interval: interval,
            ledger: Ledger::new(self.ledger.neighbouring_relation()),
            composed: OnceLock::new(),
        };
        rebuilt.restore(&self.ledger)?;
        Ok(rebuilt)
    }

    /// The grid step of the privacy loss.
    pub fn value_discretization_interval(&self) -> f64 {
        self.value_discretization_interval
    }

    /// Appends the elementary mechanisms of `event`, each with its multiplicity.
    fn flatten(
        &self,
        event: &DpEvent,
        multiplicity: u64,
        out: &mut Vec<(Elementary, u64)>,
    ) -> Result<(), AccountantError> {
        let relation = self.ledger.neighbouring_relation();
        match event {
            DpEvent::NoOp => {}
            DpEvent::NonPrivate => out.push((Elementary::NonPrivate, multiplicity)),
            DpEvent::Gaussian { noise_multiplier } => {
                out.push((
                    Elementary::Gaussian {
                        noise_multiplier: *noise_multiplier,
                        q: 1.0,
                    },
                    multiplicity,
                ));
            }
            DpEvent::Laplace { scale } => out.push((
                Elementary::Laplace {
                    scale: *scale,
                    q: 1.0,
                },
                multiplicity,
            )),
            DpEvent::RandomizedResponse {
                noise_parameter,
                num_buckets,
            } => {
                if relation != NeighbouringRelation::ReplaceOne {
                    return Err(unsupported(
                        AccountantKind::Pld,
                        event,
                        "randomized response is accounted under replace-one (label DP)",
                    ));
                }
                out.push((
                    Elementary::RandomizedResponse {
                        noise_parameter: *noise_parameter,
                        num_buckets: *num_buckets as f64,
                    },
                    multiplicity,
                ));
            }
            DpEvent::PoissonSampled {
                sampling_probability,
                event: inner,
            } => {
                if relation != NeighbouringRelation::AddOrRemoveOne {
                    return Err(unsupported(
                        AccountantKind::Pld,
                        event,
                        "Poisson sampling is accounted under add/remove-one",
                    ));
                }
                let q = *sampling_probability;
                let mechanism = match (**inner).clone() {
                    DpEvent::Laplace { scale } => Elementary::Laplace { scale, q },
                    other => match other.effective_gaussian_noise_multiplier() {
                        Some(sigma) if sigma == f64::INFINITY => return Ok(()),
                        Some(sigma) if sigma > 0.0 => Elementary::Gaussian {
                            noise_multiplier: sigma,
                            q,
                        },
                        Some(_) => Elementary::NonPrivate,
                        None => {
                            return Err(unsupported(
                                AccountantKind::Pld,
                                event,
                                "a Poisson-sampled event must be a Laplace, a Gaussian or a composition of Gaussians",
                            ));
                        }
                    },
                };
                out.push((mechanism, multiplicity));
            }
            DpEvent::SampledWithoutReplacement { .. } => {
                return Err(unsupported(
                    AccountantKind::Pld,
                    event,
                    "sampling without replacement is supported by the RDP accountant only",
                ));
            }
            DpEvent::SelfComposed { event, count } => {
                let multiplicity = multiplicity
                    .checked_mul(*count)
                    .ok_or(AccountantError::CountOverflow)?;
                if multiplicity > 0 {
                    self.flatten(event, multiplicity, out)?;
                }
            }
            DpEvent::Composed(events) => {
                for e in events {
                    self.flatten(e, multiplicity, out)?;
                }
            }
        }
        Ok(())
    }

    /// The distinct elementary mechanisms of the ledger with their total counts, in order
    /// of first appearance (a deterministic function of the ledger).
    fn groups(&self, ledger: &Ledger) -> Result<Vec<(Elementary, u64)>, AccountantError> {
        let mut flat = Vec::new();
        for entry in ledger.entries() {
            self.flatten(&entry.event, entry.count, &mut flat)?;
        }
        let mut groups: Vec<(Elementary, u64)> = Vec::new();
        for (mechanism, count) in flat {
            match groups.iter_mut().find(|(m, _)| *m == mechanism) {
                Some((_, total)) => {
                    *total = total
                        .checked_add(count)
                        .ok_or(AccountantError::CountOverflow)?
                }
                None => groups.push((mechanism, count)),
            }
        }
        Ok(groups)
    }

    fn compose_ledger(&self) -> Result<Arc<Composed>, AccountantError> {
        let interval = self.value_discretization_interval;
        let groups = self.groups(&self.ledger)?;
        let symmetric = groups.iter().all(|(m, _)| m.is_symmetric());
        let directions: &[Direction] = if symmetric {
            &[Direction::Remove]
        } else {
            &[Direction::Remove, Direction::Add]
        };
        let mut composed = Vec::with_capacity(directions.len());
        for &direction in directions {
            let pmfs = groups
                .iter()
                .map(|(m, _)| m.discretize(direction, interval))
                .collect::<Result<Vec<_>, _>>()?;
            let pairs: Vec<(&DiscretePmf, u64)> =
                pmfs.iter().zip(groups.iter().map(|(_, c)| *c)).collect();
            composed.push(pmf::compose(&pairs)?);
        }
        Ok(Arc::new(Composed {
            directions: composed,
        }))
    }

    fn composed(&self) -> Result<Arc<Composed>, AccountantError> {
        self.composed.get_or_init(|| self.compose_ledger()).clone()
    }

    /// Checks support and that every mechanism's grid fits in memory.
    fn support(&self, event: &DpEvent) -> Result<(), AccountantError> {
        let mut flat = Vec::new();
        self.flatten(event, 1, &mut flat)?;
        for (mechanism, _) in flat {
            let points = mechanism.grid_points(self.value_discretization_interval);
            if points > MAX_GRID_POINTS as f64 {
                return Err(AccountantError::TooLarge {
                    what: "privacy loss grid",
                    size: if points.is_finite() {
                        points as u64
                    } else {
                        u64::MAX
                    },
                    limit: MAX_GRID_POINTS,
                });
            }
        }
        Ok(())
    }
}

impl PrivacyAccountant for PldAccountant {
    fn kind(&self) -> AccountantKind {
        AccountantKind::Pld
    }

    fn neighbouring_relation(&self) -> NeighbouringRelation {
        self.ledger.neighbouring_relation()
    }

    fn check(&self, event: &DpEvent) -> Result<(), AccountantError> {
        event.validate()?;
        self.support(event)
    }

    fn compose(&mut self, event: &DpEvent) -> Result<(), AccountantError> {
        self.check(event)?;
        self.ledger.merge_target(event)?;
        self.ledger.push(event);
        self.composed = OnceLock::new();
        Ok(())
    }

    fn epsilon(&self, delta: f64) -> Result<EpsilonReport, AccountantError> {
        check_open_unit("delta", delta)?;
        let composed = self.composed()?;
        let interval = self.value_discretization_interval;
        let upper = composed
            .directions
            .iter()
            .map(|d| d.epsilon_upper(interval, delta))
            .fold(0.0, f64::max);
        let lower = composed
            .directions
            .iter()
            .map(|d| d.epsilon_lower(interval, delta))
            .fold(0.0, f64::max);
        Ok(EpsilonReport {
            epsilon: upper,
            delta,
            accountant: AccountantKind::Pld,
            guarantee: Guarantee::UpperBound,
            optimal_order: None,
            epsilon_lower: Some(lower.min(upper)),
        })
    }

    fn delta(&self, epsilon: f64) -> Result<DeltaReport, AccountantError> {
        check_non_negative("epsilon", epsilon)?;
        let composed = self.composed()?;
        let interval = self.value_discretization_interval;
        let upper = composed
            .directions
            .iter()
            .map(|d| d.delta_upper(interval, epsilon))
            .fold(0.0, f64::max);
        let lower = composed
            .directions
            .iter()
            .map(|d| d.delta_lower(interval, epsilon))
            .fold(0.0, f64::max);
        Ok(DeltaReport {
            delta: upper,
            epsilon,
            accountant: AccountantKind::Pld,
            guarantee: Guarantee::UpperBound,
            optimal_order: None,
            delta_lower: Some(lower.min(upper)),
        })
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn restore(&mut self, ledger: &Ledger) -> Result<(), AccountantError> {
        ledger.check_counts()?;
        check_ledger(self, ledger)?;
        self.groups(ledger)?;
        self.ledger = ledger.clone();
        self.composed = OnceLock::new();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// dp_accounting 0.6 `GaussianPrivacyLoss(1.1, sampling_prob=0.01, adjacency_type=...)
    /// .get_delta_for_epsilon(ε)`.
    pub(crate) const SUBSAMPLED_DELTA_REFERENCE: &[(Direction, f64, f64)] = &[
        (Direction::Remove, 0.0, 0.003_505_637_162_732_444_5),
        (Direction::Remove, 0.01, 0.001_549_119_807_016_469_1),
        (Direction::Remove, 0.5, 2.749_241_568_846_506e-8),
        (Direction::Remove, 3.0, 2.011_149_945_471_968_5e-18),
        (Direction::Add, 0.0, 0.003_505_637_162_732_444_5),
        (Direction::Add, 0.005, 0.000_786_014_995_642_403_4),
        (Direction::Add, -0.01, 0.011_483_872_058_226_097),
    ];
}
