//! Both directions of a bidirectional LSTM layer over a padded batch, as a single op with a
//! hand-written backward (on the CPU; elsewhere the model composes candle ops).
//!
//! Inputs: `x [T, B, D]`, the word vectors; `w_ih [8H, D + 1]`, both directions' input weights
//! (the forward direction's `4H` rows first), each row followed by its gate's bias
//! `b_ih + b_hh`; and `w_hh [2, 4H, H]`. Constant: `mask [T, B]` (1 inside a sentence). Output:
//! `h [2H, T, B]`, the forward direction's `H` then the backward direction's, zero outside a
//! sentence. Inside, everything is feature-major, a batch row contiguous: the input projections
//! of every step are one product, `xw = W_ih x^T + b`, `[8H, T B]`. Per step of one direction
//! (PyTorch's gate order i, f, g, o):
//!
//! ```text
//! z = xw_t + W_hh h ;  c' = s(f) c + s(i) tanh(g) ;  h' = s(o) tanh(c')
//! c <- m c' + (1 - m) c ;  h <- m h' + (1 - m) h ;  out_t = m h'
//! ```
//!
//! The forward direction runs from the first step, the backward one from the last. The two are
//! independent, so they run at the same time, each on one thread with its own single-threaded
//! products: per step a `4H x H x B` product is too small to split well over threads, and two
//! halves of the work need no synchronisation per step. The forward keeps the activations it
//! needs; the backward runs each direction's steps in reverse (BPTT) with one product per step
//! for the gradient of `h` and one for `W_hh` at the end.
//!
//! Why feature-major: the per-step products then take the weight (`W_hh`, or `W_hh^T` stored once
//! per backward) as an operand the `gemm` crate reads in place, where `h W_hh^T` over `[B, H]`
//! rows made it repack all of `W_hh` (4 MiB at `H = 512`) every step; and every input, output and
//! state of a step is a block of whole batch rows, so nothing is transposed. The element-wise
//! gate loops run over the batch, compiled for AVX-512 (`alig::vectorised`) with an exponential
//! that vectorises. Why the input projection is inside the op: `xw` and its gradient are the
//! largest tensors of the layer (`8H x T B`), and candle would accumulate that gradient into a
//! zeroed buffer, twice (through the projection and through a reshape).

use std::sync::Mutex;

use alig::vectorised;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::gemm::{matmul, matmul_into, matmul_into_serial, View};
use super::{contiguous_slices, with_host_f32};

/// See the module docs: `x [T, B, D]`, `w_ih [8H, D + 1]` (weights and bias), `w_hh [2, 4H, H]`,
/// `mask` `T * B` values.
pub fn lstm_bidirectional(x: &Tensor, w_ih: &Tensor, w_hh: &Tensor, mask: Vec<f32>) -> Result<Tensor> {
    let (t, b, d) = x.dims3()?;
    let (g2, d1) = w_ih.dims2()?;
    let (two, g, h) = w_hh.dims3()?;
    if two != 2 || g != 4 * h || g2 != 2 * g || d1 != d + 1 || mask.len() != t * b {
        bail!(
            "lstm_bidirectional: x {:?}, w_ih {:?}, w_hh {:?} and {} mask values do not fit",
            x.dims(),
            w_ih.dims(),
            w_hh.dims(),
            mask.len()
        )
    }
    let op = Bilstm { mask, cache: Mutex::new(None) };
    x.contiguous()?.apply_op3(&w_ih.contiguous()?, &w_hh.contiguous()?, op)
}

/// What one direction's forward keeps for its backward, feature-major (`[rows][B]`), by time.
struct Cache {
    /// s(i), s(f), tanh(g), s(o) of every step: `[T][4H][B]`.
    gates: Vec<f32>,
    /// `tanh(c')` of every step: `[T][H][B]`.
    tanh_c: Vec<f32>,
    /// The cell states, `T + 1` slots `[H][B]` ([`Direction::prev_slot`]).
    c: Vec<f32>,
    /// The hidden states likewise, laid out `[H][(T + 1) B]` (slot `j` in columns `j B ..`): the
    /// states before the `T` steps are then one `[H, T B]` operand of `dW_hh`'s product.
    h: Vec<f32>,
}

struct Bilstm {
    mask: Vec<f32>,
    cache: Mutex<Option<[Cache; 2]>>,
}

/// `e^x` in f32 within 2 ulp of libm's, in plain arithmetic that the compiler vectorises (libm's `expf`
/// is a scalar call): `2^n e^r` with `n = round(x / ln 2)`, `|r| <= ln 2 / 2` and a degree-7
/// polynomial for `e^r` (Cephes' coefficients). Saturates to `e^-87.3` and `e^88.3`; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 in two parts, the first exact in a few bits, so that x - n ln 2 loses nothing.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n through the exponent bits: n + 127 is an integer in 1..=254 after the clamp, so adding
    // 2^23 leaves it in the low mantissa bits (no float-to-int conversion, which would not
    // vectorise; a NaN gives 0 here and stays NaN through y).
    y * f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 2 sigmoid(2x) - 1`: one exponential.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

/// The transpose of a row-major `rows x cols` matrix, in tiles that stay in L1.
fn transposed(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut t = vec![0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    t[c * rows + r] = a[r * cols + c];
                }
            }
        }
    }
    t
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

/// A `[rows][..]` matrix stored with row stride `rs`, and the column where a step's `B` start.
type Columns<'a, T> = (&'a mut [T], usize, usize);

/// One step's cells in the forward, feature-major: gates `z [4H][B]` in; the state before the
/// step to the one after it (`c`: the two adjacent slots `[H][B]`; `h`: the two adjacent `B`
/// columns of each of its `H` rows, either way round: `forward` says whether the earlier slot is
/// the state before); the activations kept, and the output `m h'`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_cells(
    (h, b, forward): (usize, usize, bool),
    z: &[f32],
    m: &[f32],
    gates: &mut [f32],
    tanh_c: &mut [f32],
    c_slots: &mut [f32],
    (h_rows, rs, at): Columns<f32>,
    (y_rows, y_rs, y_at): Columns<f32>,
) {
    let (m, hb) = (&m[..b], h * b);
    // The activations first, each a loop of one input and one output, which vectorises.
    let (zi, zf, zg, zo) = (&z[..hb], &z[hb..2 * hb], &z[2 * hb..3 * hb], &z[3 * hb..4 * hb]);
    let (gi, rest) = gates.split_at_mut(hb);
    let (gf, rest) = rest.split_at_mut(hb);
    let (gg, go) = rest.split_at_mut(hb);
    gi.iter_mut().zip(zi).for_each(|(a, &z)| *a = sigmoid(z));
    gf.iter_mut().zip(zf).for_each(|(a, &z)| *a = sigmoid(z));
    gg.iter_mut().zip(zg).for_each(|(a, &z)| *a = tanh(z));
    go.iter_mut().zip(zo).for_each(|(a, &z)| *a = sigmoid(z));
    let (lo, hi) = c_slots.split_at_mut(hb);
    let (c_prev, c_next) = if forward { (lo, hi) } else { (hi, lo) };
    for k in 0..h {
        let row = k * b..(k + 1) * b;
        let (i, f, g, o) = (&gi[row.clone()], &gf[row.clone()], &gg[row.clone()], &go[row.clone()]);
        let (tc, cp, cn) = (&mut tanh_c[row.clone()], &c_prev[row.clone()], &mut c_next[row]);
        let (lo, hi) = h_rows[k * rs + at..][..2 * b].split_at_mut(b);
        let (hp, hn) = if forward { (lo, hi) } else { (hi, lo) };
        let y = &mut y_rows[k * y_rs + y_at..][..b];
        for n in 0..b {
            let c = f[n] * cp[n] + i[n] * g[n];
            let t = tanh(c);
            tc[n] = t;
            let h_new = o[n] * t;
            cn[n] = m[n] * c + (1.0 - m[n]) * cp[n];
            hn[n] = m[n] * h_new + (1.0 - m[n]) * hp[n];
            y[n] = m[n] * h_new;
        }
    }
}

/// One step's cells in the backward: from the gradient `dy` of the step's output (`B` columns of
/// `H` rows) and the state gradients `dh`, `dc` `[H][B]` (updated in place to those of the state
/// before the step, `dh` still without its `W_hh^T dz` term), the gate gradients into `B` columns
/// of `dz`'s `4H` rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_cells(
    (h, b): (usize, usize),
    (dy, dy_rs, dy_at): (&[f32], usize, usize),
    m: &[f32],
    gates: &[f32],
    tanh_c: &[f32],
    c_prev: &[f32],
    (dh, dc): (&mut [f32], &mut [f32]),
    (dz, rs, at): Columns<f32>,
) {
    let m = &m[..b];
    let (dzi, rest) = dz.split_at_mut(h * rs);
    let (dzf, rest) = rest.split_at_mut(h * rs);
    let (dzg, dzo) = rest.split_at_mut(h * rs);
    for k in 0..h {
        let row = k * b..(k + 1) * b;
        let (ai, af) = (&gates[row.clone()], &gates[h * b + k * b..][..b]);
        let (ag, ao) = (&gates[2 * h * b + k * b..][..b], &gates[3 * h * b + k * b..][..b]);
        let (tc, cp, dy) = (&tanh_c[row.clone()], &c_prev[row.clone()], &dy[k * dy_rs + dy_at..][..b]);
        let (dh, dc) = (&mut dh[row.clone()], &mut dc[row]);
        let (di, df) = (&mut dzi[k * rs + at..][..b], &mut dzf[k * rs + at..][..b]);
        let (dg, d_o) = (&mut dzg[k * rs + at..][..b], &mut dzo[k * rs + at..][..b]);
        for n in 0..b {
            let (i, f, g, o, t) = (ai[n], af[n], ag[n], ao[n], tc[n]);
            let dh_new = m[n] * (dy[n] + dh[n]);
            let dc_new = m[n] * dc[n] + dh_new * o * (1.0 - t * t);
            di[n] = dc_new * g * i * (1.0 - i);
            df[n] = dc_new * cp[n] * f * (1.0 - f);
            dg[n] = dc_new * i * (1.0 - g * g);
            d_o[n] = dh_new * t * o * (1.0 - o);
            dc[n] = dc_new * f + (1.0 - m[n]) * dc[n];
            dh[n] *= 1.0 - m[n];
        }
    }
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

    /// The state slot before step `t` (the one after it is its neighbour): `t` in the forward
    /// direction, whose step `t` writes slot `t + 1`; `t + 1` in the backward one, whose step `t`
    /// writes slot `t`. The states before the `T` steps are then slots `d ..= T - 1 + d` in time
    /// order, and the one before the first processed step (zero) is the slot never written.
    fn prev_slot(&self, t: usize) -> usize {
        t + self.d
    }

    /// The recurrence over every step, the outputs into `out` (`[H, T B]`), and what the backward
    /// needs. Per step `z = xw_t + W_hh h`, `[4H, B]`.
    fn forward(&self, xw: &[f32], w: &[f32], out: &mut [f32]) -> Cache {
        let (t_max, b, h, g) = (self.t_max, self.b, self.h, 4 * self.h);
        let (tb, rs, hb) = (t_max * b, (t_max + 1) * b, h * b);
        let mut cache = Cache {
            gates: vec![0f32; t_max * g * b],
            tanh_c: vec![0f32; t_max * hb],
            c: vec![0f32; (t_max + 1) * hb],
            h: vec![0f32; h * rs],
        };
        let mut z = vec![0f32; g * b];
        for t in self.order() {
            for (r, z) in z.chunks_exact_mut(b).enumerate() {
                z.copy_from_slice(&xw[(self.d * g + r) * tb + t * b..][..b]);
            }
            let prev = self.prev_slot(t);
            matmul_into_serial(View::new(w, g, h), View::strided(&cache.h[prev * b..], h, b, rs), &mut z, true);
            let gates = &mut cache.gates[t * g * b..(t + 1) * g * b];
            let tanh_c = &mut cache.tanh_c[t * hb..(t + 1) * hb];
            let c_slots = &mut cache.c[t * hb..(t + 2) * hb];
            let (hs, y) = ((&mut cache.h[..], rs, t * b), (&mut *out, tb, t * b));
            let m = &self.mask[t * b..(t + 1) * b];
            let sizes = (h, b, self.d == 0);
            vectorised(
                #[inline(always)]
                || forward_cells(sizes, &z, m, gates, tanh_c, c_slots, hs, y),
            );
        }
        cache
    }

    /// BPTT from `dout` (`[H, T B]`, this direction's half): the gradients of this direction's
    /// gates into `dz` (`[4H, T B]`), and of its `W_hh` (`[4H, H]`, one product over every step at
    /// the end).
    fn backward(&self, cache: &Cache, dout: &[f32], w: &[f32], dz: &mut [f32]) -> Vec<f32> {
        let (t_max, b, h, g) = (self.t_max, self.b, self.h, 4 * self.h);
        let (tb, rs, hb) = (t_max * b, (t_max + 1) * b, h * b);
        // dh += W_hh^T dz per step, with W_hh^T [H, 4H] stored so that it is read in place.
        let w_t = transposed(w, g, h);
        let (mut dh, mut dc) = (vec![0f32; hb], vec![0f32; hb]);
        for t in self.order().into_iter().rev() {
            let prev = self.prev_slot(t);
            let (m, c_prev) = (&self.mask[t * b..(t + 1) * b], &cache.c[prev * hb..(prev + 1) * hb]);
            let gates = &cache.gates[t * g * b..(t + 1) * g * b];
            let tanh_c = &cache.tanh_c[t * hb..(t + 1) * hb];
            let (state, dzs) = ((&mut dh[..], &mut dc[..]), (&mut *dz, tb, t * b));
            vectorised(
                #[inline(always)]
                || backward_cells((h, b), (dout, tb, t * b), m, gates, tanh_c, c_prev, state, dzs),
            );
            matmul_into_serial(View::new(&w_t, h, g), View::strided(&dz[t * b..], g, b, tb), &mut dh, true);
        }
        // dW_hh = dZ H_prev^T: [4H, T B] x [T B, H], the states before the steps in time order.
        let mut dw = vec![0f32; g * h];
        matmul_into_serial(View::new(dz, g, tb), View::strided(&cache.h[self.d * b..], h, tb, rs).t(), &mut dw, false);
        dw
    }
}

impl CustomOp3 for Bilstm {
    fn name(&self) -> &'static str {
        "lstm-bidirectional"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        is: &CpuStorage,
        il: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (t_max, b, d) = xl.shape().dims3()?;
        let (_, g, h) = wl.shape().dims3()?;
        let [x, w_ih, w] = contiguous_slices::<f32, 3>("lstm_bidirectional", [(xs, xl), (is, il), (ws, wl)])?;
        let tb = t_max * b;
        // xw = W_ih x^T + b, [8H, T B]: the bias in every row, then the product.
        let mut xw = vec![0f32; 2 * g * tb];
        xw.chunks_exact_mut(tb).enumerate().for_each(|(r, row)| row.fill(w_ih[r * (d + 1) + d]));
        matmul_into(View::strided(w_ih, 2 * g, d, d + 1), View::new(x, tb, d).t(), &mut xw, true);
        let dir = |d| Direction { d, t_max, b, h, mask: &self.mask };
        let mut out = vec![0f32; 2 * h * tb];
        let (out_f, out_b) = out.split_at_mut(h * tb);
        let (cache_f, cache_b) =
            rayon::join(|| dir(0).forward(&xw, &w[..g * h], out_f), || dir(1).forward(&xw, &w[g * h..], out_b));
        *super::lock(&self.cache, "lstm cache")? = Some([cache_f, cache_b]);
        Ok((CpuStorage::F32(out), Shape::from((2 * h, t_max, b))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_ih: &Tensor,
        w_hh: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (t_max, b, d) = x.dims3()?;
        let (_, g, h) = w_hh.dims3()?;
        let guard = super::lock(&self.cache, "lstm cache")?;
        let Some([cache_f, cache_b]) = guard.as_ref() else { bail!("lstm_bidirectional: backward without a forward") };
        with_host_f32([grad, w_hh, x, w_ih], "lstm_bidirectional", |[dout, w, xv, wi]| {
            let dir = |d| Direction { d, t_max, b, h, mask: &self.mask };
            let tb = t_max * b;
            // The gradient of xw, [8H, T B], each direction's half straight from its BPTT.
            let mut dxw = vec![0f32; 2 * g * tb];
            let (dz_f, dz_b) = dxw.split_at_mut(g * tb);
            let (dw_f, dw_b) = rayon::join(
                || dir(0).backward(cache_f, &dout[..h * tb], &w[..g * h], dz_f),
                || dir(1).backward(cache_b, &dout[h * tb..], &w[g * h..], dz_b),
            );
            let dw_hh = Tensor::from_vec([dw_f, dw_b].concat(), w_hh.shape(), w_hh.device())?;
            // d[W_ih | b] = dxw [x | 1]: the product, and each row's sum as the last column.
            let dxw_v = View::new(&dxw, 2 * g, tb);
            let dw = matmul(dxw_v, View::new(xv, tb, d));
            let mut dw_ih = Vec::with_capacity(2 * g * (d + 1));
            for (w_row, dz_row) in dw.chunks_exact(d).zip(dxw.chunks_exact(tb)) {
                dw_ih.extend_from_slice(w_row);
                dw_ih.push(dz_row.iter().sum());
            }
            let dw_ih = Tensor::from_vec(dw_ih, w_ih.shape(), w_ih.device())?;
            // The word vectors' gradient only when something upstream needs it (GloVe is frozen).
            let dx = if x.track_op() {
                let dx = matmul(dxw_v.t(), View::strided(wi, 2 * g, d, d + 1));
                Some(Tensor::from_vec(dx, x.shape(), x.device())?)
            } else {
                None
            };
            Ok((dx, Some(dw_ih), Some(dw_hh)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_and_saturates() {
        let mut worst = 0f32;
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3;
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max((ours - libm).abs() / libm);
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(1e4).is_finite() && exp(1e4) > 1e38);
        assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
        assert!(sigmoid(-1e4) < 1e-37);
        assert_eq!((sigmoid(1e4), tanh(-1e4), tanh(1e4)), (1.0, -1.0, 1.0));
    }

    #[test]
    fn transposed_across_tile_edges() {
        // 37 x 19: neither side a multiple of the tile.
        let (rows, cols) = (37, 19);
        let a: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let t = transposed(&a, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], a[r * cols + c], "({r}, {c})");
            }
        }
    }
}
