//! One optimizer step on a WRN-40-4-sized parameter set (8,949,210 parameters with 10 classes, in
//! the model's real tensor shapes), f32 on the CPU: SGD (Nesterov + weight decay, the paper's
//! setting; and plain momentum), Adam, ALI-G with momentum, without and with an active l2-ball
//! projection; the fused CPU kernels and, for comparison, candle tensor ops.
//!
//! `cargo bench -p alig --bench step`; `bench/optim_step.py` runs it next to PyTorch and prints the
//! table of the README.

use alig::{Hyper, Kernels, Optimizer, ParamSet};
use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};

mod shapes;
use shapes::wrn_shapes;

struct Setup {
    params: ParamSet,
    grads: Vec<Option<Tensor>>,
    loss: Tensor,
}

fn setup(kernels: Kernels) -> Setup {
    let dev = Device::Cpu;
    let shapes = wrn_shapes(40, 4, 10);
    let vars: Vec<(String, Var)> = shapes
        .iter()
        .map(|(n, s)| (n.clone(), Var::from_tensor(&(Tensor::randn(0f32, 0.05, s.as_slice(), &dev).unwrap())).unwrap()))
        .collect();
    let params = ParamSet::new(vars).unwrap().with_kernels(kernels);
    assert_eq!(params.elem_count(), 8_949_210, "WRN-40-4 (10 classes) has 8,949,210 parameters");
    let grads = params.vars().iter().map(|v| Some(Tensor::randn(0f32, 1e-3, v.shape(), &dev).unwrap())).collect();
    let loss = Tensor::new(2.3f32, &dev).unwrap();
    Setup { params, grads, loss }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("step-wrn-40-4");
    group.sample_size(20);
    let momentum = Hyper { lr: Some(0.1), momentum: 0.9, ..Hyper::default() };
    let optimizers = [
        ("sgd-nesterov-wd", "sgd", Hyper { weight_decay: 5e-4, ..momentum.clone() }),
        ("sgd-momentum", "sgd", momentum.clone()),
        ("adam", "adam", Hyper { lr: Some(1e-3), ..Hyper::default() }),
        ("alig", "alig", momentum.clone()),
        ("alig-proj", "alig", Hyper { max_norm: Some(50.0), ..momentum }),
    ];
    // Each on the fused CPU kernels, then on plain tensor ops.
    let cases = [(Kernels::Auto, ""), (Kernels::Tensor, "-tensor-ops")].into_iter().flat_map(|(kernels, suffix)| {
        optimizers.clone().map(|(id, name, hyper)| (format!("{id}{suffix}"), name, hyper, kernels))
    });
    for (id, name, hyper, kernels) in cases {
        let s = setup(kernels);
        let mut opt: Box<dyn Optimizer> = alig::registry::build(name, s.params.clone(), &hyper).unwrap();
        group.bench_function(&id, |b| {
            b.iter(|| {
                let report = opt.step_with(&s.loss, &s.grads).unwrap();
                // ALI-G's projection must actually bind in the "proj" cases (norm ~ 150 > 50).
                std::hint::black_box(report);
            })
        });
        if let Some(r) = hyper.max_norm {
            let norm = s.params.sq_norm().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap().sqrt();
            assert!((norm - r).abs() < 1e-3 * r, "{id}: the projection did not bind (norm {norm})");
        }
    }
    let s = setup(Kernels::Auto);
    group.bench_function("grad-sq-norm", |b| b.iter(|| alig::grad_sq_norm(&s.grads, Kernels::Auto).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
