//! Yogi (Zaheer et al., NeurIPS 2018), as `alig/th/yogi.py` of oval-group/ali-g: a baseline of the
//! paper's CIFAR experiments.
//!
//! Per parameter with a gradient, `t` its step count from 1:
//!
//! ```text
//! g  <- g + lambda w                            (coupled weight decay)
//! m  <- beta1 m + (1 - beta1) g
//! v  <- v - (1 - beta2) sign(v - g^2) g^2       (sign(0) = 0; v starts at 0)
//! w  <- w - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
//! ```
//!
//! Same (2019 PyTorch) epsilon placement as AdamW. The reference's `amsgrad=True` crashes, so it is
//! not offered. Unlike the reference, the caller's gradient is not modified in place.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::adamw::{check_betas, old_adam_step_size, old_adam_update};
use crate::check::non_negative;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// Yogi's hyper-parameters. `Default` is the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct YogiConfig {
    /// `lr`: the learning rate.
    pub lr: f64,
    /// `beta1`: the decay of the first moment `m`.
    pub beta1: f64,
    /// `beta2`: the rate of Yogi's additive second-moment update.
    pub beta2: f64,
    /// `eps`: added to the raw `sqrt(v)` (the 2019 placement).
    pub eps: f64,
    /// `lambda`, coupled.
    pub weight_decay: f64,
}

impl Default for YogiConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl YogiConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `betas`, `eps`, `weight_decay`).
    pub fn from_hyper(h: &Hyper) -> Self {
        let (beta1, beta2) = h.betas.unwrap_or((0.9, 0.999));
        Self { lr: h.lr.unwrap_or(1e-3), beta1, beta2, eps: h.eps.unwrap_or(1e-8), weight_decay: h.weight_decay }
    }
}

/// Yogi (see the module docs for the update): per parameter the moments `m`, `v` and the step
/// count `t`.
pub struct Yogi {
    params: ParamSet,
    cfg: YogiConfig,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: Vec<u64>,
}

impl Yogi {
    /// Yogi over `params`; fails on betas outside `[0, 1)` or a negative `lr`, `eps` or weight decay.
    pub fn new(params: ParamSet, cfg: YogiConfig) -> Result<Self> {
        check_betas("yogi", cfg.lr, cfg.eps, cfg.beta1, cfg.beta2)?;
        non_negative("yogi", &[("weight_decay", cfg.weight_decay)])?;
        let zeros = || params.vars().iter().map(|v| v.zeros_like()).collect::<Result<Vec<_>>>();
        let (m, v) = (zeros()?, zeros()?);
        let steps = vec![0; params.len()];
        Ok(Self { params, cfg, m, v, steps })
    }
}

impl Optimizer for Yogi {
    fn name(&self) -> &'static str {
        "yogi"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("yogi", grads)?;
        let c = &self.cfg;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            self.steps[i] += 1;
            let g = if c.weight_decay != 0.0 { (g + (&w.as_detached_tensor() * c.weight_decay)?)? } else { g.clone() };
            self.m[i] = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let g2 = g.sqr()?;
            let sign = (&self.v[i] - &g2)?.sign()?;
            self.v[i] = (&self.v[i] - ((sign * (1.0 - c.beta2))? * g2)?)?;
            let step_size = old_adam_step_size(c.lr, c.beta1, c.beta2, self.steps[i]);
            w.set(&old_adam_update(&w.as_detached_tensor(), &self.m[i], &self.v[i], step_size, c.eps)?)?;
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
        let mut w = StateWriter::new("yogi", &self.params);
        w.buffers("exp_avg", &self.m)?;
        w.buffers("exp_avg_sq", &self.v)?;
        w.counters("step", &self.steps)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("yogi", &self.params, state);
        let m = r.buffers("exp_avg")?;
        let v = r.buffers("exp_avg_sq")?;
        let steps = r.counters("step")?;
        r.finish()?;
        (self.m, self.v, self.steps) = (m, v, steps);
        Ok(())
    }
}
