//! The model validator and the errors of layers, losses and engines.

use dp_engine::{EngineError, PerSampleGradEngine, ScaleVector};
use dp_engine_tch::{
    AttentionConfig, BookKeeping, ConvConfig, DpModel, DpModule, Function, LinearConfig, Loss,
    RecurrentConfig, Sequential, TchEngineError, TensorBatch, conv2d, group_norm, gru, linear,
    lstm, multi_head_attention, rms_norm, validate,
};
use tch::{Device, Kind, Tensor, nn};

#[test]
fn batch_norm_is_refused_with_group_norm_as_the_fix() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let conv = conv2d(&(&root / "conv"), 1, 4, 3, ConvConfig::default())?;
    // A tch BatchNorm registered in the same store (it would be applied through a closure).
    let _batch_norm = nn::batch_norm2d(&root / "bn", 4, Default::default());
    let error = DpModel::new(&store, Sequential::new().add(conv), Loss::CrossEntropy)
        .expect_err("BatchNorm must be refused");
    match error {
        TchEngineError::UnsupportedLayer { layer, kind, fix } => {
            assert_eq!(layer, "bn");
            assert_eq!(kind, "BatchNorm");
            assert!(fix.contains("GroupNorm"), "fix: {fix}");
        }
        other => panic!("unexpected error {other}"),
    }
    Ok(())
}

#[test]
fn a_parameter_outside_the_dp_layers_is_refused() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let layer = linear(&(&root / "fc"), 3, 2, LinearConfig::default())?;
    let _foreign = nn::linear(&root / "plain", 3, 2, Default::default());
    let result = validate(&store, &layer);
    assert!(
        matches!(&result, Err(TchEngineError::UnsupportedLayer { layer, .. }) if layer.starts_with("plain.")),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn a_model_of_dp_layers_is_accepted() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let module = Sequential::new()
        .add(conv2d(&(&root / "conv"), 2, 4, 3, ConvConfig::default())?)
        .add(group_norm(&(&root / "norm"), 2, 4, Default::default())?)
        .add(Function::Flatten);
    let model = DpModel::new(&store, module, Loss::MeanSquaredError)?;
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv.weight", "conv.bias", "norm.weight", "norm.bias"]
    );
    Ok(())
}

#[test]
fn invalid_layer_configurations_are_errors() {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let grouped = ConvConfig {
        groups: 2,
        ..ConvConfig::default()
    };
    assert!(matches!(
        conv2d(&(&root / "conv"), 3, 4, 3, grouped),
        Err(TchEngineError::InvalidParameter { name: "groups", .. })
    ));
    assert!(matches!(
        linear(&(&root / "fc"), 0, 4, LinearConfig::default()),
        Err(TchEngineError::InvalidParameter {
            name: "in_features",
            ..
        })
    ));
    assert!(matches!(
        group_norm(&(&root / "norm"), 3, 4, Default::default()),
        Err(TchEngineError::InvalidParameter {
            name: "num_groups",
            ..
        })
    ));
    assert!(matches!(
        rms_norm(&(&root / "rms"), Vec::new(), Default::default()),
        Err(TchEngineError::InvalidParameter {
            name: "normalized_shape",
            ..
        })
    ));
    let three_heads = AttentionConfig {
        num_heads: 3,
        causal: false,
        bias: true,
    };
    assert!(matches!(
        multi_head_attention(&(&root / "attention"), 8, three_heads),
        Err(TchEngineError::InvalidParameter {
            name: "num_heads",
            ..
        })
    ));
    assert!(matches!(
        lstm(&(&root / "lstm"), 4, 0, RecurrentConfig::default()),
        Err(TchEngineError::InvalidParameter {
            name: "hidden_size",
            ..
        })
    ));
}

#[test]
fn sequence_layers_refuse_inputs_of_the_wrong_shape() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let root = store.root();
    let flat = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
    let attention = multi_head_attention(
        &(&root / "attention"),
        4,
        AttentionConfig {
            num_heads: 2,
            causal: true,
            bias: true,
        },
    )?;
    assert!(matches!(
        attention.forward(&flat),
        Err(TchEngineError::Shape {
            what: "attention input",
            ..
        })
    ));
    let recurrent = gru(&(&root / "gru"), 4, 3, RecurrentConfig::default())?;
    assert!(matches!(
        recurrent.forward(&flat),
        Err(TchEngineError::Shape {
            what: "recurrent input",
            ..
        })
    ));
    Ok(())
}

#[test]
fn an_out_of_range_label_is_an_invalid_label_error() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let layer = linear(&(&store.root() / "fc"), 3, 2, LinearConfig::default())?;
    let model = DpModel::new(&store, layer, Loss::CrossEntropy)?;
    let batch = TensorBatch::new(
        Tensor::randn([3, 3], (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[0_i64, 5, 1]),
    )?;
    let result = BookKeeping::new().norms(&model, &batch);
    assert_eq!(
        result.map(|_| ()),
        Err(EngineError::InvalidLabel {
            example: 1,
            label: 5,
            num_classes: 2
        })
    );
    // Sequences: -100 (the index libtorch's loss ignores by default) is refused too, and the
    // example holding a bad label is named.
    let sequences = TensorBatch::new(
        Tensor::randn([3, 2, 3], (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[0_i64, 1, 1, 0, 1, -100]).reshape([3, 2]),
    )?;
    let result = BookKeeping::new().norms(&model, &sequences);
    assert_eq!(
        result.map(|_| ()),
        Err(EngineError::InvalidParameter {
            name: "label",
            value: "-100".to_string(),
            reason: "class labels must not be negative",
        })
    );
    let labels = Tensor::from_slice(&[0_i64, 1, 1, 2, 1, 0]).reshape([3, 2]);
    let sequences = TensorBatch::new(Tensor::randn([3, 2, 3], (Kind::Float, Device::Cpu)), labels)?;
    assert_eq!(
        BookKeeping::new().norms(&model, &sequences).map(|_| ()),
        Err(EngineError::InvalidLabel {
            example: 1,
            label: 2,
            num_classes: 2
        })
    );
    Ok(())
}

#[test]
fn per_group_scales_must_match_the_groups() -> anyhow::Result<()> {
    let store = nn::VarStore::new(Device::Cpu);
    let layer = linear(&(&store.root() / "fc"), 3, 2, LinearConfig::default())?;
    let mut model = DpModel::new(&store, layer, Loss::CrossEntropy)?;
    let batch = TensorBatch::new(
        Tensor::randn([2, 3], (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[0_i64, 1]),
    )?;
    let mut engine = BookKeeping::new();
    engine.norms(&model, &batch)?;
    // Two groups (weight, bias); three factors per example is wrong.
    let scales = ScaleVector::per_group(vec![1.0; 6], 3)?;
    assert!(matches!(
        engine.accumulate_scaled(&mut model, &scales),
        Err(EngineError::ShapeMismatch { .. })
    ));
    Ok(())
}

#[test]
fn batch_inputs_and_targets_must_agree_in_size() {
    let result = TensorBatch::new(
        Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
        Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
    );
    assert!(matches!(result, Err(TchEngineError::Shape { .. })));
}
