//! The frozen-input-aware linear op against candle's composed `x W^T + b`: values and every
//! gradient, with the input tracked (a variable) and untracked (frozen word vectors).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::max_diff;

#[test]
fn values_and_gradients_match_the_composed_ops() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 3, 7), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (11, 7), &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 11, &dev).unwrap()).unwrap();
    // A loss that weighs every output differently.
    let weights = Tensor::randn(0f32, 1.0, (5, 3, 11), &dev).unwrap();
    let loss = |y: &Tensor| (y * &weights).unwrap().sum_all().unwrap();

    let ours = zoo::ops::linear(&x, &w, &b).unwrap();
    let composed = x.broadcast_matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
    assert_eq!(ours.dims(), [5, 3, 11]);
    assert!(max_diff(&ours, &composed) < 1e-5);
    let (g1, g2) = (loss(&ours).backward().unwrap(), loss(&composed).backward().unwrap());
    for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
        let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
        assert!(d < 1e-4, "grad {name} differs by {d}");
    }

    // An untracked input gets no gradient; the weights' gradients do not change.
    let frozen = x.as_tensor().detach();
    let g3 = loss(&zoo::ops::linear(&frozen, &w, &b).unwrap()).backward().unwrap();
    assert!(g3.get(&frozen).is_none());
    assert!(max_diff(g3.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-4);

    // Off the f32 fast path (f64) the composed form answers.
    let f64_out = zoo::ops::linear(
        &x.to_dtype(DType::F64).unwrap(),
        &w.to_dtype(DType::F64).unwrap(),
        &b.to_dtype(DType::F64).unwrap(),
    )
    .unwrap();
    assert!(max_diff(&f64_out.to_dtype(DType::F32).unwrap(), &composed) < 1e-5);
    assert!(zoo::ops::linear(&x, &w.t().unwrap(), &b).is_err());
}
