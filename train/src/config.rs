//! The resolved run configuration: command line over preset over defaults, checked before any data
//! is read, and written to `config.json` before the first step. A resumed run reads it back.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::cli::Cli;
use crate::loss::LossKind;
use crate::presets;
use crate::schedule::LrPolicy;

/// Everything a run depends on. One name per quantity: the flags, these fields and the metrics
/// share them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The toolkit version that wrote this file.
    pub version: String,
    pub model: String,
    pub data: String,
    pub opt: String,
    pub loss: String,
    /// The preset flags applied before the user's, and where they come from.
    pub preset: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub glove: Option<PathBuf>,
    pub hub_cache: Option<PathBuf>,
    pub offline: bool,
    pub batch_size: usize,
    pub epochs: usize,
    /// Generated data only (the DNC task).
    pub steps_per_epoch: usize,
    pub train_size: Option<usize>,
    pub val_size: Option<usize>,
    pub test_size: Option<usize>,
    pub augment: bool,
    pub workers: usize,
    /// The learning rate (ALI-G: `max_lr`, `None` = unclipped; DFW/BPGrad: `eta`).
    pub lr: Option<f64>,
    pub momentum: f64,
    pub weight_decay: f64,
    /// ALI-G's l2-ball radius.
    pub max_norm: Option<f64>,
    pub eps: Option<f64>,
    pub fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_accumulator: Option<f64>,
    pub schedule: String,
    pub clip_grad_norm: Option<f64>,
    pub depth: Option<usize>,
    pub width: Option<usize>,
    pub growth: Option<usize>,
    pub dropout: Option<f64>,
    pub hidden: Option<usize>,
    pub device: String,
    pub seed: u64,
    pub out: PathBuf,
    pub init: Option<String>,
    /// `stop` or `skip` on a non-finite loss or gradient.
    #[serde(default = "stop")]
    pub on_nonfinite: String,
}

fn stop() -> String {
    "stop".into()
}

/// What the command line asks for.
pub enum Request {
    List,
    Train(Box<RunConfig>, Options),
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

/// Parses `args` (program name first): the user's flags, then the preset for the triple they name,
/// then the user's flags again on top.
pub fn parse(args: &[String]) -> Result<Request> {
    let user = Cli::try_parse_from(args)?;
    let options = Options {
        eval_only: user.eval_only,
        predict: user.predict.clone(),
        quiet: user.quiet,
        epochs: user.epochs,
        device: user.device.clone(),
        workers: user.workers,
    };
    if user.list {
        return Ok(Request::List);
    }
    if let Some(dir) = &user.resume {
        check_resume_flags(args)?;
        return Ok(Request::Resume(dir.clone(), options));
    }
    let init_meta = match &user.init {
        Some(init) if user.model.is_none() => crate::checkpoint::init_metadata(init, &user)?,
        _ => None,
    };
    let data = user.data.clone().or_else(|| init_meta.as_ref().and_then(|m| m.data.clone()));
    let data = data.unwrap_or_else(|| "digits".into());
    let model = user
        .model
        .clone()
        .or_else(|| init_meta.as_ref().map(|m| m.model.clone()))
        .unwrap_or_else(|| presets::default_model(&data).into());
    let opt = user.opt.clone().unwrap_or_else(|| "alig".into());
    let mut full = vec![args.first().cloned().unwrap_or_else(|| "train".into())];
    full.extend(["--data", &data, "--model", &model, "--opt", &opt].map(String::from));
    let preset = presets::flags(&data, &model, &opt);
    if let Some((flags, _)) = &preset {
        full.extend(flags.iter().cloned());
    }
    // The checkpoint's shape flags describe its tensors: they beat the preset's.
    if let Some(meta) = &init_meta {
        full.extend(meta.flags.iter().cloned());
    }
    full.extend(args.iter().skip(1).cloned());
    let cli = Cli::try_parse_from(&full)?;
    let preset = preset.map(|(f, source)| format!("{} ({source})", f.join(" ")));
    let cfg = RunConfig::from_cli(&cli, &user, preset)?;
    Ok(Request::Train(Box::new(cfg), options))
}

/// On `--resume`, only flags that do not change the run's results may be given.
fn check_resume_flags(args: &[String]) -> Result<()> {
    const ALLOWED: &[&str] = &["--resume", "--epochs", "--device", "--workers", "--quiet", "--offline", "--hub-cache"];
    for a in args.iter().skip(1).filter(|a| a.starts_with("--")) {
        let name = a.split('=').next().unwrap_or(a);
        if !ALLOWED.contains(&name) {
            bail!(
                "{name} cannot change a resumed run (its config.json decides); with --resume only {} may be given",
                ALLOWED[1..].join(", ")
            )
        }
    }
    Ok(())
}

impl RunConfig {
    fn from_cli(cli: &Cli, user: &Cli, preset: Option<String>) -> Result<Self> {
        let data = cli.data.clone().unwrap_or_default();
        let model = cli.model.clone().unwrap_or_default();
        let opt = cli.opt.clone().unwrap_or_default();
        let spec = alig::registry::find(&opt)?;
        let defaults = (spec.defaults)();
        let uses = |field: &str| spec.uses.iter().any(|u| u.split_whitespace().next() == Some(field));
        // Flags the user gave for an optimizer that ignores them are an error, not a silent no-op.
        let given: [(&str, bool, &str); 7] = [
            ("--lr", user.lr.is_some(), "lr"),
            ("--momentum", user.momentum.is_some(), "momentum"),
            ("--weight-decay", user.weight_decay.is_some(), "weight_decay"),
            ("--max-norm", user.max_norm.is_some(), "max_norm"),
            ("--fraction", user.fraction.is_some(), "fraction"),
            ("--eps", user.eps.is_some(), "eps"),
            ("--initial-accumulator", user.initial_accumulator.is_some(), "initial_accumulator"),
        ];
        for (flag, set, field) in given {
            if set && !uses(field) {
                let hint = if opt == "alig" && field == "weight_decay" {
                    " (ALI-G regularises with --max-norm, an l2-ball constraint)"
                } else {
                    ""
                };
                bail!("{opt} does not use {flag}{hint}; it reads: {}", spec.uses.join(", "))
            }
        }
        let lr = match cli.lr {
            Some(v) => v.0,
            // The reference CLI's default eta (0.1) where the optimizer itself has none.
            None if uses("lr") => defaults.lr.or(Some(0.1)),
            None => None,
        };
        let cfg = RunConfig {
            version: env!("CARGO_PKG_VERSION").into(),
            loss: cli.loss.clone().unwrap_or_else(|| default_loss(&data).into()),
            preset,
            data_dir: cli.data_dir.clone(),
            glove: cli.glove.clone(),
            hub_cache: cli.hub_cache.clone(),
            offline: cli.offline,
            batch_size: cli.batch_size.unwrap_or(128),
            epochs: cli.epochs.unwrap_or(10),
            steps_per_epoch: cli.steps_per_epoch.unwrap_or(1000),
            train_size: cli.train_size,
            val_size: cli.val_size,
            test_size: cli.test_size,
            augment: !cli.no_augment,
            workers: cli.workers.unwrap_or(2),
            lr,
            // The reference CLI's momentum 0.9 for the optimizers it passed it to; else the
            // optimizer's own default.
            momentum: cli.momentum.unwrap_or(if ["sgd", "alig", "dfw", "bpgrad"].contains(&opt.as_str()) {
                0.9
            } else {
                defaults.momentum
            }),
            weight_decay: cli.weight_decay.unwrap_or(defaults.weight_decay),
            max_norm: cli.max_norm.and_then(|m| m.0),
            eps: cli.eps,
            fraction: cli.fraction,
            initial_accumulator: cli.initial_accumulator,
            schedule: cli.schedule.clone().unwrap_or_else(|| "constant".into()),
            clip_grad_norm: cli.clip_grad_norm.and_then(|c| c.0),
            depth: cli.depth,
            width: cli.width,
            growth: cli.growth,
            dropout: cli.dropout,
            hidden: cli.hidden,
            device: cli.device.clone().unwrap_or_else(|| "auto".into()),
            seed: cli.seed.unwrap_or(0),
            out: cli
                .out
                .clone()
                .unwrap_or_else(|| default_out(&format!("{model}-{data}-{opt}-s{}", cli.seed.unwrap_or(0)))),
            init: cli.init.clone(),
            on_nonfinite: cli.on_nonfinite.clone().unwrap_or_else(stop),
            model,
            data,
            opt,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value and combination that can be checked without reading data.
    pub fn validate(&self) -> Result<()> {
        let data = data::registry::find(&self.data)?;
        let model = zoo::registry::find(&self.model)?;
        alig::registry::find(&self.opt)?;
        let kind = crate::task::TaskKind::of(data.input);
        if kind.model_kind() != model.kind {
            let fitting: Vec<&str> =
                zoo::MODELS.iter().filter(|m| m.kind == kind.model_kind()).map(|m| m.name).collect();
            bail!(
                "model {} does not fit dataset {} ({}); models for it: {}",
                self.model,
                self.data,
                kind,
                fitting.join(", ")
            )
        }
        let loss: LossKind = self.loss.parse().map_err(anyhow::Error::msg)?;
        kind.check_loss(loss)?;
        if self.batch_size == 0 || self.epochs == 0 || self.steps_per_epoch == 0 || self.workers == 0 {
            bail!("--batch-size, --epochs, --steps-per-epoch and --workers must be positive")
        }
        for (flag, v) in
            [("--train-size", self.train_size), ("--val-size", self.val_size), ("--test-size", self.test_size)]
        {
            if v == Some(0) {
                bail!("{flag} must be positive")
            }
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                bail!("--dropout must be in [0, 1), got {p}")
            }
        }
        if let Some(c) = self.clip_grad_norm {
            if c <= 0.0 {
                bail!("--clip-grad-norm must be positive (or none), got {c}")
            }
        }
        if !["stop", "skip"].contains(&self.on_nonfinite.as_str()) {
            bail!("--on-nonfinite {}: expected stop or skip", self.on_nonfinite)
        }
        let _: LrPolicy = self.schedule.parse().map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
        crate::device::parse(&self.device).with_context(|| format!("--device {}", self.device))?;
        // The optimizer's own checks (ranges of lr, momentum, ...), on a one-element probe.
        let probe = candle_core::Var::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu)?;
        let params = alig::ParamSet::new([("probe".to_string(), probe)])?;
        alig::registry::build(&self.opt, params, &self.hyper())?;
        Ok(())
    }

    /// The optimizer's hyper-parameters.
    pub fn hyper(&self) -> alig::Hyper {
        alig::Hyper {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            max_norm: self.max_norm,
            eps: self.eps,
            fraction: self.fraction,
            initial_accumulator: self.initial_accumulator,
            ..alig::Hyper::default()
        }
    }

    /// The model's shape options for a dataset with `num_classes` outputs and `input` size.
    pub fn model_args(&self, num_classes: usize, input: Option<usize>) -> zoo::ModelArgs {
        zoo::ModelArgs {
            num_classes,
            depth: self.depth,
            width: self.width,
            growth: self.growth,
            dropout: self.dropout,
            hidden: self.hidden,
            input,
        }
    }

    /// Where and how the data is read.
    pub fn data_args(&self) -> data::DataArgs {
        data::DataArgs {
            data_dir: self.data_dir.clone(),
            offline: self.offline,
            hub_cache: self.hub_cache.clone(),
            split_seed: self.seed,
            caps: data::Caps { train: self.train_size, val: self.val_size, test: self.test_size },
            augment: self.augment,
            glove: self.glove.clone(),
        }
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

fn default_loss(data: &str) -> &'static str {
    match data {
        "repeat-copy" => "sigmoid-ce",
        _ => "ce",
    }
}
