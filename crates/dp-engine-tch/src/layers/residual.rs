//! Residual connection around a DP module.

use tch::Tensor;

use super::{DpLayer, DpModule, ForwardContext};
use crate::Result;

/// `x + inner(x)`: a residual connection (He et al. 2016) around a module whose output has its
/// input's shape.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{DpModule, LinearConfig, Residual, linear};
/// use tch::{Device, Kind, Tensor, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let block = Residual::new(linear(&(&store.root() / "fc"), 4, 4, LinearConfig::default())?);
/// let output = block.forward(&Tensor::zeros([2, 4], (Kind::Float, Device::Cpu)))?;
/// assert_eq!(output.size(), [2, 4]);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
#[derive(Debug)]
pub struct Residual {
    inner: Box<dyn DpModule>,
}

impl Residual {
    /// A residual connection around `inner`.
    pub fn new(inner: impl DpModule + 'static) -> Self {
        Self {
            inner: Box::new(inner),
        }
    }
}

impl DpModule for Residual {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        Ok(xs.f_add(&self.inner.forward_dp(xs, context)?)?)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        self.inner.parameterized_layers()
    }
}
