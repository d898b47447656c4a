//! 2-D max-pooling with padding and a correct backward.
//!
//! candle 0.11.1 has no padded max-pool, refuses the backward of overlapping windows, and scales
//! the backward of `max_pool2d` by `1/(k*k)`. This op follows `torch.nn.functional.max_pool2d`:
//! padding is `-inf`, each output takes the first maximum of its window in row-major order, and
//! the backward routes each output gradient to that element (accumulating where windows overlap).
//!
//! On the CPU it is a custom op (f32, f64; planes in parallel, the backward finding each window's
//! maximum again rather than keeping indices); on other devices it is composed from candle ops that
//! have a backward (`index_select` of the window offsets, then `maximum`), which agrees with it
//! except on exact ties inside a window.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use rayon::prelude::*;

use super::contiguous_slice;

/// `max_pool2d` of `x` `[N, C, H, W]` with a square `kernel`, `stride` and `padding` (each side),
/// as PyTorch (floor mode). `padding <= kernel / 2`.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 || 2 * padding > kernel {
        bail!("max_pool2d: need kernel > 0, stride > 0 and padding <= kernel / 2, got {kernel}, {stride}, {padding}")
    }
    if h + 2 * padding < kernel || w + 2 * padding < kernel {
        bail!("max_pool2d: input {h}x{w} is smaller than the {kernel}x{kernel} window")
    }
    let op = MaxPool { kernel, stride, padding };
    if super::custom_ops() && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.apply_op1(op)
    } else {
        op.composite(x)
    }
}

/// The device-generic form of [`max_pool2d`] (what CUDA and Metal run), composed from candle ops.
pub fn max_pool2d_composite(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 || 2 * padding > kernel || h + 2 * padding < kernel || w + 2 * padding < kernel {
        bail!("max_pool2d: bad window {kernel}/{stride}/{padding} for a {h}x{w} input")
    }
    MaxPool { kernel, stride, padding }.composite(x)
}

#[derive(Clone, Copy, Debug)]
struct MaxPool {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl MaxPool {
    fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// The input rows (or columns) `lo..hi` of output row `out`'s window, clipped to `0..len`.
    fn window(&self, out: usize, len: usize) -> (usize, usize) {
        let start = out * self.stride;
        (start.saturating_sub(self.padding), (start + self.kernel - self.padding).min(len))
    }

    /// Calls `f(k, idx)` for every output `k` of one `[h, w]` plane with `idx`, the flat index of
    /// its window's maximum: the first in row-major order, or the last NaN (as PyTorch: NaN
    /// propagates). A window always holds an input element (padding <= kernel / 2).
    fn each_max<T: candle_core::WithDType>(&self, plane: &[T], h: usize, w: usize, mut f: impl FnMut(usize, usize)) {
        let wo = self.out_size(w);
        let cols: Vec<(usize, usize)> = (0..wo).map(|oj| self.window(oj, w)).collect();
        for oi in 0..self.out_size(h) {
            let (r0, r1) = self.window(oi, h);
            for (oj, &(c0, c1)) in cols.iter().enumerate() {
                let (mut best, mut max) = (r0 * w + c0, plane[r0 * w + c0]);
                for i in r0..r1 {
                    for (j, &v) in plane[i * w + c0..i * w + c1].iter().enumerate() {
                        #[allow(clippy::eq_op)] // v != v: NaN
                        if v > max || v != v {
                            (best, max) = (i * w + c0 + j, v);
                        }
                    }
                }
                f(oi * wo + oj, best);
            }
        }
    }

    /// The device-generic composition (any device, differentiable through candle ops).
    fn composite(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let p = self.padding;
        let x = if p > 0 {
            let neg = |shape: (usize, usize, usize, usize)| {
                Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())
            };
            let x = Tensor::cat(&[&neg((n, c, p, w))?, x, &neg((n, c, p, w))?], 2)?;
            Tensor::cat(&[&neg((n, c, h + 2 * p, p))?, &x, &neg((n, c, h + 2 * p, p))?], 3)?
        } else {
            x.clone()
        };
        let mut best: Option<Tensor> = None;
        for di in 0..self.kernel {
            let rows: Vec<u32> = (0..ho).map(|i| (i * self.stride + di) as u32).collect();
            let xr = x.index_select(&Tensor::new(rows, x.device())?, 2)?;
            for dj in 0..self.kernel {
                let cols: Vec<u32> = (0..wo).map(|j| (j * self.stride + dj) as u32).collect();
                let v = xr.index_select(&Tensor::new(cols, x.device())?, 3)?;
                best = Some(match best {
                    None => v,
                    Some(b) => b.maximum(&v)?,
                });
            }
        }
        best.ok_or_else(|| candle_core::Error::Msg("max_pool2d: empty kernel".into()))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool2d-padded"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let shape = Shape::from((n, c, self.out_size(h), self.out_size(w)));
        fn go<T: candle_core::WithDType>(op: &MaxPool, x: &[T], h: usize, w: usize, planes: usize) -> Vec<T> {
            let per = op.plane_out(h, w);
            let mut y = vec![T::zero(); planes * per];
            y.par_chunks_mut(per.max(1)).zip(x.par_chunks(h * w)).for_each(|(y, plane)| {
                op.each_max(plane, h, w, |k, idx| y[k] = plane[idx]);
            });
            y
        }
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(go(self, contiguous_slice::<f32>(s, l, self.name())?, h, w, n * c)),
            CpuStorage::F64(_) => CpuStorage::F64(go(self, contiguous_slice::<f64>(s, l, self.name())?, h, w, n * c)),
            other => bail!("max_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2(&grad_res.contiguous()?, MaxPoolGrad(*self))?))
    }
}

impl MaxPool {
    fn plane_out(&self, h: usize, w: usize) -> usize {
        self.out_size(h) * self.out_size(w)
    }
}

/// The input gradient: each output gradient added to its window's first maximum.
struct MaxPoolGrad(MaxPool);

impl candle_core::CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool2d-padded-backward"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let op = self.0;
        fn go<T: candle_core::WithDType>(op: &MaxPool, x: &[T], g: &[T], h: usize, w: usize, planes: usize) -> Vec<T> {
            let per = op.plane_out(h, w);
            let mut dx = vec![T::zero(); planes * h * w];
            dx.par_chunks_mut(h * w)
                .zip(x.par_chunks(h * w))
                .zip(g.par_chunks(per.max(1)))
                .for_each(|((dx, plane), g)| op.each_max(plane, h, w, |k, idx| dx[idx] += g[k]));
            dx
        }
        let out = match (xs, gs) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(go(
                &op,
                contiguous_slice(xs, xl, self.name())?,
                contiguous_slice(gs, gl, self.name())?,
                h,
                w,
                n * c,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(go(
                &op,
                contiguous_slice(xs, xl, self.name())?,
                contiguous_slice(gs, gl, self.name())?,
                h,
                w,
                n * c,
            )),
            _ => bail!("max_pool2d backward: unsupported or mixed dtypes"),
        };
        Ok((out, xl.shape().clone()))
    }
}
