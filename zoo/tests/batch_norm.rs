//! The fused training BatchNorm against candle-nn's composed one (checked against PyTorch in
//! `shared/spec/candle-cpu.md`): output, the three gradients and the running statistics.
//! Also with the ReLU fused in. (One test in this binary: it flips the process-wide custom-op
//! switch.)

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::max_rel;
use zoo::bn::BatchNorm2d;

mod common;

#[test]
fn fused_training_batch_norm_matches_candle_nn() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev).unwrap().affine(3.0, 1.5).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev).unwrap();
    let run = |fused: bool, relu: bool| {
        zoo::ops::set_custom_ops(fused);
        let varmap = VarMap::new();
        let bn = BatchNorm2d::new(4, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        for (k, v) in varmap.data().lock().unwrap().iter() {
            let t = match k.as_str() {
                "weight" => Tensor::new(&[0.8f32, 1.1, 1.3, 0.9], &dev).unwrap(),
                "bias" => Tensor::new(&[0.1f32, -0.2, 0.05, 0.0], &dev).unwrap(),
                "running_mean" => Tensor::new(&[0.05f32, -0.1, 0.0, 0.02], &dev).unwrap(),
                "running_var" => Tensor::new(&[1.2f32, 0.9, 1.0, 1.1], &dev).unwrap(),
                _ => continue,
            };
            v.set(&t).unwrap();
        }
        let y = if relu { bn.forward_relu_t(&x, true) } else { bn.forward_t(&x, true) }.unwrap();
        let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let data = varmap.data().lock().unwrap();
        let get = |k: &str| data[k].as_tensor().clone();
        let g = |k: &str| grads.get(data[k].as_tensor()).unwrap().clone();
        (y, grads.get(&x).unwrap().clone(), g("weight"), g("bias"), get("running_mean"), get("running_var"))
    };
    // Plain, and with the ReLU fused in (composed: candle-nn's BatchNorm, then candle's relu).
    for relu in [false, true] {
        let fused = run(true, relu);
        let composed = run(false, relu);
        zoo::ops::set_custom_ops(true);
        for (name, a, b, tol) in [
            ("y", &fused.0, &composed.0, 1e-5),
            ("dx", &fused.1, &composed.1, 1e-4),
            ("dweight", &fused.2, &composed.2, 1e-5),
            ("dbias", &fused.3, &composed.3, 1e-5),
            ("running_mean", &fused.4, &composed.4, 1e-5),
            ("running_var", &fused.5, &composed.5, 1e-5),
        ] {
            let d = max_rel(a, b);
            assert!(d < tol, "relu {relu}, {name}: relative difference {d}");
        }
        if relu {
            let zeros = fused.0.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().filter(|v| **v == 0.0).count();
            assert!(zeros > 0, "the ReLU clamps some outputs");
        }
    }
}
