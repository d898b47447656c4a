//! Small tensor helpers and the fused CPU kernels the optimizers share.
//!
//! Every optimizer has two ways to run its element-wise update: candle tensor ops (any device, any
//! float dtype; each op allocates its result) and, for contiguous f32/f64 tensors on the CPU, fused
//! kernels that update a buffer in place in one multi-threaded pass ([`Kernel`], launched by
//! [`launch`]). Scalars such as ALI-G's step size stay 0-d tensors on the device; a fused CPU
//! kernel reads them from host memory, which is where CPU tensors live, so no device ever syncs.

use std::ops::{Add, Div, Mul, Neg, Sub};

use candle_core::{backend::BackendStorage, bail, CpuStorage, DType, Device, Layout, Result, Tensor, WithDType};
use rayon::prelude::*;

use crate::params::Kernels;

/// Elements per task of the fused kernels (256 KiB of f64): large enough to amortise scheduling.
const CHUNK: usize = 1 << 15;

/// A 0-d tensor holding `v` in `dtype` on `device`.
pub(crate) fn scalar(v: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::new(v, device)?.to_dtype(dtype)
}

/// The host value of a 0-d tensor. Only called by fused CPU kernels (no device round trip) and by
/// reports when the caller asks for the value.
pub(crate) fn host_f64(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// `sum_i ||t_i||^2` as a 0-d tensor in the tensors' dtype, on their device. The fused CPU path
/// accumulates in f64 (8 lanes) before rounding to the dtype once.
pub(crate) fn sum_sq(ts: &[&Tensor], kernels: Kernels) -> Result<Tensor> {
    let first = ts[0];
    if fused(kernels, ts) {
        let mut total = 0f64;
        for t in ts {
            total += match t.dtype() {
                DType::F32 => with_slice::<f32, _>(t, sum_sq_slice)?,
                _ => with_slice::<f64, _>(t, sum_sq_slice)?,
            };
        }
        return scalar(total, first.dtype(), first.device());
    }
    let mut acc = first.sqr()?.sum_all()?;
    for t in &ts[1..] {
        acc = (acc + t.sqr()?.sum_all()?)?;
    }
    Ok(acc)
}

/// `sum_i <a_i, b_i>` as a 0-d tensor (tensor ops; used by the optimizers with inner products).
pub(crate) fn sum_dot(a: &[&Tensor], b: &[&Tensor]) -> Result<Tensor> {
    let mut acc = (a[0] * b[0])?.sum_all()?;
    for (x, y) in a.iter().zip(b).skip(1) {
        acc = (acc + (*x * *y)?.sum_all()?)?;
    }
    Ok(acc)
}

fn sum_sq_slice<T: Real>(s: &[T]) -> f64 {
    s.par_chunks(CHUNK)
        .map(|c| {
            let mut lanes = [0f64; 8];
            let mut it = c.chunks_exact(8);
            for v in &mut it {
                for k in 0..8 {
                    let x = v[k].to_f64();
                    lanes[k] += x * x;
                }
            }
            let tail: f64 = it.remainder().iter().map(|x| x.to_f64() * x.to_f64()).sum();
            lanes.iter().sum::<f64>() + tail
        })
        .sum()
}

fn with_slice<T: Real, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else { bail!("with_slice: not a CPU tensor") };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("with_slice: not contiguous") };
    Ok(f(&T::cpu_storage_as_slice(cpu)?[start..end]))
}

/// True when the fused CPU kernels can serve every tensor of `ts`: kernels on `Auto`, CPU device,
/// f32 or f64, one dtype. Non-contiguous sources are made contiguous by [`launch`].
pub(crate) fn fused(kernels: Kernels, ts: &[&Tensor]) -> bool {
    kernels == Kernels::Auto
        && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == ts[0].dtype())
        && matches!(ts[0].dtype(), DType::F32 | DType::F64)
}

/// The float types of the fused kernels.
pub(crate) trait Real:
    WithDType
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn of(v: f64) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn of(v: f64) -> Self {
                v as $t
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
real!(f32);
real!(f64);

/// An element-wise in-place update of `dst` from `N` read-only sources of the same length. Its
/// scalars are fixed before the launch; `run` is called on chunks, in parallel.
pub(crate) trait Kernel<const N: usize>: Sync {
    const NAME: &'static str;
    fn run<T: Real>(&self, dst: &mut [T], src: [&[T]; N]);
}

macro_rules! launcher {
    ($launch:ident, $op:ident, $n:literal, ($($s:ident, $l:ident),*)) => {
        struct $launch<'a, K>(&'a K);

        impl<K: Kernel<$n>> candle_core::$op for $launch<'_, K> {
            fn name(&self) -> &'static str {
                K::NAME
            }

            fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout $(, $s: &CpuStorage, $l: &Layout)*) -> Result<()> {
                match dst {
                    CpuStorage::F32(d) => run_chunks::<f32, K, $n>(self.0, d, dst_l, [$(($s, $l)),*]),
                    CpuStorage::F64(d) => run_chunks::<f64, K, $n>(self.0, d, dst_l, [$(($s, $l)),*]),
                    other => bail!("{}: unsupported dtype {:?}", K::NAME, other.dtype()),
                }
            }
        }
    };
}
launcher!(Launch0, InplaceOp1, 0, ());
launcher!(Launch1, InplaceOp2, 1, (s1, l1));
launcher!(Launch2, InplaceOp3, 2, (s1, l1, s2, l2));

fn run_chunks<T: Real, K: Kernel<N>, const N: usize>(
    kernel: &K,
    dst: &mut [T],
    dst_l: &Layout,
    srcs: [(&CpuStorage, &Layout); N],
) -> Result<()> {
    let Some((d0, d1)) = dst_l.contiguous_offsets() else { bail!("{}: destination not contiguous", K::NAME) };
    let dst = &mut dst[d0..d1];
    let mut views: [&[T]; N] = [&[]; N];
    for (view, (s, l)) in views.iter_mut().zip(srcs) {
        let Some((s0, s1)) = l.contiguous_offsets() else { bail!("{}: source not contiguous", K::NAME) };
        *view = &T::cpu_storage_as_slice(s)?[s0..s1];
        if view.len() != dst.len() {
            bail!("{}: source of {} elements for a destination of {}", K::NAME, view.len(), dst.len())
        }
    }
    dst.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
        let lo = i * CHUNK;
        kernel.run(d, views.map(|v| &v[lo..lo + d.len()]));
    });
    Ok(())
}

/// Runs `kernel` on `dst` (updated in place) with no source. The caller has checked [`fused`].
pub(crate) fn launch0<K: Kernel<0>>(kernel: &K, dst: &Tensor) -> Result<()> {
    dst.inplace_op1(&Launch0(kernel))
}

/// Runs `kernel` on `dst` (updated in place) from one source. The caller has checked [`fused`].
pub(crate) fn launch1<K: Kernel<1>>(kernel: &K, dst: &Tensor, a: &Tensor) -> Result<()> {
    dst.inplace_op2(&a.contiguous()?, &Launch1(kernel))
}

/// Runs `kernel` on `dst` (updated in place) from two sources. The caller has checked [`fused`].
pub(crate) fn launch2<K: Kernel<2>>(kernel: &K, dst: &Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
    dst.inplace_op3(&a.contiguous()?, &b.contiguous()?, &Launch2(kernel))
}
