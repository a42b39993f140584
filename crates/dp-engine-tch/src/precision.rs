//! The precision in which an engine stores what it keeps on top of autograd's graph.

use std::fmt;

use tch::Kind;

/// The storage precision of an engine's per-sample tape: the captured layer inputs and output
/// gradients it keeps beyond what autograd holds for the backward pass.
///
/// In [`Precision::Bf16`] the gradients with respect to the layer outputs arrive in bfloat16
/// during the backward pass (the recording probes are bfloat16, and autograd casts a gradient to
/// the kind of the tensor it flows into), and [`crate::BookKeeping`] converts the layer inputs to
/// bfloat16 once the graph is released (before that the graph holds them in f32 anyway, and a
/// copy would add memory). [`crate::Ghost`] keeps the graph for its second backward pass, so
/// its inputs stay shared with the graph and only its output gradients are stored in bfloat16.
///
/// The forward and backward passes and the parameters are unchanged in either precision; so is
/// the arithmetic: norms and clipped sums are computed from the stored values widened back to
/// the parameters' kind (f32 for f32 models), one layer at a time, squared norms are accumulated
/// in f32 or wider and clipped sums are added to the f32 gradient buffers. No layer of this
/// crate needs a bfloat16 kernel, so every layer supports both precisions.
///
/// Chosen at engine construction ([`crate::BookKeeping::with_precision`],
/// [`crate::Ghost::with_precision`]); [`crate::Microbatch`] and [`crate::Materialized`] keep
/// per-sample gradients rather than captures and always store in the model's precision.
///
/// # Accuracy
///
/// bfloat16 keeps 8 significant bits (relative rounding error at most 2⁻⁹ ≈ 2e-3 per stored
/// value), so per-sample norms and the clipped update differ from [`Precision::F32`]'s by about
/// 1e-3 relative (at most 5e-3 in the tests, whose bounds are 2e-2 for norms and 3e-2 for the
/// update).
///
/// # Privacy
///
/// The norms and the clipped sum are computed from the same rounded values ([`crate::Ghost`] in
/// bfloat16 takes its clipped sum from the output gradients, recomputed and rounded as for its
/// norms, rather than from its exact f32 reweighted backward pass), so every example's clipped contribution has norm at most
/// max_grad_norm up to f32 rounding, as in [`Precision::F32`]: the rounding changes the
/// gradient, not the sensitivity.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{BookKeeping, Precision};
///
/// let engine = BookKeeping::new().with_precision(Precision::Bf16);
/// assert_eq!(engine.precision(), Precision::Bf16);
/// assert_eq!(Precision::Bf16.to_string(), "bf16");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// Captures are stored as computed: in the model's kind (f32 for this crate's models).
    #[default]
    F32,
    /// Floating-point captures are stored in bfloat16 (half the bytes of f32); integer inputs
    /// (token indices) are stored unchanged.
    Bf16,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Self; 2] = [Self::F32, Self::Bf16];

    /// A short name: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// The kind in which a tensor of kind `kind` is stored: bfloat16 for a floating-point kind
    /// in [`Precision::Bf16`], `kind` otherwise.
    pub(crate) fn storage_kind(self, kind: Kind) -> Kind {
        match (self, kind) {
            (Self::Bf16, Kind::Float | Kind::Double | Kind::Half) => Kind::BFloat16,
            (_, kind) => kind,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}
