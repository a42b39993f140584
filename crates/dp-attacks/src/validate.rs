//! Input checks shared by every module.

use crate::error::{AttackError, Result};

/// Non-empty and every value finite.
pub(crate) fn finite_nonempty(name: &'static str, values: &[f64]) -> Result<()> {
    if values.is_empty() {
        return Err(AttackError::EmptyInput { name });
    }
    finite(name, values)
}

/// Every value finite (empty allowed).
pub(crate) fn finite(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(AttackError::NonFinite {
            name,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// `expected == actual`.
pub(crate) fn same_length(name: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(AttackError::LengthMismatch {
            name,
            expected,
            actual,
        })
    }
}

/// A probability strictly inside (0, 1), e.g. a confidence level or a significance.
pub(crate) fn open_unit(name: &'static str, value: f64) -> Result<()> {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(AttackError::InvalidParameter {
            name,
            value,
            reason: "must lie strictly between 0 and 1",
        })
    }
}

/// A δ in [0, 1).
pub(crate) fn delta(value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(AttackError::InvalidParameter {
            name: "delta",
            value,
            reason: "must lie in [0, 1)",
        })
    }
}

/// A count that must be at least one.
pub(crate) fn positive_count(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        Err(AttackError::InvalidParameter {
            name,
            value: 0.0,
            reason: "must be at least 1",
        })
    } else {
        Ok(())
    }
}
