//! Optimizers over parameter groups: SGD with momentum, Adam, AdamW (decoupled weight decay).

use crate::TrainerError;
use serde::{Deserialize, Serialize};

/// Which update rule, with its hyperparameters (validated by the constructors of [`Optimizer`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OptimizerKind {
    /// v <- momentum·v + g; θ <- θ - lr·v (PyTorch's convention; momentum 0 is plain SGD).
    Sgd {
        /// Momentum coefficient in [0, 1).
        momentum: f64,
    },
    /// Adam (Kingma and Ba 2015) with bias correction.
    Adam {
        /// First-moment decay in [0, 1).
        beta1: f64,
        /// Second-moment decay in [0, 1).
        beta2: f64,
        /// Denominator offset, positive.
        epsilon: f64,
    },
    /// AdamW (Loshchilov and Hutter 2019): Adam plus θ <- θ - lr·weight_decay·θ, decoupled from
    /// the gradient (so weight decay does not touch the private gradient).
    AdamW {
        /// First-moment decay in [0, 1).
        beta1: f64,
        /// Second-moment decay in [0, 1).
        beta2: f64,
        /// Denominator offset, positive.
        epsilon: f64,
        /// Decoupled weight decay, non-negative.
        weight_decay: f64,
    },
}

/// An optimizer and its state (moment buffers per parameter group and the step count), which
/// checkpoints save and restore.
///
/// # Privacy
///
/// Optimizers only post-process the noisy gradient, so they cost no privacy.
///
/// # Examples
///
/// ```
/// use dp_trainer::Optimizer;
///
/// let mut sgd = Optimizer::sgd(0.9)?;
/// let mut weights = vec![1.0f32, -1.0];
/// sgd.begin_step();
/// sgd.update(0, &mut weights, &[0.5, 0.5], 0.1);
/// assert_eq!(weights, vec![0.95, -1.05]);
/// # Ok::<(), dp_trainer::TrainerError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    kind: OptimizerKind,
    step: u64,
    first_moments: Vec<Vec<f32>>,
    second_moments: Vec<Vec<f32>>,
}

fn check_unit_interval(name: &'static str, value: f64) -> Result<f64, TrainerError> {
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(TrainerError::invalid(name, value, "must be in [0, 1)"))
    }
}

fn check_positive(name: &'static str, value: f64) -> Result<f64, TrainerError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(TrainerError::invalid(
            name,
            value,
            "must be finite and positive",
        ))
    }
}

impl Optimizer {
    fn with_kind(kind: OptimizerKind) -> Self {
        Self {
            kind,
            step: 0,
            first_moments: Vec::new(),
            second_moments: Vec::new(),
        }
    }

    /// SGD with heavy-ball momentum.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] unless `momentum` is in [0, 1).
    pub fn sgd(momentum: f64) -> Result<Self, TrainerError> {
        Ok(Self::with_kind(OptimizerKind::Sgd {
            momentum: check_unit_interval("momentum", momentum)?,
        }))
    }

    /// Adam.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] unless the betas are in [0, 1) and `epsilon` > 0.
    pub fn adam(beta1: f64, beta2: f64, epsilon: f64) -> Result<Self, TrainerError> {
        Ok(Self::with_kind(OptimizerKind::Adam {
            beta1: check_unit_interval("beta1", beta1)?,
            beta2: check_unit_interval("beta2", beta2)?,
            epsilon: check_positive("epsilon", epsilon)?,
        }))
    }

    /// AdamW with decoupled weight decay.
    ///
    /// # Errors
    ///
    /// As [`adam`](Self::adam), and `weight_decay` must be finite and non-negative.
    pub fn adamw(
        beta1: f64,
        beta2: f64,
        epsilon: f64,
        weight_decay: f64,
    ) -> Result<Self, TrainerError> {
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(TrainerError::invalid(
                "weight_decay",
                weight_decay,
                "must be finite and non-negative",
            ));
        }
        Ok(Self::with_kind(OptimizerKind::AdamW {
            beta1: check_unit_interval("beta1", beta1)?,
            beta2: check_unit_interval("beta2", beta2)?,
            epsilon: check_positive("epsilon", epsilon)?,
            weight_decay,
        }))
    }

    /// The update rule.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Number of steps begun.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Starts a step (advances the bias-correction counter); call once before the group updates.
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    fn buffer(buffers: &mut Vec<Vec<f32>>, group: usize, len: usize) -> &mut Vec<f32> {
        if buffers.len() <= group {
            buffers.resize_with(group + 1, Vec::new);
        }
        let buffer = &mut buffers[group];
        if buffer.len() != len {
            *buffer = vec![0.0; len];
        }
        buffer
    }

    /// Updates one parameter group in place from its gradient with learning rate `learning_rate`.
    pub fn update(
        &mut self,
        group: usize,
        values: &mut [f32],
        gradient: &[f32],
        learning_rate: f64,
    ) {
        let lr = learning_rate as f32;
        match self.kind {
            OptimizerKind::Sgd { momentum } => {
                if momentum == 0.0 {
                    values
                        .iter_mut()
                        .zip(gradient)
                        .for_each(|(v, g)| *v -= lr * g);
                    return;
                }
                let velocity = Self::buffer(&mut self.first_moments, group, values.len());
                let momentum = momentum as f32;
                for ((v, b), g) in values.iter_mut().zip(velocity.iter_mut()).zip(gradient) {
                    *b = momentum * *b + g;
                    *v -= lr * *b;
                }
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                self.adam_update(
                    group,
                    values,
                    gradient,
                    learning_rate,
                    (beta1, beta2, epsilon),
                );
            }
            OptimizerKind::AdamW {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => {
                let decay = (1.0 - learning_rate * weight_decay) as f32;
                values.iter_mut().for_each(|v| *v *= decay);
                self.adam_update(
                    group,
                    values,
                    gradient,
                    learning_rate,
                    (beta1, beta2, epsilon),
                );
            }
        }
    }

    fn adam_update(
        &mut self,
        group: usize,
        values: &mut [f32],
        gradient: &[f32],
        learning_rate: f64,
        (beta1, beta2, epsilon): (f64, f64, f64),
    ) {
        let step = self.step.max(1) as i32;
        let correction1 = 1.0 - beta1.powi(step);
        let correction2 = 1.0 - beta2.powi(step);
        let step_size = (learning_rate / correction1) as f32;
        let sqrt_correction2 = correction2.sqrt() as f32;
        let (b1, b2, eps) = (beta1 as f32, beta2 as f32, epsilon as f32);
        Self::buffer(&mut self.first_moments, group, values.len());
        Self::buffer(&mut self.second_moments, group, values.len());
        let m = &mut self.first_moments[group];
        let s = &mut self.second_moments[group];
        for (((v, m), s), &g) in values
            .iter_mut()
            .zip(m.iter_mut())
            .zip(s.iter_mut())
            .zip(gradient)
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *s = b2 * *s + (1.0 - b2) * g * g;
            *v -= step_size * *m / (s.sqrt() / sqrt_correction2 + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values computed by hand from the update rules (PyTorch's conventions).
    #[test]
    fn updates_match_hand_computed_values() {
        let mut sgd = Optimizer::sgd(0.5).unwrap();
        let mut w = vec![1.0f32];
        for _ in 0..2 {
            sgd.begin_step();
            sgd.update(0, &mut w, &[1.0], 0.1);
        }
        // v1 = 1, w = 0.9; v2 = 1.5, w = 0.75.
        assert!((w[0] - 0.75).abs() < 1e-6);

        // Adam's first step moves each weight by lr·sign(g) (up to epsilon).
        let mut adam = Optimizer::adam(0.9, 0.999, 1e-8).unwrap();
        let mut w = vec![1.0f32, 1.0];
        adam.begin_step();
        adam.update(0, &mut w, &[3.0, -0.2], 0.01);
        assert!((w[0] - 0.99).abs() < 1e-6 && (w[1] - 1.01).abs() < 1e-6);

        // AdamW with zero gradient only decays: w·(1 - lr·wd).
        let mut adamw = Optimizer::adamw(0.9, 0.999, 1e-8, 0.1).unwrap();
        let mut w = vec![2.0f32];
        adamw.begin_step();
        adamw.update(0, &mut w, &[0.0], 0.5);
        assert!((w[0] - 1.9).abs() < 1e-6);
    }

    #[test]
    fn invalid_hyperparameters_are_rejected() {
        assert!(Optimizer::sgd(1.0).is_err());
        assert!(Optimizer::adam(0.9, f64::NAN, 1e-8).is_err());
        assert!(Optimizer::adamw(0.9, 0.999, 1e-8, -1.0).is_err());
    }
}
