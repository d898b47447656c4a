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

use candle_core::{Result, Tensor, Var};

use crate::check::fields;
use crate::optimizer::{plumbing, Hyper, Optimizer};
use crate::params::ParamSet;
use crate::state::{Buffers, Core, State};

/// The mean square `ms`.
const MS: Buffers = Buffers("ms");
/// The momentum `mom`.
const MOM: Buffers = Buffers("momentum");

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
        let d = Self::default();
        Self { lr: h.lr.unwrap_or(d.lr), momentum: h.momentum, eps: h.eps.unwrap_or(d.eps), ..d }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        Hyper { lr: Some(self.lr), momentum: self.momentum, eps: Some(self.eps), ..Hyper::default() }
    }
}

/// TensorFlow 1's RMSProp (see the module docs for the update): per parameter the mean square
/// `ms` (from 1) and the momentum `mom`.
pub struct Rmsprop {
    core: Core,
    cfg: RmspropConfig,
}

impl Rmsprop {
    /// RMSProp over `params`; fails on a negative `lr`, momentum or `eps`, or `rho` outside `[0, 1)`.
    pub fn new(params: ParamSet, cfg: RmspropConfig) -> Result<Self> {
        fields!(non_negative, "rmsprop", cfg.lr, cfg.momentum, cfg.eps)?;
        if !(0.0..1.0).contains(&cfg.decay) {
            candle_core::bail!("rmsprop: decay must be in [0, 1), got {}", cfg.decay)
        }
        let mut state = State::new();
        state.fill(MS, &params, 1.0)?;
        state.zeros(MOM, &params)?;
        Ok(Self { core: Core::new("rmsprop", params, state), cfg })
    }

    /// The update of parameter `i`, `w`, from its gradient `g`.
    fn update(c: &RmspropConfig, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
        state[MS][i] = ((&state[MS][i] * c.decay)? + (g.sqr()? * (1.0 - c.decay))?)?;
        let step = ((g / (&state[MS][i] + c.eps)?.sqrt()?)? * c.lr)?;
        state[MOM][i] = ((&state[MOM][i] * c.momentum)? + step)?;
        w.set(&(&w.as_detached_tensor() - &state[MOM][i])?)?;
        Ok(())
    }
}

impl Optimizer for Rmsprop {
    plumbing!(cfg.lr, per_parameter);
}
