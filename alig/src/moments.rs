//! Moment estimates shared by the Adam family and L4: range checks of the betas, the 2019 PyTorch
//! Adam step (AdamW, Yogi) and exponential moving averages.

use candle_core::{bail, Result, Tensor};

use crate::check::non_negative;
use crate::optimizer::Hyper;
use crate::params::ParamSet;
use crate::state::{State, EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ, STEP};

/// The Adam family's `[lr, beta1, beta2, eps]` from the registry's `h`, `defaults` where `h`
/// leaves them out.
pub(crate) fn read_hyper(h: &Hyper, defaults: [f64; 4]) -> [f64; 4] {
    let [lr, beta1, beta2, eps] = defaults;
    let (beta1, beta2) = h.betas.unwrap_or((beta1, beta2));
    [h.lr.unwrap_or(lr), beta1, beta2, h.eps.unwrap_or(eps)]
}

/// The registry's hyper-parameters of an Adam-family configuration (`read_hyper`'s inverse).
pub(crate) fn to_hyper([lr, beta1, beta2, eps]: [f64; 4], weight_decay: f64) -> Hyper {
    Hyper { lr: Some(lr), betas: Some((beta1, beta2)), eps: Some(eps), weight_decay, ..Hyper::default() }
}

/// Fails on a negative `lr` or `eps`, betas outside `[0, 1)` or a negative weight decay, in that
/// order: the checks of the Adam family's constructors.
pub(crate) fn check(who: &str, [lr, beta1, beta2, eps]: [f64; 4], weight_decay: f64) -> Result<()> {
    non_negative(who, &[("lr", lr), ("eps", eps)])?;
    if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
        bail!("{who}: betas must be in [0, 1), got ({beta1}, {beta2})")
    }
    non_negative(who, &[("weight_decay", weight_decay)])
}

/// The Adam family's state: torch's `exp_avg`, `exp_avg_sq`, AMSGrad's `max_exp_avg_sq`, `step`.
pub(crate) fn state(params: &ParamSet, amsgrad: bool) -> Result<State> {
    let mut state = State::new();
    state.zeros(EXP_AVG, params)?;
    state.zeros(EXP_AVG_SQ, params)?;
    if amsgrad {
        state.zeros(MAX_EXP_AVG_SQ, params)?;
    }
    state.counters(STEP, params);
    Ok(state)
}

/// `beta m + (1 - beta) x`: the moment update of AdamW and Yogi (Adam's is torch's `lerp` form).
pub(crate) fn ema(m: &Tensor, x: &Tensor, beta: f64) -> Result<Tensor> {
    (m * beta)? + (x * (1.0 - beta))?
}

/// The step size `lr sqrt(1 - beta2^t) / (1 - beta1^t)` of the 2019 PyTorch Adam (AdamW, Yogi).
pub(crate) fn old_adam_step_size(lr: f64, beta1: f64, beta2: f64, t: u64) -> f64 {
    let t = t as i32;
    lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))
}

/// `w - step_size m / (sqrt(u) + eps)`: the 2019 PyTorch Adam update, shared by AdamW and Yogi.
pub(crate) fn old_adam_update(w: &Tensor, m: &Tensor, u: &Tensor, step_size: f64, eps: f64) -> Result<Tensor> {
    let denom = (u.sqrt()? + eps)?;
    w - ((m / denom)? * step_size)?
}
