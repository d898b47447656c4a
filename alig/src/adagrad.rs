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

use candle_core::{Result, Tensor, Var};

use crate::check::fields;
use crate::decay::coupled;
use crate::optimizer::{plumbing, Hyper, Optimizer};
use crate::params::ParamSet;
use crate::state::{Buffers, Core, State, STEP};

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
        let d = Self::default();
        Self {
            lr: h.lr.unwrap_or(d.lr),
            weight_decay: h.weight_decay,
            eps: h.eps.unwrap_or(d.eps),
            initial_accumulator_value: h.initial_accumulator.unwrap_or(d.initial_accumulator_value),
            ..d
        }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        Hyper {
            lr: Some(self.lr),
            weight_decay: self.weight_decay,
            eps: Some(self.eps),
            initial_accumulator: Some(self.initial_accumulator_value),
            ..Hyper::default()
        }
    }
}

/// The sum of squared gradients.
const SUM: Buffers = Buffers("sum");

/// Adagrad (see the module docs for the update): per parameter the sum of squared gradients
/// `sum` and the step count `t`.
pub struct Adagrad {
    core: Core,
    cfg: AdagradConfig,
}

impl Adagrad {
    /// Adagrad over `params`; fails on a negative hyper-parameter.
    pub fn new(params: ParamSet, cfg: AdagradConfig) -> Result<Self> {
        fields!(
            non_negative,
            "adagrad",
            cfg.lr,
            cfg.lr_decay,
            cfg.weight_decay,
            cfg.eps,
            cfg.initial_accumulator_value
        )?;
        let mut state = State::new();
        state.fill(SUM, &params, cfg.initial_accumulator_value)?;
        state.counters(STEP, &params);
        Ok(Self { core: Core::new("adagrad", params, state), cfg })
    }

    /// The update of parameter `i`, `w`, from its gradient `g`.
    fn update(c: &AdagradConfig, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
        state[STEP][i] += 1;
        let clr = c.lr / (1.0 + (state[STEP][i] - 1) as f64 * c.lr_decay);
        let d = coupled(g, w, c.weight_decay)?;
        state[SUM][i] = (&state[SUM][i] + d.sqr()?)?;
        let std = (state[SUM][i].sqrt()? + c.eps)?;
        w.set(&(&w.as_detached_tensor() - ((d / std)? * clr)?)?)?;
        Ok(())
    }
}

impl Optimizer for Adagrad {
    plumbing!(cfg.lr, per_parameter);
}
