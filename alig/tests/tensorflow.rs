//! The DNC experiment's TensorFlow baselines against scalar re-statements of TensorFlow 1's update
//! rules (`ApplyRMSProp`, `ApplyMomentum`): three steps on a linear loss, in f64.

use std::collections::HashMap;

use alig::{Momentum, MomentumConfig, Optimizer, ParamSet, Rmsprop, RmspropConfig};
use candle_core::{DType, Device, Tensor, Var};

const W0: [f64; 3] = [1.0, -2.0, 0.5];
const G: [[f64; 3]; 3] = [[0.5, -1.0, 0.0], [0.2, 0.3, -0.7], [-0.4, 0.1, 1.5]];

fn run(mut build: impl FnMut(ParamSet) -> Box<dyn Optimizer>) -> Vec<f64> {
    let w = Var::from_tensor(&Tensor::new(&W0, &Device::Cpu).unwrap()).unwrap();
    let params = ParamSet::new([("w".to_string(), w.clone())]).unwrap();
    let mut opt = build(params);
    let loss = Tensor::new(0f64, &Device::Cpu).unwrap();
    for g in G {
        opt.step_with(&loss, &[Some(Tensor::new(&g, &Device::Cpu).unwrap())]).unwrap();
    }
    // The state round-trips too.
    let state: HashMap<String, Tensor> = opt.state().unwrap().into_iter().collect();
    opt.load_state(&state).unwrap();
    assert_eq!(w.dtype(), DType::F64);
    w.as_tensor().to_vec1::<f64>().unwrap()
}

fn close(got: &[f64], want: &[f64]) {
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{got:?} vs {want:?}");
    }
}

#[test]
fn rmsprop_is_tensorflow_1s() {
    let (lr, rho, mu, eps) = (0.1, 0.9, 0.5, 1e-10);
    let mut want = W0.to_vec();
    let (mut ms, mut mom) = ([1.0f64; 3], [0.0f64; 3]);
    for g in G {
        for k in 0..3 {
            ms[k] = rho * ms[k] + (1.0 - rho) * g[k] * g[k];
            mom[k] = mu * mom[k] + lr * g[k] / (ms[k] + eps).sqrt();
            want[k] -= mom[k];
        }
    }
    let cfg = RmspropConfig { lr, decay: rho, momentum: mu, eps };
    close(&run(|p| Box::new(Rmsprop::new(p, cfg.clone()).unwrap())), &want);
}

#[test]
fn momentum_is_tensorflow_1s_heavy_ball() {
    let (lr, mu) = (0.1, 0.9);
    let mut want = W0.to_vec();
    let mut acc = [0.0f64; 3];
    for g in G {
        for k in 0..3 {
            acc[k] = mu * acc[k] + g[k];
            want[k] -= lr * acc[k];
        }
    }
    close(&run(|p| Box::new(Momentum::new(p, MomentumConfig { lr, momentum: mu }).unwrap())), &want);
}

#[test]
fn adagrad_with_an_initial_accumulator_is_tensorflow_1s() {
    // ApplyAdagrad: accum += g^2; w -= lr g / sqrt(accum), accum starting at 0.1 (no epsilon).
    let lr = 0.3;
    let mut want = W0.to_vec();
    let mut acc = [0.1f64; 3];
    for g in G {
        for k in 0..3 {
            acc[k] += g[k] * g[k];
            want[k] -= lr * g[k] / acc[k].sqrt();
        }
    }
    let hyper = alig::Hyper { lr: Some(lr), eps: Some(0.0), initial_accumulator: Some(0.1), ..Default::default() };
    close(&run(|p| alig::registry::build("adagrad", p, &hyper).unwrap()), &want);
}

/// The DNC's ALI-G runs use `eps = 0`: a zero gradient (every logit beyond the clip) must not turn
/// the weights into NaN, with or without a maximal learning rate.
#[test]
fn alig_without_eps_survives_a_zero_gradient() {
    for max_lr in [Some(1e7), None] {
        for loss in [0.0, 0.5] {
            let w = Var::from_tensor(&Tensor::new(&W0, &Device::Cpu).unwrap()).unwrap();
            let params = ParamSet::new([("w".to_string(), w.clone())]).unwrap();
            let hyper = alig::Hyper { lr: max_lr, eps: Some(0.0), ..Default::default() };
            let mut opt = alig::registry::build("alig", params, &hyper).unwrap();
            let zero = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
            let report = opt.step_with(&Tensor::new(loss, &Device::Cpu).unwrap(), &[Some(zero)]).unwrap();
            assert_eq!(report.step_size.unwrap().to_f64().unwrap(), 0.0, "{max_lr:?}, loss {loss}");
            assert_eq!(w.as_tensor().to_vec1::<f64>().unwrap(), W0.to_vec(), "{max_lr:?}, loss {loss}");
            // A real gradient still gets loss / |g|^2.
            let g = Tensor::new(&[0.5f64, 0.0, 0.0], &Device::Cpu).unwrap();
            let report = opt.step_with(&Tensor::new(0.5f64, &Device::Cpu).unwrap(), &[Some(g)]).unwrap();
            assert_eq!(report.step_size.unwrap().to_f64().unwrap(), 2.0);
        }
    }
}
