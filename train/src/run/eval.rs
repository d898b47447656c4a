//! `--eval-only` (validation and test accuracy into `eval.json`) and `--predict FILE` (the
//! model's output on FILE's `input` into `predictions.safetensors`; no dataset is read).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use serde_json::json;

use super::build::{self, say};
use super::write_json;
use crate::config::{Options, RunConfig};
use crate::dist::Single;
use crate::task::Split;
use crate::trainer::evaluate;

/// Evaluates (or predicts with) the model of `cfg`, its weights from `--init`.
pub fn eval_only(cfg: &RunConfig, opts: &Options) -> Result<()> {
    let dir = &cfg.run.out;
    let built = build::model(cfg, true, opts.quiet)?;
    if let Some(file) = &opts.predict {
        let dtype = cfg.run.precision.compute_on(&built.device, zoo::registry::find(&cfg.model.name)?.kind);
        return predict(built, file, dir, opts.quiet, dtype);
    }
    let task = build::task(cfg, built.model, &built.device, opts.quiet, data::Shard::WHOLE)?;
    let (val_loss, val_acc) = evaluate(task.as_ref(), Split::Val, opts.quiet, &Single)?;
    let (test_loss, test_acc) = evaluate(task.as_ref(), Split::Test, opts.quiet, &Single)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = json!({
        "model": cfg.model.name, "data": cfg.data.name, "init": cfg.run.init,
        "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc,
    });
    write_json(&dir.join("eval.json"), &report)?;
    say(opts.quiet, format!("eval: val_acc {:.2}% test_acc {:.2}%", 100.0 * val_acc, 100.0 * test_acc));
    Ok(())
}

/// The model's logits on the tensor `input` of `file`, into `dir/predictions.safetensors`.
fn predict(built: build::Built, file: &Path, dir: &Path, quiet: bool, dtype: DType) -> Result<()> {
    let inputs = candle_core::safetensors::load(file, &built.device)
        .with_context(|| format!("--predict {}: not a safetensors file", file.display()))?;
    let x = inputs.get("input").with_context(|| format!("--predict {}: no tensor named `input`", file.display()))?;
    let x = x.to_dtype(dtype)?;
    let logits = match &built.model {
        zoo::Model::Images(m) => m.forward_t(&x, false)?,
        zoo::Model::Sequences(m) => m.forward(&x)?,
        zoo::Model::Pairs(_) => bail!("--predict takes one input tensor; the NLI model needs sentence pairs"),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join("predictions.safetensors");
    candle_core::safetensors::save(&HashMap::from([("logits".to_string(), logits)]), &out)?;
    say(quiet, format!("predictions: {}", out.display()));
    Ok(())
}
