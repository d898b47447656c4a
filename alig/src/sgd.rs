//! SGD with momentum, Nesterov momentum and coupled weight decay, as `torch.optim.SGD` (torch 2.x):
//! the paper's SGD baseline (Nesterov 0.9 with step decay of the learning rate).
//!
//! Per parameter with a gradient, `lambda` the weight decay and `mu` the momentum:
//!
//! ```text
//! d   = g + lambda w
//! buf = d                                   at this parameter's first step
//! buf = mu buf + (1 - dampening) d          afterwards
//! d   = d + mu buf  (Nesterov)   or   d = buf
//! w  <- w - lr d
//! ```
//!
//! Dampening defaults to 0 as in PyTorch (Nesterov requires it).

use std::collections::HashMap;

use candle_core::{bail, Result, Tensor};

use crate::check::non_negative;
use crate::ops::{self, Kernel, PairKernel, Real};
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// SGD's hyper-parameters. `Default` is `torch.optim.SGD`'s (lr 1e-3).
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// `lr`: the learning rate.
    pub lr: f64,
    /// `mu`.
    pub momentum: f64,
    /// Dampening of the momentum buffer's new term, `(1 - dampening) d` (0 for Nesterov).
    pub dampening: f64,
    /// `lambda`, coupled: added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum: step along `d + mu buf` instead of `buf`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

impl SgdConfig {
    /// Nesterov defaults to on whenever there is momentum, as in the paper's experiments.
    pub fn from_hyper(h: &Hyper) -> Self {
        Self {
            lr: h.lr.unwrap_or(1e-3),
            momentum: h.momentum,
            dampening: 0.0,
            weight_decay: h.weight_decay,
            nesterov: h.nesterov.unwrap_or(h.momentum > 0.0),
        }
    }
}

/// SGD (see the module docs for the update): per parameter the momentum buffer `buf` once its
/// first step has filled it.
pub struct Sgd {
    params: ParamSet,
    cfg: SgdConfig,
    buf: Vec<Tensor>,
    /// Steps taken by each parameter (the momentum buffer is initialised at the first).
    steps: Vec<u64>,
}

/// One SGD step on `(buf, w)` from `g` in a single pass: `d = g + lambda w`; `buf <- d` at the first
/// step, `mu buf + (1 - dampening) d` afterwards; `w <- w - lr (d + mu buf)` (Nesterov) or
/// `w - lr buf`.
struct MomentumStep {
    lr: f64,
    mu: f64,
    damp: f64,
    wd: f64,
    nesterov: bool,
    first: bool,
}

impl PairKernel for MomentumStep {
    const NAME: &'static str = "sgd-momentum-step";
    #[inline(always)]
    fn run<T: Real>(&self, buf: &mut [T], w: &mut [T], g: &[T]) {
        let (lr, mu, keep, wd) = (T::of(self.lr), T::of(self.mu), T::of(1.0 - self.damp), T::of(self.wd));
        for ((b, w), &g) in buf.iter_mut().zip(w.iter_mut()).zip(g) {
            let d = if self.wd != 0.0 { g + wd * *w } else { g };
            *b = if self.first { d } else { mu * *b + keep * d };
            let d = if self.nesterov { d + mu * *b } else { *b };
            *w -= lr * d;
        }
    }
}

/// Plain SGD: `w <- w - lr (g + lambda w)`.
struct PlainStep {
    lr: f64,
    wd: f64,
}

impl Kernel<1> for PlainStep {
    const NAME: &'static str = "sgd-step";
    #[inline(always)]
    fn run<T: Real>(&self, w: &mut [T], [g]: [&[T]; 1]) {
        let (lr, wd) = (T::of(self.lr), T::of(self.wd));
        for (w, &g) in w.iter_mut().zip(g) {
            let d = if self.wd != 0.0 { g + wd * *w } else { g };
            *w -= lr * d;
        }
    }
}

impl Sgd {
    /// SGD over `params`; fails on a negative hyper-parameter, or Nesterov without momentum or with
    /// dampening (as torch).
    pub fn new(params: ParamSet, cfg: SgdConfig) -> Result<Self> {
        non_negative(
            "sgd",
            &[
                ("lr", cfg.lr),
                ("momentum", cfg.momentum),
                ("dampening", cfg.dampening),
                ("weight_decay", cfg.weight_decay),
            ],
        )?;
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            bail!("sgd: Nesterov momentum requires momentum > 0 and dampening 0")
        }
        let buf = if cfg.momentum > 0.0 {
            params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?
        } else {
            vec![]
        };
        let steps = vec![0; params.len()];
        Ok(Self { params, cfg, buf, steps })
    }

    fn update(&mut self, i: usize, g: &Tensor) -> Result<()> {
        let c = self.cfg.clone();
        let w = self.params.vars()[i].clone();
        let first = self.steps[i] == 0;
        if ops::fused(self.params.kernels(), &[w.as_tensor(), g]) {
            if c.momentum == 0.0 {
                return ops::launch1(&PlainStep { lr: c.lr, wd: c.weight_decay }, w.as_tensor(), g, ops::Norms::NONE)
                    .map(drop);
            }
            let k = MomentumStep {
                lr: c.lr,
                mu: c.momentum,
                damp: c.dampening,
                wd: c.weight_decay,
                nesterov: c.nesterov,
                first,
            };
            return ops::launch_pair(&k, &self.buf[i], w.as_tensor(), g, ops::Norms::NONE).map(drop);
        }
        let mut d = if c.weight_decay != 0.0 { (g + (&w.as_detached_tensor() * c.weight_decay)?)? } else { g.clone() };
        if c.momentum > 0.0 {
            let buf = if first { d.copy()? } else { ((&self.buf[i] * c.momentum)? + (&d * (1.0 - c.dampening))?)? };
            d = if c.nesterov { (d + (&buf * c.momentum)?)? } else { buf.clone() };
            self.buf[i] = buf;
        }
        w.set(&(&w.as_detached_tensor() - (d * c.lr)?)?)
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("sgd", grads)?;
        for (i, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                self.update(i, g)?;
                self.steps[i] += 1;
            }
        }
        Ok(StepReport { step_size: Some(Scalar::Host(self.cfg.lr)), ..Default::default() })
    }

    fn learning_rate(&self) -> Option<f64> {
        Some(self.cfg.lr)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn state(&self) -> Result<NamedTensors> {
        let mut w = StateWriter::new("sgd", &self.params);
        if !self.buf.is_empty() {
            w.buffers("momentum_buffer", &self.buf)?;
            w.counters("step", &self.steps)?;
        }
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("sgd", &self.params, state);
        if self.buf.is_empty() {
            return r.finish();
        }
        let buf = r.buffers("momentum_buffer")?;
        let steps = r.counters("step")?;
        r.finish()?;
        (self.buf, self.steps) = (buf, steps);
        Ok(())
    }
}
