//! Sequential composition of DP modules.

use tch::Tensor;

use super::{DpLayer, DpModule, ForwardContext};
use crate::Result;

/// Modules applied one after the other, like `tch::nn::Sequential`.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{Function, LinearConfig, Sequential, linear};
/// use tch::{Device, Kind, Tensor, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let root = store.root();
/// let model = Sequential::new()
///     .add(linear(&(&root / "fc1"), 4, 8, LinearConfig::default())?)
///     .add(Function::Relu)
///     .add(linear(&(&root / "fc2"), 8, 2, LinearConfig::default())?);
/// let output = dp_engine_tch::DpModule::forward(&model, &Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)))?;
/// assert_eq!(output.size(), [3, 2]);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
#[derive(Debug, Default)]
pub struct Sequential {
    modules: Vec<Box<dyn DpModule>>,
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module.
    #[must_use]
    #[expect(
        clippy::should_implement_trait,
        reason = "the name of tch::nn::Sequential::add, which this type mirrors"
    )]
    pub fn add(mut self, module: impl DpModule + 'static) -> Self {
        self.modules.push(Box::new(module));
        self
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }
}

impl DpModule for Sequential {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        self.modules
            .iter()
            .try_fold(xs.shallow_clone(), |hidden, module| {
                module.forward_dp(&hidden, context)
            })
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        self.modules
            .iter()
            .flat_map(|module| module.parameterized_layers())
            .collect()
    }

    fn chain(&self) -> Option<Vec<&dyn DpModule>> {
        Some(self.modules.iter().map(|module| module.as_ref()).collect())
    }
}
