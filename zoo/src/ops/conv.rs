//! 2-D convolution (no bias, groups 1, dilation 1) for training on the CPU: forward, input gradient
//! and weight gradient all as GEMMs over im2col columns, images in parallel.
//!
//! candle 0.11.1 computes a convolution's input gradient with a direct `conv_transpose2d` loop and
//! its weight gradient with a "batch as channels" convolution, 5-30x slower than oneDNN
//! (`shared/spec/candle-cpu.md` section 3.3). Here, per image `n` with columns
//! `col_n = im2col(x_n)` `[C k k, OH OW]`:
//!
//! ```text
//! y_n  = W col_n                         W as [O, C k k]
//! dW   = sum_n dy_n col_n^T              (images split in fixed chunks, partial sums added in order)
//! dx_n = col2im(W^T dy_n)                (skipped when x needs no gradient)
//! ```
//!
//! On CUDA/Metal, in f64, or with [`super::set_custom_ops`]`(false)`, candle's own `conv2d` runs instead.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;

use super::gemm::{matmul_into_serial, View};
#[cfg(feature = "onednn")]
use super::onednn::Pass;
use super::{contiguous_slices, custom_ops, with_host_f32};

/// `conv2d(x [N, C, H, W], w [O, C, k, k])` with `stride` and zero `padding`.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let fast = x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && w.dtype() == x.dtype() && custom_ops();
    if !fast {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let (_, c, h, wd) = x.dims4()?;
    let (_, c2, kh, kw) = w.dims4()?;
    if c != c2 || stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
        bail!("conv2d: input {:?}, weight {:?}, stride {stride}, padding {padding} do not fit", x.dims(), w.dims())
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv { stride, padding })
}

/// A convolution layer without bias, named like PyTorch's (`weight`).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// The kernel `[out, in, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The stride (both directions).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The zero padding (all four sides).
    pub fn padding(&self) -> usize {
        self.padding
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, self.stride, self.padding)
    }
}

/// A square-kernel convolution without bias, as `candle_nn::conv2d_no_bias` (only `padding` and
/// `stride` of the config are supported).
pub fn conv2d_no_bias(c_in: usize, c_out: usize, k: usize, cfg: Conv2dConfig, vb: VarBuilder) -> Result<Conv2d> {
    if cfg.groups != 1 || cfg.dilation != 1 {
        bail!("conv2d: groups and dilation other than 1 are not supported")
    }
    let weight = vb.get_with_hints((c_out, c_in, k, k), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
    Ok(Conv2d { weight, stride: cfg.stride, padding: cfg.padding })
}

#[derive(Clone, Copy)]
struct Conv {
    stride: usize,
    padding: usize,
}

/// The shapes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    /// The convolution of an input of dims `x` with a kernel of dims `w`.
    pub(crate) fn new(x: &[usize], w: &[usize], stride: usize, padding: usize) -> Self {
        let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
        let (o, kh, kw) = (w[0], w[2], w[3]);
        let oh = (h + 2 * padding - kh) / stride + 1;
        let ow = (wd + 2 * padding - kw) / stride + 1;
        Self { n, c, h, w: wd, o, kh, kw, oh, ow, stride, padding }
    }

    /// The shapes in the order oneDNN's shim reads them.
    #[cfg(feature = "onednn")]
    fn dims(&self) -> super::onednn::Dims {
        [self.n, self.c, self.h, self.w, self.o, self.kh, self.kw, self.oh, self.ow, self.stride, self.padding]
    }

    /// The output's shape `[N, O, OH, OW]`.
    pub(crate) fn output_shape(&self) -> Shape {
        Shape::from((self.n, self.o, self.oh, self.ow))
    }

    /// Rows of the columns: `C k k`.
    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1x1 stride-1 unpadded convolution reads the image itself as its columns.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// The input column `iw` for output column `ox` and kernel column `j`, if inside the image.
    fn source(&self, out: usize, k: usize, size: usize) -> Option<usize> {
        (out * self.stride + k).checked_sub(self.padding).filter(|&i| i < size)
    }

    /// The outputs `lo..hi` (of `0..outs`) whose input `out * stride + k - padding` lies inside
    /// `0..size`: a row's taps with kernel offset `k`, as one contiguous range.
    fn inside(&self, k: usize, outs: usize, size: usize) -> (usize, usize) {
        let lo = self.padding.saturating_sub(k).div_ceil(self.stride).min(outs);
        let hi = match (size + self.padding).checked_sub(k + 1) {
            Some(last) => (last / self.stride + 1).min(outs).max(lo),
            None => lo,
        };
        (lo, hi)
    }

    /// `col [C k k, OH OW]` of one image `x [C, H, W]`.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let p = self.pixels();
        for c in 0..self.c {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = &mut col[((c * self.kh + i) * self.kw + j) * p..][..p];
                    for oy in 0..self.oh {
                        let dst = &mut row[oy * self.ow..(oy + 1) * self.ow];
                        let Some(iy) = self.source(oy, i, self.h) else {
                            dst.fill(0.0);
                            continue;
                        };
                        let src = &plane[iy * self.w..(iy + 1) * self.w];
                        // Output columns lo..hi read input columns ox stride + j - padding,
                        // between two zero borders.
                        let (lo, hi) = self.inside(j, self.ow, self.w);
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if lo == hi {
                            continue;
                        }
                        let first = lo * self.stride + j - self.padding;
                        if self.stride == 1 {
                            dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                        } else {
                            for (d, s) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(self.stride)) {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the columns `col [C k k, OH OW]` back into the image gradient `dx [C, H, W]`.
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        let p = self.pixels();
        for c in 0..self.c {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = &col[((c * self.kh + i) * self.kw + j) * p..][..p];
                    for oy in 0..self.oh {
                        let Some(iy) = self.source(oy, i, self.h) else { continue };
                        let src = &row[oy * self.ow..(oy + 1) * self.ow];
                        let dst = &mut plane[iy * self.w..(iy + 1) * self.w];
                        // Output columns lo..hi land on input columns ox stride + j - padding.
                        let (lo, hi) = self.inside(j, self.ow, self.w);
                        if lo == hi {
                            continue;
                        }
                        let first = lo * self.stride + j - self.padding;
                        if self.stride == 1 {
                            for (d, v) in dst[first..first + hi - lo].iter_mut().zip(&src[lo..hi]) {
                                *d += v;
                            }
                        } else {
                            for (d, v) in dst[first..].iter_mut().step_by(self.stride).zip(&src[lo..hi]) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Images per chunk of the weight-gradient sum: a fixed split (for a given thread count), so the
/// partial sums are added in the same order on every run.
fn chunk_len(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// The forward pass on contiguous slices: `y [N, O, OH, OW]` of `x [N, C, H, W]` and `w [O, C, kh, kw]`
/// (through oneDNN when it is on, im2col + GEMM otherwise).
pub(crate) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    #[cfg(feature = "onednn")]
    if super::onednn::onednn() {
        return super::onednn::run(Pass::Forward, g.dims(), x, w);
    }
    let (ckk, p) = (g.ckk(), g.pixels());
    let mut y = vec![0f32; g.n * g.o * p];
    let wv = View::new(w, g.o, ckk);
    y.par_chunks_mut(g.o * p).enumerate().for_each_init(
        || vec![0f32; if g.is_pointwise() { 0 } else { ckk * p }],
        |col, (i, y_i)| {
            let x_i = &x[i * g.c * g.h * g.w..(i + 1) * g.c * g.h * g.w];
            let cols: &[f32] = if g.is_pointwise() {
                x_i
            } else {
                g.im2col(x_i, col);
                col
            };
            matmul_into_serial(wv, View::new(cols, ckk, p), y_i, false);
        },
    );
    Ok(y)
}

/// The backward pass on contiguous slices: `(dw, dx)` from `x`, `w` and `dy`, `dx` only when
/// `need_dx`.
pub(crate) fn backward(
    g: &Geometry,
    xv: &[f32],
    wv: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    #[cfg(feature = "onednn")]
    if super::onednn::onednn() {
        if !need_dx {
            return Ok((super::onednn::run(Pass::BackwardWeights, g.dims(), xv, dy)?, None));
        }
        let (dw, dx) = super::onednn::backward(g.dims(), xv, dy, wv)?;
        return Ok((dw, Some(dx)));
    }
    let (ckk, p, image) = (g.ckk(), g.pixels(), g.c * g.h * g.w);
    // dW: each chunk of images sums dy_n col_n^T into its own buffer; the buffers are then
    // added in chunk order.
    let chunk = chunk_len(g.n);
    let partials: Vec<Vec<f32>> = (0..g.n.div_ceil(chunk))
        .into_par_iter()
        .map(|k| {
            let mut dw = vec![0f32; g.o * ckk];
            let mut col = vec![0f32; if g.is_pointwise() { 0 } else { ckk * p }];
            for i in k * chunk..((k + 1) * chunk).min(g.n) {
                let x_i = &xv[i * image..(i + 1) * image];
                let cols: &[f32] = if g.is_pointwise() {
                    x_i
                } else {
                    g.im2col(x_i, &mut col);
                    &col
                };
                let dy_i = View::new(&dy[i * g.o * p..(i + 1) * g.o * p], g.o, p);
                matmul_into_serial(dy_i, View::new(cols, ckk, p).t(), &mut dw, true);
            }
            dw
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![0f32; g.o * ckk]);
    for part in partials {
        for (d, v) in dw.iter_mut().zip(&part) {
            *d += v;
        }
    }
    if !need_dx {
        return Ok((dw, None));
    }
    // dx_n = col2im(W^T dy_n), images in parallel.
    let w_t = View::new(wv, g.o, ckk).t();
    let mut dx = vec![0f32; g.n * image];
    dx.par_chunks_mut(image).enumerate().for_each_init(
        || vec![0f32; ckk * p],
        |dcol, (i, dx_i)| {
            let dy_i = View::new(&dy[i * g.o * p..(i + 1) * g.o * p], g.o, p);
            if g.is_pointwise() {
                matmul_into_serial(w_t, dy_i, dx_i, false);
            } else {
                matmul_into_serial(w_t, dy_i, dcol, false);
                g.col2im(dcol, dx_i);
            }
        },
    );
    Ok((dw, Some(dx)))
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "zoo-conv2d"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let [x, w] = contiguous_slices::<f32, 2>("conv2d", [(xs, xl), (ws, wl)])?;
        let g = Geometry::new(xl.dims(), wl.dims(), self.stride, self.padding);
        Ok((CpuStorage::F32(forward(&g, x, w)?), g.output_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.dims(), w.dims(), self.stride, self.padding);
        with_host_f32([x, w, grad], "conv2d", |[xv, wv, dy]| {
            let (dw, dx) = backward(&g, xv, wv, dy, x.track_op())?;
            let dw = Tensor::from_vec(dw, w.shape(), w.device())?;
            let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
            Ok((dx, Some(dw)))
        })
    }
}
