//! The zoo's golden cases (`shared/golden/zoo`, from the PyTorch reference) on the device under
//! test: logits and loss, the gradient of every parameter, and (image models) the BatchNorm
//! statistics after one training-mode forward, within the golden README's f32 tolerances.

use std::collections::HashMap;
use std::path::Path;

use alig::ParamSet;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use zoo::{Dnc, DncConfig, ModelArgs, Nli, NliConfig, Pooling};

use super::compare::{named, worst, Side, Values};
use super::Line;

/// The golden README's tolerances: forward 1e-4, gradients 1e-3, BatchNorm statistics 1e-5.
const FORWARD: f64 = 1e-4;
const GRADIENTS: f64 = 1e-3;
const STATISTICS: f64 = 1e-5;
const FLOOR: f64 = 1e-4;

fn load(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).with_context(|| format!("reading {}", path.display()))
}

/// Host copies of named tensors, sorted by name (the stored files have no order).
fn values(items: impl IntoIterator<Item = (String, Tensor)>) -> Result<Values> {
    let mut v = named(items)?;
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// What a golden case computed on the device and what the reference stored.
struct Outcome {
    forward: (Values, Values),
    grads: (Values, Values),
    statistics: (Values, Values),
}

impl Outcome {
    fn lines(&self, case: &str) -> Vec<Line> {
        let mut out = vec![
            Line::new("golden", case, "logits, loss", worst(&self.forward.1, &self.forward.0, FLOOR), FORWARD),
            Line::new("golden", case, "gradients", worst(&self.grads.1, &self.grads.0, FLOOR), GRADIENTS),
        ];
        if !self.statistics.1.is_empty() {
            let w = worst(&self.statistics.1, &self.statistics.0, FLOOR);
            out.push(Line::new("golden", case, "BatchNorm statistics", w, STATISTICS));
        }
        out
    }
}

/// Gradients of the trainable parameters of `varmap` for `loss`, by name.
fn gradients(varmap: &VarMap, loss: &Tensor) -> Result<Values> {
    let params = ParamSet::trainable(&varmap.data().lock().expect("varmap lock"))?;
    let grads = params.grads(&loss.backward()?);
    values(params.names().iter().cloned().zip(grads).filter_map(|(k, g)| Some((k, g?))))
}

/// An image case with a stored state dict: eval and train forward, gradients, statistics.
fn image_case(dir: &Path, model: &str, args: ModelArgs, device: &Device) -> Result<Outcome> {
    let varmap = VarMap::new();
    let spec = zoo::registry::find(model)?;
    let m = spec.build(&args, VarBuilder::from_varmap(&varmap, DType::F32, device))?.into_image()?;
    zoo::checkpoint::load_tensors(&varmap, load(&dir.join("state_dict.safetensors"), device)?)?;
    let io = load(&dir.join("io.safetensors"), device)?;
    let y = io["labels"].to_dtype(DType::U32)?;
    let eval = m.forward_t(&io["input"], false)?;
    let eval_loss = candle_nn::loss::cross_entropy(&eval, &y)?;
    let train = m.forward_t(&io["input"], true)?;
    let loss = candle_nn::loss::cross_entropy(&train, &y)?;
    let got = [("logits_eval", eval), ("loss_eval", eval_loss), ("logits_train", train), ("loss_train", loss.clone())];
    let want = got.iter().map(|(k, _)| (k.to_string(), io[*k].clone())).collect::<Vec<_>>();
    let forward = (values(got.map(|(k, t)| (k.to_string(), t)))?, values(want)?);
    let grads = (gradients(&varmap, &loss)?, values(load(&dir.join("grads.safetensors"), device)?)?);
    let stored = load(&dir.join("bn_after_train_forward.safetensors"), device)?;
    let now: HashMap<String, Tensor> = zoo::checkpoint::state_dict(&varmap)?.into_iter().collect();
    let keys: Vec<&String> = stored.keys().filter(|k| !k.ends_with(alig::params::NUM_BATCHES_TRACKED)).collect();
    let statistics = (
        values(keys.iter().map(|k| ((*k).clone(), now[*k].clone())))?,
        values(keys.iter().map(|k| ((*k).clone(), stored[*k].clone())))?,
    );
    Ok(Outcome { forward, grads, statistics })
}

fn dnc_case(dir: &Path, device: &Device) -> Result<Outcome> {
    let varmap = VarMap::new();
    let cfg = DncConfig { hidden: 10, memory_size: 6, word_size: 4, read_heads: 2, ..DncConfig::default() };
    let dnc = Dnc::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    zoo::checkpoint::load_tensors(&varmap, load(&dir.join("state_dict.safetensors"), device)?)?;
    let io = load(&dir.join("io.safetensors"), device)?;
    let logits = dnc.forward(&io["obs"])?;
    let loss = zoo::masked_sigmoid_cross_entropy(&logits, &io["target"], &io["mask"])?;
    let forward = (
        values([("logits".into(), logits), ("loss".into(), loss.clone())])?,
        values([("logits".into(), io["logits"].clone()), ("loss".into(), io["loss"].clone())])?,
    );
    let grads = (gradients(&varmap, &loss)?, values(load(&dir.join("grads.safetensors"), device)?)?);
    Ok(Outcome { forward, grads, statistics: (vec![], vec![]) })
}

fn nli_case(dir: &Path, device: &Device) -> Result<Outcome> {
    let varmap = VarMap::new();
    let cfg = NliConfig { word_dim: 8, hidden: 6, fc_dim: 10, num_classes: 3, pooling: Pooling::MaxWithPadding };
    let m = Nli::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    zoo::checkpoint::load_tensors(&varmap, load(&dir.join("state_dict.safetensors"), device)?)?;
    let io = load(&dir.join("io.safetensors"), device)?;
    let lengths = |t: &Tensor| -> Result<Vec<usize>> {
        Ok(t.to_dtype(DType::I64)?.to_vec1::<i64>()?.into_iter().map(|l| l as usize).collect())
    };
    let logits = m.forward(&io["s1_emb"], &lengths(&io["s1_len"])?, &io["s2_emb"], &lengths(&io["s2_len"])?)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &io["labels"].to_dtype(DType::U32)?)?;
    let forward = (
        values([("logits_eval".into(), logits), ("loss_train".into(), loss.clone())])?,
        values([("logits_eval".into(), io["logits_eval"].clone()), ("loss_train".into(), io["loss_train"].clone())])?,
    );
    let grads = (gradients(&varmap, &loss)?, values(load(&dir.join("grads.safetensors"), device)?)?);
    Ok(Outcome { forward, grads, statistics: (vec![], vec![]) })
}

/// A golden case: its folder in, what the device computed and what the reference stored out.
type CaseFn<'a> = &'a dyn Fn(&Path) -> Result<Outcome>;

/// Every golden case of `root` (the folder holding `zoo/`) on `side`.
pub fn run(root: &Path, side: &Side) -> Result<Vec<Line>> {
    let zoo = root.join("zoo");
    let dev = &side.device;
    let wrn = ModelArgs { depth: Some(16), width: Some(2), dropout: Some(0.0), ..ModelArgs::classes(10) };
    let densenet = ModelArgs { depth: Some(16), growth: Some(8), ..ModelArgs::classes(10) };
    let cases: [(&str, CaseFn); 4] = [
        ("wrn-16-2", &|d| image_case(d, "wrn", wrn.clone(), dev)),
        ("densenet-bc-16-8", &|d| image_case(d, "densenet", densenet.clone(), dev)),
        ("bilstm-nli-tiny", &|d| nli_case(d, dev)),
        ("dnc-tiny", &|d| dnc_case(d, dev)),
    ];
    let mut out = vec![];
    for (name, case) in cases {
        let outcome = side.with(|| case(&zoo.join(name))).with_context(|| format!("golden case {name}"))?;
        out.extend(outcome.lines(name));
    }
    Ok(out)
}
