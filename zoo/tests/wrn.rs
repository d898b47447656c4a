//! Wide ResNet against the PyTorch reference (`../shared/golden/zoo/wrn-16-2`, README there) and
//! the paper-size manifests.

mod common;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use zoo::{checkpoint, Wrn, WrnConfig};

fn build(cfg: &WrnConfig) -> (VarMap, Wrn) {
    let varmap = VarMap::new();
    let model = Wrn::new(cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    (varmap, model)
}

fn golden_wrn() -> (VarMap, Wrn) {
    let (varmap, model) = build(&WrnConfig { depth: 16, width: 2, num_classes: 10, dropout: 0.0 });
    let file = golden_dir().join("zoo/wrn-16-2/state_dict.safetensors");
    let report = checkpoint::load(&varmap, &file).unwrap();
    assert_eq!(report.loaded, load(file).len(), "{report:?}");
    assert!(!report.stripped_module_prefix && report.missing_num_batches_tracked == 0);
    (varmap, model)
}

#[test]
fn wrn_16_2_matches_the_reference_in_eval_and_train_mode() {
    let dir = golden_dir().join("zoo/wrn-16-2");
    let io = load(dir.join("io.safetensors"));
    let (varmap, model) = golden_wrn();
    let before = checkpoint::state_dict(&varmap).unwrap();
    let labels = io["labels"].to_dtype(DType::U32).unwrap();
    let mut errs = vec![];
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errs.push(e)
        }
    };

    let logits = model.forward_t(&io["input"], false).unwrap();
    check(close("logits_eval", &logits, &io["logits_eval"], 1e-4, 1e-4));
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    check(close("loss_eval", &loss, &io["loss_eval"], 1e-4, 1e-4));
    // Eval mode leaves the running statistics alone.
    for ((k, a), (_, b)) in before.iter().zip(checkpoint::state_dict(&varmap).unwrap()) {
        assert_eq!(flat(a), flat(&b), "eval mode changed {k}");
    }

    let logits = model.forward_t(&io["input"], true).unwrap();
    check(close("logits_train", &logits, &io["logits_train"], 1e-4, 1e-4));
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    check(close("loss_train", &loss, &io["loss_train"], 1e-4, 1e-4));

    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let grads = params.grads(&loss.backward().unwrap());
    let want = load(dir.join("grads.safetensors"));
    assert_eq!(want.len(), params.len(), "one reference gradient per parameter");
    for (name, g) in params.names().iter().zip(&grads) {
        let g = g.as_ref().unwrap_or_else(|| panic!("{name} has no gradient"));
        check(close_scaled(&format!("grad {name}"), g, &want[name], 1e-3, 1e-7));
    }

    let bn = load(dir.join("bn_after_train_forward.safetensors"));
    let now: std::collections::HashMap<String, Tensor> = checkpoint::state_dict(&varmap).unwrap().into_iter().collect();
    for (k, want) in &bn {
        if k.ends_with("num_batches_tracked") {
            check((flat(&now[k]) == flat(want)).then_some(()).ok_or(format!(
                "{k}: {:?} vs {:?}",
                flat(&now[k]),
                flat(want)
            )));
        } else {
            check(close(k, &now[k], want, 1e-5, 1e-5));
        }
    }
    assert!(errs.is_empty(), "{} mismatches:\n{}", errs.len(), errs.join("\n"));
}

#[test]
fn paper_sizes_match_the_manifests() {
    for (name, cfg) in [
        ("wrn-40-4-c10", WrnConfig::default()),
        ("wrn-40-4-c100", WrnConfig { num_classes: 100, ..WrnConfig::default() }),
        ("wrn-16-4-svhn-drop0.4", WrnConfig { depth: 16, width: 4, num_classes: 10, dropout: 0.4 }),
    ] {
        let (varmap, _) = build(&cfg);
        let (keys, num_params) = manifest(name);
        let ours: Vec<(String, Vec<usize>)> =
            checkpoint::state_dict(&varmap).unwrap().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
        let mut theirs = keys.clone();
        theirs.sort();
        assert_eq!(ours, theirs, "{name}: state-dict keys and shapes");
        let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
        assert_eq!(params.elem_count(), num_params, "{name}: trainable parameters");
    }
}

#[test]
fn seeded_init_is_reproducible_and_follows_the_reference_scales() {
    let cfg = WrnConfig { depth: 10, width: 1, num_classes: 10, dropout: 0.0 };
    let init = |seed| {
        let (varmap, _) = build(&cfg);
        zoo::init::init_varmap(&varmap, seed, Wrn::init_rule).unwrap();
        checkpoint::state_dict(&varmap).unwrap()
    };
    let (a, b, c) = (init(7), init(7), init(8));
    for ((k, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(flat(x), flat(y), "{k} differs under the same seed");
    }
    let get = |k: &str| flat(&a.iter().find(|(n, _)| n == k).unwrap().1);
    let conv1_c = flat(&c.iter().find(|(n, _)| n == "conv1.weight").unwrap().1);
    assert_ne!(get("conv1.weight"), conv1_c, "another seed must give other weights");
    // Kaiming fan-out: std sqrt(2 / (16 * 9)) for block1's 16->16 3x3 convs.
    let w = get("block1.layer.0.conv1.weight");
    let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std / (2.0f64 / 144.0).sqrt() - 1.0).abs() < 0.1, "conv std {std}");
    assert!(get("bn1.weight").iter().all(|&x| x == 1.0) && get("bn1.bias").iter().all(|&x| x == 0.0));
    assert!(get("fc.weight").iter().all(|x| x.abs() <= 1.0 / 8.0) && get("fc.bias").iter().all(|&x| x == 0.0));
    assert!(get("bn1.running_var").iter().all(|&x| x == 1.0), "buffers keep their defaults");
}

#[test]
fn train_and_eval_differ_and_running_stats_move_only_in_train_mode() {
    let (varmap, model) = golden_wrn();
    let x = load(golden_dir().join("zoo/wrn-16-2/io.safetensors"))["input"].clone();
    let stats = |vm: &VarMap| flat(&vm.data().lock().unwrap()["bn1.running_mean"].as_tensor().clone());
    let s0 = stats(&varmap);
    let eval = model.forward_t(&x, false).unwrap();
    assert_eq!(stats(&varmap), s0);
    let train = model.forward_t(&x, true).unwrap();
    assert_ne!(stats(&varmap), s0);
    assert!(close("train vs eval", &train, &eval, 1e-3, 0.0).is_err(), "train and eval outputs must differ");
}

#[test]
fn checkpoints_round_trip_and_bad_ones_name_the_key() {
    let (varmap, model) = golden_wrn();
    let x = load(golden_dir().join("zoo/wrn-16-2/io.safetensors"))["input"].clone();
    let dir = std::env::temp_dir().join(format!("zoo-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wrn.safetensors");
    checkpoint::save(&varmap, &path).unwrap();
    let (varmap2, model2) = build(&WrnConfig { depth: 16, width: 2, num_classes: 10, dropout: 0.0 });
    checkpoint::load(&varmap2, &path).unwrap();
    assert_eq!(flat(&model.forward_t(&x, false).unwrap()), flat(&model2.forward_t(&x, false).unwrap()));

    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("fc.bias");
    tensors.insert("fc.extra".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    tensors.insert("bn1.weight".into(), Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap());
    let err = checkpoint::load_tensors(&varmap2, tensors.clone()).unwrap_err().to_string();
    assert!(err.contains("missing key \"fc.bias\""), "{err}");
    assert!(err.contains("unexpected key \"fc.extra\""), "{err}");
    assert!(err.contains("shape mismatch for \"bn1.weight\""), "{err}");

    // DataParallel prefixes and absent counters are handled, and said so.
    let mut dp: std::collections::HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| (format!("module.{k}"), v.to_dtype(DType::F64).unwrap_or(v)))
        .collect();
    dp.retain(|_, v| v.dtype() != DType::I64);
    let report = checkpoint::load_tensors(&varmap2, dp).unwrap();
    assert!(
        report.stripped_module_prefix && report.missing_num_batches_tracked > 0 && report.converted_dtype > 0,
        "{report:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
