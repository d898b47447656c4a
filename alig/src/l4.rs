//! L4 (Rolinek and Martius, "L4: Practical loss-based stepsize adaptation for deep learning",
//! NeurIPS 2018), as `l4pytorch` of lberrada/L4.pytorch: the L4Adam and L4Mom baselines of the paper.
//!
//! EMA with time scale `T`: `e <- d e + (1 - d) x`, `d = 1 - 1/T`, from 0, bias correction
//! `c_T(k) = 1 - d^(k+1)` at step `k = 0, 1, ...`. One step, given the unregularised loss `l`:
//!
//! ```text
//! L      = l + sum_p lambda/2 ||w_p||^2 ;   g <- g + lambda w
//! L_min  = gamma_0 L  if k = 0,  else min(L_min, L)
//! v      = L4Adam: (EMA_10(g) / c_10) / (sqrt(EMA_1000(g^2) / c_1000) + 1e-4)
//!          L4Mom:   EMA_10(g) / c_10
//! u      = EMA'_10(g) / c_10                     (a second EMA of g: the derivative estimate)
//! eta_k  = alpha (L - gamma L_min) / (sum_p <v_p, u_p> + epsilon)
//! L_min <- L_min (1 + 1/tau) ;   w <- w - eta_k v ;   k <- k + 1
//! ```
//!
//! Defaults: `alpha = 0.15` (fraction), `gamma = 0.9`, `gamma_0 = 0.75`, `tau = 1000`,
//! `epsilon = 1e-12`. The paper's experiments never passed their `--eta` to L4, so every CIFAR, SVHN
//! and SNLI run used `alpha = 0.15`. Unlike the reference, the state is checkpointable, the caller's
//! gradients are not modified, and parameters without a gradient are skipped.

use candle_core::{Result, Tensor};

use crate::check::fields;
use crate::decay::regularised;
use crate::moments::ema;
use crate::ops;
use crate::optimizer::{plumbing, Hyper, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{Buffers, Core, Count, Inputs, State, Value};

/// The direction L4 rescales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Direction {
    /// Adam's direction (time scales 10 and 1000, epsilon 1e-4).
    Adam,
    /// Momentum (time scale 10).
    Momentum,
}

/// L4's hyper-parameters. `Default` is the reference's (with the Adam direction).
#[derive(Clone, Debug, PartialEq)]
pub struct L4Config {
    /// The direction it rescales: L4Adam's or L4Mom's.
    pub direction: L4Direction,
    /// `alpha`.
    pub fraction: f64,
    /// `gamma`.
    pub minloss_factor: f64,
    /// `gamma_0`.
    pub init_factor: f64,
    /// `tau`.
    pub minloss_forget_time: f64,
    /// `epsilon`: added to the denominator of `eta_k`.
    pub epsilon: f64,
    /// `lambda`: added to the objective and the gradient.
    pub weight_decay: f64,
}

impl Default for L4Config {
    fn default() -> Self {
        Self {
            direction: L4Direction::Adam,
            fraction: 0.15,
            minloss_factor: 0.9,
            init_factor: 0.75,
            minloss_forget_time: 1000.0,
            epsilon: 1e-12,
            weight_decay: 0.0,
        }
    }
}

impl L4Config {
    /// The configuration of the registry's hyper-parameters (`fraction`, `weight_decay`) for
    /// `direction`; the rest as the reference.
    pub fn from_hyper(h: &Hyper, direction: L4Direction) -> Self {
        let d = Self::default();
        Self { direction, fraction: h.fraction.unwrap_or(d.fraction), weight_decay: h.weight_decay, ..d }
    }

    /// The registry's hyper-parameters of this configuration (`from_hyper`'s inverse, but for the
    /// direction, which the registry row decides).
    pub fn to_hyper(&self) -> Hyper {
        Hyper { fraction: Some(self.fraction), weight_decay: self.weight_decay, ..Hyper::default() }
    }
}

const GRAD_TIME: f64 = 10.0;
const VAR_TIME: f64 = 1000.0;
const ADAM_EPS: f64 = 1e-4;

/// The EMA of the gradient (the direction's numerator).
const DIR_GRAD: Buffers = Buffers("dir_ema_grad");
/// L4Adam's EMA of the squared gradient.
const DIR_SQ: Buffers = Buffers("dir_ema_sq");
/// The EMA of the gradient that estimates the derivative.
const DERIV_GRAD: Buffers = Buffers("deriv_ema_grad");
/// `L_min`.
const MIN_LOSS: Value = Value("min_loss");
/// `k`.
const GLOBAL_STEP: Count = Count("global_step");

/// L4Adam or L4Mom (see the module docs for the update): per parameter the EMAs of the direction
/// (`g`, and L4Adam's `g^2`) and of the derivative estimate; the running minimum loss `L_min` and
/// the step count `k`.
pub struct L4 {
    core: Core,
    cfg: L4Config,
}

/// The registry name of each variant.
fn key(direction: L4Direction) -> &'static str {
    match direction {
        L4Direction::Adam => "l4adam",
        L4Direction::Momentum => "l4mom",
    }
}

/// The EMA with time scale `time`.
fn ema_t(e: &Tensor, x: &Tensor, time: f64) -> Result<Tensor> {
    ema(e, x, 1.0 - 1.0 / time)
}

impl L4 {
    /// L4 over `params`; fails on a non-positive fraction or forget time, or a negative weight decay
    /// or `epsilon`.
    pub fn new(params: ParamSet, cfg: L4Config) -> Result<Self> {
        let who = key(cfg.direction);
        fields!(positive, who, cfg.fraction, cfg.minloss_forget_time)?;
        fields!(non_negative, who, cfg.weight_decay, cfg.epsilon)?;
        let mut state = State::new();
        state.zeros(DIR_GRAD, &params)?;
        if cfg.direction == L4Direction::Adam {
            state.zeros(DIR_SQ, &params)?;
        }
        state.zeros(DERIV_GRAD, &params)?;
        state.value(MIN_LOSS, ops::scalar(0.0, params.dtype(), params.device())?);
        state.count(GLOBAL_STEP, 0);
        Ok(Self { core: Core::new(who, params, state), cfg })
    }
}

impl Optimizer for L4 {
    plumbing!(cfg.fraction);

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let (c, Inputs { params, state, loss, grads }) = (&self.cfg, self.core.inputs(loss, grads)?);
        let (big_l, grads) = regularised(params, loss, &grads, c.weight_decay)?;
        let k = state[GLOBAL_STEP] as i32;
        state[MIN_LOSS] = if k == 0 { (&big_l * c.init_factor)? } else { state[MIN_LOSS].minimum(&big_l)? };
        let c_grad = 1.0 - (1.0 - 1.0 / GRAD_TIME).powi(k + 1);
        let c_var = 1.0 - (1.0 - 1.0 / VAR_TIME).powi(k + 1);
        let mut dirs = Vec::new();
        let mut inner: Option<Tensor> = None;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            state[DIR_GRAD][i] = ema_t(&state[DIR_GRAD][i], g, GRAD_TIME)?;
            let v = match c.direction {
                L4Direction::Adam => {
                    state[DIR_SQ][i] = ema_t(&state[DIR_SQ][i], &g.sqr()?, VAR_TIME)?;
                    let denom = ((&state[DIR_SQ][i] / c_var)?.sqrt()? + ADAM_EPS)?;
                    ((&state[DIR_GRAD][i] / c_grad)? / denom)?
                }
                L4Direction::Momentum => (&state[DIR_GRAD][i] / c_grad)?,
            };
            state[DERIV_GRAD][i] = ema_t(&state[DERIV_GRAD][i], g, GRAD_TIME)?;
            let u = (&state[DERIV_GRAD][i] / c_grad)?;
            let dot = (&v * u)?.sum_all()?;
            inner = Some(match inner {
                None => dot,
                Some(acc) => (acc + dot)?,
            });
            dirs.push((i, v));
        }
        let inner = match inner {
            Some(t) => t,
            None => ops::scalar(0.0, big_l.dtype(), big_l.device())?,
        };
        let num = ((big_l - (&state[MIN_LOSS] * c.minloss_factor)?)? * c.fraction)?;
        let eta = num.div(&(inner + c.epsilon)?)?;
        state[MIN_LOSS] = (&state[MIN_LOSS] * (1.0 + 1.0 / c.minloss_forget_time))?;
        for (i, v) in dirs {
            let w = &params.vars()[i];
            w.set(&(&w.as_detached_tensor() - v.broadcast_mul(&eta)?)?)?;
        }
        state[GLOBAL_STEP] += 1;
        Ok(StepReport {
            step_size: Some(Scalar::Device(eta)),
            extra: vec![("l4_min_loss", Scalar::Device(state[MIN_LOSS].clone()))],
            ..Default::default()
        })
    }
}
