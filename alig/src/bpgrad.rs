//! BPGrad (Zhang et al., CVPR 2018), as `dfw/baselines/bpgrad.py` of oval-group/dfw: a baseline of
//! the paper.
//!
//! One step, given the unregularised loss `l`, `L = 1 / eta`:
//!
//! ```text
//! obj   = l + sum_p lambda/2 ||w_p||^2 ;   g <- g + lambda w
//! step  = obj / (sqrt(sum_p ||g_p||^2) + eps)                  (a norm, not a squared norm)
//! v    <- mu v - (step / L) g ;   w <- w + v
//! ```
//!
//! **Deviation from the reference.** The reference updates the parameters only inside its momentum
//! branch, so with `momentum = 0` (the paper's SVHN and SNLI BPGrad runs) it never changes them. We
//! take the step `w <- w - (step / L) g` there instead, the same formula with `mu = 0` and no
//! buffer. Parameters without a gradient are skipped (the reference crashes on them).

use candle_core::{Result, Tensor};

use crate::decay::regularised;
use crate::ops;
use crate::optimizer::{plumbing, Optimizer, Scalar, StepReport};
use crate::params::{grad_sq_norm, ParamSet};
use crate::state::{Buffers, Core, Inputs};

/// The velocity `v`.
const V: Buffers = Buffers("v");

/// BPGrad's hyper-parameters: the four of DFW, read the same way from the registry, with the
/// same defaults. For BPGrad `eta = 1 / L`; `lambda` is added to the objective and the gradient,
/// and `eps` to the gradient norm in the step's denominator.
pub type BpgradConfig = crate::dfw::DfwConfig;

/// BPGrad (see the module docs for the update): per parameter the velocity `v` when there is
/// momentum.
pub struct Bpgrad {
    core: Core,
    cfg: BpgradConfig,
}

impl Bpgrad {
    /// BPGrad over `params`; fails on a non-positive `eta` or a negative momentum, weight decay or `eps`.
    pub fn new(params: ParamSet, cfg: BpgradConfig) -> Result<Self> {
        Ok(Self { core: cfg.core("bpgrad", params, V)?, cfg })
    }
}

impl Optimizer for Bpgrad {
    plumbing!(cfg.eta);

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let (c, Inputs { params, state, loss, grads }) = (&self.cfg, self.core.inputs(loss, grads)?);
        let (obj, grads) = regularised(params, loss, &grads, c.weight_decay)?;
        let norm = match grad_sq_norm(&grads, params.kernels())? {
            Some(sq) => sq.sqrt()?,
            None => ops::scalar(0.0, obj.dtype(), obj.device())?,
        };
        let step = obj.div(&(norm + c.eps)?)?;
        let lr = (&step / (1.0 / c.eta))?; // step / L
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &params.vars()[i];
            let delta = g.broadcast_mul(&lr)?;
            if c.momentum > 0.0 {
                state[V][i] = ((&state[V][i] * c.momentum)? - delta)?;
                w.set(&(&w.as_detached_tensor() + &state[V][i])?)?;
            } else {
                w.set(&(&w.as_detached_tensor() - delta)?)?;
            }
        }
        Ok(StepReport { step_size: Some(Scalar::Device(step)), ..Default::default() })
    }
}
