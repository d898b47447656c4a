//! Per-epoch metrics: one JSON object per line in `metrics.jsonl`, the same rows in `metrics.csv`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One epoch. `step_size` and `step_size_unclipped` are means over the epoch's steps (optimizers
/// that report them); `weight_norm` is the l2 norm of all trainable parameters at the epoch's end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The mean mini-batch training loss.
    pub train_loss: f64,
    /// The accuracy over the epoch's training batches (as they were trained on).
    pub train_acc: f64,
    /// The validation accuracy after the epoch.
    pub val_acc: f64,
    /// The mean effective step size.
    pub step_size: Option<f64>,
    /// ALI-G: the mean step size before clipping at `max_lr`.
    pub step_size_unclipped: Option<f64>,
    /// The scheduled learning rate of the epoch (optimizers with one).
    pub lr: Option<f64>,
    /// The l2 norm of all trainable parameters at the epoch's end.
    pub weight_norm: f64,
    /// Wall-clock seconds of the epoch's training (validation not included).
    pub seconds: f64,
    /// Steps skipped for a non-finite loss or gradient (`--on-nonfinite skip`).
    #[serde(default)]
    pub skipped_steps: u64,
    /// f16: steps skipped because the scaled gradients overflowed (each halved the loss scale).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overflow_steps: u64,
    /// f16: the dynamic loss scale at the end of the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// `--ema`: the validation score of the moving average of the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc_ema: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const COLUMNS: &str =
    "epoch,train_loss,train_acc,val_acc,step_size,step_size_unclipped,lr,weight_norm,seconds,skipped_steps,overflow_steps,loss_scale,val_acc_ema";

pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl MetricsLog {
    pub fn new(run_dir: &Path) -> Self {
        Self { jsonl: run_dir.join("metrics.jsonl"), csv: run_dir.join("metrics.csv") }
    }

    /// Every epoch logged so far.
    pub fn read(&self) -> Result<Vec<EpochMetrics>> {
        if !self.jsonl.exists() {
            return Ok(vec![]);
        }
        let text = fs::read_to_string(&self.jsonl).with_context(|| format!("reading {}", self.jsonl.display()))?;
        // A process killed while appending leaves a last line without its newline: not a row.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", self.jsonl.display(), i + 1)))
            .collect()
    }

    /// Keeps the epochs up to `epoch` (a resumed run drops what came after its checkpoint).
    pub fn keep_until(&self, epoch: usize) -> Result<()> {
        let kept: Vec<EpochMetrics> = self.read()?.into_iter().filter(|m| m.epoch <= epoch).collect();
        let mut text = String::new();
        for m in &kept {
            text.push_str(&serde_json::to_string(m)?);
            text.push('\n');
        }
        replace(&self.jsonl, &text)?;
        self.write_csv(&kept)
    }

    pub fn append(&self, m: &EpochMetrics) -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.jsonl)
            .with_context(|| format!("opening {}", self.jsonl.display()))?;
        writeln!(f, "{}", serde_json::to_string(m)?).with_context(|| format!("writing {}", self.jsonl.display()))?;
        self.write_csv(&self.read()?)
    }

    fn write_csv(&self, rows: &[EpochMetrics]) -> Result<()> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let mut text = format!("{COLUMNS}\n");
        for m in rows {
            text.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                m.epoch,
                m.train_loss,
                m.train_acc,
                m.val_acc,
                opt(m.step_size),
                opt(m.step_size_unclipped),
                opt(m.lr),
                m.weight_norm,
                m.seconds,
                m.skipped_steps,
                m.overflow_steps,
                opt(m.loss_scale),
                opt(m.val_acc_ema)
            ));
        }
        replace(&self.csv, &text)
    }
}

/// Writes `path` through a temporary file and a rename, so a killed process leaves the old or the
/// new contents, never a truncated file.
fn replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
