//! The flat `config.json` of toolkit version 0.1 (every field at the top level, the loss, the
//! schedule, the device and the non-finite policy as strings), so that the run directories it
//! wrote still resume and export.

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::{DataConfig, ModelConfig, OptimizerConfig, RunConfig, RunSettings};
use crate::trainer::OnNonFinite;

/// A 0.1 configuration, field for field.
#[derive(Deserialize)]
pub(super) struct FlatConfig {
    version: String,
    model: String,
    data: String,
    opt: String,
    loss: String,
    preset: Option<String>,
    data_dir: Option<PathBuf>,
    glove: Option<PathBuf>,
    hub_cache: Option<PathBuf>,
    offline: bool,
    batch_size: usize,
    epochs: usize,
    steps_per_epoch: usize,
    train_size: Option<usize>,
    val_size: Option<usize>,
    test_size: Option<usize>,
    augment: bool,
    workers: usize,
    lr: Option<f64>,
    momentum: f64,
    weight_decay: f64,
    max_norm: Option<f64>,
    eps: Option<f64>,
    fraction: Option<f64>,
    #[serde(default)]
    initial_accumulator: Option<f64>,
    schedule: String,
    clip_grad_norm: Option<f64>,
    depth: Option<usize>,
    width: Option<usize>,
    growth: Option<usize>,
    dropout: Option<f64>,
    hidden: Option<usize>,
    device: String,
    seed: u64,
    out: PathBuf,
    init: Option<String>,
    #[serde(default)]
    on_nonfinite: Option<String>,
}

impl FlatConfig {
    /// The same settings in this version's nested form (the version it was written by is kept).
    pub(super) fn into_config(self) -> Result<RunConfig> {
        let text = |what: &str, e: String| anyhow::anyhow!("{what}: {e}");
        let run = self.run_settings()?;
        Ok(RunConfig {
            version: self.version,
            model: ModelConfig {
                name: self.model,
                depth: self.depth,
                width: self.width,
                growth: self.growth,
                dropout: self.dropout,
                hidden: self.hidden,
            },
            data: DataConfig {
                name: self.data,
                data_dir: self.data_dir,
                glove: self.glove,
                batch_size: self.batch_size,
                steps_per_epoch: self.steps_per_epoch,
                train_size: self.train_size,
                val_size: self.val_size,
                test_size: self.test_size,
                augment: self.augment,
                workers: self.workers,
                accumulate: 1,
            },
            optimizer: OptimizerConfig {
                name: self.opt,
                loss: self.loss.parse().map_err(|e| text("loss", e))?,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                max_norm: self.max_norm,
                eps: self.eps,
                fraction: self.fraction,
                initial_accumulator: self.initial_accumulator,
                clip_grad_norm: self.clip_grad_norm,
                label_smoothing: 0.0,
            },
            schedule: self.schedule.parse().map_err(|e| text("schedule", e))?,
            run,
            preset: self.preset,
        })
    }

    /// The run settings (0.1 had no data parallelism, mixed precision or run hygiene flags).
    fn run_settings(&self) -> Result<RunSettings> {
        Ok(RunSettings {
            epochs: self.epochs,
            device: self.device.parse()?,
            seed: self.seed,
            out: self.out.clone(),
            init: self.init.clone(),
            offline: self.offline,
            hub_cache: self.hub_cache.clone(),
            on_nonfinite: OnNonFinite::from_flag(self.on_nonfinite.as_deref(), "on_nonfinite")?,
            sync_bn: false,
            tf32: false,
            precision: Default::default(),
            loss_scale: None,
            ema: None,
            keep: None,
            patience: None,
            tensorboard: true,
        })
    }
}
