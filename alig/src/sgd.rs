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

use candle_core::{bail, Result, Tensor, Var};

use crate::check::fields;
use crate::decay::{coupled, coupled_elem};
use crate::ops::{self, Kernel, PairKernel, Real};
use crate::optimizer::{plumbing, Hyper, Optimizer, StepReport};
use crate::params::{Kernels, ParamSet};
use crate::state::{Core, State, MOMENTUM_BUFFER, STEP};

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
            lr: h.lr.unwrap_or(Self::default().lr),
            momentum: h.momentum,
            weight_decay: h.weight_decay,
            nesterov: h.nesterov.unwrap_or(h.momentum > 0.0),
            ..Self::default()
        }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse).
    pub fn to_hyper(&self) -> Hyper {
        Hyper {
            lr: Some(self.lr),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            // `None` where `from_hyper`'s rule (Nesterov whenever there is momentum) gives it.
            nesterov: (self.nesterov != (self.momentum > 0.0)).then_some(self.nesterov),
            ..Hyper::default()
        }
    }
}

/// SGD (see the module docs for the update): with momentum, per parameter the momentum buffer
/// `buf` and the step count (the buffer is filled at the first step).
pub struct Sgd {
    core: Core,
    cfg: SgdConfig,
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
        let (lr, mu, keep) = (T::of(self.lr), T::of(self.mu), T::of(1.0 - self.damp));
        for ((b, w), &g) in buf.iter_mut().zip(w.iter_mut()).zip(g) {
            let d = coupled_elem(g, *w, self.wd);
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
        let lr = T::of(self.lr);
        for (w, &g) in w.iter_mut().zip(g) {
            *w -= lr * coupled_elem(g, *w, self.wd);
        }
    }
}

impl Sgd {
    /// SGD over `params`; fails on a negative hyper-parameter, or Nesterov without momentum or with
    /// dampening (as torch).
    pub fn new(params: ParamSet, cfg: SgdConfig) -> Result<Self> {
        fields!(non_negative, "sgd", cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay)?;
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            bail!("sgd: Nesterov momentum requires momentum > 0 and dampening 0")
        }
        let mut state = State::new();
        if cfg.momentum > 0.0 {
            state.zeros(MOMENTUM_BUFFER, &params)?;
            state.counters(STEP, &params);
        }
        Ok(Self { core: Core::new("sgd", params, state), cfg })
    }
}

/// The step of parameter `i`, `w`, from its gradient `g`.
fn update(c: &SgdConfig, kernels: Kernels, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
    if ops::fused(kernels, &[w.as_tensor(), g]) {
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
            first: state[STEP][i] == 0,
        };
        return ops::launch_pair(&k, &state[MOMENTUM_BUFFER][i], w.as_tensor(), g, ops::Norms::NONE).map(drop);
    }
    let mut d = coupled(g, w, c.weight_decay)?;
    if c.momentum > 0.0 {
        let first = state[STEP][i] == 0;
        let bufs = &mut state[MOMENTUM_BUFFER];
        let buf = if first { d.copy()? } else { ((&bufs[i] * c.momentum)? + (&d * (1.0 - c.dampening))?)? };
        d = if c.nesterov { (d + (&buf * c.momentum)?)? } else { buf.clone() };
        bufs[i] = buf;
    }
    w.set(&(&w.as_detached_tensor() - (d * c.lr)?)?)
}

impl Optimizer for Sgd {
    plumbing!(cfg.lr);

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let (c, kernels) = (&self.cfg, self.core.params.kernels());
        self.core.each_grad(grads, |i, w, g, state| {
            update(c, kernels, i, w, g, state)?;
            if c.momentum > 0.0 {
                state[STEP][i] += 1;
            }
            Ok(())
        })?;
        Ok(StepReport::at_lr(c.lr))
    }
}
