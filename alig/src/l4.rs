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

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use crate::bpgrad::regularised;
use crate::check::{non_negative, positive};
use crate::ops;
use crate::optimizer::{Hyper, NamedTensors, Optimizer, Scalar, StepReport};
use crate::params::ParamSet;
use crate::state::{StateReader, StateWriter};

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
        Self { direction, fraction: h.fraction.unwrap_or(0.15), weight_decay: h.weight_decay, ..Self::default() }
    }
}

const GRAD_TIME: f64 = 10.0;
const VAR_TIME: f64 = 1000.0;
const ADAM_EPS: f64 = 1e-4;

/// L4Adam or L4Mom (see the module docs for the update): per parameter the EMAs of the direction
/// (`g`, and L4Adam's `g^2`) and of the derivative estimate; the running minimum loss `L_min` and
/// the step count `k`.
pub struct L4 {
    params: ParamSet,
    cfg: L4Config,
    dir_grad: Vec<Tensor>,
    dir_sq: Vec<Tensor>,
    deriv_grad: Vec<Tensor>,
    min_loss: Tensor,
    global_step: u64,
}

/// The registry name of each variant.
fn key(direction: L4Direction) -> &'static str {
    match direction {
        L4Direction::Adam => "l4adam",
        L4Direction::Momentum => "l4mom",
    }
}

fn ema(e: &Tensor, x: &Tensor, time: f64) -> Result<Tensor> {
    let d = 1.0 - 1.0 / time;
    (e * d)? + (x * (1.0 - d))?
}

impl L4 {
    /// L4 over `params`; fails on a non-positive fraction or forget time, or a negative weight decay
    /// or `epsilon`.
    pub fn new(params: ParamSet, cfg: L4Config) -> Result<Self> {
        let who = key(cfg.direction);
        positive(who, &[("fraction", cfg.fraction), ("minloss_forget_time", cfg.minloss_forget_time)])?;
        non_negative(who, &[("weight_decay", cfg.weight_decay), ("epsilon", cfg.epsilon)])?;
        let zeros = || params.vars().iter().map(|v| v.zeros_like()).collect::<Result<Vec<_>>>();
        let dir_sq = if cfg.direction == L4Direction::Adam { zeros()? } else { vec![] };
        let (dir_grad, deriv_grad) = (zeros()?, zeros()?);
        let min_loss = ops::scalar(0.0, params.dtype(), params.device())?;
        Ok(Self { params, cfg, dir_grad, dir_sq, deriv_grad, min_loss, global_step: 0 })
    }

    fn key(&self) -> &'static str {
        key(self.cfg.direction)
    }
}

impl Optimizer for L4 {
    fn name(&self) -> &'static str {
        self.key()
    }

    fn params(&self) -> &ParamSet {
        &self.params
    }

    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
        let grads = &self.params.checked_grads(self.key(), grads)?;
        let c = self.cfg.clone();
        let (big_l, grads) = regularised(&self.params, loss, grads, c.weight_decay)?;
        let k = self.global_step as i32;
        self.min_loss = if k == 0 { (&big_l * c.init_factor)? } else { self.min_loss.minimum(&big_l)? };
        let c_grad = 1.0 - (1.0 - 1.0 / GRAD_TIME).powi(k + 1);
        let c_var = 1.0 - (1.0 - 1.0 / VAR_TIME).powi(k + 1);
        let mut dirs = Vec::new();
        let mut inner: Option<Tensor> = None;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            self.dir_grad[i] = ema(&self.dir_grad[i], g, GRAD_TIME)?;
            let v = match c.direction {
                L4Direction::Adam => {
                    self.dir_sq[i] = ema(&self.dir_sq[i], &g.sqr()?, VAR_TIME)?;
                    let denom = ((&self.dir_sq[i] / c_var)?.sqrt()? + ADAM_EPS)?;
                    ((&self.dir_grad[i] / c_grad)? / denom)?
                }
                L4Direction::Momentum => (&self.dir_grad[i] / c_grad)?,
            };
            self.deriv_grad[i] = ema(&self.deriv_grad[i], g, GRAD_TIME)?;
            let u = (&self.deriv_grad[i] / c_grad)?;
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
        let num = ((big_l - (&self.min_loss * c.minloss_factor)?)? * c.fraction)?;
        let eta = num.div(&(inner + c.epsilon)?)?;
        self.min_loss = (&self.min_loss * (1.0 + 1.0 / c.minloss_forget_time))?;
        for (i, v) in dirs {
            let w = &self.params.vars()[i];
            w.set(&(&w.as_detached_tensor() - v.broadcast_mul(&eta)?)?)?;
        }
        self.global_step += 1;
        Ok(StepReport {
            step_size: Some(Scalar::Device(eta)),
            extra: vec![("l4_min_loss", Scalar::Device(self.min_loss.clone()))],
            ..Default::default()
        })
    }

    fn learning_rate(&self) -> Option<f64> {
        Some(self.cfg.fraction)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.fraction = lr;
    }

    fn state(&self) -> Result<NamedTensors> {
        let mut w = StateWriter::new(self.key(), &self.params);
        w.buffers("dir_ema_grad", &self.dir_grad)?;
        if self.cfg.direction == L4Direction::Adam {
            w.buffers("dir_ema_sq", &self.dir_sq)?;
        }
        w.buffers("deriv_ema_grad", &self.deriv_grad)?;
        w.scalar("min_loss", &self.min_loss)?;
        w.count("global_step", self.global_step)?;
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut r = StateReader::new(self.key(), &self.params, state);
        let dir_grad = r.buffers("dir_ema_grad")?;
        let dir_sq = if self.cfg.direction == L4Direction::Adam { r.buffers("dir_ema_sq")? } else { vec![] };
        let deriv_grad = r.buffers("deriv_ema_grad")?;
        let min_loss = r.scalar("min_loss")?;
        let global_step = r.count("global_step")?;
        r.finish()?;
        (self.dir_grad, self.dir_sq, self.deriv_grad) = (dir_grad, dir_sq, deriv_grad);
        (self.min_loss, self.global_step) = (min_loss, global_step);
        Ok(())
    }
}
