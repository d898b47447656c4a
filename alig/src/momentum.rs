//! Heavy-ball momentum as TensorFlow 1's `tf.train.MomentumOptimizer(lr, mu)` without Nesterov:
//! the DNC experiment's "nag" baseline (the name notwithstanding, its code does not set
//! `use_nesterov`).
//!
//! ```text
//! a <- mu a + g          (a starts at 0)
//! w <- w - lr a
//! ```
//!
//! Unlike PyTorch's SGD with momentum, the first step already uses `a = g` (the same here) and the
//! learning rate multiplies the accumulator at each step, so changing `lr` mid-run rescales past
//! gradients too (TensorFlow's behaviour).

use candle_core::{Result, Tensor, Var};

use crate::check::fields;
use crate::optimizer::{plumbing, Hyper, Optimizer};
use crate::params::ParamSet;
use crate::state::{Buffers, Core, State};

/// The accumulator `a`.
const ACCUMULATOR: Buffers = Buffers("accumulator");

/// The heavy-ball optimizer's hyper-parameters. `Default`: TensorFlow's `lr` 1e-3 and the DNC
/// experiment's `mu` 0.9.
#[derive(Clone, Debug, PartialEq)]
pub struct MomentumConfig {
    /// `lr`: multiplies the accumulator at each step.
    pub lr: f64,
    /// `mu`.
    pub momentum: f64,
}

impl Default for MomentumConfig {
    fn default() -> Self {
        Self { lr: 1e-3, momentum: 0.9 }
    }
}

impl MomentumConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `momentum`).
    pub fn from_hyper(h: &Hyper) -> Self {
        Self { lr: h.lr.unwrap_or(Self::default().lr), momentum: h.momentum }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        Hyper { lr: Some(self.lr), momentum: self.momentum, ..Hyper::default() }
    }
}

/// TensorFlow 1's heavy-ball momentum (see the module docs for the update): per parameter the
/// accumulator `a`.
pub struct Momentum {
    core: Core,
    cfg: MomentumConfig,
}

impl Momentum {
    /// Heavy-ball momentum over `params`; fails on a negative `lr` or `mu`.
    pub fn new(params: ParamSet, cfg: MomentumConfig) -> Result<Self> {
        fields!(non_negative, "momentum", cfg.lr, cfg.momentum)?;
        let mut state = State::new();
        state.zeros(ACCUMULATOR, &params)?;
        Ok(Self { core: Core::new("momentum", params, state), cfg })
    }

    /// The update of parameter `i`, `w`, from its gradient `g`.
    fn update(c: &MomentumConfig, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
        state[ACCUMULATOR][i] = ((&state[ACCUMULATOR][i] * c.momentum)? + g)?;
        w.set(&(&w.as_detached_tensor() - (&state[ACCUMULATOR][i] * c.lr)?)?)?;
        Ok(())
    }
}

impl Optimizer for Momentum {
    plumbing!(cfg.lr, per_parameter);
}
