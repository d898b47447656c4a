//! One run, as data flows: config -> run directory -> device -> model (seeded, `--init` or the
//! last checkpoint) -> data -> optimizer -> epochs (train, evaluate, log, TensorBoard, checkpoint;
//! until the last epoch, or `--patience` runs out) -> the best checkpoint on the test split ->
//! `summary.json`.
//!
//! A [`Run`] owns the loop's state; [`Run::start`] and [`Run::resume`] make one, [`Run::fit`]
//! trains it to the end. `--eval-only` and `--predict` are in [`eval`].

pub mod build;
mod eval;
mod record;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use candle_nn::VarMap;
use serde_json::json;

use crate::checkpoint::{self, Checkpoint, ModelMeta, TrainerState};
use crate::config::{Options, RunConfig};
use crate::dist::{self, Communicator};
use crate::metrics::{EpochMetrics, MetricsLog};
use crate::task::{Split, Task};
use crate::tensorboard::EventWriter;
use crate::trainer::{evaluate, host, train_one_epoch, EpochResult, Learner, NonFinite, StepOptions};
use build::say;

/// Trains the run `cfg` asks for (or only evaluates it, with `--eval-only` / `--predict`), on the
/// processes of `comm` ([`dist::Single`] for one).
pub fn train(cfg: RunConfig, opts: Options, comm: Arc<dyn Communicator>) -> Result<()> {
    if opts.eval_only || opts.predict.is_some() {
        if comm.world() > 1 {
            bail!("--eval-only and --predict run in one process; start them without mpirun/srun")
        }
        return eval::eval_only(&cfg, &opts);
    }
    Run::start(cfg, opts, comm)?.fit()
}

/// Readies this process for a run of `cfg` on the processes of `comm`: the global batch must split
/// evenly over them, BatchNorm synchronises through `comm` with `--sync-bn`, and the device is the
/// process's own (see [`dist::device_of`]).
fn join(cfg: &mut RunConfig, comm: &Arc<dyn Communicator>) -> Result<()> {
    dist::check_batch(cfg.data.batch_size, comm.world())?;
    dist::sync_batch_norm((cfg.run.sync_bn && comm.world() > 1).then(|| comm.clone()));
    cfg.run.device = dist::device_of(cfg.run.device, comm.as_ref());
    Ok(())
}

/// Continues the run in `dir` where its last checkpoint left it (on any number of processes).
pub fn resume(dir: &Path, opts: Options, comm: Arc<dyn Communicator>) -> Result<()> {
    Run::resume(dir, opts, comm)?.fit()
}

/// A run in progress: its parts and where the loop is.
pub struct Run {
    cfg: RunConfig,
    opts: Options,
    task: Box<dyn Task>,
    /// The optimizer, and in mixed precision the master weights it steps.
    learner: Learner,
    varmap: VarMap,
    meta: ModelMeta,
    /// The learning rate the schedule scales (the optimizer's own as configured).
    base_lr: Option<f64>,
    state: TrainerState,
    metrics: MetricsLog,
    started: Instant,
    /// The processes of the run: rank 0 alone writes the run directory and prints.
    comm: Arc<dyn Communicator>,
    /// Rank 0's TensorBoard event file (`None` with `--no-tensorboard`).
    tb: Option<EventWriter>,
}

impl Run {
    /// A new run: everything that can fail on the user's input happens before its directory
    /// exists; then `config.json` is written.
    pub fn start(mut cfg: RunConfig, mut opts: Options, comm: Arc<dyn Communicator>) -> Result<Self> {
        let dir = cfg.run.out.clone();
        if comm.is_root() && dir.join("config.json").exists() {
            bail!(
                "{} already holds a run (config.json); continue it with --resume {0}, or pick another --out",
                dir.display()
            )
        }
        let configured = cfg.run.device;
        join(&mut cfg, &comm)?;
        opts.quiet |= !comm.is_root();
        say(opts.quiet, cfg.describe());
        if comm.world() > 1 {
            let bn = if cfg.run.sync_bn { "BatchNorm synchronised" } else { "BatchNorm per process" };
            let per = cfg.data.batch_size / comm.world();
            say(
                opts.quiet,
                format!(
                    "data-parallel: {} processes ({}), {per} samples each per step, {bn}",
                    comm.world(),
                    comm.name()
                ),
            );
        }
        let mut built = build::model(&cfg, true, opts.quiet)?;
        let learner = build::learner(&cfg, &mut built)?;
        let task = build::task(&cfg, built.model, &built.device, opts.quiet, comm.shard())?;
        cfg.run.device = configured;
        let mut tb = None;
        if comm.is_root() {
            fs::create_dir_all(&dir).with_context(|| format!("creating the run directory {}", dir.display()))?;
            cfg.write(&dir)?;
            tb = record::open_events(&cfg, 0)?;
        }
        let state = TrainerState::new(rng_note(cfg.run.seed));
        let (varmap, meta, metrics) = (built.varmap, built.meta, MetricsLog::new(&dir));
        let base_lr = learner.opt.learning_rate();
        let started = Instant::now();
        Ok(Run { cfg, opts, task, learner, varmap, meta, base_lr, state, metrics, started, comm, tb })
    }

    /// The run in `dir`, at its last checkpoint (a run killed before its first checkpoint starts
    /// over). `opts` may change the number of epochs, the device and the loader threads.
    pub fn resume(dir: &Path, mut opts: Options, comm: Arc<dyn Communicator>) -> Result<Self> {
        let mut cfg = RunConfig::read(dir).with_context(|| format!("--resume {}", dir.display()))?;
        // Every process has read the configuration before rank 0 may rewrite it.
        comm.barrier()?;
        opts.quiet |= !comm.is_root();
        cfg.run.out = dir.to_path_buf();
        cfg.run.epochs = opts.epochs.unwrap_or(cfg.run.epochs);
        if let Some(d) = &opts.device {
            cfg.run.device = crate::device::parse(d).with_context(|| format!("--device {d}"))?;
        }
        cfg.data.workers = opts.workers.unwrap_or(cfg.data.workers);
        cfg.validate()?;
        let ckpt_dir = dir.join("checkpoints");
        let Some(last) = checkpoint::find(&ckpt_dir, "last") else {
            say(
                opts.quiet,
                format!("resume: no checkpoint in {} yet; starting from the first epoch", ckpt_dir.display()),
            );
            if comm.is_root() {
                fs::remove_file(dir.join("config.json")).ok();
                fs::remove_file(dir.join("metrics.jsonl")).ok();
                fs::remove_dir_all(record::tb_dir(dir)).ok();
            }
            return Self::start(cfg, opts, comm);
        };
        join(&mut cfg, &comm)?;
        // The weights come from the checkpoint, not from --init again.
        let mut built = build::model(&cfg, false, opts.quiet)?;
        let ckpt = checkpoint::load(&last)?;
        if ckpt.meta.model != cfg.model.name {
            bail!("{}: a checkpoint of {}, the run's config says {}", last.display(), ckpt.meta.model, cfg.model.name)
        }
        built.load(ckpt.model.into_iter().collect()).with_context(|| format!("loading {}", last.display()))?;
        let mut learner = build::learner(&cfg, &mut built)?;
        let task = build::task(&cfg, built.model, &built.device, opts.quiet, comm.shard())?;
        let base_lr = learner.opt.learning_rate();
        let state: std::collections::HashMap<String, Tensor> =
            ckpt.optimizer.into_iter().map(|(k, t)| Ok((k, t.to_device(&built.device)?))).collect::<Result<_>>()?;
        learner
            .opt
            .load_state(&state)
            .with_context(|| format!("loading {}", last.join(checkpoint::OPTIMIZER_FILE).display()))?;
        if let (Some(s), Some(saved)) = (&mut learner.scaler, &ckpt.trainer.loss_scaler) {
            *s = saved.clone();
        }
        if let Some(ema) = &mut learner.ema {
            let saved =
                ckpt.ema.with_context(|| format!("{}: no {} for --ema", last.display(), checkpoint::EMA_FILE))?;
            ema.load(saved.into_iter().collect())
                .with_context(|| format!("loading {}", last.join(checkpoint::EMA_FILE).display()))?;
        }
        let metrics = MetricsLog::new(dir);
        let (epoch, step) = (ckpt.trainer.epoch, ckpt.trainer.step);
        let mut tb = None;
        if comm.is_root() {
            metrics.keep_until(epoch)?;
            record::prune(&ckpt_dir, &ckpt.trainer.kept)?;
            tb = record::open_events(&cfg, step)?;
        }
        say(opts.quiet, format!("resume: {} after epoch {epoch} (step {step})", dir.display()));
        let (varmap, meta) = (built.varmap, built.meta);
        let (state, started) = (ckpt.trainer, Instant::now());
        Ok(Run { cfg, opts, task, learner, varmap, meta, base_lr, state, metrics, started, comm, tb })
    }

    /// Trains to the last epoch, then evaluates the best checkpoint on the test split.
    pub fn fit(mut self) -> Result<()> {
        while self.state.epoch < self.cfg.run.epochs && self.state.stopped_early.is_none() {
            let result = self.train_epoch().map_err(|e| e.context(self.last_good()))?;
            self.end_epoch(result)?;
        }
        self.finish()
    }

    /// `--patience E`: true once E epochs in a row have not beaten the best validation score.
    fn patience_spent(&self) -> bool {
        let s = &self.state;
        self.cfg.run.patience.is_some_and(|p| s.epoch - s.best_epoch.unwrap_or(0) >= p)
    }

    fn dir(&self) -> &Path {
        &self.cfg.run.out
    }

    fn checkpoints(&self) -> PathBuf {
        self.dir().join("checkpoints")
    }

    /// Where a stopped run can resume from, for its error message.
    fn last_good(&self) -> String {
        checkpoint::find(&self.checkpoints(), "last").map_or("no checkpoint was written yet".to_string(), |p| {
            format!("the last good checkpoint is {}", p.display())
        })
    }

    /// The epoch's learning rate, one pass over the training split, and the weights' check.
    fn train_epoch(&mut self) -> Result<EpochResult> {
        let epoch = self.state.epoch;
        if let Some(base) = self.base_lr {
            let lr = self.cfg.schedule.lr(base, epoch, self.state.lr.unwrap_or(base), self.state.improved);
            self.learner.opt.set_learning_rate(lr);
        }
        let how = StepOptions {
            clip_grad_norm: self.cfg.optimizer.clip_grad_norm,
            seed: self.cfg.run.seed,
            quiet: self.opts.quiet,
            on_nonfinite: self.cfg.run.on_nonfinite,
            accumulate: self.cfg.data.accumulate,
            comm: self.comm.clone(),
        };
        let r = train_one_epoch(self.task.as_ref(), &mut self.learner, epoch, &mut self.state.step, &how)?;
        if !host::read_scalar(&self.learner.opt.params().sq_norm()?)?.is_finite() {
            bail!(NonFinite { what: "weights".into(), epoch, step: self.state.step, weights: true })
        }
        Ok(r)
    }

    /// Evaluation, metrics, the checkpoint and the epoch's line.
    fn end_epoch(&mut self, r: EpochResult) -> Result<()> {
        let weight_norm = host::read_scalar(&self.learner.opt.params().sq_norm()?)?.sqrt();
        let val = || evaluate(self.task.as_ref(), Split::Val, self.opts.quiet, self.comm.as_ref());
        let (_, val_acc) = val()?;
        let val_acc_ema = self.learner.with_averaged(val)?.map(|(_, acc)| acc);
        let improved = self.state.best_val_acc.is_none_or(|b| val_acc > b);
        let epoch = self.state.epoch + 1;
        let m = EpochMetrics {
            epoch,
            train_loss: r.loss,
            train_acc: r.acc,
            val_acc,
            step_size: r.step_size,
            step_size_unclipped: r.step_size_unclipped,
            lr: self.learner.opt.learning_rate(),
            weight_norm,
            seconds: r.seconds,
            skipped_steps: r.skipped,
            overflow_steps: r.overflows,
            loss_scale: r.loss_scale,
            val_acc_ema,
        };
        if self.comm.is_root() {
            self.metrics.append(&m)?;
        }
        if let Some(tb) = &mut self.tb {
            record::epoch_events(tb, &r.points, &m, self.state.step)?;
        }
        let s = &mut self.state;
        (s.epoch, s.lr, s.improved) = (epoch, self.learner.opt.learning_rate(), improved);
        if improved {
            (s.best_val_acc, s.best_epoch) = (Some(val_acc), Some(epoch));
        }
        if self.patience_spent() {
            self.state.stopped_early = Some(epoch);
        }
        let mut names = vec![];
        if let Some(keep) = self.cfg.run.keep {
            let (kept, is_kept) = record::retain(&self.state.kept, epoch, val_acc, keep);
            self.state.kept = kept;
            names.extend(is_kept.then(|| record::epoch_folder(epoch)));
        }
        names.extend(improved.then(|| "best".to_string()));
        names.push("last".into());
        self.save_checkpoint(&names)?;
        say(self.opts.quiet, self.epoch_line(&m, improved));
        if let Some(e) = self.state.stopped_early {
            let p = self.cfg.run.patience.unwrap_or_default();
            say(
                self.opts.quiet,
                format!("stopping early after epoch {e}: no better val_acc for {p} epochs (--patience)"),
            );
        }
        Ok(())
    }

    /// Rank 0 writes the checkpoint as each of `names` (`last` at the end) and, with `--keep`,
    /// removes the epoch folders that dropped out; every process returns once it is on disk.
    fn save_checkpoint(&self, names: &[String]) -> Result<()> {
        if !self.comm.is_root() {
            return self.comm.barrier();
        }
        let ckpt = Checkpoint {
            model: self.learner.state_dict()?,
            meta: self.meta.clone(),
            optimizer: self.learner.opt.state()?,
            trainer: TrainerState { loss_scaler: self.learner.scaler.clone(), ..self.state.clone() },
            ema: self.learner.ema.as_ref().map(|e| e.tensors().to_vec()),
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        checkpoint::save(&self.checkpoints(), &names, &ckpt)?;
        if self.cfg.run.keep.is_some() {
            record::prune(&self.checkpoints(), &self.state.kept)?;
        }
        self.comm.barrier()
    }

    fn epoch_line(&self, m: &EpochMetrics, improved: bool) -> String {
        let step_size = m.step_size.map_or(String::new(), |s| format!(" step_size {s:.3e}"));
        let skipped = match m.skipped_steps {
            0 => String::new(),
            n => format!(" ({n} steps skipped: non-finite)"),
        };
        format!(
            "epoch {:>3}/{}: train_loss {:.4} train_acc {:.2}% val_acc {:.2}%{step_size} ({:.1}s){}{skipped}",
            m.epoch,
            self.cfg.run.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            100.0 * m.val_acc,
            m.seconds,
            if improved { " *" } else { "" }
        )
    }

    /// The best checkpoint on the test split, and `summary.json`.
    fn finish(self) -> Result<()> {
        let best = checkpoint::find(&self.checkpoints(), "best").context("no best checkpoint")?;
        zoo::checkpoint::load_tensors(&self.varmap, checkpoint::load(&best)?.model.into_iter().collect())?;
        let test = || evaluate(self.task.as_ref(), Split::Test, self.opts.quiet, self.comm.as_ref());
        let (test_loss, test_acc) = test()?;
        // The moving average as it ended (the best checkpoint is of the weights themselves).
        let test_acc_ema = self.learner.with_averaged(test)?.map(|(_, acc)| acc);
        if !self.comm.is_root() {
            return Ok(());
        }
        let last = self.metrics.read()?.last().cloned();
        let (cfg, state) = (&self.cfg, &self.state);
        let summary = json!({
            "model": cfg.model.name, "data": cfg.data.name, "opt": cfg.optimizer.name,
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_acc": state.best_val_acc,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "test_acc_ema": test_acc_ema,
            "stopped_early": state.stopped_early,
            "final_train_loss": last.as_ref().map(|m| m.train_loss),
            "final_train_acc": last.as_ref().map(|m| m.train_acc),
            "seconds_this_session": self.started.elapsed().as_secs_f64(),
            "processes": self.comm.world(),
            "allreduce_seconds": dist::reduce::spent().0,
            "allreduce_bytes": dist::reduce::spent().1,
        });
        write_json(&self.dir().join("summary.json"), &summary)?;
        say(
            self.opts.quiet,
            format!(
                "done: best val_acc {:.2}% at epoch {}; test_acc {:.2}% (best checkpoint); {}",
                100.0 * state.best_val_acc.unwrap_or(0.0),
                state.best_epoch.unwrap_or(0),
                100.0 * test_acc,
                self.dir().display()
            ),
        );
        Ok(())
    }
}

fn rng_note(seed: u64) -> String {
    format!("counter-based from seed {seed} (data order: epoch; augmentation: epoch and sample; dropout: step)")
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
