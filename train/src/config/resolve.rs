//! From the training flags to a checked [`RunConfig`]: the preset of the (data, model, optimizer)
//! triple, then the `--init` checkpoint's shape flags, then the user's flags on top; what is still
//! missing comes from the registries (the dataset's model and loss, the optimizer's experiment
//! defaults). Every check that needs no data runs here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{DataConfig, ModelConfig, OptimizerConfig, Precision, RunConfig, RunSettings};
use crate::cli::TrainArgs;
use crate::loss::LossKind;
use crate::presets;
use crate::schedule::LrPolicy;
use crate::trainer::OnNonFinite;

/// What the training flags ask for.
pub enum Request {
    /// `--list`.
    List,
    /// A new run (or `--eval-only` / `--predict`).
    Train(Box<RunConfig>, Options),
    /// `--resume RUN_DIR`.
    Resume(PathBuf, Options),
}

/// Flags that are not part of the run's configuration.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub eval_only: bool,
    pub predict: Option<PathBuf>,
    pub quiet: bool,
    /// On `--resume`: a new number of epochs (to extend a finished run), a device, loader threads.
    pub epochs: Option<usize>,
    pub device: Option<String>,
    pub workers: Option<usize>,
}

impl Options {
    fn of(user: &TrainArgs) -> Self {
        Self {
            eval_only: user.eval_only,
            predict: user.predict.clone(),
            quiet: user.quiet,
            epochs: user.epochs,
            device: user.device.clone(),
            workers: user.workers,
        }
    }
}

/// What the user's training flags ask for.
pub fn parse(user: &TrainArgs) -> Result<Request> {
    if user.list {
        return Ok(Request::List);
    }
    if let Some(dir) = &user.resume {
        check_resume_flags(user)?;
        return Ok(Request::Resume(dir.clone(), Options::of(user)));
    }
    Ok(Request::Train(Box::new(resolve(user)?), Options::of(user)))
}

/// On `--resume`, only flags that do not change the run's results may be given.
fn check_resume_flags(user: &TrainArgs) -> Result<()> {
    const ALLOWED: &[&str] = &["--resume", "--epochs", "--device", "--workers", "--quiet", "--offline", "--hub-cache"];
    if let Some(name) = user.given()?.into_iter().find(|f| !ALLOWED.contains(&f.as_str())) {
        bail!(
            "{name} cannot change a resumed run (its config.json decides); with --resume only {} may be given",
            ALLOWED[1..].join(", ")
        )
    }
    Ok(())
}

/// The configuration of a new run: preset, then checkpoint shape flags, then the user's flags.
pub fn resolve(user: &TrainArgs) -> Result<RunConfig> {
    let init_meta = match &user.init {
        Some(init) if user.model.is_none() => {
            let path = crate::checkpoint::resolve_init(init, user.hub_cache.as_deref(), user.offline)?;
            crate::checkpoint::read_meta(&path)?
        }
        _ => None,
    };
    let data = user.data.clone().or_else(|| init_meta.as_ref().and_then(|m| m.data.clone()));
    let data = data.unwrap_or_else(|| "digits".into());
    let default_model = data::registry::find(&data)?.default_model;
    let model = user.model.clone().or_else(|| init_meta.as_ref().map(|m| m.model.clone()));
    let model = model.unwrap_or_else(|| default_model.into());
    let opt = user.opt.clone().unwrap_or_else(|| "alig".into());
    let preset = presets::flags(&data, &model, &opt);
    let mut layered = match &preset {
        Some((flags, _)) => TrainArgs::from_flags(flags).context("a preset's flags")?,
        None => TrainArgs::default(),
    };
    // The checkpoint's shape flags describe its tensors: they beat the preset's.
    if let Some(meta) = &init_meta {
        layered = layered.overlay(&TrainArgs::from_flags(&meta.flags).context("a checkpoint's shape flags")?)?;
    }
    let mut merged = layered.overlay(user)?;
    (merged.data, merged.model, merged.opt) = (Some(data), Some(model), Some(opt));
    let preset = preset.map(|(f, source)| format!("{} ({source})", f.join(" ")));
    let cfg = RunConfig::from_args(&merged, user, preset)?;
    cfg.validate()?;
    Ok(cfg)
}

impl RunConfig {
    /// The configuration of the merged flags `a`; `user` holds the flags the user gave (a flag
    /// for an optimizer that ignores it is an error, not a silent no-op).
    fn from_args(a: &TrainArgs, user: &TrainArgs, preset: Option<String>) -> Result<Self> {
        let (data, model, opt) = (a.data.clone().unwrap_or_default(), a.model.clone(), a.opt.clone());
        let spec = alig::registry::find(opt.as_deref().unwrap_or_default())?;
        check_optimizer_flags(spec, user)?;
        let (seed, epochs) = (a.seed.unwrap_or(0), a.epochs.unwrap_or(10));
        let name = format!("{}-{data}-{}-s{seed}", model.as_deref().unwrap_or_default(), spec.name);
        Ok(RunConfig {
            version: env!("CARGO_PKG_VERSION").into(),
            model: ModelConfig {
                name: model.unwrap_or_default(),
                depth: a.depth,
                width: a.width,
                growth: a.growth,
                dropout: a.dropout,
                hidden: a.hidden,
            },
            optimizer: optimizer_config(spec, a, &data)?,
            data: data_config(a, data),
            schedule: LrPolicy::for_run(a.schedule.as_deref().unwrap_or("constant"), epochs)
                .map_err(|e| anyhow::anyhow!("--schedule: {e}"))?,
            run: RunSettings {
                epochs,
                device: crate::device::parse(a.device.as_deref().unwrap_or("auto"))
                    .with_context(|| format!("--device {}", a.device.as_deref().unwrap_or_default()))?,
                seed,
                out: a.out.clone().unwrap_or_else(|| default_out(&name)),
                init: a.init.clone(),
                offline: a.offline,
                hub_cache: a.hub_cache.clone(),
                on_nonfinite: OnNonFinite::from_flag(a.on_nonfinite.as_deref(), "--on-nonfinite")?,
                sync_bn: a.sync_bn,
                tf32: a.tf32,
                precision: match a.precision.as_deref() {
                    None => Default::default(),
                    Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--precision: {e}"))?,
                },
                loss_scale: a.loss_scale,
                ema: a.ema,
                keep: a.keep,
                patience: a.patience,
                tensorboard: !a.no_tensorboard,
            },
            preset,
        })
    }

    /// Checks every value and combination that can be checked without reading data.
    pub fn validate(&self) -> Result<()> {
        let data = data::registry::find(&self.data.name)?;
        let model = zoo::registry::find(&self.model.name)?;
        crate::task::check_fit(data, model, self.optimizer.loss)?;
        let d = &self.data;
        if d.batch_size == 0 || self.run.epochs == 0 || d.steps_per_epoch == 0 || d.workers == 0 {
            bail!("--batch-size, --epochs, --steps-per-epoch and --workers must be positive")
        }
        for (flag, v) in [("--train-size", d.train_size), ("--val-size", d.val_size), ("--test-size", d.test_size)] {
            if v == Some(0) {
                bail!("{flag} must be positive")
            }
        }
        if let Some(p) = self.model.dropout.filter(|p| !(0.0..1.0).contains(p)) {
            bail!("--dropout must be in [0, 1), got {p}")
        }
        if let Some(c) = self.optimizer.clip_grad_norm.filter(|c| *c <= 0.0) {
            bail!("--clip-grad-norm must be positive (or none), got {c}")
        }
        if let Some(s) = self.run.loss_scale {
            if self.run.precision != Precision::F16 {
                bail!("--loss-scale is for --precision f16 (bf16 and f32 need no loss scaling)")
            }
            if !(s.is_finite() && s > 0.0) {
                bail!("--loss-scale must be a positive number, got {s}")
            }
        }
        self.validate_extras()?;
        // The optimizer's own checks (ranges of lr, momentum, ...), on a one-element probe.
        let probe = candle_core::Var::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu)?;
        let params = alig::ParamSet::new([("probe".to_string(), probe)])?;
        let opt = alig::registry::build(&self.optimizer.name, params, &self.hyper())?;
        if opt.learning_rate().is_none() && !self.schedule.is_constant() {
            bail!("--schedule {}: {} has no learning rate to schedule", self.schedule, self.optimizer.name)
        }
        Ok(())
    }
}

impl RunConfig {
    /// The checks of the run-hygiene flags: accumulation, label smoothing, EMA, retention, patience.
    fn validate_extras(&self) -> Result<()> {
        let (d, r) = (&self.data, &self.run);
        if d.accumulate == 0 || d.accumulate > d.batch_size {
            bail!("--accumulate must be between 1 and --batch-size ({}), got {}", d.batch_size, d.accumulate)
        }
        let eps = self.optimizer.label_smoothing;
        if !(0.0..1.0).contains(&eps) {
            bail!("--label-smoothing must be in [0, 1), got {eps}")
        }
        if eps != 0.0 && self.optimizer.loss != LossKind::CrossEntropy {
            bail!("--label-smoothing smooths cross-entropy's targets; --loss {} has none", self.optimizer.loss)
        }
        if let Some(e) = r.ema.filter(|e| !(*e > 0.0 && *e < 1.0)) {
            bail!("--ema is a decay in (0, 1) (e.g. 0.999), got {e}")
        }
        if r.keep == Some(0) || r.patience == Some(0) {
            bail!("--keep and --patience must be positive")
        }
        Ok(())
    }
}

/// Whether the optimizer reads the hyper-parameter `field` (its registry row lists them).
fn uses(spec: &alig::OptimizerSpec, field: &str) -> bool {
    spec.uses.iter().any(|u| u.split_whitespace().next() == Some(field))
}

/// Fails on a flag the user gave for an optimizer that does not read it.
fn check_optimizer_flags(spec: &alig::OptimizerSpec, user: &TrainArgs) -> Result<()> {
    let given: [(&str, bool, &str); 7] = [
        ("--lr", user.lr.is_some(), "lr"),
        ("--momentum", user.momentum.is_some(), "momentum"),
        ("--weight-decay", user.weight_decay.is_some(), "weight_decay"),
        ("--max-norm", user.max_norm.is_some(), "max_norm"),
        ("--fraction", user.fraction.is_some(), "fraction"),
        ("--eps", user.eps.is_some(), "eps"),
        ("--initial-accumulator", user.initial_accumulator.is_some(), "initial_accumulator"),
    ];
    if let Some((flag, _, field)) = given.into_iter().find(|(_, set, field)| *set && !uses(spec, field)) {
        let hint = if spec.name == "alig" && field == "weight_decay" {
            " (ALI-G regularises with --max-norm, an l2-ball constraint)"
        } else {
            ""
        };
        bail!("{} does not use {flag}{hint}; it reads: {}", spec.name, spec.uses.join(", "))
    }
    Ok(())
}

fn optimizer_config(spec: &alig::OptimizerSpec, a: &TrainArgs, data: &str) -> Result<OptimizerConfig> {
    // The paper's experiment scripts' defaults (momentum 0.9 for SGD, ALI-G, DFW and BPGrad;
    // ALI-G's max_lr 0.1) where a flag is left out.
    let base = (spec.experiment_defaults)();
    let loss = match &a.loss {
        Some(l) => l.parse().map_err(anyhow::Error::msg)?,
        None => data::registry::find(data)?.default_loss.parse::<LossKind>().map_err(anyhow::Error::msg)?,
    };
    Ok(OptimizerConfig {
        name: spec.name.into(),
        loss,
        lr: match a.lr {
            Some(v) => v.0,
            None if uses(spec, "lr") => base.lr,
            None => None,
        },
        momentum: a.momentum.unwrap_or(base.momentum),
        weight_decay: a.weight_decay.unwrap_or(base.weight_decay),
        max_norm: a.max_norm.and_then(|m| m.0),
        eps: a.eps,
        fraction: a.fraction,
        initial_accumulator: a.initial_accumulator,
        clip_grad_norm: a.clip_grad_norm.and_then(|c| c.0),
        label_smoothing: a.label_smoothing.unwrap_or(0.0),
    })
}

fn data_config(a: &TrainArgs, name: String) -> DataConfig {
    DataConfig {
        name,
        data_dir: a.data_dir.clone(),
        glove: a.glove.clone(),
        batch_size: a.batch_size.unwrap_or(128),
        steps_per_epoch: a.steps_per_epoch.unwrap_or(1000),
        train_size: a.train_size,
        val_size: a.val_size,
        test_size: a.test_size,
        augment: !a.no_augment,
        workers: a.workers.unwrap_or(2),
        accumulate: a.accumulate.unwrap_or(1),
    }
}

/// `runs/NAME`, or `runs/NAME-2`, `-3`, ... when a run is already there (an explicit `--out` that
/// holds a run is an error instead: nothing a user saved is overwritten).
fn default_out(name: &str) -> PathBuf {
    let taken = |p: &PathBuf| p.join("config.json").exists();
    let first = PathBuf::from("runs").join(name);
    if !taken(&first) {
        return first;
    }
    (2..).map(|n| PathBuf::from("runs").join(format!("{name}-{n}"))).find(|p| !taken(p)).unwrap_or(first)
}
