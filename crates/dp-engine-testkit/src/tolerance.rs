//! Named tolerances and the failure type.

use thiserror::Error;

/// |x - y| <= absolute + relative * max(|x|, |y|).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute slack.
    pub absolute: f64,
    /// Relative slack.
    pub relative: f64,
}

/// Tolerance for engines computing in f32 (24-bit mantissa): sums of a few hundred products keep
/// about four significant digits in the worst case we test, so 1e-4 relative with a 1e-5 floor
/// leaves an order of magnitude of margin over the rounding we observe while still catching any
/// wrong formula (those are off by O(1)).
pub const F32_TOLERANCE: Tolerance = Tolerance {
    absolute: 1e-5,
    relative: 1e-4,
};

/// No slack at all: bit-for-bit agreement (exact removal, zeros, copies of buffers).
pub const EXACT: Tolerance = Tolerance {
    absolute: 0.0,
    relative: 0.0,
};

impl Tolerance {
    /// Whether `x` and `y` agree.
    pub fn agrees(&self, x: f64, y: f64) -> bool {
        (x - y).abs() <= self.absolute + self.relative * x.abs().max(y.abs())
    }

    /// The first index where the two sequences disagree (or differ in length), as a failure.
    ///
    /// # Errors
    ///
    /// A [`ConformanceFailure`] naming `check`, the index and both values.
    pub fn compare(
        &self,
        check: &'static str,
        actual: impl IntoIterator<Item = f64>,
        expected: impl IntoIterator<Item = f64>,
    ) -> Result<(), ConformanceFailure> {
        let actual: Vec<f64> = actual.into_iter().collect();
        let expected: Vec<f64> = expected.into_iter().collect();
        if actual.len() != expected.len() {
            return Err(ConformanceFailure::new(
                check,
                format!("lengths differ: {} vs {}", actual.len(), expected.len()),
            ));
        }
        match actual
            .iter()
            .zip(&expected)
            .position(|(&a, &e)| !self.agrees(a, e))
        {
            None => Ok(()),
            Some(i) => Err(ConformanceFailure::new(
                check,
                format!("entry {i}: {} vs expected {}", actual[i], expected[i]),
            )),
        }
    }
}

/// A conformance property that does not hold, or an engine error during a check.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct ConformanceFailure {
    /// The property checked.
    pub check: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl ConformanceFailure {
    /// A failure of `check`.
    pub fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            detail: detail.into(),
        }
    }
}
