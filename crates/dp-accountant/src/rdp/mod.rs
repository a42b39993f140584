//! The Rényi DP accountant (Mironov 2017).

mod conversion;
mod sampled_gaussian;
mod without_replacement;

use std::sync::Arc;

pub use conversion::RdpConversion;

use crate::accountant::{check_ledger, unsupported};
use crate::error::{check_non_negative, check_open_unit};
use crate::{
    AccountantError, AccountantKind, DeltaReport, DpEvent, EpsilonReport, Guarantee, Ledger,
    LedgerEntry, NeighbouringRelation, PrivacyAccountant,
};

/// The default Rényi orders: every order of dp_accounting's default list (1.1 to 10.9 by
/// 0.1, 11 to 63, 128, 256, 512, 1024), refined with 1.01, 1.05, 1.15 .. 10.95 by 0.1, the
/// integers 64 to 127 by 4 and 160 to 4096 roughly geometrically. A superset of
/// dp_accounting's orders, so our ε is never above theirs for the same RDP curve.
pub fn default_orders() -> Vec<f64> {
    let mut orders = vec![1.01, 1.05];
    orders.extend((1..200).map(|k| 1.0 + f64::from(k) / 20.0)); // 1.05 .. 10.95
    orders.extend((11..64).map(f64::from));
    orders.extend((64..128).step_by(4).map(f64::from));
    orders.extend([
        128.0, 160.0, 192.0, 256.0, 320.0, 384.0, 512.0, 768.0, 1024.0, 1536.0,
    ]);
    orders.extend([2048.0, 3072.0, 4096.0]);
    orders.dedup();
    orders
}

/// Rényi DP accounting: each event's RDP curve at a fixed set of orders, summed over the
/// ledger, converted to (ε, δ) at the best order.
///
/// Events: `NoOp`, `NonPrivate` (ε = ∞), `Gaussian`, `Laplace`, `PoissonSampled` of a
/// Gaussian (or of a composition of Gaussians on the same sample) under add/remove-one,
/// `SampledWithoutReplacement` of a Gaussian and `RandomizedResponse` under replace-one,
/// and their (self-)compositions.
///
/// # Privacy
///
/// The reported ε is an upper bound on the true ε of the composed mechanisms under the
/// accountant's neighbouring relation. The sampled-Gaussian RDP is exact at integer and
/// fractional orders (MTZ 2019), up to floating-point error (about 1e-12 relative) and a
/// series truncation whose remainder is added; the without-replacement RDP is an upper
/// bound (WBK 2019). Noise multipliers are relative to the L2 sensitivity under the
/// relation: under replace-one a clipped-gradient sum with clipping norm C has
/// sensitivity 2C.
///
/// # Examples
///
/// ```
/// use dp_accountant::{DpEvent, NeighbouringRelation, PrivacyAccountant, RdpAccountant};
///
/// // Abadi et al. 2016: q = 0.01, σ = 4, 10000 steps.
/// let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
/// accountant.compose(&DpEvent::gaussian(4.0).poisson_sampled(0.01).repeated(10_000))?;
/// let report = accountant.epsilon(1e-5)?;
/// assert!(report.epsilon > 1.0 && report.epsilon < 1.3);
/// println!("ε = {:.3} at order {:?}", report.epsilon, report.optimal_order);
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RdpAccountant {
    orders: Arc<[f64]>,
    conversion: RdpConversion,
    ledger: Ledger,
    /// RDP curve of each ledger entry's event (one composition), parallel to the entries.
    entry_curves: Vec<Arc<[f64]>>,
    /// Σ count × curve over every entry but the last, summed in ledger order.
    closed_total: Vec<f64>,
}

/// How many recent entries are searched for an identical event whose curve can be reused.
const CURVE_REUSE_WINDOW: usize = 8;

impl RdpAccountant {
    /// An empty accountant with [`default_orders`] and the improved conversion.
    pub fn new(neighbouring_relation: NeighbouringRelation) -> Self {
        Self::with_settings(
            neighbouring_relation,
            default_orders().into(),
            RdpConversion::default(),
        )
    }

    fn with_settings(
        neighbouring_relation: NeighbouringRelation,
        orders: Arc<[f64]>,
        conversion: RdpConversion,
    ) -> Self {
        let closed_total = vec![0.0; orders.len()];
        RdpAccountant {
            orders,
            conversion,
            ledger: Ledger::new(neighbouring_relation),
            entry_curves: Vec::new(),
            closed_total,
        }
    }

    /// This accountant with the Rényi orders `orders` (each finite and > 1), its ledger
    /// recomputed at them.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] for an empty list or an order <= 1 or not finite.
    pub fn with_orders(self, orders: Vec<f64>) -> Result<Self, AccountantError> {
        if orders.is_empty() {
            return Err(AccountantError::invalid(
                "orders",
                0.0,
                "need at least one order",
            ));
        }
        if let Some(&bad) = orders
            .iter()
            .find(|alpha| !(alpha.is_finite() && **alpha > 1.0))
        {
            return Err(AccountantError::invalid(
                "orders",
                bad,
                "each order must be finite and > 1",
            ));
        }
        let mut rebuilt = Self::with_settings(
            self.ledger.neighbouring_relation(),
            orders.into(),
            self.conversion,
        );
        rebuilt.restore(&self.ledger)?;
        Ok(rebuilt)
    }

    /// This accountant with the given RDP-to-(ε, δ) conversion.
    pub fn with_conversion(mut self, conversion: RdpConversion) -> Self {
        self.conversion = conversion;
        self
    }

    /// The Rényi orders.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The conversion in use.
    pub fn conversion(&self) -> RdpConversion {
        self.conversion
    }

    /// The total RDP spent at each order of [`RdpAccountant::orders`].
    pub fn rdp(&self) -> Vec<f64> {
        let mut total = self.closed_total.clone();
        if let (Some(entry), Some(curve)) = (self.ledger.entries().last(), self.entry_curves.last())
        {
            let count = entry.count as f64;
            for (t, c) in total.iter_mut().zip(curve.iter()) {
                *t += count * c;
            }
        }
        total
    }

    fn support(&self, event: &DpEvent) -> Result<(), AccountantError> {
        let relation = self.ledger.neighbouring_relation();
        match event {
            DpEvent::NoOp
            | DpEvent::NonPrivate
            | DpEvent::Gaussian { .. }
            | DpEvent::Laplace { .. } => Ok(()),
            DpEvent::RandomizedResponse { .. } => match relation {
                NeighbouringRelation::ReplaceOne => Ok(()),
                NeighbouringRelation::AddOrRemoveOne => Err(unsupported(
                    AccountantKind::Rdp,
                    event,
                    "randomized response is accounted under replace-one (label DP)",
                )),
            },
            DpEvent::PoissonSampled { event: inner, .. } => {
                if relation != NeighbouringRelation::AddOrRemoveOne {
                    return Err(unsupported(
                        AccountantKind::Rdp,
                        event,
                        "Poisson sampling is accounted under add/remove-one",
                    ));
                }
                gaussian_inner(event, inner).map(|_| ())
            }
            DpEvent::SampledWithoutReplacement { event: inner, .. } => {
                if relation != NeighbouringRelation::ReplaceOne {
                    return Err(unsupported(
                        AccountantKind::Rdp,
                        event,
                        "sampling without replacement is accounted under replace-one",
                    ));
                }
                gaussian_inner(event, inner).map(|_| ())
            }
            DpEvent::SelfComposed { event, .. } => self.support(event),
            DpEvent::Composed(events) => events.iter().try_for_each(|e| self.support(e)),
        }
    }

    /// The RDP curve of one composition of `event` (already checked).
    fn curve(&self, event: &DpEvent) -> Result<Vec<f64>, AccountantError> {
        let orders = &*self.orders;
        Ok(match event {
            DpEvent::NoOp => vec![0.0; orders.len()],
            DpEvent::NonPrivate => vec![f64::INFINITY; orders.len()],
            DpEvent::Gaussian { noise_multiplier } => gaussian_curve(*noise_multiplier, orders),
            DpEvent::Laplace { scale } => orders
                .iter()
                .map(|&a| laplace_rdp(scale.recip(), a))
                .collect(),
            DpEvent::RandomizedResponse {
                noise_parameter,
                num_buckets,
            } => orders
                .iter()
                .map(|&a| randomized_response_rdp(*noise_parameter, *num_buckets as f64, a))
                .collect(),
            DpEvent::PoissonSampled {
                sampling_probability,
                event: inner,
            } => {
                let sigma = gaussian_inner(event, inner)?;
                if sigma == 0.0 {
                    vec![f64::INFINITY; orders.len()]
                } else {
                    sampled_gaussian::rdp_curve(*sampling_probability, sigma, orders)
                }
            }
            DpEvent::SampledWithoutReplacement {
                source_dataset_size,
                sample_size,
                event: inner,
            } => {
                let sigma = gaussian_inner(event, inner)?;
                if sigma == 0.0 {
                    vec![f64::INFINITY; orders.len()]
                } else {
                    let ratio = *sample_size as f64 / *source_dataset_size as f64;
                    without_replacement::rdp_curve(ratio, sigma, orders)
                }
            }
            DpEvent::SelfComposed { event, count } => {
                let count = *count as f64;
                let mut curve = self.curve(event)?;
                for value in &mut curve {
                    // 0 × ∞ stays 0: a non-private event repeated zero times never ran.
                    *value = if count == 0.0 { 0.0 } else { *value * count };
                }
                curve
            }
            DpEvent::Composed(events) => {
                let mut total = vec![0.0; orders.len()];
                for e in events {
                    for (t, c) in total.iter_mut().zip(self.curve(e)?) {
                        *t += c;
                    }
                }
                total
            }
        })
    }

    fn cached_curve(&self, event: &DpEvent) -> Option<Arc<[f64]>> {
        let entries = self.ledger.entries();
        let start = entries.len().saturating_sub(CURVE_REUSE_WINDOW);
        (start..entries.len())
            .rev()
            .find(|&i| entries[i].event == *event)
            .map(|i| Arc::clone(&self.entry_curves[i]))
    }

    /// Appends a new entry, closing the previous one into the running total.
    fn push_entry(&mut self, event: &DpEvent, count: u64, curve: Arc<[f64]>) {
        self.close_last_entry();
        self.ledger.append(LedgerEntry {
            event: event.clone(),
            count,
        });
        self.entry_curves.push(curve);
    }

    fn close_last_entry(&mut self) {
        if let (Some(entry), Some(curve)) = (self.ledger.entries().last(), self.entry_curves.last())
        {
            let count = entry.count as f64;
            for (t, c) in self.closed_total.iter_mut().zip(curve.iter()) {
                *t += count * c;
            }
        }
    }
}

/// The effective noise multiplier of a sampled event's inner event, or why it is refused.
fn gaussian_inner(outer: &DpEvent, inner: &DpEvent) -> Result<f64, AccountantError> {
    inner.effective_gaussian_noise_multiplier().ok_or_else(|| {
        unsupported(
            AccountantKind::Rdp,
            outer,
            "a sampled event must be a Gaussian or a composition of Gaussians",
        )
    })
}

fn gaussian_curve(noise_multiplier: f64, orders: &[f64]) -> Vec<f64> {
    let factor = 0.5 / (noise_multiplier * noise_multiplier);
    orders.iter().map(|a| a * factor).collect()
}

/// RDP of the Laplace mechanism with pure-DP parameter ε0 = 1/scale (Mironov 2017,
/// Proposition 6): ε0 + ln(1 + (α-1)/(2α-1) (e^{-(2α-1)ε0} - 1))/(α-1).
fn laplace_rdp(eps0: f64, alpha: f64) -> f64 {
    let two_alpha_m1 = 2.0 * alpha - 1.0;
    eps0 + ((alpha - 1.0) / two_alpha_m1 * (-two_alpha_m1 * eps0).exp_m1()).ln_1p() / (alpha - 1.0)
}

/// RDP of k-ary randomized response under replace-one: the Rényi divergence between
/// P = (1-p+p/k, p/k, p/k, ...) and Q = (p/k, 1-p+p/k, p/k, ...).
fn randomized_response_rdp(noise_parameter: f64, num_buckets: f64, alpha: f64) -> f64 {
    let p = noise_parameter;
    if p == 0.0 {
        return f64::INFINITY;
    }
    if p == 1.0 {
        return 0.0;
    }
    let k = num_buckets;
    let ln_ratio = (k / p - k + 1.0).ln(); // ln((1-p+p/k)/(p/k))
    let ln_p_over_k = (p / k).ln();
    let ln_top = (1.0 - p + p / k).ln();
    let mut ln_sum =
        crate::special::log_add_exp(ln_p_over_k + alpha * ln_ratio, ln_top - alpha * ln_ratio);
    let rest = (1.0 - 2.0 / k) * p;
    if rest > 0.0 {
        ln_sum = crate::special::log_add_exp(ln_sum, rest.ln());
    }
    (ln_sum / (alpha - 1.0)).max(0.0)
}

impl PrivacyAccountant for RdpAccountant {
    fn kind(&self) -> AccountantKind {
        AccountantKind::Rdp
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
        if self.ledger.merge_target(event)?.is_some() {
            self.ledger.push(event);
            return Ok(());
        }
        let curve = match self.cached_curve(event) {
            Some(curve) => curve,
            None => self.curve(event)?.into(),
        };
        self.push_entry(event, 1, curve);
        Ok(())
    }

    fn epsilon(&self, delta: f64) -> Result<EpsilonReport, AccountantError> {
        check_open_unit("delta", delta)?;
        let (epsilon, optimal_order) =
            conversion::epsilon(self.conversion, &self.orders, &self.rdp(), delta);
        Ok(EpsilonReport {
            epsilon,
            delta,
            accountant: AccountantKind::Rdp,
            guarantee: Guarantee::UpperBound,
            optimal_order,
            epsilon_lower: None,
        })
    }

    fn delta(&self, epsilon: f64) -> Result<DeltaReport, AccountantError> {
        check_non_negative("epsilon", epsilon)?;
        let (delta, optimal_order) =
            conversion::delta(self.conversion, &self.orders, &self.rdp(), epsilon);
        Ok(DeltaReport {
            delta,
            epsilon,
            accountant: AccountantKind::Rdp,
            guarantee: Guarantee::UpperBound,
            optimal_order,
            delta_lower: None,
        })
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn restore(&mut self, ledger: &Ledger) -> Result<(), AccountantError> {
        ledger.check_counts()?;
        check_ledger(self, ledger)?;
        let mut rebuilt = Self::with_settings(
            ledger.neighbouring_relation(),
            Arc::clone(&self.orders),
            self.conversion,
        );
        for entry in ledger.entries() {
            let curve = match rebuilt.cached_curve(&entry.event) {
                Some(curve) => curve,
                None => rebuilt.curve(&entry.event)?.into(),
            };
            rebuilt.push_entry(&entry.event, entry.count, curve);
        }
        *self = rebuilt;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (q, σ, α, RDP) from 50-digit mpmath quadrature of E_{μ0}[(1-q+qL)^α] (integer cases
    /// also checked against the exact binomial sum).
    pub(crate) const SAMPLED_GAUSSIAN_REFERENCE: &[(f64, f64, f64, f64)] = &[
        (0.01, 1.0, 2.5, 0.000_217_575_332_281_880_46),
        (0.01, 1.0, 8.0, 0.0008936439076060318),
        (1e-6, 0.8, 1.5, 2.828037853358655e-12),
        (1e-6, 0.8, 32.0, 10.738_827_811_133_651),
        (0.04, 1.5, 7.3, 0.003_803_302_767_203_177_5),
        (256.0 / 60000.0, 1.1, 8.1, 9.965972761931117e-05),
        (0.3, 2.0, 10.9, 0.305_769_316_698_597_16),
        (0.5, 0.7, 4.5, 3.7016733154261),
        (1e-4, 5.0, 63.0, 1.285_863_846_444_136_5e-8),
        (0.01, 0.5, 20.5, 36.15866724037149),
        (0.04, 1.5, 1.1, 0.0004816567400342993),
        (1e-9, 1.0, 3.7, 3.178_821_397_253_242_5e-18),
    ];

    /// dp_accounting 0.6 `_compute_rdp_sample_wor_gaussian(0.01, 1.0, [2, 3, 8, 32])`.
    pub(crate) const WITHOUT_REPLACEMENT_REFERENCE: [f64; 4] = [
        0.000_543_508_638_109_433_1,
        0.000_834_872_684_954_413_1,
        0.002_684_165_012_688_936,
        11.268_635_523_517_78,
    ];

    #[test]
    fn laplace_and_randomized_response_match_dp_accounting() {
        // dp_accounting 0.6: _laplace_rdp(0.5, 3.5) and
        // _compute_randomized_response_rdp(0.3, 10, [2.0, 9.5], REPLACE_ONE).
        assert!((laplace_rdp(0.5, 3.5) - 0.298_379_183_557_472_4).abs() < 1e-14);
        assert!((randomized_response_rdp(0.3, 10.0, 2.0) - 2.890_625_4).abs() < 1e-6);
        assert!((randomized_response_rdp(0.3, 10.0, 9.5) - 3.154_822_36).abs() < 1e-6);
    }

    #[test]
    fn default_orders_contain_dp_accountings() {
        let ours = default_orders();
        let theirs = (1..100)
            .map(|x| 1.0 + f64::from(x) / 10.0)
            .chain((11..64).map(f64::from))
            .chain([128.0, 256.0, 512.0, 1024.0]);
        for alpha in theirs {
            assert!(
                ours.iter().any(|o| (o - alpha).abs() < 1e-12),
                "missing order {alpha}"
            );
        }
        assert!(ours.windows(2).all(|w| w[0] < w[1]), "orders must increase");
    }

    #[test]
    fn unsupported_event_leaves_state_unchanged() {
        let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
        accountant
            .compose(&DpEvent::gaussian(1.0))
            .expect("supported");
        let before = accountant.rdp();
        let bad = DpEvent::laplace(1.0).poisson_sampled(0.1);
        assert!(!accountant.supports(&bad));
        assert!(matches!(
            accountant.compose(&bad),
            Err(AccountantError::UnsupportedEvent { .. })
        ));
        let invalid = DpEvent::gaussian(-1.0);
        assert!(matches!(
            accountant.compose(&invalid),
            Err(AccountantError::InvalidParameter { .. })
        ));
        assert_eq!(accountant.rdp(), before);
        assert_eq!(accountant.ledger().entries().len(), 1);
    }
}
