//! Batches and data sets of tensors.

use dp_engine::{EngineError, ExampleBatch, ExampleSource};
use tch::{Device, Kind, Tensor};

use crate::{Result, TchEngineError};

/// Inputs and targets of a batch; example i is row i of both.
#[derive(Debug)]
pub struct TensorBatch {
    inputs: Tensor,
    targets: Tensor,
}

impl TensorBatch {
    /// A batch from inputs `[batch, ...]` and targets `[batch, ...]`.
    ///
    /// # Errors
    ///
    /// [`TchEngineError::Shape`] when the two differ in their first dimension or are scalars.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<Self> {
        let batch = inputs.size().first().copied();
        if batch.is_none() || targets.size().first().copied() != batch {
            return Err(TchEngineError::Shape {
                what: "targets",
                expected: "the inputs' first (batch) dimension",
                actual: targets.size(),
            });
        }
        Ok(Self { inputs, targets })
    }

    /// The inputs.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The targets.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// The batch of example `index` alone.
    pub(crate) fn example(&self, index: i64) -> Result<(Tensor, Tensor)> {
        Ok((
            self.inputs.f_narrow(0, index, 1)?,
            self.targets.f_narrow(0, index, 1)?,
        ))
    }
}

impl ExampleBatch for TensorBatch {
    fn num_examples(&self) -> usize {
        self.inputs
            .size()
            .first()
            .map_or(0, |&batch| usize::try_from(batch).unwrap_or(0))
    }
}

/// A data set held as two tensors; batches are gathered by example index.
#[derive(Debug)]
pub struct TensorDataset {
    all: TensorBatch,
    device: Device,
}

impl TensorDataset {
    /// A data set from inputs and targets (example i is row i); batches go to `device`.
    ///
    /// # Errors
    ///
    /// As [`TensorBatch::new`].
    pub fn new(inputs: Tensor, targets: Tensor, device: Device) -> Result<Self> {
        Ok(Self {
            all: TensorBatch::new(inputs, targets)?,
            device,
        })
    }
}

impl ExampleSource for TensorDataset {
    type Batch = TensorBatch;

    fn num_examples(&self) -> usize {
        self.all.num_examples()
    }

    fn gather(&self, indices: &[usize]) -> Result<TensorBatch, EngineError> {
        let size = self.num_examples();
        let rows = indices
            .iter()
            .map(|&index| {
                if index < size {
                    i64::try_from(index).map_err(|_| EngineError::ShapeMismatch {
                        what: "example index",
                        expected: size,
                        actual: index,
                    })
                } else {
                    Err(EngineError::ShapeMismatch {
                        what: "example index",
                        expected: size,
                        actual: index,
                    })
                }
            })
            .collect::<Result<Vec<i64>, EngineError>>()?;
        let gather = || -> Result<TensorBatch> {
            let rows = Tensor::from_slice(&rows).f_to_device(self.all.inputs.device())?;
            let pick = |tensor: &Tensor| -> Result<Tensor> {
                Ok(tensor.f_index_select(0, &rows)?.f_to_device(self.device)?)
            };
            TensorBatch::new(pick(&self.all.inputs)?, pick(&self.all.targets)?)
        };
        Ok(gather()?)
    }
}

/// Converts per-example values `[batch]` to host f64.
pub(crate) fn to_host_f64(values: &Tensor) -> Result<Vec<f64>> {
    let host = values
        .f_to_kind(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_reshape([-1])?;
    Ok(Vec::<f64>::try_from(host)?)
}
