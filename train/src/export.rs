//! `train export RUN_DIR --to DIR`: a folder ready to upload to the Hugging Face hub:
//! `model.safetensors` (the best checkpoint's weights, reference key names, the model's identity in
//! the metadata), `config.json` (the run's configuration), `metrics.jsonl`, `summary.json`, the
//! run's plots, and a model card `README.md` with the command that trained it (generated from the
//! configuration: [`RunConfig::command_line`]) and its metrics.
//! `--init DIR` (or `--init hf:owner/repo` once uploaded) loads it back.

use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, MODEL_FILE};
use crate::cli::ExportArgs;
use crate::config::RunConfig;
use crate::metrics::MetricsLog;
use anyhow::{bail, Context, Result};

/// `train export RUN_DIR --to DIR`.
pub fn run(cli: &ExportArgs) -> Result<()> {
    let cfg = RunConfig::read(&cli.run).with_context(|| format!("{}: not a run directory", cli.run.display()))?;
    let which = if cli.last { "last" } else { "best" };
    let ckpt = checkpoint::find(&cli.run.join("checkpoints"), which)
        .with_context(|| format!("{}: no {which} checkpoint yet", cli.run.display()))?;
    if cli.to.join(MODEL_FILE).exists() {
        bail!("{} already holds a {MODEL_FILE}; export into an empty folder", cli.to.display())
    }
    fs::create_dir_all(&cli.to).with_context(|| format!("creating {}", cli.to.display()))?;
    fs::copy(ckpt.join(MODEL_FILE), cli.to.join(MODEL_FILE)).with_context(|| format!("copying {MODEL_FILE}"))?;
    cfg.write(&cli.to)?;
    for f in ["metrics.jsonl", "metrics.csv", "summary.json"] {
        if cli.run.join(f).is_file() {
            fs::copy(cli.run.join(f), cli.to.join(f)).with_context(|| format!("copying {f}"))?;
        }
    }
    let plots = crate::plot::plot_runs(std::slice::from_ref(&cli.run), &cli.to)?;
    fs::write(cli.to.join("README.md"), model_card(&cfg, &cli.run, which, &plots)?)
        .with_context(|| format!("writing {}", cli.to.join("README.md").display()))?;
    eprintln!("export: {} (load it with --init {0})", cli.to.display());
    Ok(())
}

fn model_card(cfg: &RunConfig, run: &Path, which: &str, plots: &[PathBuf]) -> Result<String> {
    let rows = MetricsLog::new(run).read()?;
    let summary: Option<serde_json::Value> =
        fs::read_to_string(run.join("summary.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let mut s = format!(
        "---\nlibrary_name: alig-toolkit\ntags:\n- alig\n- {model}\n- {data}\n---\n\n\
         # {model} on {data}, trained with {opt}\n\n\
         Trained with the ALI-G toolkit (\"Training Neural Networks for and by Interpolation\", Berrada, \
         Zisserman, Kumar, ICML 2020). `model.safetensors` holds the {which} checkpoint's weights with the \
         reference PyTorch key names; its metadata names the model, its shape flags and the dataset, so \
         `train --init hf:OWNER/REPO --eval-only` rebuilds it without flags.\n\n\
         ## Training command\n\n```sh\n{cmd}\n```\n\n",
        model = cfg.model.name,
        data = cfg.data.name,
        opt = cfg.optimizer.name,
        cmd = cfg.command_line(),
    );
    if let Some(sm) = &summary {
        s += &format!(
            "## Results\n\n| best epoch | best val acc | test acc (best checkpoint) |\n|---|---|---|\n| {} | {} | {} |\n\n",
            sm["best_epoch"], sm["best_val_acc"], sm["test_acc"]
        );
    }
    if !rows.is_empty() {
        s += "## Metrics per epoch\n\n| epoch | train loss | train acc | val acc | step size | lr |\n|---|---|---|---|---|---|\n";
        for m in &rows {
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4e}"));
            s += &format!(
                "| {} | {:.4} | {:.4} | {:.4} | {} | {} |\n",
                m.epoch,
                m.train_loss,
                m.train_acc,
                m.val_acc,
                opt(m.step_size),
                opt(m.lr)
            );
        }
        s.push('\n');
    }
    if !plots.is_empty() {
        s += "## Plots\n\n";
        for p in plots.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            s += &format!("![{name}]({name})\n\n");
        }
    }
    Ok(s)
}
