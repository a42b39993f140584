//! From an RDP curve to (ε, δ): the classic conversion (Mironov 2017, Proposition 3) and the
//! improved one (Balle, Barthe, Gaboardi, Hsu, Sato 2020, arXiv:2004.00010v4
//! Proposition 12; Asoodeh et al. 2020).

use serde::{Deserialize, Serialize};

/// How an RDP curve is turned into an (ε, δ) guarantee.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdpConversion {
    /// ε = min_α ρ(α) + ln(1 - 1/α) - (ln δ + ln α)/(α - 1), and ε = 0 when
    /// δ >= √(1 - e^{-ρ(α)}) (Balle et al. 2020; the KL bound). The default: always at least
    /// as tight as `Classic`.
    #[default]
    Improved,
    /// ε = min_α ρ(α) + ln(1/δ)/(α - 1) (Mironov 2017), as in the moments accountant and
    /// older TF Privacy and Opacus releases; kept to reproduce published figures.
    Classic,
}

impl std::fmt::Display for RdpConversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RdpConversion::Improved => "improved",
            RdpConversion::Classic => "classic",
        })
    }
}

impl std::str::FromStr for RdpConversion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "improved" => Ok(RdpConversion::Improved),
            "classic" => Ok(RdpConversion::Classic),
            other => Err(format!(
                "unknown RDP conversion {other:?} (expected improved or classic)"
            )),
        }
    }
}

/// The smallest ε over `orders` for the RDP values `rdp` at `delta` in (0, 1), and the order
/// attaining it (`None` if every order has infinite RDP).
pub(crate) fn epsilon(
    conversion: RdpConversion,
    orders: &[f64],
    rdp: &[f64],
    delta: f64,
) -> (f64, Option<f64>) {
    let ln_delta = delta.ln();
    let mut best = (f64::INFINITY, None);
    for (&alpha, &rho) in orders.iter().zip(rdp) {
        if rho.is_nan() || rho == f64::INFINITY {
            continue;
        }
        let rho = rho.max(0.0);
        let epsilon = match conversion {
            RdpConversion::Classic => rho - ln_delta / (alpha - 1.0),
            RdpConversion::Improved => {
                if delta * delta + (-rho).exp_m1() > 0.0 {
                    0.0
                } else {
                    rho + (-alpha.recip()).ln_1p() - (ln_delta + alpha.ln()) / (alpha - 1.0)
                }
            }
        };
        if epsilon < best.0 {
            best = (epsilon, Some(alpha));
        }
    }
    (best.0.max(0.0), best.1)
}

/// The smallest δ over `orders` for the RDP values `rdp` at `epsilon` >= 0, and the order
/// attaining it.
pub(crate) fn delta(
    conversion: RdpConversion,
    orders: &[f64],
    rdp: &[f64],
    epsilon: f64,
) -> (f64, Option<f64>) {
    let mut best = (f64::INFINITY, None);
    for (&alpha, &rho) in orders.iter().zip(rdp) {
        if rho.is_nan() || rho == f64::INFINITY {
            continue;
        }
        let rho = rho.max(0.0);
        let ln_delta = match conversion {
            RdpConversion::Classic => (alpha - 1.0) * (rho - epsilon),
            RdpConversion::Improved => {
                let kl_bound = if rho == 0.0 {
                    f64::NEG_INFINITY
                } else {
                    0.5 * (-(-rho).exp_m1()).ln()
                };
                let renyi_bound =
                    (alpha - 1.0) * (rho - epsilon + (-alpha.recip()).ln_1p()) - alpha.ln();
                kl_bound.min(renyi_bound)
            }
        };
        if ln_delta < best.0 {
            best = (ln_delta, Some(alpha));
        }
    }
    (best.0.exp().min(1.0), best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn improved_is_never_looser_than_classic() {
        let orders = [1.5, 2.0, 8.0, 32.0];
        let rdp = [0.01, 0.02, 0.1, 0.5];
        for delta in [1e-3, 1e-5, 1e-10] {
            let (classic, _) = epsilon(RdpConversion::Classic, &orders, &rdp, delta);
            let (improved, _) = epsilon(RdpConversion::Improved, &orders, &rdp, delta);
            assert!(improved <= classic, "δ={delta}: {improved} > {classic}");
        }
    }

    #[test]
    fn epsilon_and_delta_are_inverse() {
        let orders: Vec<f64> = (2..64).map(f64::from).collect();
        let rdp: Vec<f64> = orders.iter().map(|a| a / (2.0 * 4.0)).collect();
        for conversion in [RdpConversion::Classic, RdpConversion::Improved] {
            let (eps, order) = epsilon(conversion, &orders, &rdp, 1e-6);
            let (delta_back, _) = delta(conversion, &orders, &rdp, eps);
            // At the optimal order the two conversions are exact inverses.
            assert!(
                delta_back <= 1e-6 * (1.0 + 1e-9),
                "{conversion}: δ {delta_back} at α {order:?}"
            );
        }
    }

    #[test]
    fn infinite_rdp_gives_infinite_epsilon() {
        let (eps, order) = epsilon(RdpConversion::Improved, &[2.0], &[f64::INFINITY], 1e-5);
        assert_eq!((eps, order), (f64::INFINITY, None));
    }
}
