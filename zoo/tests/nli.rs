//! The Bi-LSTM-max NLI model against the reference (`../shared/golden/zoo/bilstm-nli-tiny`):
//! logits, loss, sentence embeddings and every gradient, with the reference's padded max-pool and
//! with the masked one.

mod common;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use zoo::{checkpoint, Nli, NliConfig, Pooling};

fn model(pooling: Pooling) -> (VarMap, Nli) {
    let varmap = VarMap::new();
    let cfg = NliConfig { word_dim: 8, hidden: 6, fc_dim: 10, num_classes: 3, pooling };
    let m = Nli::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let report = checkpoint::load(&varmap, golden_dir().join("zoo/bilstm-nli-tiny/state_dict.safetensors")).unwrap();
    assert_eq!(report.loaded, 14);
    (varmap, m)
}

fn lengths(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::I64).unwrap().to_vec1::<i64>().unwrap().into_iter().map(|l| l as usize).collect()
}

#[test]
fn bilstm_nli_tiny_matches_the_reference() {
    let io = load(golden_dir().join("zoo/bilstm-nli-tiny/io.safetensors"));
    let (l1, l2) = (lengths(&io["s1_len"]), lengths(&io["s2_len"]));
    let labels = io["labels"].to_dtype(DType::U32).unwrap();
    let (varmap, m) = model(Pooling::MaxWithPadding);
    let mut errs = vec![];
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errs.push(e)
        }
    };
    check(close("u_ref", &m.encode(&io["s1_emb"], &l1).unwrap(), &io["u_ref"], 1e-5, 1e-4));
    check(close("v_ref", &m.encode(&io["s2_emb"], &l2).unwrap(), &io["v_ref"], 1e-5, 1e-4));
    let logits = m.forward(&io["s1_emb"], &l1, &io["s2_emb"], &l2).unwrap();
    check(close("logits_eval", &logits, &io["logits_eval"], 1e-4, 1e-4));
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    check(close("loss_train", &loss, &io["loss_train"], 1e-4, 1e-4));
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let grads = params.grads(&loss.backward().unwrap());
    let want = load(golden_dir().join("zoo/bilstm-nli-tiny/grads.safetensors"));
    assert_eq!(want.len(), params.len());
    for (name, g) in params.names().iter().zip(&grads) {
        match g {
            Some(g) => check(close_scaled(&format!("grad {name}"), g, &want[name], 1e-3, 1e-7)),
            None => check(Err(format!("{name} has no gradient"))),
        }
    }
    assert!(errs.is_empty(), "{} mismatches:\n{}", errs.len(), errs.join("\n"));
}

#[test]
fn masked_pooling_matches_the_reference_diagnostics() {
    let io = load(golden_dir().join("zoo/bilstm-nli-tiny/io.safetensors"));
    let (l1, l2) = (lengths(&io["s1_len"]), lengths(&io["s2_len"]));
    let (_, m) = model(Pooling::Masked);
    close("u_masked", &m.encode(&io["s1_emb"], &l1).unwrap(), &io["u_masked"], 1e-5, 1e-4).unwrap();
    close("v_masked", &m.encode(&io["s2_emb"], &l2).unwrap(), &io["v_masked"], 1e-5, 1e-4).unwrap();
    let logits = m.forward(&io["s1_emb"], &l1, &io["s2_emb"], &l2).unwrap();
    close("logits_masked_max", &logits, &io["logits_masked_max"], 1e-4, 1e-4).unwrap();
    // The two poolings differ exactly where a sentence is shorter than the batch.
    let (_, reference) = model(Pooling::MaxWithPadding);
    assert!(close("pooling", &reference.encode(&io["s1_emb"], &l1).unwrap(), &io["u_masked"], 1e-6, 0.0).is_err());
}

#[test]
fn paper_size_and_bad_input() {
    let varmap = VarMap::new();
    let m = Nli::new(&NliConfig::default(), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let (keys, num_params) = manifest("infersent-bilstm-max-snli");
    let mut keys = keys;
    keys.sort();
    let ours: Vec<(String, Vec<usize>)> =
        checkpoint::state_dict(&varmap).unwrap().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
    assert_eq!(ours, keys);
    assert_eq!(ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap().elem_count(), num_params);
    assert_eq!(num_params, 47_155_715);
    let x = Tensor::zeros((4, 2, 300), DType::F32, &Device::Cpu).unwrap();
    assert!(m.encode(&x, &[5, 1]).unwrap_err().to_string().contains("length 5"));
    assert!(m.encode(&x, &[1]).is_err());
}

/// Off the CPU's f32 fast path the recurrence is composed of candle ops: in f64 (which takes that
/// path) the model must match the reference too.
#[test]
fn the_composed_recurrence_matches_too() {
    let io = load(golden_dir().join("zoo/bilstm-nli-tiny/io.safetensors"));
    let (l1, l2) = (lengths(&io["s1_len"]), lengths(&io["s2_len"]));
    let varmap = VarMap::new();
    let cfg = NliConfig { word_dim: 8, hidden: 6, fc_dim: 10, num_classes: 3, pooling: Pooling::MaxWithPadding };
    let m = Nli::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu)).unwrap();
    checkpoint::load(&varmap, golden_dir().join("zoo/bilstm-nli-tiny/state_dict.safetensors")).unwrap();
    let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let logits = m.forward(&f64_of(&io["s1_emb"]), &l1, &f64_of(&io["s2_emb"]), &l2).unwrap();
    close("logits (f64)", &logits, &io["logits_eval"], 1e-4, 1e-4).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &io["labels"].to_dtype(DType::U32).unwrap()).unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let want = load(golden_dir().join("zoo/bilstm-nli-tiny/grads.safetensors"));
    for (name, g) in params.names().iter().zip(params.grads(&loss.backward().unwrap())) {
        close_scaled(&format!("grad {name} (f64)"), &g.unwrap(), &want[name], 1e-3, 1e-7).unwrap();
    }
}
