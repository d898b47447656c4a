//! Adagrad, as `torch.optim.Adagrad` of torch 2.x (coupled weight decay): a baseline of the paper
//! (SVHN, SNLI, the training-performance runs and the DNC).
//!
//! Per parameter with a gradient, `t` its step count from 1:
//!
//! ```text
//! d    = g + lambda w
//! clr  = lr / (1 + (t - 1) lr_decay)
//! sum <- sum + d^2                  (sum starts at initial_accumulator_value)
//! w   <- w - clr d / (sqrt(sum) + eps)
//! ```

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::check::non_negative;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// Adagrad's hyper-parameters. `Default` is `torch.optim.Adagrad`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct AdagradConfig {
    /// `lr`: the learning rate before its decay.
    pub lr: f64,
    /// `lr_decay`: the rate shrinks as `lr / (1 + (t - 1) lr_decay)`.
    pub lr_decay: f64,
    /// `lambda`, coupled.
    pub weight_decay: f64,
    /// The value the sum of squared gradients starts at (torch: 0; TensorFlow 1: 0.1).
    pub initial_accumulator_value: f64,
    /// `eps`: added to `sqrt(sum)` in the denominator.
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

impl AdagradConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `weight_decay`, `eps`,
    /// `initial_accumulator`); the rest as `Default`.
    pub fn from_hyper(h: &Hyper) -> Self {
        Self {
            lr: h.lr.unwrap_or(1e-2),
            weight_decay: h.weight_decay,
            eps: h.eps.unwrap_or(1e-10),
            initial_accumulator_value: h.initial_accumulator.unwrap_or(0.0),
            ..Self::default()
        }
    }
}

/// Adagrad (see the module docs for the update): per parameter the sum of squared gradients
/// `sum` and the step count `t`.
pub struct Adagrad {
    params: ParamSet,
    cfg: AdagradConfig,
    sum: Vec<Tensor>,
    steps: Vec<u64>,
}

impl Adagrad {
    /// Adagrad over `params`; fails on a negative hyper-parameter.
    pub fn new(params: ParamSet, cfg: AdagradConfig) -> Result<Self> {
        non_negative(
            "adagrad",
            &[
                ("lr", cfg.lr),
                ("lr_decay", cfg.lr_decay),
                ("weight_decay", cfg.weight_decay),
                ("eps", cfg.eps),
                ("initial_accumulator_value", cfg.initial_accumulator_value),
            ],
        )?;
        let sum =
            params.vars().iter().map(|v| v.ones_like()? * cfg.initial_accumulator_value).collect::<Result<_>>()?;
        let steps = vec![0; params.len()];
        Ok(Self { params, cfg, sum, steps })
    }
}

impl Optimizer for Adagrad {
    fn name(&self) -> &'static str {
        "adagrad"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("adagrad", grads)?;
        let c = &self.cfg;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            self.steps[i] += 1;
            let clr = c.lr / (1.0 + (self.steps[i] - 1) as f64 * c.lr_decay);
            let d = if c.weight_decay != 0.0 { (g + (&w.as_detached_tensor() * c.weight_decay)?)? } else { g.clone() };
            self.sum[i] = (&self.sum[i] + d.sqr()?)?;
            let std = (self.sum[i].sqrt()? + c.eps)?;
            w.set(&(&w.as_detached_tensor() - ((d / std)? * clr)?)?)?;
        }
        Ok(StepReport { step_size: Some(Scalar::Host(c.lr)), ..Default::default() })
    }

    fn learning_rate(&self) -> Option<f64> {
        Some(self.cfg.lr)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn state(&self) -> Result<NamedTensors> {
        let mut w = StateWriter::new("adagrad", &self.params);
        w.buffers("sum", &self.sum)?;
        w.counters("step", &self.steps)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("adagrad", &self.params, state);
        let sum = r.buffers("sum")?;
        let steps = r.counters("step")?;
        r.finish()?;
        (self.sum, self.steps) = (sum, steps);
        Ok(())
    }
}
