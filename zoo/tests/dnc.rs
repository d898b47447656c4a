//! The DNC against the golden values (`../shared/golden/zoo/dnc-tiny`, README there): logits, loss
//! and every gradient; the cumulative-product op against finite differences; paper size.

mod common;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use zoo::ops::exclusive_cumprod;
use zoo::{checkpoint, masked_sigmoid_cross_entropy, Dnc, DncConfig};

#[test]
fn dnc_tiny_matches_the_reference() {
    let dir = golden_dir().join("zoo/dnc-tiny");
    let io = load(dir.join("io.safetensors"));
    let varmap = VarMap::new();
    let cfg = DncConfig {
        input_size: 6,
        output_size: 5,
        hidden: 10,
        memory_size: 6,
        word_size: 4,
        read_heads: 2,
        clip: 20.0,
    };
    let dnc = Dnc::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let report = checkpoint::load(&varmap, dir.join("state_dict.safetensors")).unwrap();
    assert_eq!(report.loaded, 24);
    let logits = dnc.forward(&io["obs"]).unwrap();
    let mut errs = vec![];
    if let Err(e) = close("logits", &logits, &io["logits"], 1e-4, 1e-4) {
        errs.push(e);
    }
    let loss = masked_sigmoid_cross_entropy(&logits, &io["target"], &io["mask"]).unwrap();
    if let Err(e) = close("loss", &loss, &io["loss"], 1e-4, 1e-4) {
        errs.push(e);
    }
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let grads = params.grads(&loss.backward().unwrap());
    let want = load(dir.join("grads.safetensors"));
    assert_eq!(want.len(), params.len());
    for (name, g) in params.names().iter().zip(&grads) {
        // The README's DNC tolerance: 2.4e-4 relative is float32 noise in the tiny strength gradients.
        match g {
            Some(g) => {
                if let Err(e) = close_scaled(&format!("grad {name}"), g, &want[name], 1e-3, 1e-7) {
                    errs.push(e)
                }
            }
            None => errs.push(format!("{name} has no gradient")),
        }
    }
    assert!(errs.is_empty(), "{} mismatches:\n{}", errs.len(), errs.join("\n"));
}

#[test]
fn exclusive_cumprod_values_and_gradient() {
    let x = Tensor::new(&[[0.5f64, 2.0, -1.5, 0.0, 3.0], [1.0, 0.25, 0.8, 1.2, -0.7]], &Device::Cpu).unwrap();
    let y = exclusive_cumprod(&x).unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(y[0], [1.0, 0.5, 1.0, -1.5, 0.0]);
    assert_eq!(y[1], [1.0, 1.0, 0.25, 0.2, 0.24]);
    let weights = Tensor::new(&[[0.3f64, -1.0, 2.0, 0.7, 1.1], [0.9, 0.1, -0.4, 1.3, 0.5]], &Device::Cpu).unwrap();
    let v = Var::from_tensor(&x).unwrap();
    let f = |t: &Tensor| (exclusive_cumprod(t).unwrap() * &weights).unwrap().sum_all().unwrap();
    let g = f(v.as_tensor()).backward().unwrap().get(v.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
    let base = x.to_vec2::<f64>().unwrap();
    for r in 0..2 {
        for c in 0..5 {
            let shifted = |d: f64| {
                let mut b = base.clone();
                b[r][c] += d;
                f(&Tensor::new(b, &Device::Cpu).unwrap()).to_scalar::<f64>().unwrap()
            };
            let fd = (shifted(1e-6) - shifted(-1e-6)) / 2e-6;
            assert!((fd - g[r][c]).abs() < 1e-6, "({r}, {c}): finite difference {fd}, backward {}", g[r][c]);
        }
    }
}

#[test]
fn paper_size_matches_the_manifest() {
    let varmap = VarMap::new();
    Dnc::new(&DncConfig::default(), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let (mut keys, num_params) = manifest("dnc-repeat-copy");
    keys.sort();
    let ours: Vec<(String, Vec<usize>)> =
        checkpoint::state_dict(&varmap).unwrap().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
    assert_eq!(ours, keys);
    assert_eq!(num_params, 43_980);
    assert_eq!(ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap().elem_count(), num_params);
}
