//! A configuration as the training flags that rebuild it: every setting spelled out, so the
//! preset and the registries' defaults no longer matter (an exported model card's command line).

use super::RunConfig;
use crate::cli::{OrNone, TrainArgs};

impl RunConfig {
    /// Flags that resolve to this configuration. Machine-local paths (`--out`, `--data-dir`,
    /// `--glove`, `--hub-cache`) and `--offline` are left out unless `local`. Only flags the
    /// optimizer reads are given (the others are errors for it).
    pub fn to_args(&self, local: bool) -> TrainArgs {
        let (m, d, o, r) = (&self.model, &self.data, &self.optimizer, &self.run);
        let uses = |field: &str| {
            alig::registry::find(&o.name)
                .is_ok_and(|s| s.uses.iter().any(|u| u.split_whitespace().next() == Some(field)))
        };
        let used = |field: &str, v: f64| uses(field).then_some(v);
        TrainArgs {
            model: Some(m.name.clone()),
            data: Some(d.name.clone()),
            opt: Some(o.name.clone()),
            loss: Some(o.loss.to_string()),
            data_dir: d.data_dir.clone().filter(|_| local),
            glove: d.glove.clone().filter(|_| local),
            batch_size: Some(d.batch_size),
            train_size: d.train_size,
            val_size: d.val_size,
            test_size: d.test_size,
            no_augment: !d.augment,
            workers: Some(d.workers),
            steps_per_epoch: Some(d.steps_per_epoch),
            lr: uses("lr").then_some(OrNone(o.lr)),
            momentum: used("momentum", o.momentum),
            max_norm: uses("max_norm").then_some(OrNone(o.max_norm)),
            weight_decay: used("weight_decay", o.weight_decay),
            schedule: Some(self.schedule.to_string()),
            clip_grad_norm: Some(OrNone(o.clip_grad_norm)),
            eps: o.eps.filter(|_| uses("eps")),
            fraction: o.fraction.filter(|_| uses("fraction")),
            initial_accumulator: o.initial_accumulator.filter(|_| uses("initial_accumulator")),
            depth: m.depth,
            width: m.width,
            growth: m.growth,
            dropout: m.dropout,
            hidden: m.hidden,
            epochs: Some(r.epochs),
            device: Some(r.device.to_string()),
            seed: Some(r.seed),
            out: Some(r.out.clone()).filter(|_| local),
            init: r.init.clone(),
            offline: r.offline && local,
            hub_cache: r.hub_cache.clone().filter(|_| local),
            on_nonfinite: Some(r.on_nonfinite.to_string()),
            sync_bn: r.sync_bn,
            tf32: r.tf32,
            precision: Some(r.precision.to_string()),
            loss_scale: r.loss_scale,
            accumulate: (d.accumulate != 1).then_some(d.accumulate),
            label_smoothing: (o.label_smoothing != 0.0).then_some(o.label_smoothing),
            ema: r.ema,
            keep: r.keep,
            patience: r.patience,
            no_tensorboard: !r.tensorboard,
            ..TrainArgs::default()
        }
    }

    /// The `train` command line that trains this configuration again (see [`RunConfig::to_args`]).
    pub fn command_line(&self) -> String {
        let argv = self.to_args(false).to_argv().unwrap_or_default();
        let quoted: Vec<String> = argv.iter().map(|a| shell_word(a)).collect();
        format!("train {}", quoted.join(" "))
    }
}

/// `a` as one word of a POSIX shell command.
fn shell_word(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_.,:/@+=".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}
