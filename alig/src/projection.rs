//! Projection onto the l2 ball: ALI-G's regularisation (Berrada et al., ICML 2020, section 3).
//!
//! `Pi(w) = w * min(1, r / ||w||)` with `||w||` the l2 norm over the concatenation of every
//! trainable parameter (BatchNorm scales and biases included, running statistics excluded), as
//! `alig/th/projection.py` of the reference. The paper's radii (100, 75, 50, 400) are calibrated
//! for that norm.

use candle_core::{Result, Tensor};

use crate::ops::{self, Kernel};
use crate::params::ParamSet;

/// Scales every parameter by `factor` in place.
struct Scale(f64);

impl Kernel<0> for Scale {
    const NAME: &'static str = "l2-projection";
    fn run<T: ops::Real>(&self, dst: &mut [T], _: [&[T]; 0]) {
        let f = T::of(self.0);
        dst.iter_mut().for_each(|w| *w *= f);
    }
}

/// Projects `params` onto the l2 ball of radius `max_norm`, in place. Returns the norm before the
/// projection (a 0-d tensor on the device; the projection is active when it exceeds `max_norm`).
pub fn project_l2_ball(params: &ParamSet, max_norm: f64) -> Result<Tensor> {
    scale_into_ball(params, &params.sq_norm()?, max_norm)
}

/// The projection, given the squared norm `sq_norm` of `params` (0-d tensor) computed elsewhere,
/// e.g. by ALI-G's fused update while it wrote the weights.
pub(crate) fn scale_into_ball(params: &ParamSet, sq_norm: &Tensor, max_norm: f64) -> Result<Tensor> {
    let norm = sq_norm.sqrt()?;
    let radius = ops::scalar(max_norm, norm.dtype(), norm.device())?;
    // factor = min(r / ||w||, 1): exactly 1 (a no-op multiplication) inside the ball.
    let factor = radius.div(&norm)?.minimum(1.0)?;
    let ts: Vec<&Tensor> = params.vars().iter().map(|v| v.as_tensor()).collect();
    if ops::fused(params.kernels(), &ts) {
        let f = ops::host_f64(&factor)?;
        if f < 1.0 {
            for t in ts {
                ops::launch0(&Scale(f), t)?;
            }
        }
    } else {
        for v in params.vars() {
            v.set(&v.broadcast_mul(&factor)?)?;
        }
    }
    Ok(norm)
}
