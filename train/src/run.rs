//! One run, as data flows: config -> run directory -> device -> model (seeded, `--init` or the
//! last checkpoint) -> data -> optimizer -> epochs (train, evaluate, log, checkpoint) -> the best
//! checkpoint on the test split -> `summary.json`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use alig::{Optimizer, ParamSet};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde_json::json;

use crate::checkpoint::{self, Checkpoint, ModelMeta, TrainerState};
use crate::config::{Options, Request, RunConfig};
use crate::metrics::{EpochMetrics, MetricsLog};
use crate::schedule::LrPolicy;
use crate::task::{self, Split, Task, TaskKind};
use crate::trainer::{evaluate, train_one_epoch, StepOptions};

/// Runs the command line `args` (program name first).
pub fn run(args: &[String]) -> Result<()> {
    match args.get(1).map(String::as_str) {
        Some("sweep") => return crate::sweep::run(&args[1..]),
        Some("plot") => return crate::plot::run(&args[1..]),
        Some("export") => return crate::export::run(&args[1..]),
        _ => {}
    }
    match crate::config::parse(args)? {
        Request::List => {
            print!("{}", crate::list());
            Ok(())
        }
        Request::Train(cfg, opts) if opts.eval_only || opts.predict.is_some() => eval_only(&cfg, &opts),
        Request::Train(cfg, opts) => fresh(*cfg, opts),
        Request::Resume(dir, opts) => resume(&dir, opts),
    }
}

fn say(quiet: bool, line: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", line.as_ref());
    }
}

/// The model of a run, built and initialised (seeded, then `--init` if given).
struct Built {
    varmap: VarMap,
    model: zoo::Model,
    meta: ModelMeta,
    device: Device,
}

fn build_model(cfg: &RunConfig, quiet: bool) -> Result<Built> {
    let device = crate::device::open(&cfg.device)?;
    let data_spec = data::registry::find(&cfg.data)?;
    let (classes, input) = TaskKind::model_sizes(data_spec.input, data_spec.num_classes);
    let spec = zoo::registry::find(&cfg.model)?;
    let varmap = VarMap::new();
    let model = spec
        .build_seeded(&cfg.model_args(classes, input), &varmap, DType::F32, &device, cfg.seed)
        .with_context(|| format!("building model {}", cfg.model))?;
    let mut flags = vec![];
    for (flag, v) in
        [("--depth", cfg.depth), ("--width", cfg.width), ("--growth", cfg.growth), ("--hidden", cfg.hidden)]
    {
        if let Some(v) = v {
            flags.extend([flag.to_string(), v.to_string()]);
        }
    }
    let meta = ModelMeta { model: cfg.model.clone(), data: Some(cfg.data.clone()), flags };
    if let Some(init) = &cfg.init {
        let path = checkpoint::resolve_init(init, cfg.hub_cache.as_deref(), cfg.offline)?;
        let (tensors, _) = checkpoint::read_model(&path)?;
        let report = zoo::checkpoint::load_tensors(&varmap, tensors.into_iter().collect())
            .with_context(|| format!("--init {}", path.display()))?;
        say(quiet, format!("init: {} tensors from {} ({report:?})", report.loaded, path.display()));
    }
    Ok(Built { varmap, model, meta, device })
}

fn params(varmap: &VarMap) -> Result<ParamSet> {
    let map = varmap.data().lock().map_err(|_| anyhow::anyhow!("varmap lock poisoned"))?.clone();
    Ok(ParamSet::trainable(&map)?)
}

fn load_data(cfg: &RunConfig, quiet: bool) -> Result<data::Data> {
    let spec = data::registry::find(&cfg.data)?;
    let t = Instant::now();
    let d = spec.load(&cfg.data_args())?;
    say(quiet, format!("data: {} loaded in {:.1}s", cfg.data, t.elapsed().as_secs_f64()));
    Ok(d)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn fresh(cfg: RunConfig, opts: Options) -> Result<()> {
    let dir = cfg.out.clone();
    if dir.join("config.json").exists() {
        bail!(
            "{} already holds a run (config.json); continue it with --resume {0}, or pick another --out",
            dir.display()
        )
    }
    say(opts.quiet, describe(&cfg));
    // Everything that can fail on the user's input happens before the run directory exists.
    let built = build_model(&cfg, opts.quiet)?;
    let task = task::build(&cfg, load_data(&cfg, opts.quiet)?, built.model, &built.device)?;
    let opt = alig::registry::build(&cfg.opt, params(&built.varmap)?, &cfg.hyper())?;
    fs::create_dir_all(&dir).with_context(|| format!("creating the run directory {}", dir.display()))?;
    write_json(&dir.join("config.json"), &cfg)?;
    let state = TrainerState {
        epoch: 0,
        step: 0,
        lr: None,
        best_val_acc: None,
        best_epoch: None,
        improved: false,
        rng: rng_note(cfg.seed),
    };
    fit(&cfg, &dir, task.as_ref(), opt, &built.varmap, &built.meta, state, &opts)
}

/// The resolved configuration in a few lines (`config.json` holds all of it).
fn describe(cfg: &RunConfig) -> String {
    let opt = [
        cfg.lr.map(|v| format!("lr {v}")),
        (cfg.momentum != 0.0).then(|| format!("momentum {}", cfg.momentum)),
        (cfg.weight_decay != 0.0).then(|| format!("weight_decay {}", cfg.weight_decay)),
        cfg.max_norm.map(|v| format!("max_norm {v}")),
        cfg.clip_grad_norm.map(|v| format!("clip_grad_norm {v}")),
        (cfg.schedule != "constant").then(|| format!("schedule {}", cfg.schedule)),
    ];
    let opt: Vec<String> = opt.into_iter().flatten().collect();
    let mut s = format!(
        "train: {} on {} with {} ({}), loss {}, {} epochs of batch {}, seed {}, device {}",
        cfg.model,
        cfg.data,
        cfg.opt,
        opt.join(", "),
        cfg.loss,
        cfg.epochs,
        cfg.batch_size,
        cfg.seed,
        cfg.device
    );
    if let Some(p) = &cfg.preset {
        s += &format!(
            "
preset: {p}"
        );
    }
    s + &format!(
        "
run directory: {} (config.json holds every setting)",
        cfg.out.display()
    )
}

fn rng_note(seed: u64) -> String {
    format!("counter-based from seed {seed} (data order: epoch; augmentation: epoch and sample; dropout: step)")
}

fn resume(dir: &Path, opts: Options) -> Result<()> {
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).with_context(|| format!("--resume {}: no run there", dir.display()))?;
    let mut cfg: RunConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    cfg.out = dir.to_path_buf();
    cfg.epochs = opts.epochs.unwrap_or(cfg.epochs);
    cfg.device = opts.device.clone().unwrap_or(cfg.device);
    cfg.workers = opts.workers.unwrap_or(cfg.workers);
    cfg.validate()?;
    // The weights come from the checkpoint, not from --init again.
    let init = cfg.init.take();
    let built = build_model(&cfg, opts.quiet)?;
    cfg.init = init;
    let ckpt_dir = dir.join("checkpoints");
    let Some(last) = checkpoint::find(&ckpt_dir, "last") else {
        say(opts.quiet, format!("resume: no checkpoint in {} yet; starting from the first epoch", ckpt_dir.display()));
        fs::remove_file(&path).ok();
        let _ = fs::remove_file(dir.join("metrics.jsonl"));
        return fresh(cfg, opts);
    };
    let ckpt = checkpoint::load(&last)?;
    if ckpt.meta.model != cfg.model {
        bail!("{}: a checkpoint of {}, the run's config says {}", last.display(), ckpt.meta.model, cfg.model)
    }
    zoo::checkpoint::load_tensors(&built.varmap, ckpt.model.into_iter().collect())
        .with_context(|| format!("loading {}", last.display()))?;
    let task = task::build(&cfg, load_data(&cfg, opts.quiet)?, built.model, &built.device)?;
    let mut opt = alig::registry::build(&cfg.opt, params(&built.varmap)?, &cfg.hyper())?;
    let state: HashMap<String, Tensor> =
        ckpt.optimizer.into_iter().map(|(k, t)| Ok((k, t.to_device(&built.device)?))).collect::<Result<_>>()?;
    opt.load_state(&state).with_context(|| format!("loading {}", last.join(checkpoint::OPTIMIZER_FILE).display()))?;
    MetricsLog::new(dir).keep_until(ckpt.trainer.epoch)?;
    say(
        opts.quiet,
        format!("resume: {} after epoch {} (step {})", dir.display(), ckpt.trainer.epoch, ckpt.trainer.step),
    );
    fit(&cfg, dir, task.as_ref(), opt, &built.varmap, &built.meta, ckpt.trainer, &opts)
}

/// Where a stopped run can resume from, for its error message.
fn last_good(ckpt_dir: &Path) -> String {
    checkpoint::find(ckpt_dir, "last")
        .map_or("no checkpoint was written yet".to_string(), |p| format!("the last good checkpoint is {}", p.display()))
}

#[allow(clippy::too_many_arguments)]
fn fit(
    cfg: &RunConfig,
    dir: &Path,
    task: &dyn Task,
    mut opt: Box<dyn Optimizer>,
    varmap: &VarMap,
    meta: &ModelMeta,
    mut state: TrainerState,
    opts: &Options,
) -> Result<()> {
    let policy: LrPolicy = cfg.schedule.parse().map_err(anyhow::Error::msg)?;
    let base_lr = opt.learning_rate();
    if base_lr.is_none() && !policy.is_constant() {
        bail!("--schedule {}: {} has no learning rate to schedule", cfg.schedule, cfg.opt)
    }
    let metrics = MetricsLog::new(dir);
    let ckpt_dir = dir.join("checkpoints");
    let how = StepOptions {
        clip_grad_norm: cfg.clip_grad_norm,
        seed: cfg.seed,
        quiet: opts.quiet,
        skip_nonfinite: cfg.on_nonfinite == "skip",
    };
    let started = Instant::now();
    while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        if let Some(base) = base_lr {
            let lr = policy.lr(base, epoch, state.lr.unwrap_or(base), state.improved);
            opt.set_learning_rate(lr);
        }
        let mut step = state.step;
        let r =
            train_one_epoch(task, opt.as_mut(), epoch, &mut step, &how).map_err(|e| e.context(last_good(&ckpt_dir)))?;
        let weight_norm = opt.params().sq_norm()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.sqrt();
        if !weight_norm.is_finite() {
            bail!(
                "the weights became non-finite during epoch {} (the optimizer diverged); {}",
                epoch + 1,
                last_good(&ckpt_dir)
            )
        }
        let (_, val_acc) = evaluate(task, Split::Val, opts.quiet)?;
        let improved = state.best_val_acc.is_none_or(|b| val_acc > b);
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: r.loss,
            train_acc: r.acc,
            val_acc,
            step_size: r.step_size,
            step_size_unclipped: r.step_size_unclipped,
            lr: opt.learning_rate(),
            weight_norm,
            seconds: r.seconds,
            skipped_steps: r.skipped,
        };
        metrics.append(&m)?;
        state = TrainerState {
            epoch: epoch + 1,
            step,
            lr: opt.learning_rate(),
            best_val_acc: if improved { Some(val_acc) } else { state.best_val_acc },
            best_epoch: if improved { Some(epoch + 1) } else { state.best_epoch },
            improved,
            rng: state.rng,
        };
        let ckpt = Checkpoint {
            model: zoo::checkpoint::state_dict(varmap)?,
            meta: meta.clone(),
            optimizer: opt.state()?,
            trainer: state.clone(),
        };
        checkpoint::save(&ckpt_dir, if improved { &["last", "best"] } else { &["last"] }, &ckpt)?;
        let step_size = m.step_size.map_or(String::new(), |s| format!(" step_size {s:.3e}"));
        say(
            opts.quiet,
            format!(
                "epoch {:>3}/{}: train_loss {:.4} train_acc {:.2}% val_acc {:.2}%{step_size} ({:.1}s){}",
                epoch + 1,
                cfg.epochs,
                m.train_loss,
                100.0 * m.train_acc,
                100.0 * val_acc,
                m.seconds,
                if improved { " *" } else { "" }
            ) + &if r.skipped > 0 { format!(" ({} steps skipped: non-finite)", r.skipped) } else { String::new() },
        );
    }
    // The best checkpoint on the test split.
    let best = checkpoint::find(&ckpt_dir, "best").context("no best checkpoint")?;
    zoo::checkpoint::load_tensors(varmap, checkpoint::load(&best)?.model.into_iter().collect())?;
    let (test_loss, test_acc) = evaluate(task, Split::Test, opts.quiet)?;
    let last = metrics.read()?.last().cloned();
    let summary = json!({
        "model": cfg.model, "data": cfg.data, "opt": cfg.opt,
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_acc": state.best_val_acc,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "final_train_loss": last.as_ref().map(|m| m.train_loss),
        "final_train_acc": last.as_ref().map(|m| m.train_acc),
        "seconds_this_session": started.elapsed().as_secs_f64(),
    });
    write_json(&dir.join("summary.json"), &summary)?;
    say(
        opts.quiet,
        format!(
            "done: best val_acc {:.2}% at epoch {}; test_acc {:.2}% (best checkpoint); {}",
            100.0 * state.best_val_acc.unwrap_or(0.0),
            state.best_epoch.unwrap_or(0),
            100.0 * test_acc,
            dir.display()
        ),
    );
    Ok(())
}

/// `--eval-only` (validation and test accuracy into `eval.json`) and `--predict FILE` (the
/// model's output on FILE's `input` into `predictions.safetensors`; no dataset is read).
fn eval_only(cfg: &RunConfig, opts: &Options) -> Result<()> {
    let dir: PathBuf = cfg.out.clone();
    let built = build_model(cfg, opts.quiet)?;
    if let Some(file) = &opts.predict {
        let inputs = candle_core::safetensors::load(file, &built.device)
            .with_context(|| format!("--predict {}: not a safetensors file", file.display()))?;
        let x =
            inputs.get("input").with_context(|| format!("--predict {}: no tensor named `input`", file.display()))?;
        let x = x.to_dtype(DType::F32)?;
        let logits = match &built.model {
            zoo::Model::Image(m) => m.forward_t(&x, false)?,
            zoo::Model::Dnc(m) => m.forward(&x)?,
            zoo::Model::Nli(_) => bail!("--predict takes one input tensor; the NLI model needs sentence pairs"),
        };
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let out = dir.join("predictions.safetensors");
        candle_core::safetensors::save(&HashMap::from([("logits".to_string(), logits)]), &out)?;
        say(opts.quiet, format!("predictions: {}", out.display()));
        return Ok(());
    }
    let task = task::build(cfg, load_data(cfg, opts.quiet)?, built.model, &built.device)?;
    let (val_loss, val_acc) = evaluate(task.as_ref(), Split::Val, opts.quiet)?;
    let (test_loss, test_acc) = evaluate(task.as_ref(), Split::Test, opts.quiet)?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = json!({
        "model": cfg.model, "data": cfg.data, "init": cfg.init,
        "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc,
    });
    write_json(&dir.join("eval.json"), &report)?;
    say(opts.quiet, format!("eval: val_acc {:.2}% test_acc {:.2}%", 100.0 * val_acc, 100.0 * test_acc));
    Ok(())
}
