//! Per-layer clipping: a bound per parameter group.

use dp_accountant::DpEvent;

use crate::error::check_positive;
use crate::norms::{clip_factor, is_valid_norm, total_norm};
use crate::{ClipError, ClipOutcome, ClipPolicy, NoiseSource, NormMatrix, ScaleFactors};

/// Per-layer clipping: group k of every sample is scaled to norm at most `C_k`, by
/// `min(1, C_k/‖g_k‖)`. A sample with an invalid norm in any group gets factor 0 in all.
///
/// # Privacy
///
/// Sensitivity `sqrt(Σ_k C_k²)` (a sample's scaled gradient has at most that norm), rounded
/// up by a relative `2·(K + 2)·2^-52` for K groups to cover rounding in the sum.
///
/// # Examples
///
/// ```
/// use dp_clip::{ClipPolicy, NormMatrix, PerLayerClip};
///
/// let policy = PerLayerClip::new(vec![3.0, 4.0])?;
/// assert!((policy.sensitivity() - 5.0).abs() < 1e-12);
/// let outcome = policy.clip(&NormMatrix::new(&[6.0, 1.0], 1, 2)?)?;
/// assert_eq!(outcome.scales.get(0, 0), Some(0.5));
/// assert_eq!(outcome.scales.get(0, 1), Some(1.0));
/// # Ok::<(), dp_clip::ClipError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PerLayerClip {
    max_grad_norms: Vec<f64>,
    sensitivity: f64,
}

impl PerLayerClip {
    /// Per-layer clipping with one bound per group.
    ///
    /// # Errors
    ///
    /// [`ClipError::InvalidParameter`] for no groups or a bound that is not positive and
    /// finite, or when the sensitivity overflows.
    pub fn new(max_grad_norms: Vec<f64>) -> Result<Self, ClipError> {
        if max_grad_norms.is_empty() {
            return Err(ClipError::InvalidParameter {
                name: "max_grad_norms",
                value: 0.0,
                reason: "needs one bound per group, at least one",
            });
        }
        for &bound in &max_grad_norms {
            check_positive("max_grad_norms", bound)?;
        }
        let groups = max_grad_norms.len() as f64;
        let exact = total_norm(&max_grad_norms).unwrap_or(f64::INFINITY);
        let sensitivity = exact * (1.0 + 2.0 * (groups + 2.0) * f64::EPSILON);
        let sensitivity = check_positive("sensitivity", sensitivity)?;
        Ok(PerLayerClip {
            max_grad_norms,
            sensitivity,
        })
    }

    /// The bounds C_k.
    pub fn max_grad_norms(&self) -> &[f64] {
        &self.max_grad_norms
    }
}

impl ClipPolicy for PerLayerClip {
    fn clip(&self, norms: &NormMatrix<'_>) -> Result<ClipOutcome, ClipError> {
        let groups = self.max_grad_norms.len();
        if norms.groups() != groups {
            return Err(ClipError::ShapeMismatch {
                what: "number of groups",
                expected: groups,
                found: norms.groups(),
            });
        }
        let mut factors = Vec::with_capacity(norms.batch_size() * groups);
        let (mut invalid_norms, mut unclipped) = (0, 0);
        for row in norms.rows() {
            let valid = row.iter().all(|&norm| is_valid_norm(norm));
            invalid_norms += usize::from(!valid);
            let mut within = valid;
            for (&norm, &bound) in row.iter().zip(&self.max_grad_norms) {
                within &= norm <= bound;
                factors.push(if valid { clip_factor(bound, norm) } else { 0.0 });
            }
            unclipped += usize::from(within);
        }
        Ok(ClipOutcome {
            scales: ScaleFactors::PerGroup { factors, groups },
            sensitivity: self.sensitivity,
            invalid_norms,
            unclipped,
        })
    }

    fn sensitivity(&self) -> f64 {
        self.sensitivity
    }

    fn update(&mut self, _: &ClipOutcome, _: &mut dyn NoiseSource) -> Result<DpEvent, ClipError> {
        Ok(DpEvent::NoOp)
    }
}
