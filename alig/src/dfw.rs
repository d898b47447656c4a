//! DFW: Deep Frank-Wolfe (Berrada, Zisserman, Kumar, ICLR 2019), as `dfw/dfw.py` of oval-group/dfw:
//! a baseline of the paper, used with the multi-class hinge loss ([`crate::loss`]).
//!
//! One step, given the unregularised hinge loss `l` and its gradients `delta = g`:
//!
//! ```text
//! r      = lambda w                                           (before any update)
//! gamma  = clamp((l - eta sum <delta, r>) / (eta sum ||delta||^2 + eps), 0, 1)
//! w     <- w - eta (r + gamma delta)
//! momentum:  z <- mu z - eta gamma (delta + r) ;  w <- w + mu z
//! ```
//!
//! As in the reference, the momentum buffer scales `r` by `gamma` while the direct step does not.
//! `gamma` is computed on the device.

use candle_core::{Result, Tensor};

use crate::check::fields;
use crate::ops;
use crate::optimizer::{plumbing, Hyper, Optimizer, Scalar, StepReport};
use crate::params::{grad_sq_norm, ParamSet};
use crate::state::{Buffers, Core, Inputs, State, MOMENTUM_BUFFER};

/// DFW's hyper-parameters, and BPGrad's ([`crate::BpgradConfig`]). `Default`: `eta` 0.1 (the
/// experiments' default; both references require it), the rest as the references.
#[derive(Clone, Debug, PartialEq)]
pub struct DfwConfig {
    /// `eta`: the proximal coefficient, i.e. the maximal learning rate.
    pub eta: f64,
    /// `mu`.
    pub momentum: f64,
    /// `lambda`.
    pub weight_decay: f64,
    /// `eps`: added to the denominator of `gamma`.
    pub eps: f64,
}

impl Default for DfwConfig {
    fn default() -> Self {
        Self { eta: 0.1, momentum: 0.0, weight_decay: 0.0, eps: 1e-5 }
    }
}

impl DfwConfig {
    /// The configuration of the registry's hyper-parameters (`lr` as `eta`, `momentum`,
    /// `weight_decay`, `eps`).
    pub fn from_hyper(h: &Hyper) -> Self {
        let d = Self::default();
        Self {
            eta: h.lr.unwrap_or(d.eta),
            momentum: h.momentum,
            weight_decay: h.weight_decay,
            eps: h.eps.unwrap_or(d.eps),
        }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        Hyper {
            lr: Some(self.eta),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            eps: Some(self.eps),
            ..Hyper::default()
        }
    }

    /// The optimizer `who`'s core over `params`, with its buffer `buf` at zeros when there is
    /// momentum. Fails, naming `who`, on a non-positive `eta` or a negative momentum, weight decay
    /// or `eps`.
    pub(crate) fn core(&self, who: &'static str, params: ParamSet, buf: Buffers) -> Result<Core> {
        fields!(positive, who, self.eta)?;
        fields!(non_negative, who, self.momentum, self.weight_decay, self.eps)?;
        let mut state = State::new();
        state.zeros_if(self.momentum > 0.0, buf, &params)?;
        Ok(Core::new(who, params, state))
    }
}

/// Deep Frank-Wolfe (see the module docs for the update): per parameter the momentum buffer `z`
/// when there is momentum.
pub struct Dfw {
    core: Core,
    cfg: DfwConfig,
}

impl Dfw {
    /// DFW over `params`; fails on a non-positive `eta` or a negative momentum, weight decay or `eps`.
    pub fn new(params: ParamSet, cfg: DfwConfig) -> Result<Self> {
        Ok(Self { core: cfg.core("dfw", params, MOMENTUM_BUFFER)?, cfg })
    }
}

impl Optimizer for Dfw {
    plumbing!(cfg.eta);

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let (c, Inputs { params, state, loss, grads }) = (&self.cfg, self.core.inputs(loss, grads)?);
        let live: Vec<(usize, &Tensor)> =
            grads.iter().enumerate().filter_map(|(i, g)| g.as_ref().map(|g| (i, g))).collect();
        let r: Vec<Tensor> = live
            .iter()
            .map(|(i, _)| &params.vars()[*i].as_detached_tensor() * c.weight_decay)
            .collect::<Result<_>>()?;
        let gs: Vec<&Tensor> = live.iter().map(|(_, g)| *g).collect();
        let num = if live.is_empty() || c.weight_decay == 0.0 {
            loss
        } else {
            let rs: Vec<&Tensor> = r.iter().collect();
            (loss - (ops::sum_dot(&gs, &rs)? * c.eta)?)?
        };
        let den = match grad_sq_norm(&grads, params.kernels())? {
            Some(sq) => ((sq * c.eta)? + c.eps)?,
            None => ops::scalar(c.eps, params.dtype(), params.device())?,
        };
        let gamma = num.div(&den)?.clamp(0.0, 1.0)?;
        for ((i, g), r) in live.iter().zip(&r) {
            let w = &params.vars()[*i];
            let gg = g.broadcast_mul(&gamma)?;
            let mut new_w = (&w.as_detached_tensor() - ((r + &gg)? * c.eta)?)?;
            if c.momentum > 0.0 {
                let zs = &mut state[MOMENTUM_BUFFER];
                let z = ((&zs[*i] * c.momentum)? - ((*g + r)?.broadcast_mul(&gamma)? * c.eta)?)?;
                new_w = (new_w + (&z * c.momentum)?)?;
                zs[*i] = z;
            }
            w.set(&new_w)?;
        }
        Ok(StepReport { step_size: Some(Scalar::Device(gamma)), ..Default::default() })
    }
}
