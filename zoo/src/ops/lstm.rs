//! Both directions of a bidirectional LSTM layer over a padded batch, as a single op with a
//! hand-written backward (on the CPU; elsewhere the model composes candle ops).
//!
//! Inputs: `xw [T, B, 8H]`, the input projections `W_ih x_t + b_ih + b_hh` of every step, the
//! forward direction's `4H` gates then the backward direction's (one product candle
//! differentiates), and `w_hh [2, 4H, H]`; constant: `mask [T, B]` (1 inside a sentence). Output:
//! `h [T, B, 2H]`, the forward direction's `H` then the backward direction's, zero outside a
//! sentence (PyTorch's bidirectional layout). Per step of one direction (PyTorch's gate order
//! i, f, g, o):
//!
//! ```text
//! z = xw_t + h W_hh^T ;  c' = s(f) c + s(i) tanh(g) ;  h' = s(o) tanh(c')
//! c <- m c' + (1 - m) c ;  h <- m h' + (1 - m) h ;  out_t = m h'
//! ```
//!
//! The forward direction runs from the first step, the backward one from the last. The two are
//! independent, so they run at the same time, each on one thread with its own single-threaded
//! products: per step a `B x H x 4H` product is too small to split well over threads, and two
//! halves of the work need no synchronisation per step. The forward keeps the activations it
//! needs; the backward runs each direction's steps in reverse (BPTT) with one product per step
//! for the gradient of `h` and one for `W_hh` at the end.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::gemm::{matmul_into_serial, View};
use super::{contiguous_slices, with_host_f32};

/// See the module docs: `xw [T, B, 8H]`, `w_hh [2, 4H, H]`, `mask` `T * B` values.
pub fn lstm_bidirectional(xw: &Tensor, w_hh: &Tensor, mask: Vec<f32>) -> Result<Tensor> {
    let (t, b, g2) = xw.dims3()?;
    let (two, g, h) = w_hh.dims3()?;
    if two != 2 || g != 4 * h || g2 != 2 * g || mask.len() != t * b {
        bail!(
            "lstm_bidirectional: xw {:?}, w_hh {:?} and {} mask values do not fit",
            xw.dims(),
            w_hh.dims(),
            mask.len()
        )
    }
    xw.contiguous()?.apply_op2(&w_hh.contiguous()?, Bilstm { mask, cache: Mutex::new(None) })
}

/// What one direction's forward keeps for its backward, per processed step: activated gates
/// `[B, 4H]` (s(i), s(f), tanh(g), s(o)), `c'`, the previous `c` and the previous `h` (`[B, H]`).
#[derive(Default)]
struct Cache {
    gates: Vec<Vec<f32>>,
    c_new: Vec<Vec<f32>>,
    c_prev: Vec<Vec<f32>>,
    h_prev: Vec<Vec<f32>>,
}

struct Bilstm {
    mask: Vec<f32>,
    cache: Mutex<Option<[Cache; 2]>>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh(x) = 2 sigmoid(2x) - 1`: one exponential instead of libm's tanh (same f32 accuracy here).
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + (-2.0 * x).exp()) - 1.0
}

/// One direction of the layer: which one, and the sizes.
#[derive(Clone, Copy)]
struct Direction<'a> {
    /// 0: forward (first step first), 1: backward.
    d: usize,
    t_max: usize,
    b: usize,
    h: usize,
    mask: &'a [f32],
}

impl Direction<'_> {
    /// The steps in processing order.
    fn order(&self) -> Vec<usize> {
        if self.d == 1 {
            (0..self.t_max).rev().collect()
        } else {
            (0..self.t_max).collect()
        }
    }

    /// Row `n` of step `t` of this direction's gates in `xw [T, B, 8H]`.
    fn gates_row<'x>(&self, xw: &'x [f32], t: usize, n: usize) -> &'x [f32] {
        let g = 4 * self.h;
        let start = (t * self.b + n) * 2 * g + self.d * g;
        &xw[start..start + g]
    }

    /// The recurrence over every step: the outputs `[T, B, H]` and what the backward needs.
    fn forward(&self, xw: &[f32], w: &[f32]) -> (Vec<f32>, Cache) {
        let (b, h, g) = (self.b, self.h, 4 * self.h);
        let w_t = View::new(w, g, h).t(); // [H, 4H]
        let mut out = vec![0f32; self.t_max * b * h];
        let (mut hs, mut cs) = (vec![0f32; b * h], vec![0f32; b * h]);
        let mut cache = Cache::default();
        for t in self.order() {
            // z = xw_t + h W_hh^T, [B, 4H]
            let mut z = Vec::with_capacity(b * g);
            (0..b).for_each(|n| z.extend_from_slice(self.gates_row(xw, t, n)));
            matmul_into_serial(View::new(&hs, b, h), w_t, &mut z, true);
            let (c_prev, h_prev) = (cs.clone(), hs.clone());
            let mut act = vec![0f32; b * g];
            let mut c_new = vec![0f32; b * h];
            let out_t = &mut out[t * b * h..(t + 1) * b * h];
            for n in 0..b {
                let m = self.mask[t * b + n];
                let (z, a) = (&z[n * g..(n + 1) * g], &mut act[n * g..(n + 1) * g]);
                let rows = n * h..(n + 1) * h;
                let (c_state, h_state) = (&mut cs[rows.clone()], &mut hs[rows.clone()]);
                let (c_new, out) = (&mut c_new[rows.clone()], &mut out_t[rows]);
                for k in 0..h {
                    let (i, f, gg, o) = (sigmoid(z[k]), sigmoid(z[h + k]), tanh(z[2 * h + k]), sigmoid(z[3 * h + k]));
                    (a[k], a[h + k], a[2 * h + k], a[3 * h + k]) = (i, f, gg, o);
                    let c = f * c_state[k] + i * gg;
                    c_new[k] = c;
                    let hn = o * tanh(c);
                    c_state[k] = m * c + (1.0 - m) * c_state[k];
                    h_state[k] = m * hn + (1.0 - m) * h_state[k];
                    out[k] = m * hn;
                }
            }
            cache.gates.push(act);
            cache.c_new.push(c_new);
            cache.c_prev.push(c_prev);
            cache.h_prev.push(h_prev);
        }
        (out, cache)
    }

    /// BPTT from `dout [T, B, 2H]` (this direction's half of each row): the gradients of this
    /// direction's gates `[T, B, 4H]` and of its `W_hh` `[4H, H]`.
    fn backward(&self, cache: &Cache, dout: &[f32], w: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (t_max, b, h, g) = (self.t_max, self.b, self.h, 4 * self.h);
        let w = View::new(w, g, h); // [4H, H]
        let mut dxw = vec![0f32; t_max * b * g];
        // The previous h of every step, in time order, for one product dW_hh = dZ^T H_prev at the end.
        let mut h_prev_all = vec![0f32; t_max * b * h];
        let (mut dh_state, mut dc_state) = (vec![0f32; b * h], vec![0f32; b * h]);
        // Walk the processed steps backwards; `s` indexes the cache in processing order.
        for (s, t) in self.order().into_iter().enumerate().rev() {
            let (act, c_new, c_prev) = (&cache.gates[s], &cache.c_new[s], &cache.c_prev[s]);
            let dz = &mut dxw[t * b * g..(t + 1) * b * g];
            let (mut dh_prev, mut dc_prev) = (vec![0f32; b * h], vec![0f32; b * h]);
            for n in 0..b {
                let m = self.mask[t * b + n];
                let (a, d) = (&act[n * g..(n + 1) * g], &mut dz[n * g..(n + 1) * g]);
                let dy = &dout[(t * b + n) * 2 * h + self.d * h..][..h];
                for k in 0..h {
                    let j = n * h + k;
                    let (i, f, gg, o) = (a[k], a[h + k], a[2 * h + k], a[3 * h + k]);
                    let tc = tanh(c_new[j]);
                    let dh_new = m * (dy[k] + dh_state[j]);
                    let dc = m * dc_state[j] + dh_new * o * (1.0 - tc * tc);
                    d[k] = dc * gg * i * (1.0 - i);
                    d[h + k] = dc * c_prev[j] * f * (1.0 - f);
                    d[2 * h + k] = dc * i * (1.0 - gg * gg);
                    d[3 * h + k] = dh_new * tc * o * (1.0 - o);
                    dc_prev[j] = dc * f + (1.0 - m) * dc_state[j];
                    dh_prev[j] = (1.0 - m) * dh_state[j];
                }
            }
            // dh_prev += dz W_hh (dW_hh = dZ^T H_prev after the loop)
            matmul_into_serial(View::new(dz, b, g), w, &mut dh_prev, true);
            h_prev_all[t * b * h..(t + 1) * b * h].copy_from_slice(&cache.h_prev[s]);
            (dh_state, dc_state) = (dh_prev, dc_prev);
        }
        let mut dw = vec![0f32; g * h];
        matmul_into_serial(View::new(&dxw, t_max * b, g).t(), View::new(&h_prev_all, t_max * b, h), &mut dw, false);
        (dxw, dw)
    }
}

/// `[T * B, w]` rows of the two directions side by side: `[T * B, 2w]`.
fn interleave(a: &[f32], b: &[f32], w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * a.len());
    for (a, b) in a.chunks_exact(w).zip(b.chunks_exact(w)) {
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }
    out
}

impl CustomOp2 for Bilstm {
    fn name(&self) -> &'static str {
        "lstm-bidirectional"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (t_max, b, _) = xl.shape().dims3()?;
        let (_, g, h) = wl.shape().dims3()?;
        let [xw, w] = contiguous_slices::<f32, 2>("lstm_bidirectional", [(xs, xl), (ws, wl)])?;
        let dir = |d| Direction { d, t_max, b, h, mask: &self.mask };
        let ((out_f, cache_f), (out_b, cache_b)) =
            rayon::join(|| dir(0).forward(xw, &w[..g * h]), || dir(1).forward(xw, &w[g * h..]));
        *super::lock(&self.cache, "lstm cache")? = Some([cache_f, cache_b]);
        Ok((CpuStorage::F32(interleave(&out_f, &out_b, h)), Shape::from((t_max, b, 2 * h))))
    }

    fn bwd(&self, xw: &Tensor, w_hh: &Tensor, _: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (t_max, b, _) = xw.dims3()?;
        let (_, g, h) = w_hh.dims3()?;
        let guard = super::lock(&self.cache, "lstm cache")?;
        let Some([cache_f, cache_b]) = guard.as_ref() else { bail!("lstm_bidirectional: backward without a forward") };
        with_host_f32([grad, w_hh], "lstm_bidirectional", |[dout, w]| {
            let dir = |d| Direction { d, t_max, b, h, mask: &self.mask };
            let ((dxw_f, dw_f), (dxw_b, dw_b)) = rayon::join(
                || dir(0).backward(cache_f, dout, &w[..g * h]),
                || dir(1).backward(cache_b, dout, &w[g * h..]),
            );
            let dxw = Tensor::from_vec(interleave(&dxw_f, &dxw_b, g), xw.shape(), xw.device())?;
            let dw = Tensor::from_vec([dw_f, dw_b].concat(), w_hh.shape(), w_hh.device())?;
            Ok((Some(dxw), Some(dw)))
        })
    }
}
