//! The DNC against the golden values (`../shared/golden/zoo/dnc-tiny`, README there): logits, loss
//! and every gradient; the cumulative-product op against finite differences; paper size.

mod common;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use zoo::ops::exclusive_cumprod;
use zoo::{checkpoint, masked_sigmoid_cross_entropy, Dnc, DncConfig};

/// Runs the golden case through one forward path: the fused sequence op (`Dnc::forward` on the
/// CPU in f32) or the candle-op unroll (`Dnc::forward_composed`).
fn check_dnc_tiny(fused: bool) {
    let dir = golden_dir().join("zoo/dnc-tiny");
    let io = load(dir.join("io.safetensors"));
    let varmap = VarMap::new();
    let cfg = DncConfig { hidden: 10, memory_size: 6, word_size: 4, read_heads: 2, ..DncConfig::default() };
    let dnc = Dnc::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let report = checkpoint::load(&varmap, dir.join("state_dict.safetensors")).unwrap();
    assert_eq!(report.loaded, 24);
    let logits = if fused { dnc.forward(&io["obs"]) } else { dnc.forward_composed(&io["obs"]) }.unwrap();
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
fn dnc_tiny_matches_the_reference() {
    check_dnc_tiny(true);
}

#[test]
fn dnc_tiny_composed_matches_the_reference() {
    check_dnc_tiny(false);
}

/// A DNC whose parameters are the portable generator's values times `scale` (per tensor), in
/// `dtype`.
fn scaled_dnc(cfg: &DncConfig, scale: f32, output_scale: f32, dtype: DType) -> (Dnc, VarMap) {
    let varmap = VarMap::new();
    let dnc = Dnc::new(cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let s = if name.starts_with("output_linear") { output_scale } else { scale };
        let values = portable(name, var.elem_count(), s, 0.0);
        var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
    }
    (dnc, varmap)
}

/// Observations with random bits and a zero-padded tail, targets and a mask: `[T, B, *]`.
fn random_batch(cfg: &DncConfig, t: usize, b: usize) -> (Tensor, Tensor, Tensor) {
    let bits = portable("obs", t * b * cfg.input_size, 1.0, 0.0);
    let obs: Vec<f32> = bits
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (i / cfg.input_size) % b == 1 && i / (b * cfg.input_size) >= t - 2 {
                0.0
            } else {
                (*v > 0.0) as u8 as f32
            }
        })
        .collect();
    let target: Vec<f32> =
        portable("target", t * b * cfg.output_size, 1.0, 0.0).iter().map(|v| (*v > 0.0) as u8 as f32).collect();
    let mask: Vec<f32> = (0..t * b).map(|i| ((i / b) >= t / 2) as u8 as f32).collect();
    let dev = &Device::Cpu;
    (
        Tensor::from_vec(obs, (t, b, cfg.input_size), dev).unwrap(),
        Tensor::from_vec(target, (t, b, cfg.output_size), dev).unwrap(),
        Tensor::from_vec(mask, (t, b), dev).unwrap(),
    )
}

/// The fused f32 op against the composed model in f64 (same weights): logits, loss and every
/// gradient, at the paper's size and at sizes where the weights saturate gates, concentrate the
/// allocation and push logits into the clip.
#[test]
fn fused_sequence_matches_the_composed_model_in_f64() {
    let paper = DncConfig::default();
    let odd =
        DncConfig { input_size: 6, output_size: 5, hidden: 7, memory_size: 5, word_size: 3, read_heads: 3, clip: 20.0 };
    let clipped = DncConfig { clip: 2.0, ..paper.clone() };
    for (name, cfg, scale, out_scale, t, b) in [
        ("paper size", &paper, 0.15, 0.15, 9, 16),
        ("large weights", &paper, 0.8, 0.5, 12, 3),
        ("odd sizes", &odd, 1.5, 1.0, 7, 2),
        ("logits clipped", &clipped, 0.3, 3.0, 9, 4),
    ] {
        let (fused, fused_vars) = scaled_dnc(cfg, scale, out_scale, DType::F32);
        let (exact, exact_vars) = scaled_dnc(cfg, scale, out_scale, DType::F64);
        let (obs, target, mask) = random_batch(cfg, t, b);
        let logits = fused.forward(&obs).unwrap();
        let want = exact.forward(&obs.to_dtype(DType::F64).unwrap()).unwrap();
        let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let mut errs = vec![];
        if let Err(e) = close("logits", &f64_of(&logits), &want, 1e-4, 1e-4) {
            errs.push(e);
        }
        let loss = masked_sigmoid_cross_entropy(&logits, &target, &mask).unwrap();
        let loss_want = masked_sigmoid_cross_entropy(&want, &f64_of(&target), &f64_of(&mask)).unwrap();
        if let Err(e) = close("loss", &f64_of(&loss), &loss_want, 1e-4, 1e-4) {
            errs.push(e);
        }
        let clipped_logits = flat(&want).iter().filter(|v| v.abs() >= cfg.clip).count();
        if name == "logits clipped" {
            assert!(clipped_logits > 0, "the clipped case has no clipped logit");
        }
        let (g, g_want) = (loss.backward().unwrap(), loss_want.backward().unwrap());
        let (vars, vars_want) = (fused_vars.data().lock().unwrap(), exact_vars.data().lock().unwrap());
        for (key, var) in vars.iter() {
            let got = g.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: {key} has no gradient"));
            let want = g_want.get(vars_want[key].as_tensor()).unwrap();
            if let Err(e) = close_scaled(&format!("grad {key}"), &f64_of(got), want, 1e-4, 1e-7) {
                errs.push(e);
            }
        }
        assert!(errs.is_empty(), "{name}: {} mismatches:\n{}", errs.len(), errs.join("\n"));
    }
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

/// Confident logits keep a positive loss in f32 (TensorFlow's log1p), and its gradient is the
/// sigmoid's.
#[test]
fn the_loss_of_confident_logits_is_not_rounded_to_zero() {
    let dev = &Device::Cpu;
    let logits = Var::from_tensor(&Tensor::new(&[[[20f32, -20.0]], [[18.0, -3.0]]], dev).unwrap()).unwrap();
    let target = Tensor::new(&[[[1f32, 0.0]], [[1.0, 1.0]]], dev).unwrap();
    let mask = Tensor::new(&[[1f32], [0.0]], dev).unwrap();
    let loss = masked_sigmoid_cross_entropy(logits.as_tensor(), &target, &mask).unwrap();
    assert_eq!(loss.dtype(), DType::F32);
    let want = 2.0 * (-20f64).exp().ln_1p();
    let got = loss.to_scalar::<f32>().unwrap() as f64;
    assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    let g = loss.backward().unwrap().get(logits.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    let want_g = [s(20.0) - 1.0, s(-20.0), 0.0, 0.0];
    for (a, b) in g.iter().zip(want_g) {
        assert!((*a as f64 - b).abs() < 1e-6 * b.abs().max(1e-9), "{g:?} vs {want_g:?}");
    }
}
