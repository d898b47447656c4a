//! One direction of an LSTM layer over a padded batch, as a single op with a hand-written
//! backward (on the CPU; elsewhere the model composes candle ops).
//!
//! Inputs: `xw [T, B, 4H]`, the input projection `W_ih x_t + b_ih + b_hh` of every step (a product
//! candle differentiates), and `w_hh [4H, H]`; constant: `mask [T, B]` (1 inside a sentence).
//! Output: `h [T, B, H]`, zero outside a sentence. Per step (PyTorch's gate order i, f, g, o):
//!
//! ```text
//! z = xw_t + h W_hh^T ;  c' = s(f) c + s(i) tanh(g) ;  h' = s(o) tanh(c')
//! c <- m c' + (1 - m) c ;  h <- m h' + (1 - m) h ;  out_t = m h'
//! ```
//!
//! The forward keeps the activations it needs; the backward runs the steps in reverse (BPTT) with
//! two products per step for the gradients of `h` and `W_hh`.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, matmul_into, View};
use super::{contiguous_slices, with_host_f32};

/// See the module docs. `reverse` runs from the last step to the first.
pub fn lstm_direction(xw: &Tensor, w_hh: &Tensor, mask: Vec<f32>, reverse: bool) -> Result<Tensor> {
    let (t, b, g) = xw.dims3()?;
    let (g2, h) = w_hh.dims2()?;
    if g != 4 * h || g2 != g || mask.len() != t * b {
        bail!("lstm_direction: xw {:?}, w_hh {:?} and {} mask values do not fit", xw.dims(), w_hh.dims(), mask.len())
    }
    xw.contiguous()?.apply_op2(&w_hh.contiguous()?, LstmDirection { mask, reverse, cache: Mutex::new(None) })
}

struct Cache {
    /// Per processed step: activated gates `[B, 4H]` (s(i), s(f), tanh(g), s(o)), `c'`, the
    /// previous `c` and the previous `h` (`[B, H]` each).
    gates: Vec<Vec<f32>>,
    c_new: Vec<Vec<f32>>,
    c_prev: Vec<Vec<f32>>,
    h_prev: Vec<Vec<f32>>,
}

struct LstmDirection {
    mask: Vec<f32>,
    reverse: bool,
    cache: Mutex<Option<Cache>>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh(x) = 2 sigmoid(2x) - 1`: one exponential instead of libm's tanh (same f32 accuracy here).
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + (-2.0 * x).exp()) - 1.0
}

impl LstmDirection {
    fn order(&self, t: usize) -> Vec<usize> {
        if self.reverse {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        }
    }
}

impl CustomOp2 for LstmDirection {
    fn name(&self) -> &'static str {
        "lstm-direction"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (t_max, b, g) = xl.shape().dims3()?;
        let h = g / 4;
        let [xw, w] = contiguous_slices::<f32, 2>("lstm_direction", [(xs, xl), (ws, wl)])?;
        let w_t = View::new(w, g, h).t(); // [H, 4H]
        let mut out = vec![0f32; t_max * b * h];
        let (mut hs, mut cs) = (vec![0f32; b * h], vec![0f32; b * h]);
        let mut cache = Cache { gates: vec![], c_new: vec![], c_prev: vec![], h_prev: vec![] };
        for t in self.order(t_max) {
            // z = xw_t + h W_hh^T, [B, 4H]
            let mut z_all = xw[t * b * g..(t + 1) * b * g].to_vec();
            matmul_into(View::new(&hs, b, h), w_t, &mut z_all, true);
            let (c_prev, h_prev) = (cs.clone(), hs.clone());
            let mut act = vec![0f32; b * g];
            let mut c_new = vec![0f32; b * h];
            let mut out_t = vec![0f32; b * h];
            // Rows are independent: one task per row.
            act.par_chunks_mut(g)
                .zip(c_new.par_chunks_mut(h))
                .zip(cs.par_chunks_mut(h))
                .zip(hs.par_chunks_mut(h))
                .zip(out_t.par_chunks_mut(h))
                .enumerate()
                .for_each(|(n, ((((a, c_new), c_state), h_state), out))| {
                    let m = self.mask[t * b + n];
                    let z = &z_all[n * g..(n + 1) * g];
                    for k in 0..h {
                        let (i, f, gg, o) =
                            (sigmoid(z[k]), sigmoid(z[h + k]), tanh(z[2 * h + k]), sigmoid(z[3 * h + k]));
                        (a[k], a[h + k], a[2 * h + k], a[3 * h + k]) = (i, f, gg, o);
                        let c = f * c_state[k] + i * gg;
                        c_new[k] = c;
                        let hn = o * tanh(c);
                        c_state[k] = m * c + (1.0 - m) * c_state[k];
                        h_state[k] = m * hn + (1.0 - m) * h_state[k];
                        out[k] = m * hn;
                    }
                });
            out[t * b * h..(t + 1) * b * h].copy_from_slice(&out_t);
            cache.gates.push(act);
            cache.c_new.push(c_new);
            cache.c_prev.push(c_prev);
            cache.h_prev.push(h_prev);
        }
        *super::lock(&self.cache, "lstm cache")? = Some(cache);
        Ok((CpuStorage::F32(out), Shape::from((t_max, b, h))))
    }

    fn bwd(&self, xw: &Tensor, w_hh: &Tensor, _: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (t_max, b, g) = xw.dims3()?;
        let h = g / 4;
        let guard = super::lock(&self.cache, "lstm cache")?;
        let Some(cache) = guard.as_ref() else { bail!("lstm_direction: backward without a forward") };
        with_host_f32([grad, w_hh], "lstm_direction", |[dout, w]| {
            let w = View::new(w, g, h); // [4H, H]
            let mut dxw = vec![0f32; t_max * b * g];
            // The previous h of every step, in time order, for one product dW_hh = dZ^T H_prev at the end.
            let mut h_prev_all = vec![0f32; t_max * b * h];
            let (mut dh_state, mut dc_state) = (vec![0f32; b * h], vec![0f32; b * h]);
            // Walk the processed steps backwards; `s` indexes the cache in processing order.
            for (s, t) in self.order(t_max).into_iter().enumerate().rev() {
                let (act, c_new, c_prev) = (&cache.gates[s], &cache.c_new[s], &cache.c_prev[s]);
                let mut dz = vec![0f32; b * g];
                let (mut dh_prev, mut dc_prev) = (vec![0f32; b * h], vec![0f32; b * h]);
                dz.par_chunks_mut(g)
                    .zip(dh_prev.par_chunks_mut(h))
                    .zip(dc_prev.par_chunks_mut(h))
                    .enumerate()
                    .for_each(|(n, ((d, dh_p), dc_p))| {
                        let m = self.mask[t * b + n];
                        let a = &act[n * g..(n + 1) * g];
                        for k in 0..h {
                            let j = n * h + k;
                            let (i, f, gg, o) = (a[k], a[h + k], a[2 * h + k], a[3 * h + k]);
                            let tc = tanh(c_new[j]);
                            let dh_new = m * (dout[(t * b + n) * h + k] + dh_state[j]);
                            let dc = m * dc_state[j] + dh_new * o * (1.0 - tc * tc);
                            d[k] = dc * gg * i * (1.0 - i);
                            d[h + k] = dc * c_prev[j] * f * (1.0 - f);
                            d[2 * h + k] = dc * i * (1.0 - gg * gg);
                            d[3 * h + k] = dh_new * tc * o * (1.0 - o);
                            dc_p[k] = dc * f + (1.0 - m) * dc_state[j];
                            dh_p[k] = (1.0 - m) * dh_state[j];
                        }
                    });
                dxw[t * b * g..(t + 1) * b * g].copy_from_slice(&dz);
                // dh_prev += dz W_hh (dW_hh = dZ^T H_prev after the loop)
                matmul_into(View::new(&dz, b, g), w, &mut dh_prev, true);
                h_prev_all[t * b * h..(t + 1) * b * h].copy_from_slice(&cache.h_prev[s]);
                (dh_state, dc_state) = (dh_prev, dc_prev);
            }
            let dw = matmul(View::new(&dxw, t_max * b, g).t(), View::new(&h_prev_all, t_max * b, h));
            let dw = Tensor::from_vec(dw, (g, h), w_hh.device())?;
            Ok((Some(Tensor::from_vec(dxw, (t_max, b, g), xw.device())?), Some(dw)))
        })
    }
}
