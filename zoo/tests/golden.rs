//! The image models against the PyTorch reference: `../shared/golden/zoo/{wrn-16-2,
//! densenet-bc-16-8,resnet18}` (README there). Eval logits and loss (running statistics unchanged),
//! train logits and loss, the gradient of every parameter, and the BatchNorm running statistics
//! after one train-mode forward, within the README's CPU f32 tolerances. With the feature
//! `onednn`, WRN-16-2's 64-channel layers compute with Winograd's algorithm where the library has
//! it (the default there for layers that large; ResNet-18's are too small at this batch and size),
//! and the case checks that it ran.

mod common;

use std::collections::HashMap;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use common::*;
use zoo::{checkpoint, registry, ModelArgs};

struct Errors(Vec<String>);

impl Errors {
    fn check(&mut self, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(e)
        }
    }
}

fn snapshot(varmap: &VarMap) -> Vec<(String, Vec<f64>)> {
    checkpoint::state_dict(varmap).unwrap().into_iter().map(|(k, t)| (k, flat(&t))).collect()
}

/// Forward in both modes, backward, BN statistics; gradients through `check_grad(name, grad)`.
fn check_case(
    case: &str,
    varmap: &VarMap,
    model: &dyn ModuleT,
    check_grad: &dyn Fn(&str, &Tensor) -> Result<(), String>,
) {
    let dir = golden_dir().join("zoo").join(case);
    let io = load(dir.join("io.safetensors"));
    let labels = io["labels"].to_dtype(DType::U32).unwrap();
    let mut errs = Errors(vec![]);
    let before = snapshot(varmap);

    let logits = model.forward_t(&io["input"], false).unwrap();
    errs.check(close("logits_eval", &logits, &io["logits_eval"], 1e-4, 1e-4));
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    errs.check(close("loss_eval", &loss, &io["loss_eval"], 1e-4, 1e-4));
    assert_eq!(snapshot(varmap), before, "{case}: eval mode changed the state");

    let logits = model.forward_t(&io["input"], true).unwrap();
    errs.check(close("logits_train", &logits, &io["logits_train"], 1e-4, 1e-4));
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    errs.check(close("loss_train", &loss, &io["loss_train"], 1e-4, 1e-4));
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let grads = params.grads(&loss.backward().unwrap());
    for (name, g) in params.names().iter().zip(&grads) {
        match g {
            Some(g) => errs.check(check_grad(name, g)),
            None => errs.0.push(format!("{name} has no gradient")),
        }
    }

    let now: HashMap<String, Tensor> = checkpoint::state_dict(varmap).unwrap().into_iter().collect();
    let bn = load(dir.join("bn_after_train_forward.safetensors"));
    assert!(!bn.is_empty());
    for (k, want) in &bn {
        if k.ends_with("num_batches_tracked") {
            errs.check((flat(&now[k]) == flat(want)).then_some(()).ok_or(format!(
                "{k}: {:?}, expected {:?}",
                flat(&now[k]),
                flat(want)
            )));
        } else {
            errs.check(close(k, &now[k], want, 1e-5, 1e-5));
        }
    }
    assert!(errs.0.is_empty(), "{case}: {} mismatches:\n{}", errs.0.len(), errs.0.join("\n"));
}

/// A case with a stored state dict and full gradients.
fn stored_case(case: &str, model: &str, args: ModelArgs) {
    let varmap = VarMap::new();
    let m = registry::find(model)
        .unwrap()
        .build(&args, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap()
        .into_image()
        .unwrap();
    let file = golden_dir().join("zoo").join(case).join("state_dict.safetensors");
    let report = checkpoint::load(&varmap, &file).unwrap();
    assert_eq!(report.loaded, load(file).len(), "{report:?}");
    let want = load(golden_dir().join("zoo").join(case).join("grads.safetensors"));
    assert_eq!(want.len(), ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap().len());
    check_case(case, &varmap, m.as_ref(), &|name, g| close_scaled(&format!("grad {name}"), g, &want[name], 1e-3, 1e-7));
}

/// Runs `check`; where the convolutions run through oneDNN with Winograd's algorithm on (the
/// custom ops on, `ZOO_WINOGRAD` not 0) and the library has it, fails unless some layer used it.
fn counting_winograd(case: &str, check: impl FnOnce()) {
    #[cfg(feature = "onednn")]
    {
        use zoo::ops::{custom_ops, onednn};
        let before = onednn::winograd_runs();
        check();
        if custom_ops() && onednn::onednn() && onednn::winograd() && onednn::winograd_available() {
            assert!(onednn::winograd_runs() > before, "{case}: no convolution ran with Winograd's algorithm");
        }
    }
    #[cfg(not(feature = "onednn"))]
    {
        let _ = case;
        check();
    }
}

#[test]
fn wrn_16_2() {
    counting_winograd("wrn-16-2", || {
        stored_case(
            "wrn-16-2",
            "wrn",
            ModelArgs { depth: Some(16), width: Some(2), dropout: Some(0.0), ..ModelArgs::classes(10) },
        )
    });
}

#[test]
fn densenet_bc_16_8() {
    stored_case(
        "densenet-bc-16-8",
        "densenet",
        ModelArgs { depth: Some(16), growth: Some(8), ..ModelArgs::classes(10) },
    );
}

/// ResNet-18 (torchvision, 10 classes, 32x32 input) with the README's portable weights; the stored
/// gradients are complete for the small parameters and sampled (plus sum, norm, max) for the rest.
#[test]
fn resnet18() {
    let dir = golden_dir().join("zoo/resnet18");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let varmap = VarMap::new();
    let model = registry::find("resnet18")
        .unwrap()
        .build(&ModelArgs::classes(10), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
        .unwrap()
        .into_image()
        .unwrap();
    let io = load(dir.join("io.safetensors"));
    {
        let vars = varmap.data().lock().unwrap();
        for r in meta["init_recipe"].as_array().unwrap() {
            let key = r["key"].as_str().unwrap();
            let shape: Vec<usize> =
                r["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            let scale = f32::from_bits(u32::from_str_radix(r["scale_f32_hex"].as_str().unwrap(), 16).unwrap());
            let v = portable(key, shape.iter().product(), scale, r["offset"].as_f64().unwrap() as f32);
            let sum: f64 = v.iter().map(|&x| x as f64).sum();
            // JSON holds the f32 values as decimals: compare as f32, bit for bit.
            let first4: Vec<f32> = r["first4"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            assert_eq!(v[..4], first4[..], "{key}: generator is not bit-exact");
            assert!((sum - r["sum_f64"].as_f64().unwrap()).abs() <= 1e-9 * (1.0 + sum.abs()), "{key}: sum {sum}");
            let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
            match vars.get(key) {
                Some(var) => var.set(&t).unwrap(),
                None if key == "input" => assert_eq!(flat(&t), flat(&io["input"])),
                None => panic!("the model has no {key}"),
            }
        }
    }
    let initial = load(dir.join("initial_buffers.safetensors"));
    for (k, t) in checkpoint::state_dict(&varmap).unwrap() {
        if let Some(want) = initial.get(&k) {
            assert_eq!(flat(&t), flat(want), "{k}");
        }
    }
    let small = load(dir.join("grads_small.safetensors"));
    let samples = load(dir.join("grad_samples.safetensors"));
    let stats = &meta["grad_stats"];
    check_case("resnet18", &varmap, model.as_ref(), &|name, g| {
        let st = &stats[name];
        let max_abs = st["max_abs"].as_f64().unwrap();
        let v = flat(g);
        let l2 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let want_l2 = st["l2_f64"].as_f64().unwrap();
        if (l2 - want_l2).abs() > 1e-3 * want_l2 + 1e-7 {
            return Err(format!("grad {name}: l2 {l2}, expected {want_l2}"));
        }
        let step = st["sample_step"].as_u64().unwrap() as usize;
        let got: Vec<f64> =
            v.iter().step_by(step).take(st["sample_count"].as_u64().unwrap() as usize).copied().collect();
        let want = flat(&samples[name]);
        let worst = got.iter().zip(&want).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        if got.len() != want.len() || worst > 1e-3 * max_abs + 1e-7 {
            return Err(format!("grad {name}: sampled max abs diff {worst:e} (max |g| {max_abs:e})"));
        }
        match small.get(name) {
            Some(w) => close_scaled(&format!("grad {name}"), g, w, 1e-3, 1e-7),
            None => Ok(()),
        }
    });
}
