use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_tch::{BookKeeping, DpModel, Loss, TensorBatch, models};
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

fn time<F: FnMut()>(name: &str, mut f: F) {
    for _ in 0..3 {
        f();
    }
    let n = 30;
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name:<30} {:.3} ms",
        start.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    if std::env::args().nth(1).as_deref() == Some("layer") {
        return layer_bench();
    }
    if std::env::args().nth(1).as_deref() == Some("conv") {
        return conv_bench();
    }
    if std::env::args().nth(1).as_deref() == Some("convw") {
        return conv_weighted_bench();
    }
    let cnn = std::env::args().nth(1).is_some();
    let store = nn::VarStore::new(Device::Cpu);
    let module = if cnn {
        models::mnist_cnn(&store.root())?
    } else {
        models::mlp(&store.root(), &[784, 256, 10])?
    };
    let mut model = DpModel::new(&store, module, Loss::CrossEntropy)?;
    let shape: Vec<i64> = if cnn {
        vec![256, 1, 28, 28]
    } else {
        vec![256, 784]
    };
    let batch = TensorBatch::new(
        Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)),
        Tensor::randint(10, [256], (Kind::Int64, Device::Cpu)),
    )?;
    let mut engine = BookKeeping::new();
    time("batch_gradient", || {
        engine.batch_gradient(&mut model, &batch).unwrap();
    });
    time("norms", || {
        engine.norms(&model, &batch).unwrap();
    });
    time("accumulate", || {
        engine
            .accumulate_scaled(&mut model, &ScaleVector::ones(256))
            .unwrap();
    });
    time("noise", || {
        for g in model.gradients_mut() {
            let _ = g.f_add_(&g.randn_like()).unwrap();
        }
    });
    time("forward only", || {
        let _ = model.forward(batch.inputs()).unwrap();
    });
    Ok(())
}

#[allow(dead_code)]
pub fn layer_bench() -> anyhow::Result<()> {
    use dp_engine_tch::{Capture, DpLayer, LinearConfig, linear};
    let store = nn::VarStore::new(Device::Cpu);
    let layer = linear(&store.root(), 784, 256, LinearConfig::default())?;
    let captures = vec![Capture {
        input: Tensor::randn([256, 784], (Kind::Float, Device::Cpu)),
        output_gradient: Tensor::randn([256, 256], (Kind::Float, Device::Cpu)),
    }];
    time("ghost norms", || {
        layer.ghost_norms_squared(&captures).unwrap();
    });
    let a = &captures[0].input;
    time("square sum a", || {
        let _ = a.square().sum_dim_intlist(1, false, None::<Kind>);
    });
    time("a.reshape cat", || {
        let _ = Tensor::cat(&[a.reshape([256, -1, 784])], 1);
    });
    let a3 = a.reshape([256, 1, 784]);
    time("square sum 12", || {
        let _ = a3
            .square()
            .sum_dim_intlist([1, 2].as_slice(), false, None::<Kind>);
    });
    let s = Tensor::ones([256], (Kind::Float, Device::Cpu));
    time("weighted", || {
        layer
            .weighted_gradients(&captures, &[s.shallow_clone(), s.shallow_clone()])
            .unwrap();
    });
    time("plain mm", || {
        let _ = captures[0].output_gradient.tr().mm(a);
    });
    Ok(())
}

#[allow(dead_code)]
pub fn conv_bench() -> anyhow::Result<()> {
    let x = Tensor::randn([256, 1, 28, 28], (Kind::Float, Device::Cpu));
    time("im2col conv1", || {
        let _ = x.im2col([8, 8], [1, 1], [3, 3], [2, 2]);
    });
    let u = x.im2col([8, 8], [1, 1], [3, 3], [2, 2]);
    let g = Tensor::randn([256, 16, 196], (Kind::Float, Device::Cpu));
    let u4 = u.reshape([256, 1, 64, 196]);
    let g4 = g.reshape([256, 1, 16, 196]);
    time("einsum per-sample", || {
        let _ = Tensor::einsum("bgol,bgil->bgoi", &[&g4, &u4], None::<&[i64]>);
    });
    time("bmm per-sample", || {
        let _ = g.bmm(&u.transpose(1, 2));
    });
    time("einsum weighted", || {
        let _ = Tensor::einsum("bgol,bgil->goi", &[&g4, &u4], None::<&[i64]>);
    });
    time("mm weighted", || {
        let _ = g
            .transpose(0, 1)
            .reshape([16, -1])
            .mm(&u.transpose(0, 1).reshape([64, -1]).tr());
    });
    let x2 = Tensor::randn([256, 16, 13, 13], (Kind::Float, Device::Cpu));
    time("im2col conv2", || {
        let _ = x2.im2col([4, 4], [1, 1], [0, 0], [2, 2]);
    });
    let u2 = x2.im2col([4, 4], [1, 1], [0, 0], [2, 2]);
    let ug = u2.reshape([256, 1, 256, 25]);
    time("einsum gram", || {
        let _ = Tensor::einsum("bgil,bgim->bglm", &[&ug, &ug], None::<&[i64]>);
    });
    time("bmm gram", || {
        let _ = u2.transpose(1, 2).bmm(&u2);
    });
    Ok(())
}

#[allow(dead_code)]
pub fn conv_weighted_bench() -> anyhow::Result<()> {
    let x2 = Tensor::randn([256, 16, 13, 13], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([32, 16, 4, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let g = Tensor::randn([256, 32, 5, 5], (Kind::Float, Device::Cpu));
    time("recompute conv2 weighted", || {
        let y = x2.conv2d(&w, None::<&Tensor>, [2, 2], [0, 0], [1, 1], 1);
        let _ = Tensor::run_backward(&[(y * &g).sum(Kind::Float)], &[&w], false, false);
    });
    time("unfold conv2 weighted", || {
        let u = x2
            .im2col([4, 4], [1, 1], [0, 0], [2, 2])
            .reshape([256, 1, 256, 25]);
        let _ = Tensor::einsum(
            "bgol,bgil->goi",
            &[&g.reshape([256, 1, 32, 25]), &u],
            None::<&[i64]>,
        );
    });
    let x = Tensor::randn([256, 1, 28, 28], (Kind::Float, Device::Cpu));
    let g1 = Tensor::randn([256, 16, 14, 14], (Kind::Float, Device::Cpu));
    time("trick per-sample conv1", || {
        // input [Cin, B, H, W], weight [B*Cout, 1, H', W'], groups B, stride=dilation, dilation=stride
        let input = x.transpose(0, 1);
        let weight = g1.reshape([256 * 16, 1, 14, 14]);
        let _ = input.conv2d(&weight, None::<&Tensor>, [1, 1], [3, 3], [2, 2], 256);
    });
    let w1 = Tensor::randn([16, 1, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    time("non-private conv1 fwd+bwd", || {
        let y = x.conv2d(&w1, None::<&Tensor>, [2, 2], [3, 3], [1, 1], 1);
        let _ = Tensor::run_backward(&[(y * &g1).sum(Kind::Float)], &[&w1], false, false);
    });
    Ok(())
}
