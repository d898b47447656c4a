//! `train export RUN_DIR --to DIR`: a folder ready to upload to the Hugging Face hub:
//! `model.safetensors` (the best checkpoint's weights, reference key names, the model's identity in
//! the metadata), `config.json` (the run's configuration), `metrics.jsonl`, `summary.json`, the
//! run's plots, and a model card `README.md` with the command that trained it and its metrics.
//! `--init DIR` (or `--init hf:owner/repo` once uploaded) loads it back.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::checkpoint::{self, MODEL_FILE};
use crate::config::RunConfig;
use crate::metrics::MetricsLog;

#[derive(Parser, Debug, Clone)]
#[command(name = "train export", about = "Make a hub-ready folder (weights, config, model card) from a run")]
pub struct ExportCli {
    /// The run directory.
    pub run: PathBuf,
    /// The folder to write (created; an existing model.safetensors there is not overwritten).
    #[arg(long)]
    pub to: PathBuf,
    /// Export the last checkpoint instead of the best.
    #[arg(long)]
    pub last: bool,
}

/// The `train` command line that reproduces a configuration.
pub fn command_line(cfg: &RunConfig) -> String {
    let mut s = format!("train --model {} --data {} --opt {} --loss {}", cfg.model, cfg.data, cfg.opt, cfg.loss);
    let mut flag = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            s += &format!(" --{name} {v}");
        }
    };
    flag("epochs", Some(cfg.epochs.to_string()));
    flag("batch-size", Some(cfg.batch_size.to_string()));
    flag("lr", Some(cfg.lr.map_or("none".into(), |v| v.to_string())));
    flag("momentum", Some(cfg.momentum.to_string()));
    flag("weight-decay", (cfg.weight_decay != 0.0).then(|| cfg.weight_decay.to_string()));
    flag("max-norm", cfg.max_norm.map(|v| v.to_string()));
    flag("clip-grad-norm", cfg.clip_grad_norm.map(|v| v.to_string()));
    flag("schedule", (cfg.schedule != "constant").then(|| cfg.schedule.clone()));
    flag("depth", cfg.depth.map(|v| v.to_string()));
    flag("width", cfg.width.map(|v| v.to_string()));
    flag("growth", cfg.growth.map(|v| v.to_string()));
    flag("dropout", cfg.dropout.map(|v| v.to_string()));
    flag("hidden", cfg.hidden.map(|v| v.to_string()));
    flag("eps", cfg.eps.map(|v| v.to_string()));
    flag("fraction", cfg.fraction.map(|v| v.to_string()));
    flag("initial-accumulator", cfg.initial_accumulator.map(|v| v.to_string()));
    flag("train-size", cfg.train_size.map(|v| v.to_string()));
    flag("seed", Some(cfg.seed.to_string()));
    if !cfg.augment {
        s += " --no-augment";
    }
    s
}

/// `train export ...` (`args[0]` is `export`).
pub fn run(args: &[String]) -> Result<()> {
    let cli = ExportCli::try_parse_from(args)?;
    let cfg_path = cli.run.join("config.json");
    let cfg: RunConfig = serde_json::from_str(
        &fs::read_to_string(&cfg_path).with_context(|| format!("{}: not a run directory", cli.run.display()))?,
    )
    .with_context(|| format!("parsing {}", cfg_path.display()))?;
    let which = if cli.last { "last" } else { "best" };
    let ckpt = checkpoint::find(&cli.run.join("checkpoints"), which)
        .with_context(|| format!("{}: no {which} checkpoint yet", cli.run.display()))?;
    if cli.to.join(MODEL_FILE).exists() {
        bail!("{} already holds a {MODEL_FILE}; export into an empty folder", cli.to.display())
    }
    fs::create_dir_all(&cli.to).with_context(|| format!("creating {}", cli.to.display()))?;
    fs::copy(ckpt.join(MODEL_FILE), cli.to.join(MODEL_FILE)).with_context(|| format!("copying {MODEL_FILE}"))?;
    fs::copy(&cfg_path, cli.to.join("config.json")).context("copying config.json")?;
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
        model = cfg.model,
        data = cfg.data,
        opt = cfg.opt,
        cmd = command_line(cfg),
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
