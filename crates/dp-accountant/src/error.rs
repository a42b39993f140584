//! The crate's one error type.

use crate::AccountantKind;

/// Why an accountant refused an input or could not produce a bound.
///
/// Every variant is raised before any state changes: an accountant that returns an error
/// is exactly as it was before the call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AccountantError {
    /// A numeric parameter is outside its domain (NaN, q outside (0, 1], σ <= 0, ...).
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name as in the literature (`noise_multiplier`, `delta`, ...).
        name: &'static str,
        /// The offending value (integers are shown as floats).
        value: f64,
        /// What the domain is.
        reason: &'static str,
    },
    /// The accountant cannot account for this event (under its neighbouring relation).
    #[error("the {accountant} accountant does not support {event}: {reason}")]
    UnsupportedEvent {
        /// Which accountant refused.
        accountant: AccountantKind,
        /// A short description of the refused (sub-)event.
        event: String,
        /// Why it is refused.
        reason: String,
    },
    /// A repetition count no longer fits in 64 bits.
    #[error("composition count overflows u64")]
    CountOverflow,
    /// The ledger was written under a different neighbouring relation than the accountant's.
    #[error("ledger neighbouring relation {ledger} does not match the accountant's {accountant}")]
    RelationMismatch {
        /// The relation recorded in the ledger.
        ledger: crate::NeighbouringRelation,
        /// The accountant's relation.
        accountant: crate::NeighbouringRelation,
    },
    /// Calibration found no parameter meeting the target in its search range.
    #[error("cannot calibrate {parameter}: {reason}")]
    Unreachable {
        /// The parameter being calibrated (`noise_multiplier`, `steps`).
        parameter: &'static str,
        /// Why the target cannot be met.
        reason: String,
    },
    /// A computation would need more memory than is reasonable (e.g. a PLD grid too fine
    /// for a tiny noise multiplier).
    #[error("{what} needs {size} grid points, more than the limit {limit}")]
    TooLarge {
        /// What was being built.
        what: &'static str,
        /// The size it would need.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl AccountantError {
    pub(crate) fn invalid(name: &'static str, value: f64, reason: &'static str) -> Self {
        AccountantError::InvalidParameter {
            name,
            value,
            reason,
        }
    }
}

/// Checks that `value` is a probability strictly between 0 and 1 (a `delta` argument).
pub(crate) fn check_open_unit(name: &'static str, value: f64) -> Result<(), AccountantError> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid(name, value, "must lie in (0, 1)"))
    }
}

/// Checks that `value` is finite and non-negative (an `epsilon` argument).
pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<(), AccountantError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid(
            name,
            value,
            "must be finite and >= 0",
        ))
    }
}
