//! A chain of convolutions and training-mode BatchNorms (each optionally followed by a ReLU),
//! optionally closed by a residual connection, as one op on the CPU: a residual unit of WRN or
//! ResNet, or a stem, in one node of candle's graph.
//!
//! **Why.** candle 0.11's backward pass accumulates every input gradient into a zero-filled tensor
//! (`zeros_like(x)`, then `zeros + grad`): a serial fill and a parallel add over the whole tensor for
//! every intermediate activation of the network, which PyTorch's autograd does not pay. Inside a
//! chain, the gradients between layers are plain buffers handed from one layer's backward to the
//! next; only the chain's input gets candle's accumulation. A WRN unit makes five such tensors
//! and one more add (its two convolutions, two BatchNorms and the residual add); as one chain it
//! makes one.
//!
//! **What runs.** The layers are the zoo's own kernels on contiguous slices, the same functions the
//! single-layer ops call ([`super::conv`], [`super::batch_norm`]), in the same order, so a chain
//! computes bit for bit what the layers compute one by one, forward and backward (tested in
//! `zoo/tests/chain.rs`). With `residual`, the chain's input is added to the last layer's output
//! and `relu` then clamps the sum (ResNet's `relu(bn2(...) + x)`; WRN adds without a ReLU).
//!
//! **Parameters.** A `CustomOp2` takes two tensors; the chain's parameters (each convolution's
//! kernel, each BatchNorm's weight and bias, in layer order) go in as one flat vector, made by
//! candle's `cat`, whose backward hands each parameter its slice of the chain's parameter gradient.
//! The layers' intermediate outputs are kept by the op for its backward pass, as the single-layer
//! ops keep theirs as graph tensors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{self, BatchStats, Planes};
use super::conv::{self, Geometry};
use super::{contiguous_slices, with_host_f32};

/// One layer of a chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// A convolution without bias: kernel `[out, in, k, k]`.
    Conv {
        /// The kernel's dims.
        kernel: [usize; 4],
        /// Stride in both directions.
        stride: usize,
        /// Zero padding on all four sides.
        padding: usize,
    },
    /// BatchNorm in training mode (batch statistics) over `channels`, then a ReLU with `relu`.
    BatchNorm {
        /// Channels (the weight's and bias's length).
        channels: usize,
        /// The layer's eps.
        eps: f64,
        /// Whether a ReLU follows.
        relu: bool,
    },
}

impl Layer {
    /// The number of parameters the layer takes from the chain's flat vector.
    fn params(&self) -> usize {
        match *self {
            Layer::Conv { kernel, .. } => kernel.iter().product(),
            Layer::BatchNorm { channels, .. } => 2 * channels,
        }
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// How many chains this process has run forward (for tests and profiles: whether a model took
/// the fused path).
pub fn runs() -> u64 {
    RUNS.load(Ordering::Relaxed)
}

/// `layers` applied to `x [N, C, H, W]` (f32, CPU, contiguous after this call) in order, then
/// `+ x` with `residual` and `max(., 0)` with `relu`; `params` is the flat vector of the layers'
/// parameters (see the module docs). Returns the output and each BatchNorm's batch statistics, in
/// layer order, for the caller's running statistics.
pub fn chain(
    x: &Tensor,
    params: &Tensor,
    layers: &[Layer],
    residual: bool,
    relu: bool,
) -> Result<(Tensor, Vec<BatchStats>)> {
    let want: usize = layers.iter().map(Layer::params).sum();
    if params.dims() != [want] {
        bail!("chain: {} layers take {want} parameters, got a tensor of dims {:?}", layers.len(), params.dims())
    }
    let saved = Arc::new(Mutex::new(Saved::default()));
    let op = Chain { layers: layers.to_vec(), residual, relu, saved: saved.clone() };
    let y = x.contiguous()?.apply_op2(&params.contiguous()?, op)?;
    let stats = super::lock(&saved, "chain")?.stats.clone();
    Ok((y, stats))
}

/// What the forward pass keeps for the backward pass.
#[derive(Default)]
struct Saved {
    /// Each layer's output but the last (the next layer's input), with its dims.
    outputs: Vec<(Vec<f32>, [usize; 4])>,
    /// The last layer's output, when the op's output is not it (a residual or a ReLU follows)
    /// and a ReLU's mask needs it.
    last: Option<Vec<f32>>,
    /// Each BatchNorm's batch statistics, in layer order.
    stats: Vec<BatchStats>,
}

struct Chain {
    layers: Vec<Layer>,
    residual: bool,
    relu: bool,
    saved: Arc<Mutex<Saved>>,
}

/// Elements per parallel task of the elementwise passes.
const CHUNK: usize = 1 << 14;

/// `a += b` elementwise, in parallel (the residual connection, forward and backward).
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(a, b)| {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    });
}

fn dims4(d: &[usize]) -> Result<[usize; 4]> {
    d.try_into().map_err(|_| candle_core::Error::Msg(format!("chain: expected [N, C, H, W], got {d:?}")))
}

impl Chain {
    /// Each layer's slice of the flat parameter vector.
    fn split<'a>(&self, params: &'a [f32]) -> Vec<&'a [f32]> {
        let mut rest = params;
        self.layers
            .iter()
            .map(|l| {
                let (mine, tail) = rest.split_at(l.params());
                rest = tail;
                mine
            })
            .collect()
    }

    /// Whether the last layer's output must be kept: a BatchNorm's ReLU masks its backward by it,
    /// and the op's output is another tensor.
    fn keeps_last(&self) -> bool {
        let masked = matches!(self.layers.last(), Some(Layer::BatchNorm { relu: true, .. }));
        masked && (self.residual || self.relu)
    }
}

impl CustomOp2 for Chain {
    fn name(&self) -> &'static str {
        "zoo-chain"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ps: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let [x, params] = contiguous_slices::<f32, 2>("chain", [(xs, xl), (ps, pl)])?;
        let params = self.split(params);
        let mut dims = dims4(xl.dims())?;
        let mut saved = Saved::default();
        let mut cur: Option<Vec<f32>> = None;
        for (i, (layer, p)) in self.layers.iter().zip(&params).enumerate() {
            let input = cur.as_deref().unwrap_or(x);
            let (out, out_dims) = match *layer {
                Layer::Conv { kernel, stride, padding } => {
                    if dims[1] != kernel[1] {
                        bail!("chain: layer {i}, a convolution of kernel {kernel:?}, on an input of dims {dims:?}")
                    }
                    let g = Geometry::new(&dims, &kernel, stride, padding);
                    (conv::forward(&g, input, p)?, dims4(g.output_shape().dims())?)
                }
                Layer::BatchNorm { channels, eps, relu } => {
                    if dims[1] != channels {
                        bail!("chain: layer {i}, a BatchNorm of {channels} channels, on an input of dims {dims:?}")
                    }
                    let (gamma, beta) = p.split_at(channels);
                    let (y, stats) = batch_norm::forward(input, Planes::of(&dims)?, gamma, beta, eps, relu);
                    saved.stats.push(stats);
                    (y, dims)
                }
            };
            if let Some(prev) = cur.take() {
                saved.outputs.push((prev, dims));
            }
            cur = Some(out);
            dims = out_dims;
        }
        let Some(mut y) = cur else { bail!("chain: no layers") };
        if self.keeps_last() {
            saved.last = Some(y.clone());
        }
        if self.residual {
            if dims[..] != *xl.dims() {
                bail!("chain: a residual connection from {:?} to {dims:?}", xl.dims())
            }
            add_into(&mut y, x);
        }
        if self.relu {
            y.par_chunks_mut(CHUNK).for_each(|y| y.iter_mut().for_each(|v| *v = v.max(0.0)));
        }
        *super::lock(&self.saved, "chain")? = saved;
        RUNS.fetch_add(1, Ordering::Relaxed);
        Ok((CpuStorage::F32(y), Shape::from(dims.to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = std::mem::take(&mut *super::lock(&self.saved, "chain")?);
        if saved.outputs.len() + 1 != self.layers.len() {
            bail!("chain: backward without its forward's activations (run once per forward)")
        }
        let x_dims = dims4(x.dims())?;
        with_host_f32([x, params, res, grad], "chain", |[xv, pv, yv, dy]| {
            let params = self.split(pv);
            // The gradient at the last layer's output: through the final ReLU (PyTorch's rule:
            // none where the output is not positive), which the residual input receives too.
            let masked: Option<Vec<f32>> = self.relu.then(|| super::relu::backward(yv, dy));
            let top: &[f32] = masked.as_deref().unwrap_or(dy);
            let mut grads: Vec<Vec<f32>> = vec![vec![]; self.layers.len()];
            let mut stats = saved.stats.len();
            let mut g_out: Option<Vec<f32>> = None;
            for (i, layer) in self.layers.iter().enumerate().rev() {
                let dy_i: &[f32] = g_out.as_deref().unwrap_or(top);
                let (input, in_dims): (&[f32], [usize; 4]) =
                    if i == 0 { (xv, x_dims) } else { (&saved.outputs[i - 1].0, saved.outputs[i - 1].1) };
                let need_dx = i > 0 || x.track_op();
                let dx = match *layer {
                    Layer::Conv { kernel, stride, padding } => {
                        let g = Geometry::new(&in_dims, &kernel, stride, padding);
                        let (dw, dx) = conv::backward(&g, input, params[i], dy_i, need_dx)?;
                        grads[i] = dw;
                        dx
                    }
                    Layer::BatchNorm { channels, eps, relu } => {
                        stats -= 1;
                        let output: &[f32] = if i + 1 < self.layers.len() {
                            &saved.outputs[i].0
                        } else {
                            saved.last.as_deref().unwrap_or(yv)
                        };
                        let p = Planes::of(&in_dims)?;
                        let g = batch_norm::backward(
                            input,
                            output,
                            dy_i,
                            p,
                            &params[i][..channels],
                            &saved.stats[stats],
                            eps,
                            relu,
                        )?;
                        grads[i] = [g.dgamma, g.dbeta].concat();
                        need_dx.then_some(g.dx)
                    }
                };
                g_out = dx;
            }
            let dx = match (g_out, self.residual) {
                (Some(mut dx), true) => {
                    add_into(&mut dx, top);
                    Some(dx)
                }
                (dx, _) => dx,
            };
            let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
            let dp = Tensor::from_vec(grads.concat(), pv.len(), x.device())?;
            Ok((dx, Some(dp)))
        })
    }
}
