//! ALI-G: Adaptive Learning-rate for Interpolation with Gradients (Berrada, Zisserman, Kumar,
//! "Training Neural Networks for and by Interpolation", ICML 2020); reference `alig/th/alig.py` of
//! oval-group/ali-g.
//!
//! One step, given the mini-batch loss `l_t` and the gradients `g_t`:
//!
//! ```text
//! gamma_u = l_t / (sum_p ||g_p||^2 + eps)                      (unclipped step size)
//! gamma   = min(gamma_u, max_lr)   per group (gamma_u when max_lr is None)
//! w      <- w - gamma g
//! standard momentum (default):  z <- mu z - gamma g ;  w <- w + mu z
//! adjusted momentum:            z <- mu z - g       ;  w <- w + gamma mu z
//! w      <- Pi(w)                                              (l2 ball of radius max_norm)
//! ```
//!
//! The standard form (used by every experiment of the paper) stores past steps in `z`; the
//! adjusted form stores raw gradients and scales the whole momentum term by the current step size
//! (with a constant step size it is PyTorch's Nesterov SGD; TensorFlow's ALI-G uses it). The
//! projection is applied once at construction and after every step. `gamma` is computed on the
//! device from the 0-d loss tensor: a step never waits for the host.

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::ops::{self, Kernel, PairKernel, Real};
use crate::optimizer::{non_negative, positive, Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::{grad_sq_norm, ParamSet};
use crate::projection::project_l2_ball;
use crate::state::{StateReader, StateWriter};

/// A parameter group with its own maximal learning rate: every parameter whose name starts with
/// `prefix` (first matching group wins).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMaxLr {
    pub prefix: String,
    pub max_lr: Option<f64>,
}

/// ALI-G's hyper-parameters. `Default` is the reference constructor's.
#[derive(Clone, Debug, PartialEq)]
pub struct AligConfig {
    /// `eta`: maximal learning rate, the cap of the step size (`None`: no cap). Must be > 0.
    pub max_lr: Option<f64>,
    /// `mu`: momentum (0: none).
    pub momentum: f64,
    /// `delta`: the small constant of the step size `l / (|g|^2 + eps)`. Absolute, default 1e-5
    /// (the paper's DNC runs use 0).
    pub eps: f64,
    /// Use the adjusted momentum form instead of the standard one of the experiments.
    pub adjusted_momentum: bool,
    /// `r`: radius of the l2 ball the parameters are projected onto (`None`: no projection).
    pub max_norm: Option<f64>,
    /// Parameter groups with their own `max_lr`; the others use `max_lr`.
    pub groups: Vec<GroupMaxLr>,
}

impl Default for AligConfig {
    fn default() -> Self {
        Self { max_lr: None, momentum: 0.0, eps: 1e-5, adjusted_momentum: false, max_norm: None, groups: vec![] }
    }
}

impl AligConfig {
    pub fn from_hyper(h: &Hyper) -> Self {
        Self {
            max_lr: h.lr,
            momentum: h.momentum,
            eps: h.eps.unwrap_or(1e-5),
            adjusted_momentum: h.adjusted_momentum,
            max_norm: h.max_norm,
            groups: vec![],
        }
    }
}

/// The ALI-G optimizer.
pub struct Alig {
    params: ParamSet,
    cfg: AligConfig,
    /// Group of each parameter: 0 = default, k = `cfg.groups[k - 1]`.
    group_of: Vec<usize>,
    /// `z`, one per parameter when `momentum > 0`.
    z: Vec<Tensor>,
}

/// `dst <- a dst + b src` (the step without momentum, `a = 1`).
struct Axpby {
    a: f64,
    b: f64,
}

impl Kernel<1> for Axpby {
    const NAME: &'static str = "alig-axpby";
    fn run<T: Real>(&self, dst: &mut [T], [s]: [&[T]; 1]) {
        let (a, b) = (T::of(self.a), T::of(self.b));
        dst.iter_mut().zip(s).for_each(|(d, &s)| *d = a * *d + b * s);
    }
}

/// One momentum step on `(z, w)` from `g` in a single pass: standard
/// `z <- mu z - gamma g, w <- (w - gamma g) + mu z`, or adjusted
/// `z <- mu z - g, w <- (w - gamma g) + gamma mu z`.
struct MomentumStep {
    gamma: f64,
    mu: f64,
    adjusted: bool,
}

impl PairKernel for MomentumStep {
    const NAME: &'static str = "alig-momentum-step";
    fn run<T: Real>(&self, z: &mut [T], w: &mut [T], g: &[T]) {
        let (gamma, mu) = (T::of(self.gamma), T::of(self.mu));
        let iter = z.iter_mut().zip(w.iter_mut()).zip(g);
        if self.adjusted {
            let c = T::of(self.gamma * self.mu);
            for ((z, w), &g) in iter {
                *z = mu * *z - g;
                *w = (*w - gamma * g) + c * *z;
            }
        } else {
            for ((z, w), &g) in iter {
                let step = gamma * g;
                *z = mu * *z - step;
                *w = (*w - step) + mu * *z;
            }
        }
    }
}

impl Alig {
    pub fn new(params: ParamSet, cfg: AligConfig) -> Result<Self> {
        let lrs = std::iter::once(&cfg.max_lr).chain(cfg.groups.iter().map(|g| &g.max_lr));
        for lr in lrs.flatten() {
            positive("alig", &[("max_lr", *lr)])?;
        }
        non_negative("alig", &[("momentum", cfg.momentum), ("eps", cfg.eps)])?;
        if let Some(r) = cfg.max_norm {
            positive("alig", &[("max_norm", r)])?;
            project_l2_ball(&params, r)?;
        }
        let group_of = params
            .names()
            .iter()
            .map(|n| cfg.groups.iter().position(|g| n.starts_with(&g.prefix)).map_or(0, |k| k + 1))
            .collect();
        let z = if cfg.momentum > 0.0 {
            params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?
        } else {
            vec![]
        };
        Ok(Self { params, cfg, group_of, z })
    }

    pub fn config(&self) -> &AligConfig {
        &self.cfg
    }

    fn group_max_lr(&self, k: usize) -> Option<f64> {
        if k == 0 {
            self.cfg.max_lr
        } else {
            self.cfg.groups[k - 1].max_lr
        }
    }

    /// The update of parameter `i`; `gamma_host` is the step size read on the host when the fused
    /// CPU kernels run (CPU tensors: no device synchronisation).
    fn update(&mut self, i: usize, g: &Tensor, gamma: &Tensor, gamma_host: Option<f64>) -> Result<()> {
        let w = self.params.vars()[i].clone();
        let mu = self.cfg.momentum;
        let adjusted = self.cfg.adjusted_momentum;
        let z = self.z.get(i).cloned();
        if let Some(gamma) = gamma_host.filter(|_| ops::fused(self.params.kernels(), &[w.as_tensor(), g])) {
            return match &z {
                None => ops::launch1(&Axpby { a: 1.0, b: -gamma }, w.as_tensor(), g),
                Some(z) => ops::launch_pair(&MomentumStep { gamma, mu, adjusted }, z, w.as_tensor(), g),
            };
        }
        let gg = g.broadcast_mul(gamma)?;
        let stepped = (&w.as_detached_tensor() - &gg)?;
        match z {
            None => w.set(&stepped),
            Some(z) => {
                let (z, momentum_term) = if adjusted {
                    let z = ((z * mu)? - g)?;
                    let term = z.broadcast_mul(&(gamma * mu)?)?;
                    (z, term)
                } else {
                    let z = ((z * mu)? - gg)?;
                    let term = (&z * mu)?;
                    (z, term)
                };
                self.z[i] = z;
                w.set(&(stepped + momentum_term)?)
            }
        }
    }
}

impl Optimizer for Alig {
    fn name(&self) -> &'static str {
        "alig"
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads("alig", grads)?;
        let (dtype, device) = (self.params.dtype(), self.params.device().clone());
        let loss = loss.detach().to_device(&device)?.to_dtype(dtype)?.reshape(())?;
        let sq = match grad_sq_norm(grads, self.params.kernels())? {
            Some(sq) => sq,
            None => ops::scalar(0.0, dtype, &device)?,
        };
        let unclipped = loss.div(&(sq + self.cfg.eps)?)?;
        let n_groups = self.cfg.groups.len() + 1;
        let mut gammas = Vec::with_capacity(n_groups);
        for k in 0..n_groups {
            gammas.push(match self.group_max_lr(k) {
                Some(m) => unclipped.minimum(m)?,
                None => unclipped.clone(),
            });
        }
        let on_host = ops::fused(self.params.kernels(), &[self.params.vars()[0].as_tensor()]);
        let host: Vec<Option<f64>> = gammas
            .iter()
            .map(|t| if on_host { ops::host_f64(t).map(Some) } else { Ok(None) })
            .collect::<Result<_>>()?;
        // Backwards: the gradients the norm pass read last are still in cache.
        for (i, g) in grads.iter().enumerate().rev() {
            if let Some(g) = g {
                let k = self.group_of[i];
                self.update(i, g, &gammas[k].clone(), host[k])?;
            }
        }
        // Monitoring: the mean of the groups' step sizes, as the reference.
        let step_size = if n_groups == 1 {
            gammas.pop().unwrap_or(unclipped.clone())
        } else {
            (Tensor::stack(&gammas, 0)?.sum_all()? / n_groups as f64)?
        };
        let mut extra = vec![];
        if let Some(r) = self.cfg.max_norm {
            extra.push(("norm_before_projection", Scalar::Device(project_l2_ball(&self.params, r)?)));
        }
        Ok(StepReport {
            step_size: Some(Scalar::Device(step_size)),
            step_size_unclipped: Some(Scalar::Device(unclipped)),
            extra,
        })
    }

    fn learning_rate(&self) -> Option<f64> {
        self.cfg.max_lr
    }

    /// Sets `max_lr`; the groups' caps are scaled by the same factor.
    fn set_learning_rate(&mut self, lr: f64) {
        if let Some(old) = self.cfg.max_lr {
            for g in &mut self.cfg.groups {
                g.max_lr = g.max_lr.map(|m| m * lr / old);
            }
        }
        self.cfg.max_lr = Some(lr);
    }

    fn state(&self) -> Result<NamedTensors> {
        let mut w = StateWriter::new("alig", &self.params);
        if !self.z.is_empty() {
            w.buffers("momentum_buffer", &self.z)?;
        }
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new("alig", &self.params, state);
        let z = if self.z.is_empty() { vec![] } else { r.buffers("momentum_buffer")? };
        r.finish()?;
        self.z = z;
        Ok(())
    }
}
