//! A DP model: a module, its loss, its gradient buffers, and the check that engines can handle it.

use std::collections::HashSet;
use std::rc::Rc;

use tch::{Device, Kind, Reduction, Tensor, nn};

use crate::layers::{DpLayer, DpModule, ForwardContext, NamedParameter};
use crate::{Result, TchEngineError};

/// The per-example loss. An example's loss is the mean over its positions (one position for
/// classification of a whole example, T for a sequence), so it does not depend on other examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// Softmax cross-entropy: outputs `[batch, ..., classes]` (logits), targets `[batch, ...]`
    /// (int64 class indices).
    CrossEntropy,
    /// Squared error: targets of the outputs' shape.
    MeanSquaredError,
}

impl Loss {
    /// The loss of every example, `[batch]`.
    ///
    /// # Errors
    ///
    /// [`TchEngineError::InvalidLabel`] for a class index out of range; shape errors.
    pub fn per_example(self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let batch = outputs.size().first().copied().unwrap_or(0);
        let per_position = match self {
            Self::CrossEntropy => {
                let num_classes = outputs.size().last().copied().unwrap_or(0);
                check_labels(targets, num_classes)?;
                // libtorch's fused log-softmax and negative log-likelihood, one position per
                // row; every label is in range, so no index is ignored.
                outputs
                    .f_to_kind(Kind::Float)?
                    .f_reshape([-1, num_classes])?
                    .f_cross_entropy_loss::<Tensor>(
                        &targets.f_reshape([-1])?,
                        None,
                        Reduction::None,
                        i64::MIN,
                        0.0,
                    )?
            }
            Self::MeanSquaredError => outputs.f_sub(targets)?.f_square()?,
        };
        Ok(per_position
            .f_reshape([batch, -1])?
            .f_mean_dim(1, false, Kind::Float)?)
    }
}

/// [`TchEngineError::InvalidLabel`] for the first example with a label outside
/// `0..num_classes`, from one host copy of the labels (a handful of libtorch operations on
/// the labels cost more than the loss itself on a small model).
fn check_labels(targets: &Tensor, num_classes: i64) -> Result<()> {
    let positions = targets.numel();
    if positions == 0 {
        return Ok(());
    }
    let labels = Vec::<i64>::try_from(targets.f_to_device(Device::Cpu)?.f_reshape([-1])?)?;
    let Some(position) = labels
        .iter()
        .position(|label| !(0..num_classes).contains(label))
    else {
        return Ok(());
    };
    let batch = targets.size().first().copied().unwrap_or(1);
    let per_example = positions / usize::try_from(batch).unwrap_or(1).max(1);
    Err(TchEngineError::InvalidLabel {
        example: position / per_example.max(1),
        label: labels[position],
        num_classes,
    })
}

/// A model the engines can train: a [`DpModule`], its [`Loss`], and one gradient buffer per
/// parameter group (summed, never averaged).
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{DpModel, Function, LinearConfig, Loss, Sequential, linear};
/// use tch::{Device, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let root = store.root();
/// let module = Sequential::new()
///     .add(linear(&(&root / "fc1"), 4, 8, LinearConfig::default())?)
///     .add(Function::Relu)
///     .add(linear(&(&root / "fc2"), 8, 3, LinearConfig::default())?);
/// let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
/// assert_eq!(model.parameters().len(), 4);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
///
/// Cloning shares the module and its parameters (as cloning a tch layer handle does) and copies
/// the gradient buffers, so two clones accumulate gradients separately.
#[derive(Debug)]
pub struct DpModel {
    module: Rc<dyn DpModule>,
    loss: Loss,
    parameters: Vec<NamedParameter>,
    gradients: Vec<Tensor>,
    device: Device,
    train: bool,
}

impl DpModel {
    /// Wraps `module` after [`validate`]-ing it against its variable store; training mode on.
    ///
    /// # Errors
    ///
    /// [`TchEngineError::UnsupportedLayer`] as [`validate`]; libtorch errors.
    pub fn new(store: &nn::VarStore, module: impl DpModule + 'static, loss: Loss) -> Result<Self> {
        validate(store, &module)?;
        let parameters: Vec<NamedParameter> = unique_layers(&module)
            .iter()
            .flat_map(|layer| layer.parameters())
            .collect();
        let gradients = parameters
            .iter()
            .map(|parameter| Ok(parameter.tensor.f_zeros_like()?.f_detach()?))
            .collect::<Result<_>>()?;
        Ok(Self {
            module: Rc::new(module),
            loss,
            parameters,
            gradients,
            device: store.device(),
            train: true,
        })
    }

    /// The parameter groups, in the engines' column order.
    pub fn parameters(&self) -> &[NamedParameter] {
        &self.parameters
    }

    /// The gradient buffers, one per parameter group.
    ///
    /// The engines' `visit_gradients` gives a visit the memory of a contiguous `f32` buffer on
    /// the CPU itself, not a copy: a visit must not use another handle to that buffer (a
    /// `shallow_clone` of it) while it runs.
    pub fn gradients(&self) -> &[Tensor] {
        &self.gradients
    }

    /// Mutable gradient buffers (noise, optimizers).
    pub fn gradients_mut(&mut self) -> &mut [Tensor] {
        &mut self.gradients
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether dropout runs in training mode in the engines' passes.
    pub fn is_training(&self) -> bool {
        self.train
    }

    /// Switches training mode (dropout) on or off for the engines' passes.
    pub fn set_training(&mut self, train: bool) {
        self.train = train;
    }

    /// The module.
    pub fn module(&self) -> &dyn DpModule {
        self.module.as_ref()
    }

    /// Evaluation-mode forward pass, no recording.
    ///
    /// # Errors
    ///
    /// When the input does not fit the model.
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        self.run(inputs, &mut ForwardContext::new(false))
    }

    /// The module's forward pass link by link ([`DpModule::chain`]), each link's output marked
    /// as a cut in `context`.
    fn run(&self, inputs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let mut hidden = inputs.f_to_device(self.device)?;
        for link in chain_links(self.module.as_ref()) {
            hidden = link.forward_dp(&hidden, context)?;
            context.cut(&hidden);
        }
        Ok(hidden)
    }

    /// Forward pass and per-example losses `[batch]` in the model's mode.
    pub(crate) fn losses(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        context: &mut ForwardContext,
    ) -> Result<Tensor> {
        let outputs = self.run(inputs, context)?;
        self.loss
            .per_example(&outputs, &targets.f_to_device(self.device)?)
    }

    /// The parameterized layers, each once, in order.
    pub(crate) fn layers(&self) -> Vec<&dyn DpLayer> {
        unique_layers(self.module.as_ref())
    }

    /// Sets every gradient buffer to zero.
    pub(crate) fn zero_gradients(&mut self) -> Result<()> {
        for gradient in &mut self.gradients {
            let _ = gradient.f_zero_()?;
        }
        Ok(())
    }

    /// Adds `updates` (one per group, any shape with the right number of elements) to the
    /// gradient buffers.
    pub(crate) fn add_to_gradients(&mut self, updates: &[Tensor]) -> Result<()> {
        for (group, update) in updates.iter().enumerate() {
            self.add_to_gradient(group, update)?;
        }
        Ok(())
    }

    /// Adds `update` (any shape with the group's number of elements) to the gradient buffer of
    /// parameter group `group`.
    pub(crate) fn add_to_gradient(&mut self, group: usize, update: &Tensor) -> Result<()> {
        let gradient = self.gradients.get_mut(group).ok_or(TchEngineError::Shape {
            what: "parameter group",
            expected: "an index below the number of groups",
            actual: vec![group as i64],
        })?;
        crate::layers::add_into(gradient, update)
    }
}

impl Clone for DpModel {
    fn clone(&self) -> Self {
        Self {
            module: Rc::clone(&self.module),
            loss: self.loss,
            parameters: self.parameters.clone(),
            gradients: self.gradients.iter().map(Tensor::copy).collect(),
            device: self.device,
            train: self.train,
        }
    }
}

/// The links of `module`'s chain, nested chains unfolded ([`DpModule::chain`]); a module that
/// is no chain is its one link. Applied in order, they are the module's forward pass.
fn chain_links(module: &dyn DpModule) -> Vec<&dyn DpModule> {
    match module.chain() {
        Some(parts) => parts.into_iter().flat_map(chain_links).collect(),
        None => vec![module],
    }
}

fn unique_layers(module: &dyn DpModule) -> Vec<&dyn DpLayer> {
    let mut seen = HashSet::new();
    module
        .parameterized_layers()
        .into_iter()
        .filter(|layer| seen.insert(layer.id()))
        .collect()
}

/// Checks that the engines can compute exact per-sample gradients for `module`: every trainable
/// variable of `store` belongs to one of its DP layers, and the store holds no BatchNorm.
///
/// # Errors
///
/// [`TchEngineError::UnsupportedLayer`] naming the offending variable and the fix: BatchNorm
/// (detected by its running statistics) must become GroupNorm, any other parameterized layer
/// must be built from this crate's layers (or frozen).
///
/// # Privacy
///
/// BatchNorm normalizes with statistics of the whole batch, so one example's output (and
/// gradient) depends on every other example and the per-sample sensitivity bound of DP-SGD no
/// longer holds; a variable that no DP layer owns would get no per-sample gradient at all.
pub fn validate(store: &nn::VarStore, module: &dyn DpModule) -> Result<()> {
    let owned: HashSet<String> = unique_layers(module)
        .iter()
        .flat_map(|layer| layer.parameters())
        .map(|parameter| parameter.name)
        .collect();
    let mut variables: Vec<(String, Tensor)> = store.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    // BatchNorm first: its affine parameters would otherwise be reported as unknown variables.
    for (name, _) in &variables {
        let leaf = name.rsplit('.').next().unwrap_or(name);
        if matches!(leaf, "running_mean" | "running_var" | "num_batches_tracked") {
            let layer = name
                .rsplit_once('.')
                .map_or(name.as_str(), |(prefix, _)| prefix);
            return Err(TchEngineError::UnsupportedLayer {
                layer: layer.to_owned(),
                kind: "BatchNorm",
                fix: "BatchNorm mixes the examples of a batch, which breaks per-sample \
                      clipping; replace it with GroupNorm (dp_engine_tch::group_norm)",
            });
        }
    }
    for (name, tensor) in variables {
        if tensor.requires_grad() && !owned.contains(&name) {
            return Err(TchEngineError::UnsupportedLayer {
                layer: name,
                kind: "parameterized layer without per-sample formulas",
                fix: "build the layer from this crate's DP layers (Linear, Conv, Embedding, \
                      LayerNorm, GroupNorm, RMSNorm, attention, LSTM, GRU) or freeze the \
                      variable",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused loss is the mean over positions of -log softmax at the label, on classified
    /// examples and on sequences.
    #[test]
    fn cross_entropy_is_the_mean_negative_log_likelihood_per_example() -> Result<()> {
        for shape in [vec![4_i64, 5], vec![4, 3, 5]] {
            let outputs = Tensor::f_randn(shape.as_slice(), (Kind::Float, Device::Cpu))?;
            let label_shape = &shape[..shape.len() - 1];
            let targets = Tensor::f_randint(5, label_shape, (Kind::Int64, Device::Cpu))?;
            let losses = Vec::<f32>::try_from(Loss::CrossEntropy.per_example(&outputs, &targets)?)?;
            let log_probabilities =
                Vec::<f32>::try_from(outputs.f_log_softmax(-1, Kind::Float)?.f_reshape([-1])?)?;
            let labels = Vec::<i64>::try_from(targets.f_reshape([-1])?)?;
            let positions = labels.len() / 4;
            for (example, loss) in losses.iter().enumerate() {
                let expected = (0..positions)
                    .map(|position| {
                        let row = example * positions + position;
                        -log_probabilities[row * 5 + labels[row] as usize]
                    })
                    .sum::<f32>()
                    / positions as f32;
                assert!(
                    (loss - expected).abs() < 1e-6,
                    "{shape:?}: {loss} vs {expected}"
                );
            }
        }
        Ok(())
    }
}
