//! Table-driven tests over the model registry, and the paper-size manifests.

mod common;

use std::collections::HashMap;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use zoo::registry::{Model, ModelKind};
use zoo::{checkpoint, registry, ModelArgs, MODELS};

/// Small versions of every model, for fast tests.
fn tiny(name: &str) -> ModelArgs {
    match name {
        "wrn" => ModelArgs { depth: Some(10), width: Some(1), ..ModelArgs::classes(5) },
        "densenet" => ModelArgs { depth: Some(10), growth: Some(4), ..ModelArgs::classes(5) },
        "nli" => ModelArgs { hidden: Some(4), input: Some(5), ..ModelArgs::classes(3) },
        "dnc" => ModelArgs { hidden: Some(8), input: Some(6), ..ModelArgs::classes(5) },
        _ => ModelArgs::classes(5),
    }
}

fn batch() -> (Tensor, Tensor) {
    let x = Tensor::from_vec(portable("batch", 2 * 3 * 32 * 32, 1.0, 0.0), (2, 3, 32, 32), &Device::Cpu).unwrap();
    (x, Tensor::new(&[1u32, 3], &Device::Cpu).unwrap())
}

fn seeded_model(name: &str, seed: u64) -> (VarMap, Model) {
    let varmap = VarMap::new();
    let spec = registry::find(name).unwrap();
    let model = spec.build_seeded(&tiny(name), &varmap, DType::F32, &Device::Cpu, seed).unwrap();
    (varmap, model)
}

fn seeded(name: &str, seed: u64) -> (VarMap, registry::DynModel) {
    let (varmap, model) = seeded_model(name, seed);
    (varmap, model.into_image().unwrap())
}

fn image_models() -> impl Iterator<Item = &'static registry::ModelSpec> {
    MODELS.iter().filter(|m| m.kind == ModelKind::Images)
}

fn running_stats(varmap: &VarMap) -> Vec<(String, Vec<f64>)> {
    let mut v: Vec<(String, Vec<f64>)> = checkpoint::state_dict(varmap)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| alig::is_buffer_name(k))
        .map(|(k, t)| (k, flat(&t)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn every_parameter_gets_a_gradient_and_train_differs_from_eval() {
    let (x, y) = batch();
    for spec in image_models() {
        let (varmap, model) = seeded(spec.name, 1);
        let stats0 = running_stats(&varmap);
        let eval = model.forward_t(&x, false).unwrap();
        assert_eq!(running_stats(&varmap), stats0, "{}: eval mode moved running statistics", spec.name);
        let train = model.forward_t(&x, true).unwrap();
        assert_eq!(train.dims(), [2, 5]);
        assert!(close("train vs eval", &train, &eval, 1e-4, 0.0).is_err(), "{}: train and eval agree", spec.name);
        let stats1 = running_stats(&varmap);
        for ((k, a), (_, b)) in stats0.iter().zip(&stats1) {
            assert_ne!(a, b, "{}: train mode left {k} unchanged", spec.name);
        }
        let loss = candle_nn::loss::cross_entropy(&train, &y).unwrap();
        let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
        let grads = params.grads(&loss.backward().unwrap());
        for (name, g) in params.names().iter().zip(&grads) {
            let g = g.as_ref().unwrap_or_else(|| panic!("{}: {name} has no gradient", spec.name));
            assert!(flat(g).iter().any(|v| *v != 0.0), "{}: the gradient of {name} is zero", spec.name);
        }
    }
}

#[test]
fn a_seed_fixes_the_initial_weights() {
    for spec in MODELS {
        let (a, b, c) = (seeded_model(spec.name, 5).0, seeded_model(spec.name, 5).0, seeded_model(spec.name, 6).0);
        let (sa, sb, sc) = (
            checkpoint::state_dict(&a).unwrap(),
            checkpoint::state_dict(&b).unwrap(),
            checkpoint::state_dict(&c).unwrap(),
        );
        for (((k, x), (_, y)), (_, z)) in sa.iter().zip(&sb).zip(&sc) {
            assert_eq!(flat(x), flat(y), "{}: {k} differs under one seed", spec.name);
            if k.ends_with("conv1.weight") || k.ends_with("weight_ih_l0") || k == "controller.weight" {
                assert_ne!(flat(x), flat(z), "{}: {k} equal under two seeds", spec.name);
            }
        }
    }
}

#[test]
fn checkpoints_round_trip_and_bad_ones_name_the_key() {
    let (x, _) = batch();
    let dir = std::env::temp_dir().join(format!("zoo-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for spec in image_models() {
        let (varmap, model) = seeded(spec.name, 2);
        model.forward_t(&x, true).unwrap(); // move the running statistics away from their defaults
        let path = dir.join(format!("{}.safetensors", spec.name));
        checkpoint::save(&varmap, &path).unwrap();
        let (varmap2, model2) = seeded(spec.name, 3);
        let report = checkpoint::load(&varmap2, &path).unwrap();
        assert_eq!(report.loaded, varmap.data().lock().unwrap().len());
        assert_eq!(
            flat(&model.forward_t(&x, false).unwrap()),
            flat(&model2.forward_t(&x, false).unwrap()),
            "{}",
            spec.name
        );

        let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        tensors.remove("conv1.weight");
        tensors.insert("head.extra".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
        tensors.insert("fc.weight".into(), Tensor::zeros((7, 7), DType::F32, &Device::Cpu).unwrap());
        let err = checkpoint::load_tensors(&varmap2, tensors).unwrap_err().to_string();
        assert!(err.contains("missing key \"conv1.weight\""), "{}: {err}", spec.name);
        assert!(err.contains("unexpected key \"head.extra\""), "{}: {err}", spec.name);
        assert!(err.contains("shape mismatch for \"fc.weight\""), "{}: {err}", spec.name);
        let err = checkpoint::load(&varmap2, dir.join("absent.safetensors")).unwrap_err().to_string();
        assert!(err.contains("absent.safetensors"), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn data_parallel_prefixes_absent_counters_and_other_dtypes_load() {
    let (varmap, _) = seeded("wrn", 4);
    let state = checkpoint::state_dict(&varmap).unwrap();
    let dp: HashMap<String, Tensor> = state
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (format!("module.{k}"), t.to_dtype(DType::F64).unwrap()))
        .collect();
    let (varmap2, _) = seeded("wrn", 9);
    let report = checkpoint::load_tensors(&varmap2, dp).unwrap();
    assert!(
        report.stripped_module_prefix && report.missing_num_batches_tracked > 0 && report.converted_dtype > 0,
        "{report:?}"
    );
    for ((k, a), (_, b)) in state.iter().zip(checkpoint::state_dict(&varmap2).unwrap()) {
        assert_eq!(flat(a), flat(&b), "{k}");
    }
}

#[test]
fn paper_sizes_match_the_manifests() {
    let wrn = |depth, width, classes, dropout| ModelArgs {
        depth: Some(depth),
        width: Some(width),
        dropout: Some(dropout),
        ..ModelArgs::classes(classes)
    };
    let dn = |classes| ModelArgs { depth: Some(40), growth: Some(40), ..ModelArgs::classes(classes) };
    for (manifest_name, model, args) in [
        ("wrn-40-4-c10", "wrn", ModelArgs::classes(10)),
        ("wrn-40-4-c100", "wrn", wrn(40, 4, 100, 0.0)),
        ("wrn-16-4-svhn-drop0.4", "wrn", wrn(16, 4, 10, 0.4)),
        ("densenet-bc-40-40-c10", "densenet", ModelArgs::classes(10)),
        ("densenet-bc-40-40-c100", "densenet", dn(100)),
        ("resnet18-in1k", "resnet18", ModelArgs::classes(1000)),
    ] {
        let varmap = VarMap::new();
        registry::find(model)
            .unwrap()
            .build(&args, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
            .unwrap();
        let (mut keys, num_params) = manifest(manifest_name);
        keys.sort();
        let ours: Vec<(String, Vec<usize>)> =
            checkpoint::state_dict(&varmap).unwrap().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
        assert_eq!(ours, keys, "{manifest_name}: state-dict keys and shapes");
        let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
        assert_eq!(params.elem_count(), num_params, "{manifest_name}: trainable parameters");
    }
}

#[test]
fn the_seeded_init_follows_the_reference_distributions() {
    let (varmap, _) = seeded("wrn", 7);
    let state: HashMap<String, Vec<f64>> =
        checkpoint::state_dict(&varmap).unwrap().into_iter().map(|(k, t)| (k, flat(&t))).collect();
    // Kaiming fan-out: std sqrt(2 / (16 * 9)) for block1's 16 -> 16 3x3 convolutions.
    let w = &state["block1.layer.0.conv1.weight"];
    let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std / (2.0f64 / 144.0).sqrt() - 1.0).abs() < 0.1, "conv std {std}");
    assert!(state["bn1.weight"].iter().all(|&x| x == 1.0) && state["bn1.bias"].iter().all(|&x| x == 0.0));
    assert!(state["fc.weight"].iter().all(|x| x.abs() <= 0.125) && state["fc.weight"].iter().any(|x| x.abs() > 0.06));
    assert!(state["fc.bias"].iter().all(|&x| x == 0.0));
    assert!(state["bn1.running_var"].iter().all(|&x| x == 1.0) && state["bn1.running_mean"].iter().all(|&x| x == 0.0));
    let (resnet, _) = seeded("resnet18", 7);
    let fc_bias = flat(resnet.data().lock().unwrap()["fc.bias"].as_tensor());
    assert!(
        fc_bias.iter().all(|x| x.abs() <= 1.0 / 512f64.sqrt()) && fc_bias.iter().any(|&x| x != 0.0),
        "torchvision's fc bias"
    );
}

#[test]
fn bad_shapes_and_names_are_errors() {
    let vb = || VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    let err = |name: &str, args: ModelArgs| {
        registry::find(name).unwrap().build(&args, vb()).err().expect("must fail").to_string()
    };
    assert!(err("wrn", ModelArgs { depth: Some(12), ..ModelArgs::classes(10) }).contains("6n + 4"));
    assert!(err("densenet", ModelArgs { depth: Some(41), ..ModelArgs::classes(10) }).contains("depth"));
    assert!(err("resnet18", ModelArgs::classes(0)).contains("num_classes"));
    let unknown = registry::find("vgg16").err().unwrap().to_string();
    assert!(unknown.contains("vgg16") && unknown.contains("wrn") && unknown.contains("resnet18"), "{unknown}");
}

/// The sequence models of the registry: every parameter gets a non-zero gradient.
#[test]
fn sequence_models_give_every_parameter_a_gradient() {
    let dev = Device::Cpu;
    let (varmap, model) = seeded_model("nli", 1);
    let Model::Pairs(nli) = model else { panic!("nli") };
    let s1 = Tensor::from_vec(portable("s1", 6 * 2 * 5, 1.0, 0.0), (6, 2, 5), &dev).unwrap();
    let s2 = Tensor::from_vec(portable("s2", 4 * 2 * 5, 1.0, 0.0), (4, 2, 5), &dev).unwrap();
    let logits = nli.forward(&s1, &[6, 3], &s2, &[2, 4]).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(&[0u32, 2], &dev).unwrap()).unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    for (name, g) in params.names().iter().zip(params.grads(&loss.backward().unwrap())) {
        assert!(g.is_some_and(|g| flat(&g).iter().any(|v| *v != 0.0)), "nli: {name}");
    }

    let (varmap, model) = seeded_model("dnc", 1);
    let Model::Sequences(dnc) = model else { panic!("dnc") };
    let batch = data_like_repeat_copy(&dev);
    let logits = dnc.forward(&batch.0).unwrap();
    let loss = zoo::masked_sigmoid_cross_entropy(&logits, &batch.1, &batch.2).unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    for (name, g) in params.names().iter().zip(params.grads(&loss.backward().unwrap())) {
        assert!(g.is_some_and(|g| flat(&g).iter().any(|v| *v != 0.0)), "dnc: {name}");
    }
    assert!(Model::Sequences(dnc).into_image().err().unwrap().to_string().contains("bit sequences"));
}

/// A small repeat-copy-shaped batch: (obs [7, 2, 6], target [7, 2, 5], mask [7, 2]).
fn data_like_repeat_copy(dev: &Device) -> (Tensor, Tensor, Tensor) {
    let bits = |k: &str, n: usize| portable(k, n, 0.5, 0.5).into_iter().map(|v| v.round()).collect::<Vec<f32>>();
    let obs = Tensor::from_vec(bits("obs", 7 * 2 * 6), (7, 2, 6), dev).unwrap();
    let target = Tensor::from_vec(bits("target", 7 * 2 * 5), (7, 2, 5), dev).unwrap();
    let mask = Tensor::from_vec(vec![0f32, 0., 0., 1., 1., 1., 1., 0., 0., 0., 1., 1., 1., 0.], (7, 2), dev).unwrap();
    (obs, target, mask)
}
