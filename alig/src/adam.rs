//! Adam and AMSGrad, as `torch.optim.Adam` of torch 2.x (coupled weight decay): baselines of the
//! paper (AMSGrad on CIFAR, SVHN and SNLI; Adam in the training-performance runs).
//!
//! Per parameter with a gradient, `t` its step count from 1:
//!
//! ```text
//! d      = g + lambda w
//! m     <- m + (1 - beta1) (d - m)
//! v     <- beta2 v + (1 - beta2) d^2
//! AMSGrad: v_max <- max(v_max, v), u = v_max;   Adam: u = v
//! w     <- w - lr / (1 - beta1^t) * m / (sqrt(u) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! This is torch 2.x's epsilon placement (outside the bias correction of `v`); AMSGrad takes its
//! maximum on the raw `v`. AdamW and Yogi use the older placement (see `adamw.rs`).

use candle_core::{Result, Tensor, Var};

use crate::decay::{coupled, coupled_elem};
use crate::moments;
use crate::ops::{self, Kernel, Real};
use crate::optimizer::{plumbing, Hyper, Optimizer, StepReport};
use crate::params::{Kernels, ParamSet};
use crate::state::{Core, State, EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ, STEP};

/// Adam's hyper-parameters, and AdamW's inside [`crate::AdamwConfig`]. `Default` is
/// `torch.optim.Adam`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// `lr`: the learning rate.
    pub lr: f64,
    /// `beta1`: the decay of the first moment `m`.
    pub beta1: f64,
    /// `beta2`: the decay of the second moment `v`.
    pub beta2: f64,
    /// `eps`: added to the bias-corrected `sqrt(v)` (AdamW: to the raw `sqrt(v)`).
    pub eps: f64,
    /// `lambda`: Adam couples it (adds `lambda w` to the gradient), AdamW decouples it.
    pub weight_decay: f64,
    /// AMSGrad: divide by the running maximum of `v` instead of `v`.
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }
}

impl AdamConfig {
    /// The configuration of the registry's hyper-parameters (`lr`, `betas`, `eps`, `weight_decay`),
    /// as Adam or AMSGrad.
    pub fn from_hyper(h: &Hyper, amsgrad: bool) -> Self {
        let d = Self::default();
        let [lr, beta1, beta2, eps] = moments::read_hyper(h, [d.lr, d.beta1, d.beta2, d.eps]);
        Self { lr, beta1, beta2, eps, weight_decay: h.weight_decay, amsgrad }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse, but for
    /// `amsgrad`, which the registry row decides).
    pub fn to_hyper(&self) -> Hyper {
        moments::to_hyper([self.lr, self.beta1, self.beta2, self.eps], self.weight_decay)
    }
}

/// Adam or AMSGrad (see the module docs for the update): per parameter the moments `m` and `v`
/// (and AMSGrad's `v_max`) and the step count `t`.
pub struct Adam {
    core: Core,
    cfg: AdamConfig,
}

/// One moment estimate from `d = g + lambda w`: the first, `m <- m + (1 - beta) (d - m)`, or the
/// second, `v <- beta v + (1 - beta) d^2`.
struct Moment {
    beta: f64,
    wd: f64,
    second: bool,
}

impl Kernel<2> for Moment {
    const NAME: &'static str = "adam-moment";
    #[inline(always)]
    fn run<T: Real>(&self, e: &mut [T], [g, w]: [&[T]; 2]) {
        let (b, a) = (T::of(self.beta), T::of(1.0 - self.beta));
        let pairs = e.iter_mut().zip(g.iter().zip(w).map(|(&g, &w)| coupled_elem(g, w, self.wd)));
        if self.second {
            pairs.for_each(|(v, d)| *v = b * *v + a * d * d);
        } else {
            pairs.for_each(|(m, d)| *m = *m + a * (d - *m));
        }
    }
}

/// `v_max <- max(v_max, v)`.
struct RunningMax;

impl Kernel<1> for RunningMax {
    const NAME: &'static str = "amsgrad-max";
    #[inline(always)]
    fn run<T: Real>(&self, vm: &mut [T], [v]: [&[T]; 1]) {
        vm.iter_mut().zip(v).for_each(|(a, &b)| *a = if b > *a { b } else { *a });
    }
}

/// `w <- w - step m / (sqrt(u) / bc2_sqrt + eps)`.
struct Apply {
    step: f64,
    bc2_sqrt: f64,
    eps: f64,
}

impl Kernel<2> for Apply {
    const NAME: &'static str = "adam-apply";
    #[inline(always)]
    fn run<T: Real>(&self, w: &mut [T], [m, u]: [&[T]; 2]) {
        let (step, bc, eps) = (T::of(self.step), T::of(self.bc2_sqrt), T::of(self.eps));
        for ((w, &m), &u) in w.iter_mut().zip(m).zip(u) {
            *w -= step * (m / (u.sqrt() / bc + eps));
        }
    }
}

impl Adam {
    /// Adam over `params`; fails on betas outside `[0, 1)` or a negative `lr`, `eps` or weight decay.
    pub fn new(params: ParamSet, cfg: AdamConfig) -> Result<Self> {
        moments::check("adam", [cfg.lr, cfg.beta1, cfg.beta2, cfg.eps], cfg.weight_decay)?;
        let state = moments::state(&params, cfg.amsgrad)?;
        let name = if cfg.amsgrad { "amsgrad" } else { "adam" };
        Ok(Self { core: Core::new(name, params, state), cfg })
    }
}

/// The step of parameter `i`, `w`, from its gradient `g`.
fn update(c: &AdamConfig, kernels: Kernels, i: usize, w: &Var, g: &Tensor, state: &mut State) -> Result<()> {
    state[STEP][i] += 1;
    let t = state[STEP][i] as i32;
    let bc1 = 1.0 - c.beta1.powi(t);
    let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
    let step = c.lr / bc1;
    let u_key = if c.amsgrad { MAX_EXP_AVG_SQ } else { EXP_AVG_SQ };
    if ops::fused(kernels, &[w.as_tensor(), g]) {
        let wt = w.as_tensor();
        let moment = |beta, second| Moment { beta, wd: c.weight_decay, second };
        ops::launch2(&moment(c.beta1, false), &state[EXP_AVG][i], g, wt)?;
        ops::launch2(&moment(c.beta2, true), &state[EXP_AVG_SQ][i], g, wt)?;
        if c.amsgrad {
            ops::launch1(&RunningMax, &state[MAX_EXP_AVG_SQ][i], &state[EXP_AVG_SQ][i], ops::Norms::NONE)?;
        }
        return ops::launch2(&Apply { step, bc2_sqrt, eps: c.eps }, wt, &state[EXP_AVG][i], &state[u_key][i]);
    }
    let d = coupled(g, w, c.weight_decay)?;
    let m = (&state[EXP_AVG][i] + ((&d - &state[EXP_AVG][i])? * (1.0 - c.beta1))?)?;
    state[EXP_AVG][i] = m;
    state[EXP_AVG_SQ][i] = ((&state[EXP_AVG_SQ][i] * c.beta2)? + (d.sqr()? * (1.0 - c.beta2))?)?;
    if c.amsgrad {
        state[MAX_EXP_AVG_SQ][i] = state[MAX_EXP_AVG_SQ][i].maximum(&state[EXP_AVG_SQ][i])?;
    }
    let denom = ((state[u_key][i].sqrt()? / bc2_sqrt)? + c.eps)?;
    w.set(&(&w.as_detached_tensor() - ((&state[EXP_AVG][i] / denom)? * step)?)?)
}

impl Optimizer for Adam {
    plumbing!(cfg.lr);

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let (c, kernels) = (&self.cfg, self.core.params.kernels());
        self.core.each_grad(grads, |i, w, g, state| update(c, kernels, i, w, g, state))?;
        Ok(StepReport::at_lr(c.lr))
    }
}
