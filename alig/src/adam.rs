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

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::adamw::check_betas;
use crate::check::non_negative;
use crate::ops::{self, Kernel, Real};
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

/// Adam's hyper-parameters. `Default` is `torch.optim.Adam`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// `lr`: the learning rate.
    pub lr: f64,
    /// `beta1`: the decay of the first moment `m`.
    pub beta1: f64,
    /// `beta2`: the decay of the second moment `v`.
    pub beta2: f64,
    /// `eps`: added to the bias-corrected `sqrt(v)`.
    pub eps: f64,
    /// `lambda`, coupled (added to the gradient).
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
        let (beta1, beta2) = h.betas.unwrap_or((0.9, 0.999));
        Self {
            lr: h.lr.unwrap_or(1e-3),
            beta1,
            beta2,
            eps: h.eps.unwrap_or(1e-8),
            weight_decay: h.weight_decay,
            amsgrad,
        }
    }
}

/// Adam or AMSGrad (see the module docs for the update): per parameter the moments `m` and `v`
/// (and AMSGrad's `v_max`) and the step count `t`.
pub struct Adam {
    params: ParamSet,
    cfg: AdamConfig,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    v_max: Vec<Tensor>,
    steps: Vec<u64>,
}

/// `m <- m + (1 - beta1) (d - m)`, `d = g + lambda w`.
struct FirstMoment {
    beta1: f64,
    wd: f64,
}

impl Kernel<2> for FirstMoment {
    const NAME: &'static str = "adam-m";
    #[inline(always)]
    fn run<T: Real>(&self, m: &mut [T], [g, w]: [&[T]; 2]) {
        let (a, wd) = (T::of(1.0 - self.beta1), T::of(self.wd));
        for ((m, &g), &w) in m.iter_mut().zip(g).zip(w) {
            let d = if self.wd != 0.0 { g + wd * w } else { g };
            *m = *m + a * (d - *m);
        }
    }
}

/// `v <- beta2 v + (1 - beta2) d^2`, `d = g + lambda w`.
struct SecondMoment {
    beta2: f64,
    wd: f64,
}

impl Kernel<2> for SecondMoment {
    const NAME: &'static str = "adam-v";
    #[inline(always)]
    fn run<T: Real>(&self, v: &mut [T], [g, w]: [&[T]; 2]) {
        let (b2, a, wd) = (T::of(self.beta2), T::of(1.0 - self.beta2), T::of(self.wd));
        for ((v, &g), &w) in v.iter_mut().zip(g).zip(w) {
            let d = if self.wd != 0.0 { g + wd * w } else { g };
            *v = b2 * *v + a * d * d;
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
        check_betas("adam", cfg.lr, cfg.eps, cfg.beta1, cfg.beta2)?;
        non_negative("adam", &[("weight_decay", cfg.weight_decay)])?;
        let zeros = || params.vars().iter().map(|v| v.zeros_like()).collect::<Result<Vec<_>>>();
        let (m, v) = (zeros()?, zeros()?);
        let v_max = if cfg.amsgrad { zeros()? } else { vec![] };
        let steps = vec![0; params.len()];
        Ok(Self { params, cfg, m, v, v_max, steps })
    }

    fn key(&self) -> &'static str {
        if self.cfg.amsgrad {
            "amsgrad"
        } else {
            "adam"
        }
    }

    fn update(&mut self, i: usize, g: &Tensor) -> Result<()> {
        let c = self.cfg.clone();
        self.steps[i] += 1;
        let t = self.steps[i] as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step = c.lr / bc1;
        let w = self.params.vars()[i].clone();
        if ops::fused(self.params.kernels(), &[w.as_tensor(), g]) {
            let wt = w.as_tensor();
            ops::launch2(&FirstMoment { beta1: c.beta1, wd: c.weight_decay }, &self.m[i], g, wt)?;
            ops::launch2(&SecondMoment { beta2: c.beta2, wd: c.weight_decay }, &self.v[i], g, wt)?;
            let u = if c.amsgrad {
                ops::launch1(&RunningMax, &self.v_max[i], &self.v[i], ops::Norms::NONE)?;
                &self.v_max[i]
            } else {
                &self.v[i]
            };
            return ops::launch2(&Apply { step, bc2_sqrt, eps: c.eps }, wt, &self.m[i], u);
        }
        let d = if c.weight_decay != 0.0 { (g + (&w.as_detached_tensor() * c.weight_decay)?)? } else { g.clone() };
        self.m[i] = (&self.m[i] + ((&d - &self.m[i])? * (1.0 - c.beta1))?)?;
        self.v[i] = ((&self.v[i] * c.beta2)? + (d.sqr()? * (1.0 - c.beta2))?)?;
        let u = if c.amsgrad {
            self.v_max[i] = self.v_max[i].maximum(&self.v[i])?;
            &self.v_max[i]
        } else {
            &self.v[i]
        };
        let denom = ((u.sqrt()? / bc2_sqrt)? + c.eps)?;
        w.set(&(&w.as_detached_tensor() - ((&self.m[i] / denom)? * step)?)?)
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        self.key()
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads(self.key(), grads)?;
        for (i, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                self.update(i, g)?;
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
        let mut w = StateWriter::new(self.key(), &self.params);
        w.buffers("exp_avg", &self.m)?;
        w.buffers("exp_avg_sq", &self.v)?;
        if self.cfg.amsgrad {
            w.buffers("max_exp_avg_sq", &self.v_max)?;
        }
        w.counters("step", &self.steps)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new(self.key(), &self.params, state);
        let m = r.buffers("exp_avg")?;
        let v = r.buffers("exp_avg_sq")?;
        let v_max = if self.cfg.amsgrad { r.buffers("max_exp_avg_sq")? } else { vec![] };
        let steps = r.counters("step")?;
        r.finish()?;
        (self.m, self.v, self.v_max, self.steps) = (m, v, v_max, steps);
        Ok(())
    }
}
