//! Learning-rate schedules over epochs: constant, step decay at milestones, cosine annealing, and
//! a linear warmup in front of any of them.
//!
//! The paper's SGD baselines multiply the learning rate by 0.2 at epochs 60, 120 and 160 (WRN) and
//! by 0.1 at epochs 150 and 225 (DenseNet); ALI-G and the adaptive methods use none. Cosine
//! annealing and warmup are the modern baselines' (timm, torchvision), as PyTorch's
//! `CosineAnnealingLR` and `LinearLR` chained by `SequentialLR`.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// A learning-rate schedule over epochs, counted from 0: the multiplier of the base rate.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `lr(e) = lr0`.
    Constant,
    /// `lr(e) = lr0 * factor^(number of milestones m <= e)`, as PyTorch's `MultiStepLR`.
    StepDecay {
        /// The epochs from which the factor applies once more, sorted.
        milestones: Vec<usize>,
        /// The multiplier at each milestone.
        factor: f64,
    },
    /// `lr(e) = lr0 * (1 + cos(pi * e / epochs)) / 2`, as PyTorch's `CosineAnnealingLR` with
    /// `T_max = epochs` and `eta_min = 0`; from `epochs` on it stays at 0 (PyTorch's would rise
    /// again).
    Cosine {
        /// The length of the schedule, in epochs.
        epochs: usize,
    },
    /// For the first `epochs` epochs `lr(e) = lr0 * (e + 1) / (epochs + 1)` (PyTorch's `LinearLR`
    /// with `start_factor = 1 / (epochs + 1)`, `total_iters = epochs`), then `then` from its own
    /// epoch 0 (as `SequentialLR` with the milestone at `epochs`).
    Warmup {
        /// The warmup's length, in epochs.
        epochs: usize,
        /// The schedule after the warmup, counted from its own epoch 0.
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// The paper's schedule for SGD on WRN: x0.2 at 60, 120, 160.
    pub fn wrn_sgd() -> Self {
        Schedule::StepDecay { milestones: vec![60, 120, 160], factor: 0.2 }
    }

    /// The paper's schedule for SGD on DenseNet: x0.1 at 150, 225.
    pub fn densenet_sgd() -> Self {
        Schedule::StepDecay { milestones: vec![150, 225], factor: 0.1 }
    }

    /// `self` after a linear warmup of `epochs` epochs (none for 0).
    pub fn with_warmup(self, epochs: usize) -> Self {
        match epochs {
            0 => self,
            _ => Schedule::Warmup { epochs, then: Box::new(self) },
        }
    }

    /// The multiplier of the base learning rate during `epoch`.
    pub fn factor_at(&self, epoch: usize) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::StepDecay { milestones, factor } => {
                factor.powi(milestones.iter().filter(|&&m| m <= epoch).count() as i32)
            }
            Schedule::Cosine { epochs } if epoch >= *epochs => 0.0,
            Schedule::Cosine { epochs } => 0.5 * (1.0 + (PI * epoch as f64 / *epochs as f64).cos()),
            Schedule::Warmup { epochs, .. } if epoch < *epochs => (epoch + 1) as f64 / (*epochs + 1) as f64,
            Schedule::Warmup { epochs, then } => then.factor_at(epoch - epochs),
        }
    }

    /// The learning rate during `epoch` for a base rate `base`.
    pub fn lr_at(&self, base: f64, epoch: usize) -> f64 {
        base * self.factor_at(epoch)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::StepDecay { milestones, factor } => {
                let ms: Vec<String> = milestones.iter().map(usize::to_string).collect();
                write!(f, "step:{}:{factor}", ms.join(","))
            }
            Schedule::Cosine { epochs } => write!(f, "cosine:{epochs}"),
            Schedule::Warmup { epochs, then } => write!(f, "{then}:warmup={epochs}"),
        }
    }
}

const USAGE: &str = "expected `constant`, `step:MILESTONES:FACTOR` (e.g. `step:60,120,160:0.2`) or \
`cosine:EPOCHS`, each optionally followed by `:warmup=EPOCHS`";

impl FromStr for Schedule {
    type Err = String;

    /// `constant`, `step:M1,M2,...:FACTOR` (e.g. `step:60,120,160:0.2`) or `cosine:EPOCHS`, each
    /// optionally followed by `:warmup=EPOCHS` (e.g. `cosine:195:warmup=5`).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((inner, warmup)) = s.rsplit_once(":warmup=") {
            let epochs: usize = warmup.parse().map_err(|_| format!("bad warmup {warmup:?}: {USAGE}"))?;
            return Ok(inner.parse::<Schedule>()?.with_warmup(epochs));
        }
        if s == "constant" {
            return Ok(Schedule::Constant);
        }
        if let Some(epochs) = s.strip_prefix("cosine:") {
            return match epochs.parse::<usize>() {
                Ok(epochs) if epochs > 0 => Ok(Schedule::Cosine { epochs }),
                _ => Err(format!("bad cosine length {epochs:?}: {USAGE}")),
            };
        }
        let Some(rest) = s.strip_prefix("step:") else { return Err(format!("bad schedule {s:?}: {USAGE}")) };
        let Some((ms, factor)) = rest.rsplit_once(':') else { return Err(format!("bad schedule {s:?}: {USAGE}")) };
        let factor: f64 = factor.parse().map_err(|_| format!("bad schedule factor {factor:?}: {USAGE}"))?;
        if !factor.is_finite() || factor <= 0.0 {
            return Err(format!("bad schedule factor {factor}: must be > 0"));
        }
        let mut milestones = ms
            .split(',')
            .map(|m| m.trim().parse::<usize>().map_err(|_| format!("bad milestone {m:?}: {USAGE}")))
            .collect::<Result<Vec<_>, _>>()?;
        milestones.sort_unstable();
        Ok(Schedule::StepDecay { milestones, factor })
    }
}
