//! LSTM and GRU layers built from two DP Linear layers each.
//!
//! The input projection acts on the whole sequence at once (one use, T positions); the hidden
//! projection acts once per time step, so it records one capture per step and its per-sample
//! gradient is the sum over steps, exactly as for tied weights. Both are ordinary DP
//! [`Linear`] layers: every engine handles them with the Linear formulas.

use tch::{Tensor, nn};

use super::linear::{linear_uniform, positive};
use super::{DpLayer, DpModule, ForwardContext, Linear, LinearConfig};
use crate::{Result, TchEngineError};

/// Options of [`lstm`] and [`gru`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentConfig {
    /// Whether the input and hidden projections have biases (as PyTorch's `bias=True`).
    pub bias: bool,
}

impl Default for RecurrentConfig {
    fn default() -> Self {
        Self { bias: true }
    }
}

/// The gate arithmetic of one recurrent cell type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Gates input, forget, cell, output (PyTorch's order).
    Lstm,
    /// Gates reset, update, new (PyTorch's order).
    Gru,
}

impl Cell {
    fn gates(self) -> i64 {
        match self {
            Self::Lstm => 4,
            Self::Gru => 3,
        }
    }
}

/// A single-layer recurrent network over `[batch, T, input_size]` (batch first), started from
/// zero states; the output is the hidden state of every step, `[batch, T, hidden_size]`.
/// Stack several in a [`super::Sequential`] for a deeper network.
#[derive(Clone, Debug)]
pub struct Recurrent {
    cell: Cell,
    input_size: i64,
    hidden_size: i64,
    input_projection: Linear,
    hidden_projection: Linear,
}

/// Long short-term memory (Hochreiter and Schmidhuber 1997), PyTorch's formulation.
pub type Lstm = Recurrent;
/// Gated recurrent unit (Cho et al. 2014), PyTorch's formulation.
pub type Gru = Recurrent;

/// An LSTM layer with its input projection (`input_size -> 4 hidden_size`) at `path / "ih"`
/// and its hidden projection (`hidden_size -> 4 hidden_size`) at `path / "hh"`, initialized
/// uniform in ±1/sqrt(hidden_size) as PyTorch does.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for a non-positive size; libtorch errors.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{DpModule, RecurrentConfig, lstm};
/// use tch::{Device, Kind, Tensor, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let layer = lstm(&(&store.root() / "lstm"), 3, 5, RecurrentConfig::default())?;
/// let output = layer.forward(&Tensor::randn([2, 7, 3], (Kind::Float, Device::Cpu)))?;
/// assert_eq!(output.size(), [2, 7, 5]);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
pub fn lstm(
    path: &nn::Path<'_>,
    input_size: i64,
    hidden_size: i64,
    config: RecurrentConfig,
) -> Result<Lstm> {
    Recurrent::new(path, Cell::Lstm, input_size, hidden_size, config)
}

/// A GRU layer with its input projection (`input_size -> 3 hidden_size`) at `path / "ih"` and
/// its hidden projection (`hidden_size -> 3 hidden_size`) at `path / "hh"`, initialized
/// uniform in ±1/sqrt(hidden_size) as PyTorch does.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for a non-positive size; libtorch errors.
pub fn gru(
    path: &nn::Path<'_>,
    input_size: i64,
    hidden_size: i64,
    config: RecurrentConfig,
) -> Result<Gru> {
    Recurrent::new(path, Cell::Gru, input_size, hidden_size, config)
}

impl Recurrent {
    fn new(
        path: &nn::Path<'_>,
        cell: Cell,
        input_size: i64,
        hidden_size: i64,
        config: RecurrentConfig,
    ) -> Result<Self> {
        positive("input_size", input_size)?;
        positive("hidden_size", hidden_size)?;
        let bound = 1.0 / (hidden_size as f64).sqrt();
        let projection = LinearConfig { bias: config.bias };
        let width = cell.gates() * hidden_size;
        Ok(Self {
            cell,
            input_size,
            hidden_size,
            input_projection: linear_uniform(&(path / "ih"), input_size, width, projection, bound)?,
            hidden_projection: linear_uniform(
                &(path / "hh"),
                hidden_size,
                width,
                projection,
                bound,
            )?,
        })
    }

    /// The hidden state after one step from the input projection of that step, `[batch,
    /// gates hidden]`, and the previous states.
    fn step(
        &self,
        projected_input: &Tensor,
        hidden: &Tensor,
        memory: &Tensor,
        context: &mut ForwardContext,
    ) -> Result<(Tensor, Tensor)> {
        let projected_hidden = self.hidden_projection.forward_dp(hidden, context)?;
        match self.cell {
            Cell::Lstm => {
                let gates = projected_input.f_add(&projected_hidden)?.f_chunk(4, -1)?;
                let [input, forget, candidate, output] = gates.as_slice() else {
                    return Err(gate_error(gates.len()));
                };
                let memory = forget
                    .f_sigmoid()?
                    .f_mul(memory)?
                    .f_add(&input.f_sigmoid()?.f_mul(&candidate.f_tanh()?)?)?;
                let hidden = output.f_sigmoid()?.f_mul(&memory.f_tanh()?)?;
                Ok((hidden, memory))
            }
            Cell::Gru => {
                let from_input = projected_input.f_chunk(3, -1)?;
                let from_hidden = projected_hidden.f_chunk(3, -1)?;
                let (
                    [input_reset, input_update, input_new],
                    [hidden_reset, hidden_update, hidden_new],
                ) = (from_input.as_slice(), from_hidden.as_slice())
                else {
                    return Err(gate_error(from_input.len()));
                };
                let reset = input_reset.f_add(hidden_reset)?.f_sigmoid()?;
                let update = input_update.f_add(hidden_update)?.f_sigmoid()?;
                let new = input_new.f_add(&reset.f_mul(hidden_new)?)?.f_tanh()?;
                // h' = (1 - z) n + z h = n + z (h - n)
                let hidden = new.f_add(&update.f_mul(&hidden.f_sub(&new)?)?)?;
                Ok((hidden, memory.shallow_clone()))
            }
        }
    }
}

fn gate_error(count: usize) -> TchEngineError {
    TchEngineError::Shape {
        what: "recurrent gates",
        expected: "one chunk per gate",
        actual: vec![count as i64],
    }
}

impl DpModule for Recurrent {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let size = xs.size();
        if size.len() != 3 || size[2] != self.input_size {
            return Err(TchEngineError::Shape {
                what: "recurrent input",
                expected: "[batch, T, input_size]",
                actual: size,
            });
        }
        let (batch, time) = (size[0], size[1]);
        let projected = self.input_projection.forward_dp(xs, context)?;
        let zeros = Tensor::f_zeros(
            [batch, self.hidden_size],
            (projected.f_kind()?, projected.device()),
        )?;
        let (mut hidden, mut memory) = (zeros.shallow_clone(), zeros);
        let mut outputs = Vec::with_capacity(usize::try_from(time).unwrap_or(0));
        // `unbind`, not `select` per step: the backward of `select` writes into a zero tensor of
        // the whole sequence at every step (quadratic in T).
        for input in projected.f_unbind(1)? {
            (hidden, memory) = self.step(&input, &hidden, &memory, context)?;
            outputs.push(hidden.shallow_clone());
        }
        if outputs.is_empty() {
            return Ok(Tensor::f_zeros(
                [batch, 0, self.hidden_size],
                (projected.f_kind()?, projected.device()),
            )?);
        }
        Ok(Tensor::f_stack(&outputs, 1)?)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        vec![&self.input_projection, &self.hidden_projection]
    }
}
