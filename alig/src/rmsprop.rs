//! RMSProp as TensorFlow 1's `tf.train.RMSPropOptimizer` (the DNC experiment's baseline, whose code
//! is TensorFlow): the mean square starts at **one**, epsilon sits inside the square root, and an
//! optional momentum accumulates the scaled step.
//!
//! ```text
//! ms  <- rho ms + (1 - rho) g^2           (ms starts at 1)
//! mom <- mu mom + lr g / sqrt(ms + eps)
//! w   <- w - mom
//! ```
//!
//! Defaults are TensorFlow's: `rho` 0.9, `mu` 0, `eps` 1e-10. (PyTorch's `RMSprop` differs: its
//! mean square starts at zero and its epsilon is added outside the root.)

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::check::non_negative;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// RMSProp's hyper-parameters. `Default` is TensorFlow 1's (`lr` 1e-3, `rho` 0.9, `mu` 0, `eps` 1e-10).
#[derive(Clone, Debug, PartialEq)]
pub struct RmspropConfig {
    /// `lr`: scales each step before it enters the momentum.
    pub lr: f64,
    /// `rho`, TensorFlow's `decay`.
    pub decay: f64,
    /// `mu`.
    pub momentum: f64,
    /// `eps`: inside the square root, `sqrt(ms + eps)`.
    pub eps: f64,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        Self { lr: 1e-3, decay: 0.9, momentum: 0.0, eps: 1e-10 }
    }
}

impl RmspropConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `momentum`, `eps`).
    pub fn from_hyper(h: &Hyper) -> Self {
        Self { lr: h.lr.unwrap_or(1e-3), momentum: h.momentum, eps: h.eps.unwrap_or(1e-10), ..Self::default() }
    }
}

/// TensorFlow 1's RMSProp (see the module docs for the update): per parameter the mean square
/// `ms` (from 1) and the momentum `mom`.
pub struct Rmsprop {
    params: ParamSet,
    cfg: RmspropConfig,
    ms: Vec<Tensor>,
    mom: Vec<Tensor>,
}

impl Rmsprop {
    /// RMSProp over `params`; fails on a negative `lr`, momentum or `eps`, or `rho` outside `[0, 1)`.
    pub fn new(params: ParamSet, cfg: RmspropConfig) -> Result<Self> {
        non_negative("rmsprop", &[("lr", cfg.lr), ("momentum", cfg.momentum), ("eps", cfg.eps)])?;
        if !(0.0..1.0).contains(&cfg.decay) {
            candle_core::bail!("rmsprop: decay must be in [0, 1), got {}", cfg.decay)
        }
        let ms = params.vars().iter().map(|v| v.ones_like()).collect::<Result<_>>()?;
        let mom = params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?;
        Ok(Self { params, cfg, ms, mom })
    }
}

impl Optimizer for Rmsprop {
    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("rmsprop", grads)?;
        let c = &self.cfg;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            self.ms[i] = ((&self.ms[i] * c.decay)? + (g.sqr()? * (1.0 - c.decay))?)?;
            let step = ((g / (&self.ms[i] + c.eps)?.sqrt()?)? * c.lr)?;
            self.mom[i] = ((&self.mom[i] * c.momentum)? + step)?;
            w.set(&(&w.as_detached_tensor() - &self.mom[i])?)?;
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
        let mut w = StateWriter::new("rmsprop", &self.params);
        w.buffers("ms", &self.ms)?;
        w.buffers("momentum", &self.mom)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("rmsprop", &self.params, state);
        let ms = r.buffers("ms")?;
        let mom = r.buffers("momentum")?;
        r.finish()?;
        (self.ms, self.mom) = (ms, mom);
        Ok(())
    }
}
