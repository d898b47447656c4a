//! Small tensor helpers and the fused CPU kernels the optimizers share.
//!
//! Every optimizer has two ways to run its element-wise update: candle tensor ops (any device, any
//! float dtype; each op allocates its result) and, for contiguous f32/f64 tensors on the CPU, fused
//! kernels that update a buffer in place in one multi-threaded pass ([`Kernel`], launched by
//! [`launch`]). Scalars such as ALI-G's step size stay 0-d tensors on the device; a fused CPU
//! kernel reads them from host memory, which is where CPU tensors live, so no device ever syncs.

use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::Mutex;

use candle_core::{backend::BackendStorage, bail, CpuStorage, DType, Device, Layout, Result, Tensor, WithDType};
use rayon::prelude::*;

/// How the element-wise updates of an optimizer run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Fused multi-threaded CPU kernels (one pass per buffer, updates in place) for contiguous f32/f64
    /// CPU tensors, candle tensor ops everywhere else (CUDA, Metal, half precision).
    #[default]
    Auto,
    /// candle tensor ops only, on every device. Selectable for comparison and tests.
    Tensor,
}

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
/// reads every tensor once, in parallel chunks across all of them, and accumulates in f64.
pub(crate) fn sum_sq(ts: &[&Tensor], kernels: Kernels) -> Result<Tensor> {
    let first = ts[0];
    if fused(kernels, ts) {
        let total = match first.dtype() {
            DType::F32 => sum_sq_cpu::<f32>(ts)?,
            _ => sum_sq_cpu::<f64>(ts)?,
        };
        return scalar(total, first.dtype(), first.device());
    }
    let mut acc = first.sqr()?.sum_all()?;
    for t in &ts[1..] {
        acc = (acc + t.sqr()?.sum_all()?)?;
    }
    Ok(acc)
}

fn sum_sq_cpu<T: Real>(ts: &[&Tensor]) -> Result<f64> {
    let owned: Vec<Tensor> = ts.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut chunks: Vec<&[T]> = Vec::new();
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(cpu) = &**storage else { bail!("sum_sq: not a CPU tensor") };
        let Some((start, end)) = layout.contiguous_offsets() else { bail!("sum_sq: not contiguous") };
        chunks.extend(T::cpu_storage_as_slice(cpu)?[start..end].chunks(CHUNK));
    }
    // Partial sums in parallel, added in chunk order: the same bits whatever the scheduling.
    let partial: Vec<f64> = chunks.par_iter().map(|c| sum_sq_serial(c)).collect();
    Ok(partial.iter().sum())
}

/// `sum x^2` of one chunk in f64, with the widest vector unit the CPU has ([`vectorised`]).
fn sum_sq_serial<T: Real>(c: &[T]) -> f64 {
    vectorised(
        #[inline(always)]
        || sum_sq_lanes(c),
    )
}

/// 32 independent f64 accumulators: the compiler turns them into vector registers.
#[inline(always)]
fn sum_sq_lanes<T: Real>(c: &[T]) -> f64 {
    const LANES: usize = 32;
    let mut lanes = [0f64; LANES];
    let mut it = c.chunks_exact(LANES);
    for v in &mut it {
        for k in 0..LANES {
            let x = v[k].to_f64();
            lanes[k] += x * x;
        }
    }
    let tail: f64 = it.remainder().iter().map(|x| x.to_f64() * x.to_f64()).sum();
    lanes.iter().sum::<f64>() + tail
}

/// `sum_i <a_i, b_i>` as a 0-d tensor (tensor ops; used by the optimizers with inner products).
pub(crate) fn sum_dot(a: &[&Tensor], b: &[&Tensor]) -> Result<Tensor> {
    let mut acc = (a[0] * b[0])?.sum_all()?;
    for (x, y) in a.iter().zip(b).skip(1) {
        acc = (acc + (*x * *y)?.sum_all()?)?;
    }
    Ok(acc)
}

/// True when the fused CPU kernels can serve every tensor of `ts`: kernels on `Auto`, CPU device,
/// f32 or f64, one dtype. Non-contiguous sources are made contiguous by [`launch`].
pub(crate) fn fused(kernels: Kernels, ts: &[&Tensor]) -> bool {
    kernels == Kernels::Auto
        && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == ts[0].dtype())
        && matches!(ts[0].dtype(), DType::F32 | DType::F64)
}

/// Runs `f` compiled for AVX-512F or AVX2 when the CPU has them: the build targets baseline
/// x86-64, so the wider vector units are chosen at run time, with `f` inlined into a variant
/// compiled for them. Rust never contracts `a * b + c` into an FMA, so every variant rounds
/// exactly alike. The fused optimizer kernels run through it, and so does zoo's BatchNorm.
///
/// Pass an `#[inline(always)]` closure (`vectorised(#[inline(always)] || kernel(..))`): once an
/// `inline(always)` kernel is inlined into it, a closure can grow past LLVM's inlining threshold
/// and stay a baseline function that the wide variant merely calls (seen on BatchNorm's backward
/// with `perf annotate`: scalar SSE2 code under the AVX-512 variant).
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { avx512(f) }
        } else if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { avx2(f) }
        } else {
            f()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f()
    }
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
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut Vec<Self>>;
}

macro_rules! real {
    ($t:ty, $v:ident) => {
        impl Real for $t {
            fn of(v: f64) -> Self {
                v as $t
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn storage_mut(s: &mut CpuStorage) -> Option<&mut Vec<Self>> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
real!(f32, F32);
real!(f64, F64);

/// An element-wise in-place update of `dst` from `N` read-only sources of the same length. Its
/// scalars are fixed before the launch; `run` is called on chunks, in parallel.
pub(crate) trait Kernel<const N: usize>: Sync {
    const NAME: &'static str;
    fn run<T: Real>(&self, dst: &mut [T], src: [&[T]; N]);
}

macro_rules! launcher {
    ($launch:ident, $op:ident, $n:literal, ($($s:ident, $l:ident),*)) => {
        struct $launch<'a, K> {
            kernel: &'a K,
            norms: Option<(Norms, &'a Mutex<(f64, f64)>)>,
        }

        impl<K: Kernel<$n>> candle_core::$op for $launch<'_, K> {
            fn name(&self) -> &'static str {
                K::NAME
            }

            fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout $(, $s: &CpuStorage, $l: &Layout)*) -> Result<()> {
                let norms = self.norms.map(|(n, _)| n).unwrap_or_default();
                let sq = match dst {
                    CpuStorage::F32(d) => run_chunks::<f32, K, $n>(self.kernel, norms, d, dst_l, [$(($s, $l)),*]),
                    CpuStorage::F64(d) => run_chunks::<f64, K, $n>(self.kernel, norms, d, dst_l, [$(($s, $l)),*]),
                    other => bail!("{}: unsupported dtype {:?}", K::NAME, other.dtype()),
                }?;
                add_norms(self.norms.map(|(_, c)| c), sq)
            }
        }
    };
}
launcher!(Launch0, InplaceOp1, 0, ());
launcher!(Launch1, InplaceOp2, 1, (s1, l1));
launcher!(Launch2, InplaceOp3, 2, (s1, l1, s2, l2));

/// Which squared norms a fused kernel also computes, chunk by chunk while the data is in cache:
/// of its (first) source before the update, of its destination after it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Norms {
    pub src: bool,
    pub dst: bool,
}

impl Norms {
    pub const NONE: Norms = Norms { src: false, dst: false };
}

fn add_norms(cell: Option<&Mutex<(f64, f64)>>, sq: (f64, f64)) -> Result<()> {
    if let Some(cell) = cell {
        let mut c = cell.lock().map_err(|_| candle_core::Error::Msg("fused kernel: poisoned lock".into()))?;
        c.0 += sq.0;
        c.1 += sq.1;
    }
    Ok(())
}

fn add_pair(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 + b.0, a.1 + b.1)
}

/// Splits the work in chunks of [`CHUNK`] elements, in parallel; returns the squared norms asked
/// for by `norms` (0 otherwise), added in chunk order so that the result does not depend on how
/// the threads were scheduled (a resumed run must take bit-identical steps).
fn run_chunks<T: Real, K: Kernel<N>, const N: usize>(
    kernel: &K,
    norms: Norms,
    dst: &mut [T],
    dst_l: &Layout,
    srcs: [(&CpuStorage, &Layout); N],
) -> Result<(f64, f64)> {
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
    let task = |d: &mut [T], src: [&[T]; N]| {
        let before = if norms.src && N > 0 { sum_sq_serial(src[0]) } else { 0.0 };
        vectorised(
            #[inline(always)]
            || kernel.run(d, src),
        );
        (before, if norms.dst { sum_sq_serial(d) } else { 0.0 })
    };
    if dst.len() <= CHUNK {
        return Ok(task(dst, views));
    }
    Ok(dst
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(i, d)| {
            let lo = i * CHUNK;
            task(d, views.map(|v| &v[lo..lo + d.len()]))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0.0), add_pair))
}

/// Runs `kernel` on `dst` (updated in place) with no source. The caller has checked [`fused`].
pub(crate) fn launch0<K: Kernel<0>>(kernel: &K, dst: &Tensor) -> Result<()> {
    dst.inplace_op1(&Launch0 { kernel, norms: None })
}

/// Runs `kernel` on `dst` (updated in place) from one source; returns `(||a||^2, ||dst||^2)` as
/// asked by `norms` (computed in the same pass). The caller has checked [`fused`].
pub(crate) fn launch1<K: Kernel<1>>(kernel: &K, dst: &Tensor, a: &Tensor, norms: Norms) -> Result<(f64, f64)> {
    let cell = Mutex::new((0.0, 0.0));
    dst.inplace_op2(&a.contiguous()?, &Launch1 { kernel, norms: Some((norms, &cell)) })?;
    take(cell)
}

/// Runs `kernel` on `dst` (updated in place) from two sources. The caller has checked [`fused`].
pub(crate) fn launch2<K: Kernel<2>>(kernel: &K, dst: &Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
    dst.inplace_op3(&a.contiguous()?, &b.contiguous()?, &Launch2 { kernel, norms: None })
}

fn take(cell: Mutex<(f64, f64)>) -> Result<(f64, f64)> {
    cell.into_inner().map_err(|_| candle_core::Error::Msg("fused kernel: poisoned lock".into()))
}

/// An element-wise in-place update of two buffers `a` and `b` (e.g. a momentum buffer and the
/// weights) from one read-only source, in a single pass.
pub(crate) trait PairKernel: Sync {
    const NAME: &'static str;
    fn run<T: Real>(&self, a: &mut [T], b: &mut [T], src: &[T]);
}

/// Runs `kernel` on `a` and `b` (both updated in place) from `src`, in one pass; returns
/// `(||src||^2, ||b||^2 after)` as asked by `norms` (chunk by chunk, in the same pass). `a` is
/// locked by an outer in-place op, then `b` and `src` by an inner one that also writes the outer's
/// slice: three distinct storages, always locked in this order. The caller has checked [`fused`].
pub(crate) fn launch_pair<K: PairKernel>(
    kernel: &K,
    a: &Tensor,
    b: &Tensor,
    src: &Tensor,
    norms: Norms,
) -> Result<(f64, f64)> {
    let src = src.contiguous()?;
    let cell = Mutex::new((0.0, 0.0));
    a.inplace_op1(&PairOuter { kernel, b, src: &src, norms, cell: &cell })?;
    take(cell)
}

struct PairOuter<'a, K> {
    kernel: &'a K,
    b: &'a Tensor,
    src: &'a Tensor,
    norms: Norms,
    cell: &'a Mutex<(f64, f64)>,
}

impl<K: PairKernel> candle_core::InplaceOp1 for PairOuter<'_, K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, a: &mut CpuStorage, a_l: &Layout) -> Result<()> {
        let Some((a0, a1)) = a_l.contiguous_offsets() else { bail!("{}: buffer not contiguous", K::NAME) };
        match a {
            CpuStorage::F32(v) => self.b.inplace_op2(self.src, &self.inner(&mut v[a0..a1])),
            CpuStorage::F64(v) => self.b.inplace_op2(self.src, &self.inner(&mut v[a0..a1])),
            other => bail!("{}: unsupported dtype {:?}", K::NAME, other.dtype()),
        }
    }
}

impl<'a, K> PairOuter<'a, K> {
    fn inner<'b, T>(&self, a: &'b mut [T]) -> PairInner<'a, 'b, T, K> {
        PairInner { kernel: self.kernel, norms: self.norms, cell: self.cell, a: Mutex::new(a) }
    }
}

struct PairInner<'a, 'b, T, K> {
    kernel: &'a K,
    norms: Norms,
    cell: &'a Mutex<(f64, f64)>,
    /// The outer op's buffer; the mutex only hands the exclusive borrow to this `Sync` op.
    a: Mutex<&'b mut [T]>,
}

impl<T: Real, K: PairKernel> candle_core::InplaceOp2 for PairInner<'_, '_, T, K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, b: &mut CpuStorage, b_l: &Layout, s: &CpuStorage, s_l: &Layout) -> Result<()> {
        let (Some((b0, b1)), Some((s0, s1))) = (b_l.contiguous_offsets(), s_l.contiguous_offsets()) else {
            bail!("{}: weights or source not contiguous", K::NAME)
        };
        let Some(b) = T::storage_mut(b) else { bail!("{}: weights and buffer differ in dtype", K::NAME) };
        let (b, s) = (&mut b[b0..b1], &T::cpu_storage_as_slice(s)?[s0..s1]);
        let mut guard = self.a.lock().map_err(|_| candle_core::Error::Msg(format!("{}: poisoned", K::NAME)))?;
        let a: &mut [T] = &mut guard;
        if a.len() != b.len() || s.len() != b.len() {
            bail!("{}: lengths {}, {} and {} differ", K::NAME, a.len(), b.len(), s.len())
        }
        let norms = self.norms;
        let task = |a: &mut [T], b: &mut [T], s: &[T]| {
            let before = if norms.src { sum_sq_serial(s) } else { 0.0 };
            vectorised(
                #[inline(always)]
                || self.kernel.run(a, b, s),
            );
            (before, if norms.dst { sum_sq_serial(b) } else { 0.0 })
        };
        let sq = if b.len() <= CHUNK {
            task(a, b, s)
        } else {
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks_mut(CHUNK))
                .zip(s.par_chunks(CHUNK))
                .map(|((a, b), s)| task(a, b, s))
                .collect::<Vec<_>>()
                .into_iter()
                .fold((0.0, 0.0), add_pair)
        };
        add_norms(Some(self.cell), sq)
    }
}
