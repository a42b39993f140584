//! What a policy returns for one batch.

/// Scale factors of one batch.
#[derive(Clone, Debug, PartialEq)]
pub enum ScaleFactors {
    /// One factor per sample, applied to every parameter group.
    PerSample(Vec<f64>),
    /// One factor per sample and group, row-major (batch x groups).
    PerGroup {
        /// The factors, `batch_size * groups` of them.
        factors: Vec<f64>,
        /// Number of groups (columns).
        groups: usize,
    },
}

impl ScaleFactors {
    /// The factor applied to group `group` of sample `sample`, if both exist. For
    /// [`ScaleFactors::PerSample`] every group of a sample shares its factor.
    pub fn get(&self, sample: usize, group: usize) -> Option<f64> {
        match self {
            ScaleFactors::PerSample(factors) => factors.get(sample).copied(),
            ScaleFactors::PerGroup { factors, groups } if group < *groups => factors
                .get(sample.checked_mul(*groups)?.checked_add(group)?)
                .copied(),
            ScaleFactors::PerGroup { .. } => None,
        }
    }

    /// Number of samples.
    pub fn batch_size(&self) -> usize {
        match self {
            ScaleFactors::PerSample(factors) => factors.len(),
            ScaleFactors::PerGroup { factors, groups } => factors.len() / groups.max(&1),
        }
    }
}

/// The result of clipping one batch.
///
/// # Privacy
///
/// The sum over samples of the scaled gradients has L2 sensitivity at most `sensitivity`
/// under add/remove of one example: the Gaussian noise must have std
/// `noise_multiplier · sensitivity`. `invalid_norms` and `unclipped` are functions of private
/// data: they may be logged only through a DP mechanism (as the adaptive policy does).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipOutcome {
    /// The factors the engine multiplies per-sample gradients by. A zero factor must exclude
    /// the sample (an engine should select, not multiply, since 0·NaN is NaN).
    pub scales: ScaleFactors,
    /// L2 sensitivity of the sum of scaled per-sample gradients.
    pub sensitivity: f64,
    /// Samples with a NaN, infinite or negative norm in some group; their factors are 0.
    pub invalid_norms: usize,
    /// Samples with valid norms that no bound clipped: whole-gradient norm at most the
    /// bound (flat, automatic, adaptive) or every group within its bound (per-layer).
    pub unclipped: usize,
}
