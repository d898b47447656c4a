//! The multi-class hinge loss DFW is trained with, as `dfw/losses/hinge.py` of oval-group/dfw
//! (Crammer-Singer), and its "smooth" form.
//!
//! With scores `s` [n, C], labels `y`, `Delta_ij = [j != y_i]` and the augmented scores
//! `a_ij = s_ij + Delta_ij - s_iy_i`, the loss is `(1/n) sum_ij a_ij xi_ij` where `xi` is a constant
//! for autograd:
//!
//! - hard (default): `xi_i = onehot(argmax_j a_ij)`, the maximal violation;
//! - smooth: `p_i = softmax(s_i)` (raw scores, temperature 1), `m_i = [sum_j p_ij a_ij >= 0]`,
//!   `xi_i = m_i p_i + (1 - m_i) onehot(argmax_j a_ij)`.
//!
//! The smooth value is not a log-sum-exp: it is the reference's softmax-weighted violation, falling
//! back to the hard maximum for samples where that is negative. The paper's experiments use it for
//! DFW on CIFAR, and the hard form on SVHN and SNLI. Labels must lie in `0..C`.

use candle_core::{bail, DType, Result, Tensor, D};

/// Mean multi-class hinge loss of `scores` `[n, C]` against integer labels `target` `[n]`.
pub fn multiclass_hinge(scores: &Tensor, target: &Tensor, smooth: bool) -> Result<Tensor> {
    let (n, c) = scores.dims2()?;
    if target.dims() != [n] {
        bail!("multiclass_hinge: target has shape {:?}, expected [{n}] for scores {:?}", target.dims(), scores.dims())
    }
    let dtype = scores.dtype();
    let classes = Tensor::arange(0u32, c as u32, scores.device())?.unsqueeze(0)?;
    let y = target.to_dtype(DType::U32)?.unsqueeze(1)?;
    let onehot = classes.broadcast_eq(&y)?.to_dtype(dtype)?;
    let delta = onehot.affine(-1.0, 1.0)?;
    let s_y = scores.gather(&y, 1)?;
    let aug = (scores + delta)?.broadcast_sub(&s_y)?;
    let fixed = aug.detach();
    let hard = classes.broadcast_eq(&fixed.argmax_keepdim(1)?)?.to_dtype(dtype)?;
    let xi = if smooth {
        let s = scores.detach();
        let e = s.broadcast_sub(&s.max_keepdim(D::Minus1)?)?.exp()?;
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
        let m = (&p * &fixed)?.sum_keepdim(D::Minus1)?.ge(0.0)?.to_dtype(dtype)?;
        (p.broadcast_mul(&m)? + hard.broadcast_mul(&m.affine(-1.0, 1.0)?)?)?
    } else {
        hard
    };
    (aug * xi)?.sum_all()? / n as f64
}
