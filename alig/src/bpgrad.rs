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

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::check::{non_negative, positive};
use crate::ops;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::{grad_sq_norm, ParamSet};
use crate::state::{StateReader, StateWriter};

/// BPGrad's hyper-parameters. `Default`: `eta` 0.1 (the experiments' default; the reference
/// requires it), the rest as the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct BpgradConfig {
    /// `eta = 1 / L`.
    pub eta: f64,
    /// `mu`.
    pub momentum: f64,
    /// `lambda`: added to the objective and the gradient.
    pub weight_decay: f64,
    /// `eps`: added to the gradient norm in the step's denominator.
    pub eps: f64,
}

impl Default for BpgradConfig {
    fn default() -> Self {
        Self { eta: 0.1, momentum: 0.0, weight_decay: 0.0, eps: 1e-5 }
    }
}

impl BpgradConfig {
    /// The configuration of the registry's hyper-parameters (`lr` as `eta`, `momentum`,
    /// `weight_decay`, `eps`).
    pub fn from_hyper(h: &Hyper) -> Self {
        Self {
            eta: h.lr.unwrap_or(0.1),
            momentum: h.momentum,
            weight_decay: h.weight_decay,
            eps: h.eps.unwrap_or(1e-5),
        }
    }
}

/// BPGrad (see the module docs for the update): per parameter the velocity `v` when there is
/// momentum.
pub struct Bpgrad {
    params: ParamSet,
    cfg: BpgradConfig,
    v: Vec<Tensor>,
}

/// `obj = loss + sum lambda/2 ||w||^2` and the regularised gradients `g + lambda w`, over the
/// parameters with a gradient (shared with L4).
pub(crate) fn regularised(
    params: &ParamSet,
    loss: &Tensor,
    grads: &[Option<Tensor>],
    wd: f64,
) -> Result<(Tensor, Vec<Option<Tensor>>)> {
    let loss = loss.detach().to_device(params.device())?.to_dtype(params.dtype())?.reshape(())?;
    if wd == 0.0 {
        return Ok((loss, grads.to_vec()));
    }
    let mut obj = loss;
    let mut out = Vec::with_capacity(grads.len());
    for (w, g) in params.vars().iter().zip(grads) {
        out.push(match g {
            Some(g) => {
                obj = (obj + (&w.as_detached_tensor().sqr()?.sum_all()? * (0.5 * wd))?)?;
                Some((g + (&w.as_detached_tensor() * wd)?)?)
            }
            None => None,
        });
    }
    Ok((obj, out))
}

impl Bpgrad {
    /// BPGrad over `params`; fails on a non-positive `eta` or a negative momentum, weight decay or `eps`.
    pub fn new(params: ParamSet, cfg: BpgradConfig) -> Result<Self> {
        positive("bpgrad", &[("eta", cfg.eta)])?;
        non_negative("bpgrad", &[("momentum", cfg.momentum), ("weight_decay", cfg.weight_decay), ("eps", cfg.eps)])?;
        let v = if cfg.momentum > 0.0 {
            params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?
        } else {
            vec![]
        };
        Ok(Self { params, cfg, v })
    }
}

impl Optimizer for Bpgrad {
    fn name(&self) -> &'static str {
        "bpgrad"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("bpgrad", grads)?;
        let c = self.cfg.clone();
        let (obj, grads) = regularised(&self.params, loss, grads, c.weight_decay)?;
        let norm = match grad_sq_norm(&grads, self.params.kernels())? {
            Some(sq) => sq.sqrt()?,
            None => ops::scalar(0.0, obj.dtype(), obj.device())?,
        };
        let step = obj.div(&(norm + c.eps)?)?;
        let lr = (&step / (1.0 / c.eta))?; // step / L
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let w = &self.params.vars()[i];
            let delta = g.broadcast_mul(&lr)?;
            if c.momentum > 0.0 {
                self.v[i] = ((&self.v[i] * c.momentum)? - delta)?;
                w.set(&(&w.as_detached_tensor() + &self.v[i])?)?;
            } else {
                w.set(&(&w.as_detached_tensor() - delta)?)?;
            }
        }
        Ok(StepReport { step_size: Some(Scalar::Device(step)), ..Default::default() })
    }

    fn learning_rate(&self) -> Option<f64> {
        Some(self.cfg.eta)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.eta = lr;
    }

    fn state(&self) -> Result<NamedTensors> {
        let mut w = StateWriter::new("bpgrad", &self.params);
        if !self.v.is_empty() {
            w.buffers("v", &self.v)?;
        }
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("bpgrad", &self.params, state);
        let v = if self.v.is_empty() { vec![] } else { r.buffers("v")? };
        r.finish()?;
        self.v = v;
        Ok(())
    }
}
