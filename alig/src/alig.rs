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

use candle_core::{Result, Tensor};

use crate::check::{fields, positive};
use crate::ops::{self, Kernel, Norms, PairKernel, Real};
use crate::optimizer::{plumbing, Hyper, Optimizer, Scalar, StepReport};
use crate::params::{grad_sq_norm, Kernels, ParamSet};
use crate::projection::{project_l2_ball, scale_into_ball};
use crate::state::{Core, Count, State, MOMENTUM_BUFFER};

/// Whether the last fused step was clipped (1) or not (0).
const LAST_STEP_CLIPPED: Count = Count("last_step_clipped");

/// A parameter group with its own maximal learning rate: every parameter whose name starts with
/// `prefix` (first matching group wins).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMaxLr {
    /// The start of the names of the group's parameters (`classifier.`).
    pub prefix: String,
    /// The group's `eta` (`None`: no cap).
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
    /// The configuration of the registry's hyper-parameters (`lr` as `max_lr`, `momentum`, `eps`,
    /// `max_norm`); standard momentum, no groups.
    pub fn from_hyper(h: &Hyper) -> Self {
        Self {
            max_lr: h.lr,
            momentum: h.momentum,
            eps: h.eps.unwrap_or(Self::default().eps),
            adjusted_momentum: h.adjusted_momentum,
            max_norm: h.max_norm,
            groups: vec![],
        }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse, but for the
    /// groups, which the registry does not set).
    pub fn to_hyper(&self) -> Hyper {
        Hyper {
            lr: self.max_lr,
            momentum: self.momentum,
            eps: Some(self.eps),
            adjusted_momentum: self.adjusted_momentum,
            max_norm: self.max_norm,
            ..Hyper::default()
        }
    }
}

/// The ALI-G optimizer. Its state: `z` (`momentum_buffer`), one per parameter when
/// `momentum > 0`, and whether the last step of the fused CPU path was clipped at `max_lr`
/// (`last_step_clipped`: the guess of the next speculative step, kept so that a resumed run takes
/// the same path).
pub struct Alig {
    core: Core,
    cfg: AligConfig,
    /// Group of each parameter: 0 = default, k = `cfg.groups[k - 1]`.
    group_of: Vec<usize>,
}

/// What a fused CPU step computed: `gamma_u`, each group's `gamma`, `sum ||g||^2`, and `||w||^2`
/// after the update when projecting.
struct FusedStep {
    unclipped: Tensor,
    gammas: Vec<Tensor>,
    sq: Tensor,
    w_sq: Option<f64>,
}

/// `dst <- a dst + b src` (the step without momentum, `a = 1`).
struct Axpby {
    a: f64,
    b: f64,
}

impl Kernel<1> for Axpby {
    const NAME: &'static str = "alig-axpby";
    #[inline(always)]
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
    #[inline(always)]
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

/// The correction of a speculative step taken with `gamma + delta` instead of `gamma`:
/// standard `z += delta g, w += (1 + mu) delta g`; adjusted `w += delta (g - mu z)` (its `z` does
/// not depend on the step size).
struct Correction {
    delta: f64,
    mu: f64,
    adjusted: bool,
}

impl PairKernel for Correction {
    const NAME: &'static str = "alig-correction";
    #[inline(always)]
    fn run<T: Real>(&self, z: &mut [T], w: &mut [T], g: &[T]) {
        let (delta, mu) = (T::of(self.delta), T::of(self.mu));
        let iter = z.iter_mut().zip(w.iter_mut()).zip(g);
        if self.adjusted {
            for ((z, w), &g) in iter {
                *w += delta * (g - mu * *z);
            }
        } else {
            let c = T::of((1.0 + self.mu) * self.delta);
            for ((z, w), &g) in iter {
                *z += delta * g;
                *w += c * g;
            }
        }
    }
}

impl Alig {
    /// ALI-G over `params`, projected onto the ball at once when `max_norm` is set; fails on a
    /// non-positive `max_lr` or `max_norm`, or a negative momentum or `eps`.
    pub fn new(params: ParamSet, cfg: AligConfig) -> Result<Self> {
        let lrs = std::iter::once(&cfg.max_lr).chain(cfg.groups.iter().map(|g| &g.max_lr));
        for lr in lrs.flatten() {
            positive("alig", &[("max_lr", *lr)])?;
        }
        fields!(non_negative, "alig", cfg.momentum, cfg.eps)?;
        if let Some(r) = cfg.max_norm {
            positive("alig", &[("max_norm", r)])?;
            project_l2_ball(&params, r)?;
        }
        let group_of = params
            .names()
            .iter()
            .map(|n| cfg.groups.iter().position(|g| n.starts_with(&g.prefix)).map_or(0, |k| k + 1))
            .collect();
        let mut state = State::new();
        state.zeros_if(cfg.momentum > 0.0, MOMENTUM_BUFFER, &params)?;
        state.count(LAST_STEP_CLIPPED, 1);
        Ok(Self { core: Core::new("alig", params, state), cfg, group_of })
    }

    /// The hyper-parameters it steps with.
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

    fn n_groups(&self) -> usize {
        self.cfg.groups.len() + 1
    }

    /// `gamma_u = loss / (sq + eps)` and each group's `min(gamma_u, max_lr)`, as 0-d tensors.
    ///
    /// With `eps = 0` (the DNC experiment) an all-zero gradient would give `0 / 0` or `l / 0`: no
    /// step size can move the weights then, and `gamma_u` is 0 instead of NaN or infinity (which
    /// would turn the weights into NaN through `inf * 0`).
    fn step_sizes(&self, loss: &Tensor, sq: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let denom = (sq + self.cfg.eps)?;
        let unclipped = if self.cfg.eps > 0.0 {
            loss.div(&denom)?
        } else {
            denom.gt(0.0)?.where_cond(&loss.div(&denom)?, &denom.zeros_like()?)?
        };
        let gammas = (0..self.n_groups())
            .map(|k| match self.group_max_lr(k) {
                Some(m) => unclipped.minimum(m),
                None => Ok(unclipped.clone()),
            })
            .collect::<Result<_>>()?;
        Ok((unclipped, gammas))
    }

    /// The step with candle tensor ops: every device, no host synchronisation.
    fn step_tensor(&mut self, loss: &Tensor, grads: &[Option<Tensor>], sq: Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let (unclipped, gammas) = self.step_sizes(loss, &sq)?;
        let (mu, adjusted) = (self.cfg.momentum, self.cfg.adjusted_momentum);
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let gamma = &gammas[self.group_of[i]];
            let Core { params, state, .. } = &mut self.core;
            let w = &params.vars()[i];
            let gg = g.broadcast_mul(gamma)?;
            let stepped = (&w.as_detached_tensor() - &gg)?;
            if mu == 0.0 {
                w.set(&stepped)?;
                continue;
            }
            let zs = &mut state[MOMENTUM_BUFFER];
            let z = if adjusted { ((&zs[i] * mu)? - g)? } else { ((&zs[i] * mu)? - gg)? };
            let term = if adjusted { z.broadcast_mul(&(gamma * mu)?)? } else { (&z * mu)? };
            zs[i] = z;
            w.set(&(stepped + term)?)?;
        }
        Ok((unclipped, gammas))
    }

    /// The step with the fused CPU kernels (CPU tensors: reading a scalar costs no synchronisation).
    /// With a projection, also returns `||w||^2` after the update, summed while the kernels wrote
    /// the weights.
    ///
    /// When every group has a `max_lr` and the previous step was clipped, the step speculates that
    /// this one is clipped too: one pass per parameter applies `gamma = max_lr` and sums the squared
    /// gradient chunk by chunk while it is in cache, so the step reads memory exactly as often as
    /// SGD's. If the norm then shows an unclipped step, a second pass corrects the parameters by
    /// the difference (exact up to rounding). Otherwise the norm is computed first, or taken from
    /// `given` (the caller's `sum ||g||^2`), and one pass applies the exact step. Returns the step
    /// sizes, `sum ||g||^2`, and `||w||^2` after the update when projecting.
    fn step_fused(&mut self, loss: &Tensor, grads: &[Option<Tensor>], given: Option<Tensor>) -> Result<FusedStep> {
        let (dtype, device) = (loss.dtype(), loss.device().clone());
        // Every group's cap, rounded to the dtype (`None` when a group has none).
        let caps = match (0..self.n_groups()).map(|k| self.group_max_lr(k)).collect::<Option<Vec<f64>>>() {
            Some(ms) => Some(
                ms.into_iter()
                    .map(|m| ops::scalar(m, dtype, &device).and_then(|t| ops::host_f64(&t)))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let project = self.cfg.max_norm.is_some();
        // ||w_i||^2 after the update, for the projection.
        let mut w_sq = vec![0.0; self.core.params.len()];
        let last_clipped = self.core.state[LAST_STEP_CLIPPED] != 0;
        let (unclipped, gammas, sq) = if let (true, Some(caps), None) = (last_clipped, &caps, &given) {
            let mut sq = 0.0;
            for (i, g) in grads.iter().enumerate().rev() {
                if let Some(g) = g {
                    let (g_sq, w_i) =
                        self.fused_update(i, g, caps[self.group_of[i]], Norms { src: true, dst: project })?;
                    sq += g_sq;
                    w_sq[i] = w_i;
                }
            }
            let sq = ops::scalar(sq, dtype, &device)?;
            let (unclipped, gammas) = self.step_sizes(loss, &sq)?;
            let host = gammas.iter().map(ops::host_f64).collect::<Result<Vec<_>>>()?;
            for (i, g) in grads.iter().enumerate() {
                let k = self.group_of[i];
                if let (Some(g), true) = (g, host[k] < caps[k]) {
                    w_sq[i] = self.fused_correct(i, g, caps[k] - host[k], project)?;
                }
            }
            (unclipped, gammas, sq)
        } else {
            let sq = match given {
                Some(sq) => sq,
                None => Self::sq_norm(grads, loss, self.core.params.kernels())?,
            };
            let (unclipped, gammas) = self.step_sizes(loss, &sq)?;
            let host = gammas.iter().map(ops::host_f64).collect::<Result<Vec<_>>>()?;
            // Backwards: the gradients the norm pass read last are still in cache.
            for (i, g) in grads.iter().enumerate().rev() {
                if let Some(g) = g {
                    let norms = Norms { src: false, dst: project };
                    w_sq[i] = self.fused_update(i, g, host[self.group_of[i]], norms)?.1;
                }
            }
            (unclipped, gammas, sq)
        };
        let u = ops::host_f64(&unclipped)?;
        self.core.state[LAST_STEP_CLIPPED] = caps.is_some_and(|c| c.iter().all(|&m| u >= m)) as u64;
        let mut total = None;
        if project {
            // Parameters without a gradient still count in the norm.
            let params = &self.core.params;
            let frozen: Vec<&Tensor> =
                params.vars().iter().zip(grads).filter(|(_, g)| g.is_none()).map(|(v, _)| v.as_tensor()).collect();
            let frozen_sq =
                if frozen.is_empty() { 0.0 } else { ops::host_f64(&ops::sum_sq(&frozen, params.kernels())?)? };
            total = Some(w_sq.iter().sum::<f64>() + frozen_sq);
        }
        Ok(FusedStep { unclipped, gammas, sq, w_sq: total })
    }

    /// `sum ||g||^2` over the gradients that exist (0 when there is none), in the loss's dtype.
    fn sq_norm(grads: &[Option<Tensor>], loss: &Tensor, kernels: Kernels) -> Result<Tensor> {
        match grad_sq_norm(grads, kernels)? {
            Some(sq) => Ok(sq),
            None => ops::scalar(0.0, loss.dtype(), loss.device()),
        }
    }

    /// A step from `loss` and `grads`, with `sum ||g||^2` computed here or `given` by the caller.
    fn step_given(&mut self, loss: &Tensor, grads: &[Option<Tensor>], given: Option<&Tensor>) -> Result<StepReport> {
        let grads = &self.core.checked_grads(grads)?;
        let (dtype, device) = (self.core.params.dtype(), self.core.params.device().clone());
        let loss = self.core.loss(loss)?;
        let given = given.map(|t| self.core.loss(t)).transpose()?;
        let FusedStep { unclipped, mut gammas, sq, w_sq } =
            if ops::fused(self.core.params.kernels(), &[self.core.params.vars()[0].as_tensor()]) {
                self.step_fused(&loss, grads, given)?
            } else {
                let sq = match given {
                    Some(sq) => sq,
                    None => Self::sq_norm(grads, &loss, Kernels::Tensor)?,
                };
                let (unclipped, gammas) = self.step_tensor(&loss, grads, sq.clone())?;
                FusedStep { unclipped, gammas, sq, w_sq: None }
            };
        // Monitoring: the mean of the groups' step sizes, as the reference.
        let step_size = if gammas.len() == 1 {
            gammas.remove(0)
        } else {
            (Tensor::stack(&gammas, 0)?.sum_all()? / gammas.len() as f64)?
        };
        let mut extra = vec![];
        if let Some(r) = self.cfg.max_norm {
            let norm = match w_sq {
                Some(sq) => scale_into_ball(&self.core.params, &ops::scalar(sq, dtype, &device)?, r)?,
                None => project_l2_ball(&self.core.params, r)?,
            };
            extra.push(("norm_before_projection", Scalar::Device(norm)));
        }
        Ok(StepReport {
            step_size: Some(Scalar::Device(step_size)),
            step_size_unclipped: Some(Scalar::Device(unclipped)),
            grad_sq_norm: Some(Scalar::Device(sq)),
            extra,
        })
    }

    /// The fused update of parameter `i` with step size `gamma`; returns `(||g||^2, ||w||^2 after)`
    /// as asked by `norms`.
    fn fused_update(&self, i: usize, g: &Tensor, gamma: f64, norms: Norms) -> Result<(f64, f64)> {
        let w = self.core.params.vars()[i].as_tensor();
        match self.core.state.get(MOMENTUM_BUFFER).map(|z| &z[i]) {
            None => ops::launch1(&Axpby { a: 1.0, b: -gamma }, w, g, norms),
            Some(z) => {
                let k = MomentumStep { gamma, mu: self.cfg.momentum, adjusted: self.cfg.adjusted_momentum };
                ops::launch_pair(&k, z, w, g, norms)
            }
        }
    }

    /// Turns a step taken with `gamma + delta` into one taken with `gamma`; returns `||w||^2`
    /// after it when `norm`.
    fn fused_correct(&self, i: usize, g: &Tensor, delta: f64, norm: bool) -> Result<f64> {
        let w = self.core.params.vars()[i].as_tensor();
        let norms = Norms { src: false, dst: norm };
        let (_, w_sq) = match self.core.state.get(MOMENTUM_BUFFER).map(|z| &z[i]) {
            None => ops::launch1(&Axpby { a: 1.0, b: delta }, w, g, norms)?,
            Some(z) => {
                let k = Correction { delta, mu: self.cfg.momentum, adjusted: self.cfg.adjusted_momentum };
                ops::launch_pair(&k, z, w, g, norms)?
            }
        };
        Ok(w_sq)
    }
}

impl Optimizer for Alig {
    plumbing!();

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        self.step_given(loss, grads, None)
    }

    /// Uses `sq_norm` as `sum ||g||^2`: the fused CPU step then takes one pass with the exact step
    /// size instead of speculating on it.
    fn step_with_sq_norm(&mut self, loss: &Tensor, grads: &[Option<Tensor>], sq_norm: &Tensor) -> Result<StepReport> {
        self.step_given(loss, grads, Some(sq_norm))
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
}
