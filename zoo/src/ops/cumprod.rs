//! Exclusive cumulative product along the last axis, with a backward (candle has no cumprod):
//! `y[.., k] = prod_{m < k} x[.., m]` (so `y[.., 0] = 1`). The DNC's allocation weighting needs it.
//!
//! The backward does not divide by `x` (zeros are allowed): `dx[j] = sum_{k > j} g[k] prod_{m < k,
//! m != j} x[m]`, computed in O(n^2) per row, which is cheap for the DNC's 16 memory slots.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

use super::contiguous_slice;

/// The exclusive cumulative product of `x` along its last axis (f32 or f64, any device: off the
/// CPU it is composed of candle ops).
pub fn exclusive_cumprod(x: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 {
        bail!("exclusive_cumprod: needs at least one axis")
    }
    if super::custom_ops() && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.apply_op1(ExclusiveCumprod)
    } else {
        composite(x)
    }
}

/// `y_k = prod_{m<k} x_m` from narrow/mul/cat (differentiable through candle's own backward).
fn composite(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(candle_core::D::Minus1)?;
    let last = x.rank() - 1;
    let mut cols = vec![x.narrow(last, 0, 1)?.ones_like()?];
    for k in 1..n {
        let prev = cols[k - 1].clone();
        cols.push((prev * x.narrow(last, k - 1, 1)?)?);
    }
    Tensor::cat(&cols, last)
}

struct ExclusiveCumprod;

impl CustomOp1 for ExclusiveCumprod {
    fn name(&self) -> &'static str {
        "exclusive-cumprod"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = *l.dims().last().unwrap_or(&1);
        fn go<T: WithDType>(x: &[T], n: usize) -> Vec<T> {
            let mut y = Vec::with_capacity(x.len());
            for row in x.chunks(n) {
                let mut acc = T::one();
                for &v in row {
                    y.push(acc);
                    acc *= v;
                }
            }
            y
        }
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(go(contiguous_slice::<f32>(s, l, "exclusive_cumprod")?, n)),
            CpuStorage::F64(_) => CpuStorage::F64(go(contiguous_slice::<f64>(s, l, "exclusive_cumprod")?, n)),
            _ => bail!("exclusive_cumprod: f32 or f64 only"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2(&grad.contiguous()?, ExclusiveCumprodGrad)?))
    }
}

struct ExclusiveCumprodGrad;

impl CustomOp2 for ExclusiveCumprodGrad {
    fn name(&self) -> &'static str {
        "exclusive-cumprod-backward"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = *xl.dims().last().unwrap_or(&1);
        fn go<T: WithDType>(x: &[T], g: &[T], n: usize) -> Vec<T> {
            let mut dx = vec![T::zero(); x.len()];
            for ((xr, gr), dr) in x.chunks(n).zip(g.chunks(n)).zip(dx.chunks_mut(n)) {
                for (j, d) in dr.iter_mut().enumerate() {
                    // prod_{m < k, m != j} x_m for k = j+1.. grows by x_{k-1} at each k.
                    let mut partial = T::one();
                    for &v in &xr[..j] {
                        partial *= v;
                    }
                    let mut acc = T::zero();
                    for k in j + 1..n {
                        if k - 1 != j {
                            partial *= xr[k - 1];
                        }
                        acc += gr[k] * partial;
                    }
                    *d = acc;
                }
            }
            dx
        }
        let out = match (xs, gs) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(go(
                contiguous_slice::<f32>(xs, xl, "exclusive_cumprod")?,
                contiguous_slice::<f32>(gs, gl, "exclusive_cumprod")?,
                n,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(go(
                contiguous_slice::<f64>(xs, xl, "exclusive_cumprod")?,
                contiguous_slice::<f64>(gs, gl, "exclusive_cumprod")?,
                n,
            )),
            _ => bail!("exclusive_cumprod backward: f32 or f64 only, one dtype"),
        };
        Ok((out, xl.shape().clone()))
    }
}
