//! 2-D max-pooling with padding and a correct backward.
//!
//! candle 0.11.1 has no padded max-pool, refuses the backward of overlapping windows, and scales
//! the backward of `max_pool2d` by `1/(k*k)`. This op follows `torch.nn.functional.max_pool2d`:
//! padding is `-inf`, each output takes the first maximum of its window in row-major order, and
//! the backward routes each output gradient to that element (accumulating where windows overlap).
//!
//! On the CPU it is a custom op (f32, f64); on other devices it is composed from candle ops that
//! have a backward (`index_select` of the window offsets, then `maximum`), which agrees with it
//! except on exact ties inside a window.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

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

    /// For each output position along one axis and window offset `d`: the input index, or `None`
    /// in the padding.
    fn source(&self, out: usize, d: usize, len: usize) -> Option<usize> {
        (out * self.stride + d).checked_sub(self.padding).filter(|&i| i < len)
    }

    /// Index of the first maximum of every window, per output element (flat index in `[H*W]`).
    fn argmax<T: candle_core::WithDType>(&self, x: &[T], h: usize, w: usize, planes: usize) -> Vec<usize> {
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let mut out = Vec::with_capacity(planes * ho * wo);
        for p in 0..planes {
            let plane = &x[p * h * w..(p + 1) * h * w];
            for oi in 0..ho {
                for oj in 0..wo {
                    let mut best: Option<(usize, T)> = None;
                    for di in 0..self.kernel {
                        let Some(i) = self.source(oi, di, h) else { continue };
                        for dj in 0..self.kernel {
                            let Some(j) = self.source(oj, dj, w) else { continue };
                            let v = plane[i * w + j];
                            // `v > max or v is NaN`, as PyTorch: NaN propagates.
                            if best.is_none_or(|(_, m)| v > m || v.to_f64().is_nan()) {
                                best = Some((i * w + j, v));
                            }
                        }
                    }
                    // A window always holds at least one input element (padding <= kernel / 2).
                    out.push(best.map_or(0, |(idx, _)| idx));
                }
            }
        }
        out
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
            op.argmax(x, h, w, planes)
                .into_iter()
                .enumerate()
                .map(|(k, idx)| x[(k / op.plane_out(h, w)) * h * w + idx])
                .collect()
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
            let mut dx = vec![T::zero(); x.len()];
            let per = op.plane_out(h, w);
            for (k, idx) in op.argmax(x, h, w, planes).into_iter().enumerate() {
                dx[(k / per) * h * w + idx] += g[k];
            }
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
