//! Learning-rate schedules: constant, and step decay at epoch milestones.
//!
//! The paper's SGD baselines multiply the learning rate by 0.2 at epochs 60, 120 and 160 (WRN) and
//! by 0.1 at epochs 150 and 225 (DenseNet); ALI-G and the adaptive methods use none.

use std::fmt;
use std::str::FromStr;

/// A learning-rate schedule over epochs, counted from 0.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// `lr(e) = lr0 * factor^(number of milestones m <= e)`, as PyTorch's `MultiStepLR`.
    StepDecay {
        milestones: Vec<usize>,
        factor: f64,
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

    /// The multiplier of the base learning rate during `epoch`.
    pub fn factor_at(&self, epoch: usize) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::StepDecay { milestones, factor } => {
                factor.powi(milestones.iter().filter(|&&m| m <= epoch).count() as i32)
            }
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
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    /// `constant`, or `step:M1,M2,...:FACTOR` (e.g. `step:60,120,160:0.2`).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected `constant` or `step:MILESTONES:FACTOR`, e.g. `step:60,120,160:0.2`";
        if s == "constant" {
            return Ok(Schedule::Constant);
        }
        let Some(rest) = s.strip_prefix("step:") else { return Err(format!("bad schedule {s:?}: {usage}")) };
        let Some((ms, factor)) = rest.rsplit_once(':') else { return Err(format!("bad schedule {s:?}: {usage}")) };
        let factor: f64 = factor.parse().map_err(|_| format!("bad schedule factor {factor:?}: {usage}"))?;
        if !factor.is_finite() || factor <= 0.0 {
            return Err(format!("bad schedule factor {factor}: must be > 0"));
        }
        let mut milestones = ms
            .split(',')
            .map(|m| m.trim().parse::<usize>().map_err(|_| format!("bad milestone {m:?}: {usage}")))
            .collect::<Result<Vec<_>, _>>()?;
        milestones.sort_unstable();
        Ok(Schedule::StepDecay { milestones, factor })
    }
}
