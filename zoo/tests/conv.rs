//! The CPU convolution op against candle's own `conv2d` (itself checked against PyTorch, see
//! `shared/spec/candle-cpu.md`): outputs, input gradients and weight gradients, for every kind of
//! convolution in the zoo's models.

use candle_core::{Device, Tensor, Var};
use common::max_rel;

mod common;

#[test]
fn outputs_and_both_gradients_match_candle() {
    let dev = Device::Cpu;
    for (xs, o, k, s, p) in common::CONV_EDGE_CASES {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, xs, &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (o, xs.1, k, k), &dev).unwrap()).unwrap();
        let ours = zoo::ops::conv2d(&x, &w, s, p).unwrap();
        let theirs = x.conv2d(&w, p, s, 1, 1).unwrap();
        assert_eq!(ours.dims(), theirs.dims(), "{xs:?} k{k} s{s} p{p}");
        assert!(max_rel(&ours, &theirs) < 1e-5, "forward {xs:?} k{k} s{s} p{p}");
        // A loss weighting every output differently.
        let weights = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
        let g1 = (ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("dx", &x), ("dw", &w)] {
            let d = max_rel(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < 1e-5, "{name} {xs:?} k{k} s{s} p{p}: relative difference {d}");
        }
        // An input that needs no gradient gets none; the weight gradient is unchanged.
        let frozen = x.as_tensor().detach();
        let g3 =
            (zoo::ops::conv2d(&frozen, &w, s, p).unwrap() * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g3.get(&frozen).is_none());
        assert!(max_rel(g3.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-5);
    }
    let x = Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 4, 3, 3), candle_core::DType::F32, &dev).unwrap();
    assert!(zoo::ops::conv2d(&x, &w, 1, 1).is_err(), "channel mismatch");
}
