//! The two loops: [`train_one_epoch`] and [`evaluate`]. No branch on the model or the optimizer:
//! the [`Task`] turns batches into losses, the optimizer reads the loss and the gradients.

use std::time::Instant;

use alig::Optimizer;
use anyhow::{bail, Result};
use candle_core::DType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::task::{Split, Task};

/// What an epoch of training measured.
#[derive(Clone, Debug, Default)]
pub struct EpochResult {
    pub loss: f64,
    pub acc: f64,
    pub step_size: Option<f64>,
    pub step_size_unclipped: Option<f64>,
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient (`--on-nonfinite skip`).
    pub skipped: u64,
    pub seconds: f64,
}

/// How the optimizer step is taken.
pub struct StepOptions {
    /// Rescale the gradients to this global norm first (torch's `clip_grad_norm_`).
    pub clip_grad_norm: Option<f64>,
    /// The run's seed: with the step number it seeds dropout.
    pub seed: u64,
    pub quiet: bool,
    /// Skip a step whose loss or gradient is not finite instead of stopping.
    pub skip_nonfinite: bool,
}

/// A training run stopped by a non-finite loss or gradient.
#[derive(Debug)]
pub struct NonFinite {
    pub what: String,
    pub epoch: usize,
    pub step: u64,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "non-finite {} at epoch {} step {}; stopped before the update", self.what, self.epoch + 1, self.step)
    }
}

impl std::error::Error for NonFinite {}

fn bar(len: usize, prefix: String, quiet: bool) -> ProgressBar {
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

/// Names the first gradient with a non-finite value.
fn first_nonfinite(names: &[String], grads: &[Option<candle_core::Tensor>]) -> Result<String> {
    for (name, g) in names.iter().zip(grads) {
        if let Some(g) = g {
            if !g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite() {
                return Ok(format!("gradient of {name}"));
            }
        }
    }
    Ok("gradient norm".into())
}

/// One pass over the training split of `epoch`. `step` counts optimizer steps across the run.
pub fn train_one_epoch(
    task: &dyn Task,
    opt: &mut dyn Optimizer,
    epoch: usize,
    step: &mut u64,
    how: &StepOptions,
) -> Result<EpochResult> {
    let start = Instant::now();
    let progress = bar(task.batches(Split::Train), format!("epoch {}", epoch + 1), how.quiet);
    let (mut loss_sum, mut correct, mut count, mut samples) = (0.0, 0.0, 0.0, 0usize);
    let (mut steps_sum, mut unclipped_sum, mut reported) = (0.0, 0.0, 0u64);
    let (mut steps, mut skipped) = (0u64, 0u64);
    for batch in task.iter(Split::Train, epoch, 0)? {
        let batch = batch?;
        zoo::dropout::reseed(dropout_seed(how.seed, *step));
        let out = task.forward(&batch, true)?;
        let loss = out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut problem = (!loss.is_finite()).then(|| format!("loss ({loss})"));
        let mut g = vec![];
        if problem.is_none() {
            g = opt.params().grads(&out.loss.backward()?);
            let norm = match how.clip_grad_norm {
                Some(c) => alig::clip_grad_norm(&mut g, c)?,
                None => alig::grad_sq_norm(&g, alig::Kernels::Auto)?,
            };
            if let Some(n) = norm {
                if !n.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite() {
                    problem = Some(first_nonfinite(opt.params().names(), &g)?);
                }
            }
        }
        if let Some(what) = problem {
            if !how.skip_nonfinite {
                bail!(NonFinite { what, epoch, step: *step })
            }
            (*step, skipped) = (*step + 1, skipped + 1);
            progress.inc(1);
            continue;
        }
        let report = opt.step_with(&out.loss, &g)?;
        *step += 1;
        steps += 1;
        loss_sum += loss * out.samples as f64;
        samples += out.samples;
        correct += out.correct;
        count += out.count;
        if let Some(s) = &report.step_size {
            steps_sum += s.to_f64()?;
            unclipped_sum += report.step_size_unclipped.as_ref().map_or(Ok(f64::NAN), |u| u.to_f64())?;
            reported += 1;
        }
        let rate = samples as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let step_msg = if reported > 0 { format!(" step {:.3e}", steps_sum / reported as f64) } else { String::new() };
        progress.set_message(format!(
            "loss {:.4} acc {:.2}%{step_msg} {rate:.0}/s",
            loss_sum / samples as f64,
            100.0 * correct / count.max(1.0)
        ));
        progress.inc(1);
    }
    progress.finish_and_clear();
    if samples == 0 {
        bail!("the training split gave no usable batch ({skipped} skipped for non-finite values)")
    }
    let mean = |s: f64| (reported > 0).then(|| s / reported as f64).filter(|v| v.is_finite());
    Ok(EpochResult {
        loss: loss_sum / samples as f64,
        acc: correct / count.max(1.0),
        step_size: mean(steps_sum),
        step_size_unclipped: mean(unclipped_sum),
        steps,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean loss and accuracy over `split`, in evaluation mode.
pub fn evaluate(task: &dyn Task, split: Split, quiet: bool) -> Result<(f64, f64)> {
    let name = match split {
        Split::Train => "train",
        Split::Val => "val",
        Split::Test => "test",
    };
    let progress = bar(task.batches(split), format!("{name:>7}"), quiet);
    let (mut loss_sum, mut correct, mut count, mut samples) = (0.0, 0.0, 0.0, 0usize);
    for batch in task.iter(split, 0, 0)? {
        let out = task.forward(&batch?, false)?;
        loss_sum += out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * out.samples as f64;
        samples += out.samples;
        correct += out.correct;
        count += out.count;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if samples == 0 {
        bail!("the {name} split gave no batch")
    }
    Ok((loss_sum / samples as f64, correct / count.max(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn the_first_non_finite_gradient_is_named() {
        let t = |v: f32| Some(Tensor::new(&[1.0f32, v], &Device::Cpu).unwrap());
        let names = ["a.weight".to_string(), "b.bias".to_string(), "c.weight".to_string()];
        let got = first_nonfinite(&names, &[t(2.0), None, t(f32::NAN)]).unwrap();
        assert_eq!(got, "gradient of c.weight");
        assert_eq!(first_nonfinite(&names, &[t(f32::INFINITY), None, None]).unwrap(), "gradient of a.weight");
    }
}
