//! BatchNorm in training mode as one op on the CPU: batch statistics, normalisation, scale and
//! shift in three passes over the input, and a hand-written backward in two. candle-nn's
//! training BatchNorm is about ten tensor ops (transposes, reductions, broadcasts), each keeping its
//! output alive for the backward pass.
//!
//! Per channel `c`, over the `M = N H W` values of the batch (PyTorch's definition):
//!
//! ```text
//! mean = sum x / M ;  var = sum (x - mean)^2 / M ;  xhat = (x - mean) / sqrt(var + eps)
//! y = gamma xhat + beta
//! dbeta = sum dy ;  dgamma = sum dy xhat ;  dx = gamma / sqrt(var + eps) (dy - dbeta / M - xhat dgamma / M)
//! ```
//!
//! Sums are accumulated in f64, in eight lanes per block of `H W` values (so that they vectorise),
//! and the loops over the values are compiled for AVX-512 / AVX2 too, chosen at run time
//! ([`alig::vectorised`]; the kernels below are `inline(always)` so that they compile into it).
//! The batch mean and biased variance are handed back to the caller for the running statistics,
//! and kept for the backward pass.
//!
//! With `relu`, the op is `max(y, 0)`: the forward clamps as it writes, and the backward reads
//! `dy` only where the output is positive (PyTorch's ReLU rule), so a BatchNorm followed by a ReLU
//! is one op and one activation instead of two.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use alig::vectorised;

use super::{contiguous_slices, with_host_f32};

/// The batch statistics of one call: per channel mean and biased variance, and the count they are
/// over.
#[derive(Clone, Debug, Default)]
pub struct BatchStats {
    /// Per channel mean.
    pub mean: Vec<f64>,
    /// Per channel biased variance (divided by the count, not the count minus one).
    pub var: Vec<f64>,
    /// Values per channel: `N H W`.
    pub count: usize,
}

/// `y = batch_norm(x)` in training mode for `x [N, C, H, W]` (f32, CPU), followed by a ReLU when
/// `relu`, with the batch statistics. Callers check the device and dtype first (see `crate::bn`).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let (_, c, _, _) = x.dims4()?;
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!("batch_norm: input {:?} with weight {:?} and bias {:?}", x.dims(), gamma.dims(), beta.dims())
    }
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = BatchNormTrain { eps, relu, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = super::lock(&stats, "batch_norm stats")?.clone();
    Ok((y, stats))
}

struct BatchNormTrain {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<BatchStats>>,
}

/// The `N` blocks of `HW` values of channel `c`.
fn blocks<'a>(v: &'a [f32], c: usize, channels: usize, hw: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
    v.chunks_exact(channels * hw).map(move |image| &image[c * hw..(c + 1) * hw])
}

/// Independent partial sums per block: a sum over one accumulator is a chain of dependent adds
/// (one per 4 cycles); eight of them vectorise.
const LANES: usize = 8;

/// `sum f(a[i], b[i], ...)` over equal-length slices, each term a pair of f64 (two sums at once),
/// accumulated in [`LANES`] f64 lanes and then added in lane order: deterministic, and as accurate
/// as one f64 accumulator (the terms are f32 products).
#[inline(always)]
fn lane_sums<const N: usize>(v: [&[f32]; N], f: impl Fn([f32; N]) -> (f64, f64)) -> (f64, f64) {
    let len = v[0].len();
    let (mut a, mut b) = ([0f64; LANES], [0f64; LANES]);
    let full = len - len % LANES;
    for start in (0..full).step_by(LANES) {
        // One bounds check per slice and block; the lanes below index fixed-size arrays.
        let block: [&[f32; LANES]; N] = v.map(|s| s[start..start + LANES].try_into().expect("LANES values"));
        for l in 0..LANES {
            let (p, q) = f(block.map(|s| s[l]));
            a[l] += p;
            b[l] += q;
        }
    }
    let (mut sa, mut sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    for i in full..len {
        let (p, q) = f(v.map(|s| s[i]));
        sa += p;
        sb += q;
    }
    (sa, sb)
}

/// Mean and biased variance of channel `c` (two passes, f64 sums).
#[inline(always)]
fn moments(x: &[f32], c: usize, channels: usize, hw: usize) -> (f64, f64) {
    let m = (x.len() / channels) as f64;
    let mean = blocks(x, c, channels, hw).map(|b| lane_sums([b], |[v]| (v as f64, 0.0)).0).sum::<f64>() / m;
    let var = blocks(x, c, channels, hw).map(|b| lane_sums([b], |[v]| ((v as f64 - mean).powi(2), 0.0)).0).sum::<f64>();
    (mean, var / m)
}

/// `y = a x + b` over one block, clamped at 0 with `relu`.
#[inline(always)]
fn affine(y: &mut [MaybeUninit<f32>], x: &[f32], a: f32, b: f32, relu: bool) {
    if relu {
        y.iter_mut().zip(x).for_each(|(y, x)| _ = y.write((a * x + b).max(0.0)));
    } else {
        y.iter_mut().zip(x).for_each(|(y, x)| _ = y.write(a * x + b));
    }
}

/// The gradient reaching the BatchNorm: `d`, or with the ReLU `d` where the output `y` is positive.
#[inline(always)]
fn through(d: f32, y: f32, relu: bool) -> f32 {
    if !relu || y > 0.0 {
        d
    } else {
        0.0
    }
}

/// `(sum dy, sum dy (x - mean))` of channel `c`, in f64.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the channel's three planes and where it lies in them
fn grad_sums(x: &[f32], dy: &[f32], y: &[f32], c: usize, ch: usize, hw: usize, mean: f64, relu: bool) -> (f64, f64) {
    let (mut db, mut dg) = (0f64, 0f64);
    for ((xb, db_), yb) in blocks(x, c, ch, hw).zip(blocks(dy, c, ch, hw)).zip(blocks(y, c, ch, hw)) {
        let (b, g) = lane_sums([xb, db_, yb], |[x, d, y]| {
            let d = through(d, y, relu) as f64;
            (d, d * (x as f64 - mean))
        });
        db += b;
        dg += g;
    }
    (db, dg)
}

/// `dx = scale (dy - db_m - xhat dg_m)` over one block, `xhat = (x - mean) inv`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one block of three tensors and the channel's four constants
fn input_grad(
    dx: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    y: &[f32],
    [mean, inv, db_m, dg_m]: [f32; 4],
    scale: f32,
    relu: bool,
) {
    for (((dx, &x), &d), &y) in dx.iter_mut().zip(x).zip(dy).zip(y) {
        let xhat = (x - mean) * inv;
        dx.write(scale * (through(d, y, relu) - db_m - xhat * dg_m));
    }
}

/// The shapes the kernels read: images, channels, values per channel and image (`H W`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl Planes {
    /// The planes of an `[N, C, H, W]` tensor.
    pub(crate) fn of(dims: &[usize]) -> Result<Self> {
        match *dims {
            [n, c, h, w] => Ok(Self { n, c, hw: h * w }),
            _ => bail!("batch_norm: expected [N, C, H, W], got {dims:?}"),
        }
    }

    fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
}

/// The forward pass on contiguous slices: `y` (clamped at 0 with `relu`) and the batch statistics.
pub(crate) fn forward(
    x: &[f32],
    p: Planes,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, BatchStats) {
    let (ch, hw) = (p.c, p.hw);
    let stats: Vec<(f64, f64)> = (0..ch)
        .into_par_iter()
        .map(|c| {
            vectorised(
                #[inline(always)]
                || moments(x, c, ch, hw),
            )
        })
        .collect();
    // Per channel y = a x + b.
    let coef: Vec<(f32, f32)> = stats
        .iter()
        .enumerate()
        .map(|(c, &(mean, var))| {
            let a = gamma[c] as f64 / (var + eps).sqrt();
            (a as f32, (beta[c] as f64 - a * mean) as f32)
        })
        .collect();
    // SAFETY: `affine` writes each value of its block (as long as the block of x).
    let y = unsafe {
        super::par_filled(x.len(), hw, |k, y| {
            let (a, b) = coef[k % ch];
            let x = &x[k * hw..][..y.len()];
            vectorised(
                #[inline(always)]
                || affine(y, x, a, b, relu),
            )
        })
    };
    let stats = BatchStats {
        mean: stats.iter().map(|s| s.0).collect(),
        var: stats.iter().map(|s| s.1).collect(),
        count: p.n * p.hw,
    };
    (y, stats)
}

/// The gradients of one BatchNorm (+ ReLU) on contiguous slices.
pub(crate) struct Grads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
}

/// The backward pass on contiguous slices, from the forward's input `x`, output `y` and batch
/// statistics.
#[allow(clippy::too_many_arguments)] // the forward's three tensors, its statistics and settings
pub(crate) fn backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    p: Planes,
    gamma: &[f32],
    stats: &BatchStats,
    eps: f64,
    relu: bool,
) -> Result<Grads> {
    let (ch, hw) = (p.c, p.hw);
    if stats.mean.len() != ch || [x.len(), y.len(), dy.len()] != [p.len(); 3] || gamma.len() != ch {
        bail!("batch_norm: backward of {p:?} without its forward's statistics or tensors")
    }
    let m = (x.len() / ch) as f64;
    // Per channel: mean, inverse std, dbeta, dgamma.
    let sums: Vec<(f64, f64, f64, f64)> = (0..ch)
        .into_par_iter()
        .map(|c| {
            let (mean, var) = (stats.mean[c], stats.var[c]);
            let inv = 1.0 / (var + eps).sqrt();
            let (db, dg) = vectorised(
                #[inline(always)]
                || grad_sums(x, dy, y, c, ch, hw, mean, relu),
            );
            (mean, inv, db, dg * inv)
        })
        .collect();
    // SAFETY: `input_grad` writes each value of its block (as long as the blocks it reads).
    let dx = unsafe {
        super::par_filled(x.len(), hw, |k, dx| {
            let c = k % ch;
            let (mean, inv, db, dg) = sums[c];
            let scale = gamma[c] as f64 * inv;
            let constants = [mean as f32, inv as f32, (db / m) as f32, (dg / m) as f32];
            let range = k * hw..k * hw + dx.len();
            let (x, dy, y) = (&x[range.clone()], &dy[range.clone()], &y[range]);
            vectorised(
                #[inline(always)]
                || input_grad(dx, x, dy, y, constants, scale as f32, relu),
            )
        })
    };
    Ok(Grads {
        dx,
        dgamma: sums.iter().map(|s| s.3 as f32).collect(),
        dbeta: sums.iter().map(|s| s.2 as f32).collect(),
    })
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "zoo-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, gamma, beta] = contiguous_slices::<f32, 3>("batch_norm", [(xs, xl), (gs, gl), (bs, bl)])?;
        let (y, stats) = forward(x, Planes::of(xl.dims())?, gamma, beta, self.eps, self.relu);
        *super::lock(&self.stats, "batch_norm stats")? = stats;
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let p = Planes::of(x.dims())?;
        with_host_f32([x, gamma, grad, res], "batch_norm", |[xv, gv, dy, yv]| {
            // The forward's batch statistics (the same x, so the same values recomputing them
            // would give, without two more passes over it).
            let stats = super::lock(&self.stats, "batch_norm stats")?.clone();
            let g = backward(xv, yv, dy, p, gv, &stats, self.eps, self.relu)?;
            let dev = x.device();
            Ok((
                Some(Tensor::from_vec(g.dx, x.shape(), dev)?),
                Some(Tensor::from_vec(g.dgamma, p.c, dev)?),
                Some(Tensor::from_vec(g.dbeta, p.c, dev)?),
            ))
        })
    }
}
