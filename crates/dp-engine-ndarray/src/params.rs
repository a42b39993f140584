//! Parameter groups and gradient buffers of an [`Mlp`]: one group per weight and per bias.

use crate::Mlp;
use dp_engine::{ParameterGroup, ParameterView};

impl Mlp {
    /// Groups `layer{l}.weight` and `layer{l}.bias` for every layer, input first.
    pub fn parameter_groups(&self) -> Vec<ParameterGroup> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(l, layer)| {
                [
                    ParameterGroup {
                        name: format!("layer{l}.weight"),
                        len: layer.weight.len(),
                    },
                    ParameterGroup {
                        name: format!("layer{l}.bias"),
                        len: layer.bias.len(),
                    },
                ]
            })
            .collect()
    }

    /// Sets all gradient buffers to zero.
    pub fn zero_grad(&mut self) {
        for layer in &mut self.layers {
            layer.weight_grad.fill(0.0);
            layer.bias_grad.fill(0.0);
        }
    }

    /// Visits each parameter group (in [`parameter_groups`](Self::parameter_groups) order) with
    /// its values and gradient.
    pub fn visit_parameters(&mut self, visit: &mut dyn FnMut(ParameterView<'_>)) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            visit(ParameterView {
                group: 2 * l,
                values: layer
                    .weight
                    .as_slice_mut()
                    .expect("weights are kept in standard layout"),
                gradient: layer
                    .weight_grad
                    .as_slice_mut()
                    .expect("gradients are allocated in standard layout"),
            });
            visit(ParameterView {
                group: 2 * l + 1,
                values: layer
                    .bias
                    .as_slice_mut()
                    .expect("a bias vector is contiguous"),
                gradient: layer
                    .bias_grad
                    .as_slice_mut()
                    .expect("a bias gradient is contiguous"),
            });
        }
    }
}
