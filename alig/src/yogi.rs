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

use candle_core::{Result, Tensor, Var};

use crate::decay::coupled;
use crate::moments::{self, ema, old_adam_step_size, old_adam_update};
use crate::optimizer::{plumbing, Hyper, Optimizer};
use crate::params::ParamSet;
use crate::state::{Core, State, EXP_AVG, EXP_AVG_SQ, STEP};

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
        let d = Self::default();
        let [lr, beta1, beta2, eps] = moments::read_hyper(h, [d.lr, d.beta1, d.beta2, d.eps]);
        Self { lr, beta1, beta2, eps, weight_decay: h.weight_decay }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        moments::to_hyper([self.lr, self.beta1, self.beta2, self.eps], self.weight_decay)
    }
}

/// Yogi (see the module docs for the update): per parameter the moments `m`, `v` and the step
/// count `t`.
pub struct Yogi {
    core: Core,
    cfg: YogiConfig,
}

impl Yogi {
    /// Yogi over `params`; fails on betas outside `[0, 1)` or a negative `lr`, `eps` or weight decay.
    pub fn new(params: ParamSet, cfg: YogiConfig) -> Result<Self> {
        moments::check("yogi", [cfg.lr, cfg.beta1, cfg.beta2, cfg.eps], cfg.weight_decay)?;
        let state = moments::state(&params, false)?;
        Ok(Self { core: Core::new("yogi", params, state), cfg })
    }

    /// The update of parameter `i`, `w`, from its gradient `g`.
    fn update(c: &YogiConfig, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
        state[STEP][i] += 1;
        let g = coupled(g, w, c.weight_decay)?;
        state[EXP_AVG][i] = ema(&state[EXP_AVG][i], &g, c.beta1)?;
        let g2 = g.sqr()?;
        let v = &state[EXP_AVG_SQ][i];
        state[EXP_AVG_SQ][i] = (v - (((v - &g2)?.sign()? * (1.0 - c.beta2))? * g2)?)?;
        let step_size = old_adam_step_size(c.lr, c.beta1, c.beta2, state[STEP][i]);
        w.set(&old_adam_update(&w.as_detached_tensor(), &state[EXP_AVG][i], &state[EXP_AVG_SQ][i], step_size, c.eps)?)?;
        Ok(())
    }
}

impl Optimizer for Yogi {
    plumbing!(cfg.lr, per_parameter);
}
