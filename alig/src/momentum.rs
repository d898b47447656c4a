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

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::check::non_negative;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

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
        Self { lr: h.lr.unwrap_or(1e-3), momentum: h.momentum }
    }
}

/// TensorFlow 1's heavy-ball momentum (see the module docs for the update): per parameter the
/// accumulator `a`.
pub struct Momentum {
    params: ParamSet,
    cfg: MomentumConfig,
    accum: Vec<Tensor>,
}

impl Momentum {
    /// Heavy-ball momentum over `params`; fails on a negative `lr` or `mu`.
    pub fn new(params: ParamSet, cfg: MomentumConfig) -> Result<Self> {
        non_negative("momentum", &[("lr", cfg.lr), ("momentum", cfg.momentum)])?;
        let accum = params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?;
        Ok(Self { params, cfg, accum })
    }
}

impl Optimizer for Momentum {
    fn name(&self) -> &'static str {
        "momentum"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("momentum", grads)?;
        let c = &self.cfg;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            self.accum[i] = ((&self.accum[i] * c.momentum)? + g)?;
            w.set(&(&w.as_detached_tensor() - (&self.accum[i] * c.lr)?)?)?;
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
        let mut w = StateWriter::new("momentum", &self.params);
        w.buffers("accumulator", &self.accum)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("momentum", &self.params, state);
        let accum = r.buffers("accumulator")?;
        r.finish()?;
        self.accum = accum;
        Ok(())
    }
}
