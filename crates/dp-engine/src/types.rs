//! The numbers engines exchange with the trainer and clipping policies.

use crate::EngineError;

/// Per-sample gradient norms: one row per example (privacy unit), one column per parameter group.
///
/// Entry (i, k) is the L2 norm of example i's gradient restricted to parameter group k. The flat
/// (whole-model) norm of example i is the L2 norm of row i.
///
/// # Examples
///
/// ```
/// use dp_engine::NormMatrix;
///
/// let norms = NormMatrix::new(2, 2, vec![3.0, 4.0, 0.0, 1.0])?;
/// assert_eq!(norms.row(0), &[3.0, 4.0]);
/// assert_eq!(norms.flat_norms(), vec![5.0, 1.0]);
/// # Ok::<(), dp_engine::EngineError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NormMatrix {
    num_examples: usize,
    num_groups: usize,
    values: Vec<f64>,
}

impl NormMatrix {
    /// A matrix from row-major values.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if `values.len() != num_examples * num_groups`.
    pub fn new(
        num_examples: usize,
        num_groups: usize,
        values: Vec<f64>,
    ) -> Result<Self, EngineError> {
        let expected =
            num_examples
                .checked_mul(num_groups)
                .ok_or(EngineError::InvalidParameter {
                    name: "num_examples * num_groups",
                    value: format!("{num_examples} * {num_groups}"),
                    reason: "overflows usize",
                })?;
        if values.len() != expected {
            return Err(EngineError::ShapeMismatch {
                what: "norm matrix values",
                expected,
                actual: values.len(),
            });
        }
        Ok(Self {
            num_examples,
            num_groups,
            values,
        })
    }

    /// Number of rows (examples).
    pub fn num_examples(&self) -> usize {
        self.num_examples
    }

    /// Number of columns (parameter groups).
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// The norms of example `example`, one per group.
    ///
    /// # Panics
    ///
    /// If `example >= self.num_examples()`.
    pub fn row(&self, example: usize) -> &[f64] {
        &self.values[example * self.num_groups..(example + 1) * self.num_groups]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.values
    }

    /// The whole-model norm of each example: the L2 norm of its row.
    pub fn flat_norms(&self) -> Vec<f64> {
        (0..self.num_examples)
            .map(|i| self.row(i).iter().map(|n| n * n).sum::<f64>().sqrt())
            .collect()
    }
}

/// What phase 1 of an engine returns: per-sample losses and per-sample, per-group gradient norms.
#[derive(Clone, Debug, PartialEq)]
pub struct PerSampleNorms {
    /// Loss of each example (for an example with several views, the mean over its views).
    pub losses: Vec<f64>,
    /// Gradient norms, examples x parameter groups.
    pub norms: NormMatrix,
}

/// Scale factors for the weighted sum of per-sample gradients (clip factors): one per example
/// (flat clipping, sum_i s_i g_i), or one per example and parameter group (per-layer clipping,
/// group k of example i scaled by s_ik).
///
/// # Examples
///
/// ```
/// use dp_engine::ScaleVector;
///
/// let flat = ScaleVector::new(vec![1.0, 0.5, 0.0])?;
/// assert_eq!(flat.factor(1, 7), 0.5);
/// let per_group = ScaleVector::per_group(vec![1.0, 0.5, 0.25, 0.0], 2)?;
/// assert_eq!(per_group.num_examples(), 2);
/// assert_eq!(per_group.factor(1, 0), 0.25);
/// assert!(ScaleVector::new(vec![f64::NAN]).is_err());
/// # Ok::<(), dp_engine::EngineError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleVector {
    factors: Vec<f64>,
    /// `None` for one factor per example, `Some(k)` for k factors per example.
    groups: Option<usize>,
}

fn check_finite(factors: &[f64]) -> Result<(), EngineError> {
    match factors.iter().find(|s| !s.is_finite()) {
        Some(bad) => Err(EngineError::InvalidParameter {
            name: "scale",
            value: bad.to_string(),
            reason: "scale factors must be finite",
        }),
        None => Ok(()),
    }
}

impl ScaleVector {
    /// One finite factor per example.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] if a factor is not finite: a non-finite factor would put
    /// NaN or infinity into the gradient and silently break the sensitivity bound.
    pub fn new(factors: Vec<f64>) -> Result<Self, EngineError> {
        check_finite(&factors)?;
        Ok(Self {
            factors,
            groups: None,
        })
    }

    /// `num_groups` finite factors per example, row-major (example-major).
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] for a non-finite factor or `num_groups == 0`;
    /// [`EngineError::ShapeMismatch`] if the length is not a multiple of `num_groups`.
    pub fn per_group(factors: Vec<f64>, num_groups: usize) -> Result<Self, EngineError> {
        if num_groups == 0 {
            return Err(EngineError::InvalidParameter {
                name: "num_groups",
                value: "0".into(),
                reason: "must be positive",
            });
        }
        if !factors.len().is_multiple_of(num_groups) {
            return Err(EngineError::ShapeMismatch {
                what: "per-group scale factors (a multiple of the group count)",
                expected: factors.len().next_multiple_of(num_groups),
                actual: factors.len(),
            });
        }
        check_finite(&factors)?;
        Ok(Self {
            factors,
            groups: Some(num_groups),
        })
    }

    /// `num_examples` factors all equal to one (the unclipped sum).
    pub fn ones(num_examples: usize) -> Self {
        Self {
            factors: vec![1.0; num_examples],
            groups: None,
        }
    }

    /// Number of examples the factors are for.
    pub fn num_examples(&self) -> usize {
        self.factors.len() / self.groups.unwrap_or(1)
    }

    /// Number of factors per example when they differ by group, `None` for one per example.
    pub fn num_groups(&self) -> Option<usize> {
        self.groups
    }

    /// The factor of `group` in `example` (the example's factor for per-example scales).
    ///
    /// # Panics
    ///
    /// If `example` or (per-group) `group` is out of range.
    pub fn factor(&self, example: usize, group: usize) -> f64 {
        match self.groups {
            None => self.factors[example],
            Some(groups) => {
                assert!(
                    group < groups,
                    "group {group} out of range for {groups} groups"
                );
                self.factors[example * groups + group]
            }
        }
    }

    /// Checks that these factors fit a batch of `num_examples` examples and `num_groups`
    /// parameter groups.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] otherwise.
    pub fn check_shape(&self, num_examples: usize, num_groups: usize) -> Result<(), EngineError> {
        if self.num_examples() != num_examples {
            return Err(EngineError::ShapeMismatch {
                what: "scale factors (one per example of the last norms call)",
                expected: num_examples,
                actual: self.num_examples(),
            });
        }
        match self.groups {
            Some(groups) if groups != num_groups => Err(EngineError::ShapeMismatch {
                what: "scale factor groups",
                expected: num_groups,
                actual: groups,
            }),
            _ => Ok(()),
        }
    }
}

/// A named parameter group: the unit of per-layer clipping and of gradient access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterGroup {
    /// Stable name (for example `layer0.weight`), used in checkpoints and logs.
    pub name: String,
    /// Number of scalar parameters in the group.
    pub len: usize,
}

/// Mutable access to one parameter group's values and gradient buffer, for noise, optimizers and
/// checkpoints.
#[derive(Debug)]
pub struct ParameterView<'a> {
    /// Index of the group in [`crate::PerSampleGradEngine::parameter_groups`].
    pub group: usize,
    /// The parameter values.
    pub values: &'a mut [f32],
    /// The gradient buffer of the same length.
    pub gradient: &'a mut [f32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_matrix_checks_its_shape() {
        assert_eq!(
            NormMatrix::new(2, 3, vec![0.0; 5]),
            Err(EngineError::ShapeMismatch {
                what: "norm matrix values",
                expected: 6,
                actual: 5
            })
        );
        let empty = NormMatrix::new(0, 4, Vec::new()).unwrap();
        assert!(empty.flat_norms().is_empty());
    }

    #[test]
    fn flat_norm_is_the_l2_norm_of_the_row() {
        let norms = NormMatrix::new(1, 3, vec![1.0, 2.0, 2.0]).unwrap();
        assert_eq!(norms.flat_norms(), vec![3.0]);
    }

    #[test]
    fn scale_vector_rejects_non_finite_factors() {
        assert!(ScaleVector::new(vec![1.0, f64::INFINITY]).is_err());
        assert!(ScaleVector::per_group(vec![1.0; 3], 2).is_err());
        assert!(ScaleVector::per_group(vec![1.0; 4], 0).is_err());
        let ones = ScaleVector::ones(2);
        assert_eq!((ones.factor(0, 0), ones.num_examples()), (1.0, 2));
        assert!(ones.check_shape(2, 5).is_ok());
        assert!(ones.check_shape(3, 5).is_err());
        assert!(
            ScaleVector::per_group(vec![1.0; 4], 2)
                .unwrap()
                .check_shape(2, 3)
                .is_err()
        );
    }
}
