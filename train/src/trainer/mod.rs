//! The two loops: [`train_one_epoch`] and [`evaluate`]. No branch on the model or the optimizer:
//! the [`Task`] turns batches into losses, the optimizer reads the loss and the gradients.
//!
//! A training step never waits on the device more than once: forward, backward, the squared
//! gradient norm (or the clipping's norm), then one read of a small tensor holding the loss, that
//! norm and the epoch's running sums ([`host::read`]); a non-finite loss or norm stops (or skips)
//! the step before the update. The optimizer gets the norm the check computed, so ALI-G does not
//! sum the gradients again; the meters (loss, correct predictions, step sizes) are added on the
//! device ([`meters::Sums`]) and read with the next step's check.
//!
//! The [`Learner`] holds the optimizer and, in mixed precision, the f32 master weights it steps
//! and f16's loss scaler: it turns the loss into unscaled f32 gradients, writes the weights back
//! into the model after the step, and takes the blame for an f16 overflow (the step is skipped and
//! the scale halved) before the non-finite check does.

mod ema;
pub mod host;
mod learner;
pub mod meters;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use alig::{Scalar, StepReport};
use anyhow::{bail, Result};
use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::dist::{self, Communicator};
use crate::task::{Batch, Forward, Split, Task};
pub use ema::Ema;
pub use learner::Learner;
use meters::Sums;

/// What to do with a step whose loss or gradient is not finite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNonFinite {
    /// End the run before the update (the last checkpoint stays).
    #[default]
    Stop,
    /// Leave the weights as they are and go on with the next batch.
    Skip,
}

impl fmt::Display for OnNonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnNonFinite::Stop => "stop",
            OnNonFinite::Skip => "skip",
        })
    }
}

impl std::str::FromStr for OnNonFinite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stop" => Ok(OnNonFinite::Stop),
            "skip" => Ok(OnNonFinite::Skip),
            _ => Err("expected stop or skip".into()),
        }
    }
}

impl OnNonFinite {
    /// The value given to `flag` (a command-line flag or a config key), the default when absent.
    pub fn from_flag(value: Option<&str>, flag: &str) -> anyhow::Result<Self> {
        value.map_or(Ok(Self::default()), |s| s.parse().map_err(|e| anyhow::anyhow!("{flag} {s}: {e}")))
    }
}

/// What an epoch of training measured.
#[derive(Clone, Debug, Default)]
pub struct EpochResult {
    /// The mean mini-batch loss.
    pub loss: f64,
    /// The accuracy over the epoch's batches.
    pub acc: f64,
    /// The mean effective step size (optimizers that report one).
    pub step_size: Option<f64>,
    /// ALI-G: the mean step size before clipping.
    pub step_size_unclipped: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient (`--on-nonfinite skip`).
    pub skipped: u64,
    /// f16: steps skipped because the scaled gradients overflowed (each halved the loss scale).
    pub overflows: u64,
    /// f16: the loss scale at the end of the epoch.
    pub loss_scale: Option<f64>,
    pub seconds: f64,
    /// Every step that updated the weights, in order.
    pub points: Vec<StepPoint>,
}

/// One optimizer step as TensorBoard shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPoint {
    /// Optimizer steps of the run after this one (from 1).
    pub step: u64,
    /// The mini-batch loss the step minimised.
    pub loss: f64,
    /// The step size it took (optimizers that report one).
    pub step_size: Option<f64>,
    /// ALI-G: its step size before clipping.
    pub step_size_unclipped: Option<f64>,
}

/// A step whose step sizes may still be on the device: read with the next step's probe.
struct Pending {
    step: u64,
    loss: f64,
    sizes: [Option<Scalar>; 2],
}

/// How the optimizer step is taken.
#[derive(Clone)]
pub struct StepOptions {
    /// Rescale the gradients to this global norm first (torch's `clip_grad_norm_`).
    pub clip_grad_norm: Option<f64>,
    /// The run's seed: with the step number it seeds dropout.
    pub seed: u64,
    pub quiet: bool,
    pub on_nonfinite: OnNonFinite,
    /// Micro-batches per step (`--accumulate`): each batch is split into this many, in order.
    pub accumulate: usize,
    /// The processes of a data-parallel run ([`crate::dist::Single`] for one).
    pub comm: Arc<dyn Communicator>,
}

/// A training run stopped by a non-finite value: a loss or gradient (before the update), or the
/// weights (after an epoch).
#[derive(Debug)]
pub struct NonFinite {
    pub what: String,
    pub epoch: usize,
    pub step: u64,
    /// The weights themselves became non-finite (they were updated).
    pub weights: bool,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weights {
            return write!(f, "the weights became non-finite during epoch {} (the optimizer diverged)", self.epoch + 1);
        }
        write!(f, "non-finite {} at epoch {} step {}; stopped before the update", self.what, self.epoch + 1, self.step)
    }
}

impl std::error::Error for NonFinite {}

/// A progress bar of `len` steps (hidden when `quiet`).
pub fn bar(len: usize, prefix: String, quiet: bool) -> ProgressBar {
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

/// Per-step dropout seed: a resumed run draws the masks the uninterrupted one drew.
fn dropout_seed(seed: u64, step: u64) -> u64 {
    seed.rotate_left(17) ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Names the first gradient with a non-finite value (reads each gradient: only after a failed check).
fn first_nonfinite(names: &[String], grads: &[Option<Tensor>]) -> Result<String> {
    for (name, g) in names.iter().zip(grads) {
        if let Some(g) = g {
            if !host::read_scalar(&g.sqr()?.sum_all()?)?.is_finite() {
                return Ok(format!("gradient of {name}"));
            }
        }
    }
    Ok("gradient norm".into())
}

// The running sums of a training epoch.
const LOSS: usize = 0;
const CORRECT: usize = 1;
const COUNT: usize = 2;
const STEP_SIZE: usize = 3;
const UNCLIPPED: usize = 4;
const SAMPLES: usize = 5;

/// One pass over the training split of `epoch`. `step` counts optimizer steps across the run.
pub fn train_one_epoch(
    task: &dyn Task,
    learner: &mut Learner,
    epoch: usize,
    step: &mut u64,
    how: &StepOptions,
) -> Result<EpochResult> {
    let mut pass = Epoch {
        sums: Sums::new(task.device()),
        progress: bar(task.batches(Split::Train), format!("epoch {}", epoch + 1), how.quiet),
        start: Instant::now(),
        epoch,
        step,
        how,
        counts: Counts::default(),
        pending: None,
        points: vec![],
    };
    for batch in task.iter(Split::Train, epoch, 0)? {
        pass.step(task, learner, &batch?)?;
    }
    pass.finish(learner.loss_scale())
}

/// Host-side counters of an epoch.
#[derive(Default)]
struct Counts {
    samples: usize,
    steps: u64,
    skipped: u64,
    overflows: u64,
    with_step_size: u64,
    with_unclipped: u64,
}

/// The state of one training epoch.
struct Epoch<'a> {
    sums: Sums<6>,
    progress: ProgressBar,
    start: Instant,
    epoch: usize,
    step: &'a mut u64,
    how: &'a StepOptions,
    counts: Counts,
    pending: Option<Pending>,
    points: Vec<StepPoint>,
}

impl Epoch<'_> {
    fn step(&mut self, task: &dyn Task, learner: &mut Learner, batch: &Batch) -> Result<()> {
        dist::fault_point(self.how.comm.rank(), *self.step);
        let (mut out, mut grads) = self.passes(task, learner, batch)?;
        let samples = match self.how.comm.world() {
            1 => Scalar::Host(out.samples as f64),
            // The global batch's gradients, loss and meters, the same on every process.
            _ => {
                let global = dist::reduce::step(self.how.comm.as_ref(), &mut grads, &out)?;
                (out.loss, out.correct, out.count) = (global.loss, global.correct, global.count);
                Scalar::Device(global.samples)
            }
        };
        // The clipping's norm, or the squared norm the optimizer may reuse.
        let (checked, reusable) = match self.how.clip_grad_norm {
            Some(c) => (alig::clip_grad_norm(&mut grads, c)?, None),
            None => {
                let sq = alig::grad_sq_norm(&grads, alig::Kernels::Auto)?;
                (sq.clone(), sq)
            }
        };
        let checked = match checked {
            Some(c) => c,
            None => out.loss.zeros_like()?,
        };
        let (values, sums) = self.probe(&out.loss, &checked)?;
        if !(values[0].is_finite() && values[1].is_finite()) {
            if values[0].is_finite() && learner.overflowed() {
                self.skip(true);
                return Ok(());
            }
            return self.nonfinite(values[0], learner.opt.params().names(), &grads);
        }
        self.show(&sums);
        let report = match &reusable {
            Some(sq) => learner.opt.step_with_sq_norm(&out.loss, &grads, sq)?,
            None => learner.opt.step_with(&out.loss, &grads)?,
        };
        learner.stepped()?;
        *self.step += 1;
        let sizes = [report.step_size.clone(), report.step_size_unclipped.clone()];
        self.pending = Some(Pending { step: *self.step, loss: values[0], sizes });
        self.record(&out, &samples, &report)
    }

    /// The step's one read of the device: its loss and checked norm, the previous step's step
    /// sizes (for its [`StepPoint`]) and the epoch's running sums before this step.
    fn probe(&mut self, loss: &Tensor, checked: &Tensor) -> Result<([f64; 2], [f64; 6])> {
        let pending = self.pending_tensors();
        let first: Vec<&Tensor> = [loss, checked].into_iter().chain(&pending).collect();
        let probe = self.sums.stacked(&first)?.expect("the probe holds the loss");
        let values = host::read(&probe)?;
        self.settle(&values[2..]);
        Ok(([values[0], values[1]], self.sums.values(&values, 2 + pending.len())))
    }

    /// The device-side step sizes of the last step, still to be read.
    fn pending_tensors(&self) -> Vec<Tensor> {
        let sizes = self.pending.iter().flat_map(|p| p.sizes.iter().flatten());
        sizes.filter_map(|s| if let Scalar::Device(t) = s { Some(t.clone()) } else { None }).collect()
    }

    /// The last step's point, its device-side step sizes at the head of `read`.
    fn settle(&mut self, read: &[f64]) {
        let Some(p) = self.pending.take() else { return };
        let mut device = read.iter();
        let [size, unclipped] = p.sizes.map(|s| match s {
            Some(Scalar::Host(v)) => Some(v),
            Some(Scalar::Device(_)) => device.next().copied(),
            None => None,
        });
        self.points.push(StepPoint { step: p.step, loss: p.loss, step_size: size, step_size_unclipped: unclipped });
    }

    /// The forward and backward passes of a step: over the whole batch, or with `--accumulate N`
    /// over its N micro-batches in order, each loss weighted by its share of the batch's samples
    /// before its backward pass, so that the summed gradients and the summed loss are the means
    /// over the whole batch that one pass would give (the loss the optimizer sees included).
    fn passes(&self, task: &dyn Task, learner: &Learner, batch: &Batch) -> Result<(Forward, Vec<Option<Tensor>>)> {
        let seed = dropout_seed(self.how.seed, *self.step);
        let (len, parts) = (batch.len()?, self.how.accumulate.max(1));
        if parts == 1 {
            zoo::dropout::reseed(seed);
            let out = task.forward(batch, true)?;
            let grads = learner.backward(&out.loss)?;
            return Ok((out, grads));
        }
        let mut total: Option<(Forward, Vec<Option<Tensor>>)> = None;
        for i in (0..parts).filter(|i| len * (i + 1) / parts > len * i / parts) {
            zoo::dropout::reseed(seed ^ (i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
            let out = task.forward(&batch.part(i, parts)?, true)?;
            let loss = out.loss.affine(out.samples as f64 / len as f64, 0.0)?;
            let grads = learner.backward(&loss)?;
            let out = Forward { loss: loss.detach(), ..out };
            total = Some(match total {
                None => (out, grads),
                Some((sum, summed)) => (meters::merged(sum, out)?, meters::added(summed, grads)?),
            });
        }
        total.ok_or_else(|| anyhow::anyhow!("an empty training batch"))
    }

    /// Goes on with the next batch without an update: for an overflow of f16's scaled gradients,
    /// or a non-finite step under `--on-nonfinite skip`.
    fn skip(&mut self, overflow: bool) {
        *self.step += 1;
        if overflow {
            self.counts.overflows += 1;
        } else {
            self.counts.skipped += 1;
        }
        self.progress.inc(1);
    }

    /// Stops the run, or skips the step, for a non-finite loss or gradient.
    fn nonfinite(&mut self, loss: f64, names: &[String], grads: &[Option<Tensor>]) -> Result<()> {
        let what = if loss.is_finite() { first_nonfinite(names, grads)? } else { format!("loss ({loss})") };
        if self.how.on_nonfinite == OnNonFinite::Stop {
            bail!(NonFinite { what, epoch: self.epoch, step: *self.step, weights: false })
        }
        self.skip(false);
        Ok(())
    }

    /// Adds a step's loss, score and step sizes to the running sums (on the device); `samples` is
    /// the global batch's size.
    fn record(&mut self, out: &Forward, samples: &Scalar, report: &StepReport) -> Result<()> {
        match samples {
            Scalar::Host(n) => self.sums.add_scaled(LOSS, &out.loss, *n)?,
            Scalar::Device(n) => self.sums.add_tensor(LOSS, &(out.loss.to_dtype(n.dtype())? * n)?)?,
        }
        self.sums.add(SAMPLES, samples)?;
        self.sums.add(CORRECT, &out.correct)?;
        self.sums.add(COUNT, &out.count)?;
        let c = &mut self.counts;
        (c.samples, c.steps) = (c.samples + out.samples, c.steps + 1);
        if let Some(s) = &report.step_size {
            self.sums.add(STEP_SIZE, s)?;
            self.counts.with_step_size += 1;
        }
        if let Some(u) = &report.step_size_unclipped {
            self.sums.add(UNCLIPPED, u)?;
            self.counts.with_unclipped += 1;
        }
        Ok(())
    }

    /// Advances the progress bar, its message from the sums read with this step's check (the
    /// epoch's steps before this one).
    fn show(&self, sums: &[f64; 6]) {
        let c = &self.counts;
        let step_msg = match c.with_step_size {
            0 => String::new(),
            n => format!(" step {:.3e}", sums[STEP_SIZE] / n as f64),
        };
        let rate = c.samples as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        self.progress.set_message(format!(
            "loss {:.4} acc {:.2}%{step_msg} {rate:.0}/s",
            sums[LOSS] / sums[SAMPLES].max(1.0),
            100.0 * sums[CORRECT] / sums[COUNT].max(1.0)
        ));
        self.progress.inc(1);
    }

    fn finish(mut self, loss_scale: Option<f64>) -> Result<EpochResult> {
        self.progress.finish_and_clear();
        let c = &self.counts;
        if c.samples == 0 {
            bail!(
                "the training split gave no usable batch ({} skipped for non-finite values, {} for f16 overflows: \
                 a smaller --loss-scale to start from takes fewer steps to fit)",
                c.skipped,
                c.overflows
            )
        }
        // The sums and the last step's sizes, in one read.
        let pending = self.pending_tensors();
        let read = match self.sums.stacked(&pending.iter().collect::<Vec<_>>())? {
            Some(t) => host::read(&t)?,
            None => vec![],
        };
        self.settle(&read);
        let sums = self.sums.values(&read, pending.len());
        let c = &self.counts;
        let mean = |s: f64, n: u64| (n > 0).then(|| s / n as f64).filter(|v| v.is_finite());
        let unclipped = (c.with_unclipped == c.with_step_size).then_some(sums[UNCLIPPED]);
        Ok(EpochResult {
            loss: sums[LOSS] / sums[SAMPLES].max(1.0),
            acc: sums[CORRECT] / sums[COUNT].max(1.0),
            step_size: mean(sums[STEP_SIZE], c.with_step_size),
            step_size_unclipped: unclipped.and_then(|u| mean(u, c.with_unclipped)),
            steps: c.steps,
            skipped: c.skipped,
            overflows: c.overflows,
            loss_scale,
            seconds: self.start.elapsed().as_secs_f64(),
            points: self.points,
        })
    }
}

/// Mean loss and accuracy over `split`, in evaluation mode (one read of the device at the end).
/// A data-parallel run evaluates its shard of the split on each process and sums the counts.
pub fn evaluate(task: &dyn Task, split: Split, quiet: bool, comm: &dyn Communicator) -> Result<(f64, f64)> {
    let progress = bar(task.batches(split), format!("{:>7}", split.name()), quiet);
    let mut sums = Sums::<3>::new(task.device());
    let mut samples = 0;
    for batch in task.iter(split, 0, 0)? {
        let out = task.forward(&batch?, false)?;
        sums.add_scaled(LOSS, &out.loss, out.samples as f64)?;
        sums.add(CORRECT, &out.correct)?;
        sums.add(COUNT, &out.count)?;
        samples += out.samples;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if samples == 0 {
        bail!("the {} split gave no batch", split.name())
    }
    let local = sums.read()?;
    let mut s = [local[LOSS], local[CORRECT], local[COUNT], samples as f64];
    comm.all_reduce_f64(&mut s)?;
    Ok((s[LOSS] / s[3], s[CORRECT] / s[COUNT].max(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alig::Scalar;
    use candle_core::Device;

    #[test]
    fn the_first_non_finite_gradient_is_named() {
        let t = |v: f32| Some(Tensor::new(&[1.0f32, v], &Device::Cpu).unwrap());
        let names = ["a.weight".to_string(), "b.bias".to_string(), "c.weight".to_string()];
        let got = first_nonfinite(&names, &[t(2.0), None, t(f32::NAN)]).unwrap();
        assert_eq!(got, "gradient of c.weight");
        assert_eq!(first_nonfinite(&names, &[t(f32::INFINITY), None, None]).unwrap(), "gradient of a.weight");
    }

    #[test]
    fn sums_add_on_the_host_and_on_the_device_and_read_once() {
        let mut s = Sums::<3>::new(&Device::Cpu);
        s.add(0, &Scalar::Host(1.5)).unwrap();
        s.add(1, &Scalar::Device(Tensor::new(2.0f32, &Device::Cpu).unwrap())).unwrap();
        s.add_scaled(1, &Tensor::new(0.25f32, &Device::Cpu).unwrap(), 4.0).unwrap();
        s.add(0, &Scalar::Host(1.0)).unwrap();
        let before = host::reads();
        assert_eq!(s.read().unwrap(), [2.5, 3.0, 0.0]);
        assert_eq!(host::reads() - before, 1);
        let loss = Tensor::new(7.0f32, &Device::Cpu).unwrap();
        let probe = host::read(&s.stacked(&[&loss]).unwrap().unwrap()).unwrap();
        assert_eq!((probe[0], s.values(&probe, 1)), (7.0, [2.5, 3.0, 0.0]));
    }
}
