//! Weight decay as the baselines couple it to the gradient, and as the loss-based steps add it to
//! the objective.

use candle_core::{Result, Tensor, Var};

use crate::ops::Real;
use crate::params::ParamSet;

/// `g + lambda w` (coupled weight decay); `g` itself when `lambda = 0`.
pub(crate) fn coupled(g: &Tensor, w: &Var, lambda: f64) -> Result<Tensor> {
    if lambda == 0.0 {
        return Ok(g.clone());
    }
    g + (&w.as_detached_tensor() * lambda)?
}

/// The same on one element, inside the fused kernels (`lambda = 0` adds nothing, not even `0 w`).
#[inline(always)]
pub(crate) fn coupled_elem<T: Real>(g: T, w: T, lambda: f64) -> T {
    if lambda == 0.0 {
        g
    } else {
        g + T::of(lambda) * w
    }
}

/// The regularised objective `loss + sum_p lambda/2 ||w_p||^2` and gradients `g_p + lambda w_p`
/// over the parameters that have a gradient (BPGrad, L4). `loss` is the detached 0-d loss.
pub(crate) fn regularised(
    params: &ParamSet,
    loss: Tensor,
    grads: &[Option<Tensor>],
    lambda: f64,
) -> Result<(Tensor, Vec<Option<Tensor>>)> {
    if lambda == 0.0 {
        return Ok((loss, grads.to_vec()));
    }
    let mut obj = loss;
    let mut out = Vec::with_capacity(grads.len());
    for (w, g) in params.vars().iter().zip(grads) {
        out.push(match g {
            Some(g) => {
                obj = (obj + (&w.as_detached_tensor().sqr()?.sum_all()? * (0.5 * lambda))?)?;
                Some(coupled(g, w, lambda)?)
            }
            None => None,
        });
    }
    Ok((obj, out))
}
