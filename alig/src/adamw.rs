//! AdamW with decoupled weight decay, as `alig/th/adamw.py` of oval-group/ali-g (a copy of the
//! PyTorch AdamW of 2019): the paper's AdamW baseline.
//!
//! Per parameter with a gradient, in this order, `t` its step count from 1:
//!
//! ```text
//! w  <- w (1 - lr lambda)                       (decay first; g was computed before it)
//! m  <- beta1 m + (1 - beta1) g
//! v  <- beta2 v + (1 - beta2) g^2               (AMSGrad: v_max <- max(v_max, v), used below)
//! w  <- w - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
//! ```
//!
//! The epsilon sits outside the raw `sqrt(v)` (pre-2019 PyTorch), so this is not torch 2.x's
//! `AdamW`, whose denominator is `sqrt(v) / sqrt(1 - beta2^t) + eps`: we follow the paper's code.

use std::collections::HashMap;

use candle_core::{bail, Result, Tensor};

use crate::check::non_negative;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// AdamW's hyper-parameters. `Default` is the reference's (weight decay 1e-2).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamwConfig {
    /// `lr`: the learning rate (it also scales the decay).
    pub lr: f64,
    /// `beta1`: the decay of the first moment `m`.
    pub beta1: f64,
    /// `beta2`: the decay of the second moment `v`.
    pub beta2: f64,
    /// `eps`: added to the raw `sqrt(v)` (the 2019 placement).
    pub eps: f64,
    /// `lambda`, decoupled: `w <- w (1 - lr lambda)`.
    pub weight_decay: f64,
    /// AMSGrad's running maximum of `v` in the denominator.
    pub amsgrad: bool,
}

impl Default for AdamwConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }
}

impl AdamwConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `betas`, `eps`, `weight_decay`).
    pub fn from_hyper(h: &Hyper) -> Self {
        let (beta1, beta2) = h.betas.unwrap_or((0.9, 0.999));
        Self {
            lr: h.lr.unwrap_or(1e-3),
            beta1,
            beta2,
            eps: h.eps.unwrap_or(1e-8),
            weight_decay: h.weight_decay,
            amsgrad: false,
        }
    }
}

pub(crate) fn check_betas(who: &str, lr: f64, eps: f64, beta1: f64, beta2: f64) -> Result<()> {
    non_negative(who, &[("lr", lr), ("eps", eps)])?;
    if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
        bail!("{who}: betas must be in [0, 1), got ({beta1}, {beta2})")
    }
    Ok(())
}

/// The step size `lr sqrt(1 - beta2^t) / (1 - beta1^t)` of the 2019 PyTorch Adam (AdamW, Yogi).
pub(crate) fn old_adam_step_size(lr: f64, beta1: f64, beta2: f64, t: u64) -> f64 {
    let t = t as i32;
    lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))
}

/// `w - step_size m / (sqrt(u) + eps)`: the 2019 PyTorch Adam update, shared by AdamW and Yogi.
pub(crate) fn old_adam_update(w: &Tensor, m: &Tensor, u: &Tensor, step_size: f64, eps: f64) -> Result<Tensor> {
    let denom = (u.sqrt()? + eps)?;
    w - ((m / denom)? * step_size)?
}

/// AdamW with decoupled weight decay (see the module docs for the update): per parameter the
/// moments `m`, `v` (and AMSGrad's `v_max`) and the step count `t`.
pub struct Adamw {
    params: ParamSet,
    cfg: AdamwConfig,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    v_max: Vec<Tensor>,
    steps: Vec<u64>,
}

impl Adamw {
    /// AdamW over `params`; fails on betas outside `[0, 1)` or a negative `lr`, `eps` or weight decay.
    pub fn new(params: ParamSet, cfg: AdamwConfig) -> Result<Self> {
        check_betas("adamw", cfg.lr, cfg.eps, cfg.beta1, cfg.beta2)?;
        non_negative("adamw", &[("weight_decay", cfg.weight_decay)])?;
        let zeros = || params.vars().iter().map(|v| v.zeros_like()).collect::<Result<Vec<_>>>();
        let (m, v) = (zeros()?, zeros()?);
        let v_max = if cfg.amsgrad { zeros()? } else { vec![] };
        let steps = vec![0; params.len()];
        Ok(Self { params, cfg, m, v, v_max, steps })
    }
}

impl Optimizer for Adamw {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("adamw", grads)?;
        let c = &self.cfg;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            let decayed = (&w.as_detached_tensor() * (1.0 - c.lr * c.weight_decay))?;
            self.steps[i] += 1;
            self.m[i] = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            self.v[i] = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let u = if c.amsgrad {
                self.v_max[i] = self.v_max[i].maximum(&self.v[i])?;
                &self.v_max[i]
            } else {
                &self.v[i]
            };
            w.set(&old_adam_update(
                &decayed,
                &self.m[i],
                u,
                old_adam_step_size(c.lr, c.beta1, c.beta2, self.steps[i]),
                c.eps,
            )?)?;
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
        let mut w = StateWriter::new("adamw", &self.params);
        w.buffers("exp_avg", &self.m)?;
        w.buffers("exp_avg_sq", &self.v)?;
        if self.cfg.amsgrad {
            w.buffers("max_exp_avg_sq", &self.v_max)?;
        }
        w.counters("step", &self.steps)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("adamw", &self.params, state);
        let m = r.buffers("exp_avg")?;
        let v = r.buffers("exp_avg_sq")?;
        let v_max = if self.cfg.amsgrad { r.buffers("max_exp_avg_sq")? } else { vec![] };
        let steps = r.counters("step")?;
        r.finish()?;
        (self.m, self.v, self.v_max, self.steps) = (m, v, v_max, steps);
        Ok(())
    }
}
