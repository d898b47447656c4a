//! What a run leaves beside its metrics: the TensorBoard events of each epoch, and with `--keep N`
//! the checkpoints of its N best epochs.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::RunConfig;
use crate::metrics::EpochMetrics;
use crate::tensorboard::EventWriter;
use crate::trainer::StepPoint;

/// The TensorBoard folder of a run directory.
pub fn tb_dir(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("tb")
}

/// Opens the run's event file; a new run (`step` 0) writes its configuration into it as text.
pub fn open_events(cfg: &RunConfig, step: u64) -> Result<Option<EventWriter>> {
    if !cfg.run.tensorboard {
        return Ok(None);
    }
    let mut tb = EventWriter::open(&tb_dir(&cfg.run.out), step)?;
    if step == 0 {
        tb.text(0, "config", &config_table(cfg)?)?;
        tb.text(0, "command", &format!("`{}`", cfg.command_line()))?;
        tb.flush()?;
    }
    Ok(Some(tb))
}

/// The configuration as a markdown table of its settings (`optimizer.lr | 0.1`), for the text tab.
fn config_table(cfg: &RunConfig) -> Result<String> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.into(), s.clone())),
            other => out.push((prefix.into(), other.to_string())),
        }
    }
    let mut rows = vec![];
    flatten("", &serde_json::to_value(cfg)?, &mut rows);
    let body: Vec<String> = rows.iter().map(|(k, v)| format!("| {k} | {} |", v.replace('|', "\\|"))).collect();
    Ok(format!("| setting | value |\n|---|---|\n{}", body.join("\n")))
}

/// Writes an epoch: each step's loss, step sizes and learning rate at its step, then the epoch's
/// metrics at the epoch's last step, and flushes.
pub fn epoch_events(tb: &mut EventWriter, points: &[StepPoint], m: &EpochMetrics, step: u64) -> Result<()> {
    for p in points {
        let mut s = vec![("train/loss", p.loss)];
        s.extend(p.step_size.map(|v| ("train/step_size", v)));
        s.extend(p.step_size_unclipped.map(|v| ("train/step_size_unclipped", v)));
        s.extend(m.lr.map(|v| ("train/lr", v)));
        tb.scalars(p.step, &s)?;
    }
    let mut s = vec![
        ("epoch/epoch", m.epoch as f64),
        ("epoch/train_loss", m.train_loss),
        ("epoch/train_acc", m.train_acc),
        ("epoch/val_acc", m.val_acc),
        ("epoch/weight_norm", m.weight_norm),
        ("epoch/seconds", m.seconds),
        ("epoch/skipped_steps", m.skipped_steps as f64),
    ];
    let optional = [
        ("epoch/step_size", m.step_size),
        ("epoch/step_size_unclipped", m.step_size_unclipped),
        ("epoch/lr", m.lr),
        ("epoch/val_acc_ema", m.val_acc_ema),
        ("epoch/loss_scale", m.loss_scale),
    ];
    s.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if m.overflow_steps > 0 {
        s.push(("epoch/overflow_steps", m.overflow_steps as f64));
    }
    tb.scalars(step, &s)?;
    tb.flush()
}

/// The folder name of epoch `e`'s kept checkpoint.
pub fn epoch_folder(e: usize) -> String {
    format!("epoch-{e:04}")
}

/// `--keep N`: the kept epochs once `epoch` scored `score` (best first; an earlier epoch wins a
/// tie), and whether `epoch` is among them. [`prune`] removes the folders of those that dropped out.
pub fn retain(kept: &[(usize, f64)], epoch: usize, score: f64, keep: usize) -> (Vec<(usize, f64)>, bool) {
    let mut all: Vec<(usize, f64)> = kept.iter().copied().filter(|(e, _)| *e != epoch).collect();
    all.push((epoch, score));
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(keep);
    let is_kept = all.iter().any(|(e, _)| *e == epoch);
    (all, is_kept)
}

/// Removes the `epoch-NNNN` folders (and their `.tmp`/`.prev` leftovers) of `checkpoints` that
/// are not in `kept`: those a later checkpoint dropped, or that a killed run wrote after its last
/// checkpoint.
pub fn prune(checkpoints: &Path, kept: &[(usize, f64)]) -> Result<()> {
    let Ok(entries) = fs::read_dir(checkpoints) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("epoch-") else { continue };
        let epoch = rest.split('.').next().and_then(|n| n.parse::<usize>().ok());
        if epoch.is_some_and(|e| !kept.iter().any(|(k, _)| *k == e)) {
            fs::remove_dir_all(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_best_epochs() {
        let (kept, is_kept) = retain(&[], 1, 0.5, 2);
        assert_eq!((kept.clone(), is_kept), (vec![(1, 0.5)], true));
        let (kept, _) = retain(&kept, 2, 0.7, 2);
        let (kept, is_kept) = retain(&kept, 3, 0.6, 2);
        assert_eq!((kept.clone(), is_kept), (vec![(2, 0.7), (3, 0.6)], true));
        // A tie goes to the earlier epoch; a worse epoch is not kept at all.
        let (kept, is_kept) = retain(&kept, 4, 0.6, 2);
        assert_eq!((kept, is_kept), (vec![(2, 0.7), (3, 0.6)], false));
    }
}
