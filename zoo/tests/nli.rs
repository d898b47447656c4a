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

/// The fused CPU op (f32) against the composed recurrence (f64) on sizes that cut across the op's
/// loops (a batch that is not a multiple of the vector width, sentences of every length, and the
/// smallest layer), with the gradient of the word vectors too (the op computes it only when they
/// need one), in both poolings.
#[test]
fn the_fused_op_matches_the_composed_recurrence() {
    // (T, B, H): a batch of 19 sentences of 1 to 9 words and 37 units, then one word, one
    // sentence, one unit.
    for ((t_max, b, hidden), pooling) in
        [(9, 19, 37), (1, 1, 1)].into_iter().flat_map(|size| [(size, Pooling::MaxWithPadding), (size, Pooling::Masked)])
    {
        let lengths: Vec<usize> = (0..b).map(|n| 1 + (n * 5) % t_max).collect();
        let cfg = NliConfig { word_dim: 7, hidden, fc_dim: 5, num_classes: 3, pooling };
        let run = |dtype: DType| {
            let varmap = VarMap::new();
            let m = Nli::new(&cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
            zoo::init::init_varmap(&varmap, 3, Nli::init_rule(&cfg)).unwrap();
            // The f32 draw, so that both models hold the same values.
            if dtype == DType::F64 {
                let f32_map = VarMap::new();
                Nli::new(&cfg, VarBuilder::from_varmap(&f32_map, DType::F32, &Device::Cpu)).unwrap();
                zoo::init::init_varmap(&f32_map, 3, Nli::init_rule(&cfg)).unwrap();
                for (name, v) in f32_map.data().lock().unwrap().iter() {
                    varmap.data().lock().unwrap()[name].set(&v.to_dtype(DType::F64).unwrap()).unwrap();
                }
            }
            let words: Vec<f32> = (0..t_max * b * 7).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
            let x = candle_core::Var::from_vec(words, (t_max, b, 7), &Device::Cpu).unwrap();
            let x = candle_core::Var::from_tensor(&x.to_dtype(dtype).unwrap()).unwrap();
            let u = m.encode(&x, &lengths).unwrap(); // [B, 2H]
            let probe: Vec<f32> = (0..b * 2 * hidden).map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0).collect();
            let probe = Tensor::from_vec(probe, (b, 2 * hidden), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let grads = (&u * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
            let mut named: Vec<(String, Tensor)> = params
                .names()
                .iter()
                .zip(params.grads(&grads))
                .filter_map(|(n, g)| Some((n.clone(), g?)))
                .filter(|(n, _)| n.contains("enc_lstm"))
                .collect();
            named.push(("x".into(), grads.get(x.as_tensor()).expect("x has a gradient").clone()));
            (u, named)
        };
        let ((u32_, g32), (u64_, g64)) = (run(DType::F32), run(DType::F64));
        let at = format!("T {t_max} B {b} H {hidden} {pooling:?}");
        close(&format!("{at} embeddings"), &u32_, &u64_, 1e-5, 1e-4).unwrap();
        assert_eq!(g32.len(), 9, "8 LSTM tensors and x");
        for ((name, a), (_, b)) in g32.iter().zip(&g64) {
            close_scaled(&format!("{at} grad {name}"), a, b, 1e-4, 1e-7).unwrap();
        }
    }
}
