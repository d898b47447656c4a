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

use candle_core::{Result, Tensor};

use crate::adam::AdamConfig;
use crate::moments::{self, ema, old_adam_step_size, old_adam_update};
use crate::optimizer::{plumbing, Hyper, Optimizer, StepReport};
use crate::params::ParamSet;
use crate::state::{Core, EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ, STEP};

/// AdamW's hyper-parameters: Adam's fields, read AdamW's way. `weight_decay` is decoupled,
/// `w <- w (1 - lr lambda)`, and `eps` is added to the raw `sqrt(v)` (the 2019 placement).
/// `Default` is the reference's: Adam's, with weight decay 1e-2.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamwConfig(pub AdamConfig);

impl Default for AdamwConfig {
    fn default() -> Self {
        Self(AdamConfig { weight_decay: 1e-2, ..AdamConfig::default() })
    }
}

impl AdamwConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `betas`, `eps`, `weight_decay`).
    pub fn from_hyper(h: &Hyper) -> Self {
        let d = Self::default().0;
        let [lr, beta1, beta2, eps] = moments::read_hyper(h, [d.lr, d.beta1, d.beta2, d.eps]);
        Self(AdamConfig { lr, beta1, beta2, eps, weight_decay: h.weight_decay, ..d })
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        self.0.to_hyper()
    }
}

/// AdamW with decoupled weight decay (see the module docs for the update): per parameter the
/// moments `m`, `v` (and AMSGrad's `v_max`) and the step count `t`.
pub struct Adamw {
    core: Core,
    cfg: AdamConfig,
}

impl Adamw {
    /// AdamW over `params`; fails on betas outside `[0, 1)` or a negative `lr`, `eps` or weight decay.
    pub fn new(params: ParamSet, AdamwConfig(cfg): AdamwConfig) -> Result<Self> {
        moments::check("adamw", [cfg.lr, cfg.beta1, cfg.beta2, cfg.eps], cfg.weight_decay)?;
        let state = moments::state(&params, cfg.amsgrad)?;
        Ok(Self { core: Core::new("adamw", params, state), cfg })
    }
}

impl Optimizer for Adamw {
    plumbing!(cfg.lr);

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let c = &self.cfg;
        let u_key = if c.amsgrad { MAX_EXP_AVG_SQ } else { EXP_AVG_SQ };
        self.core.each_grad(grads, |i, w, g, state| {
            let decayed = (&w.as_detached_tensor() * (1.0 - c.lr * c.weight_decay))?;
            state[STEP][i] += 1;
            state[EXP_AVG][i] = ema(&state[EXP_AVG][i], g, c.beta1)?;
            state[EXP_AVG_SQ][i] = ema(&state[EXP_AVG_SQ][i], &g.sqr()?, c.beta2)?;
            if c.amsgrad {
                state[MAX_EXP_AVG_SQ][i] = state[MAX_EXP_AVG_SQ][i].maximum(&state[EXP_AVG_SQ][i])?;
            }
            let step_size = old_adam_step_size(c.lr, c.beta1, c.beta2, state[STEP][i]);
            w.set(&old_adam_update(&decayed, &state[EXP_AVG][i], &state[u_key][i], step_size, c.eps)?)?;
            Ok(())
        })?;
        Ok(StepReport::at_lr(c.lr))
    }
}
