//! Proves that libtorch is provisioned, linked and found at run time (rpath), and that the
//! per-sample Linear formula agrees with one autograd backward per example.

use tch::{Device, Kind, Tensor, nn, nn::Module};

/// Relative tolerance for f32 gradients computed two ways.
const RELATIVE_TOLERANCE: f64 = 1e-5;

fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

#[test]
fn linear_per_sample_gradients_match_one_backward_per_example() {
    tch::manual_seed(7);
    let device = device();
    let (batch, time, inputs, outputs) = (5, 3, 4, 2);
    let store = nn::VarStore::new(device);
    let layer = nn::linear(store.root(), inputs, outputs, Default::default());
    let x = Tensor::randn([batch, time, inputs], (Kind::Float, device));

    // Reference: one backward per example.
    let mut reference = Vec::new();
    for i in 0..batch {
        let loss = layer
            .forward(&x.get(i).unsqueeze(0))
            .pow_tensor_scalar(2)
            .sum(Kind::Float);
        let gradients = Tensor::run_backward(&[loss], &[&layer.ws], false, false);
        reference.push(gradients[0].copy());
    }
    let reference = Tensor::stack(&reference, 0);

    // Formula: activations and output gradients of the whole batch, one backward.
    let y = layer.forward(&x);
    let output_gradients = Tensor::run_backward(
        &[y.pow_tensor_scalar(2).sum(Kind::Float)],
        &[&y],
        false,
        false,
    );
    let per_sample =
        dp_engine_tch::linear_per_sample_weight_gradients(&x, &output_gradients[0]).unwrap();

    let error = (&per_sample - &reference).abs().max().double_value(&[]);
    let scale = reference.abs().max().double_value(&[]);
    assert!(
        error <= RELATIVE_TOLERANCE * scale,
        "max error {error} for scale {scale}"
    );
}

#[test]
fn mismatched_shapes_are_an_error() {
    let activations = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
    let output_gradients = Tensor::zeros([2, 5], (Kind::Float, Device::Cpu));
    let result = dp_engine_tch::linear_per_sample_weight_gradients(&activations, &output_gradients);
    assert!(matches!(
        result,
        Err(dp_engine_tch::TchEngineError::Shape { .. })
    ));
}
