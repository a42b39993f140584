//! The input of every policy: a batch x groups matrix of per-sample gradient norms.

use crate::ClipError;

/// Per-sample gradient norms, one row per sample and one column per parameter group
/// (a single column for flat clipping), row-major, borrowed from the caller.
///
/// # Examples
///
/// ```
/// use dp_clip::NormMatrix;
///
/// let norms = [3.0, 4.0, 0.5, 0.0];
/// let matrix = NormMatrix::new(&norms, 2, 2)?;
/// assert_eq!(matrix.row(1), Some(&[0.5, 0.0][..]));
/// # Ok::<(), dp_clip::ClipError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormMatrix<'a> {
    norms: &'a [f64],
    batch_size: usize,
    groups: usize,
}

impl<'a> NormMatrix<'a> {
    /// A view of `norms` as `batch_size` rows of `groups` norms. An empty batch is valid.
    ///
    /// # Errors
    ///
    /// [`ClipError::InvalidParameter`] for zero groups; [`ClipError::ShapeMismatch`] when
    /// `norms.len() != batch_size * groups`.
    pub fn new(norms: &'a [f64], batch_size: usize, groups: usize) -> Result<Self, ClipError> {
        if groups == 0 {
            return Err(ClipError::InvalidParameter {
                name: "groups",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        let expected = batch_size
            .checked_mul(groups)
            .ok_or(ClipError::ShapeMismatch {
                what: "norm matrix length",
                expected: usize::MAX,
                found: norms.len(),
            })?;
        if norms.len() != expected {
            return Err(ClipError::ShapeMismatch {
                what: "norm matrix length",
                expected,
                found: norms.len(),
            });
        }
        Ok(NormMatrix {
            norms,
            batch_size,
            groups,
        })
    }

    /// One norm per sample (a single group).
    pub fn per_sample(norms: &'a [f64]) -> Self {
        NormMatrix {
            norms,
            batch_size: norms.len(),
            groups: 1,
        }
    }

    /// Number of samples (rows).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of parameter groups (columns).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The norms of sample `sample`, if it exists.
    pub fn row(&self, sample: usize) -> Option<&'a [f64]> {
        let start = sample.checked_mul(self.groups)?;
        self.norms.get(start..start + self.groups)
    }

    /// The rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &'a [f64]> + 'a {
        self.norms.chunks_exact(self.groups)
    }
}

/// A norm a policy can use: finite and non-negative.
pub(crate) fn is_valid_norm(norm: f64) -> bool {
    norm.is_finite() && norm >= 0.0
}

/// The L2 norm of a sample's whole gradient from its group norms, or `None` when one of them
/// is invalid. A sum of squares that overflows gives +∞ (a true norm above 1e154), which
/// clips to a factor of 0.
pub(crate) fn total_norm(row: &[f64]) -> Option<f64> {
    if !row.iter().all(|&norm| is_valid_norm(norm)) {
        return None;
    }
    match row {
        [single] => Some(*single),
        _ => Some(row.iter().map(|norm| norm * norm).sum::<f64>().sqrt()),
    }
}

/// The factor that scales a gradient of norm `norm` to at most `bound`: `min(1, bound/norm)`,
/// stepped down by one ulp when rounding would put `factor·norm` above `bound`.
pub(crate) fn clip_factor(bound: f64, norm: f64) -> f64 {
    if norm <= bound {
        1.0
    } else {
        at_most(bound / norm, norm, bound)
    }
}

/// `factor`, lowered by one ulp if the rounded `factor·norm` exceeds `bound`.
pub(crate) fn at_most(factor: f64, norm: f64, bound: f64) -> f64 {
    if factor * norm > bound {
        factor.next_down()
    } else {
        factor
    }
}
