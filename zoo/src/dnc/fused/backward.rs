//! The backward pass through time: the steps in reverse, each undoing the forward's stages in
//! reverse order (output, read vectors and weights, precedence, links, memory, write weights,
//! allocation, usage, interface, controller) and carrying the gradients of the recurrent state.

use super::content::{content_backward, Lookup, LookupGrads};
use super::forward::Tape;
use super::{clamp_grad, split_mut, Params, Sizes, State, EPS};
use crate::ops::gemm::{matmul_into_serial as matmul, View};

/// The gradient of `theta` given the gradient of the logits `dy [T, B, O]`.
pub(super) fn backward(sz: &Sizes, p: &Params, states: &[State], tapes: &[Tape], dy: &[f32], b: usize) -> Vec<f32> {
    let (h, n, w, r, o, z, x) = (sz.h, sz.n, sz.w, sz.r, sz.o, sz.z(), sz.x());
    let (g, hr_sz, clip) = (4 * h, sz.hr(), sz.clip);
    let mut dtheta = vec![0f32; sz.params()];
    let [dcw, dcb, diw, dib, dow, dob] = split_mut(sz, &mut dtheta);
    // Gradients of the state after the step being undone; the write weights carry none (they
    // enter the next usage as constants).
    let mut d = State::zeros(sz, b);
    for t in (0..tapes.len()).rev() {
        let (tape, prev, cur) = (&tapes[t], &states[t], &states[t + 1]);
        // Output layer.
        let mut dy_raw = dy[t * b * o..(t + 1) * b * o].to_vec();
        for (g, &v) in dy_raw.iter_mut().zip(&tape.y_raw) {
            *g *= clamp_grad(v, clip);
        }
        matmul(View::new(&dy_raw, b, o).t(), View::new(&tape.hr, b, hr_sz), dow, true);
        for row in dy_raw.chunks(o) {
            for (a, v) in dob.iter_mut().zip(row) {
                *a += v;
            }
        }
        let mut dhr = vec![0f32; b * hr_sz];
        matmul(View::new(&dy_raw, b, o), View::new(p.ow, o, hr_sz), &mut dhr, false);
        let mut dprev = State::zeros(sz, b);
        let mut dact = vec![0f32; b * z];
        for s in 0..b {
            let sn = s * n;
            let (rn, nw) = (s * r * n, s * n * w);
            let a = &tape.act[s * z..(s + 1) * z];
            let (v, e, fg) = (&a[..w], &a[sz.e()..sz.e() + w], &a[sz.free()..sz.free() + r]);
            let (ga, gw, modes) = (a[sz.ga()], a[sz.gw()], &a[sz.modes()..sz.kw()]);
            let da = &mut dact[s * z..(s + 1) * z];
            let mem = &cur.memory[nw..nw + n * w];
            let mem_prev = &prev.memory[nw..nw + n * w];
            let wr = &cur.read_weights[rn..rn + r * n];
            let wr_prev = &prev.read_weights[rn..rn + r * n];
            let ww = &cur.write_weights[sn..sn + n];
            let link = &cur.link[s * n * n..(s + 1) * n * n];
            let link_prev = &prev.link[s * n * n..(s + 1) * n * n];
            let p_prev = &prev.precedence[sn..sn + n];
            // Incoming: the output layer's share plus the next step's.
            for k in 0..h {
                d.h[s * h + k] += dhr[s * hr_sz + k];
            }
            let mut drv = d.read_vectors[s * r * w..(s + 1) * r * w].to_vec();
            for (q, v) in drv.iter_mut().enumerate() {
                *v += dhr[s * hr_sz + h + q];
            }
            let mut dmem = d.memory[nw..nw + n * w].to_vec();
            let mut dwr = d.read_weights[rn..rn + r * n].to_vec();
            // Read vectors r = w^r M.
            for k in 0..r {
                for j in 0..n {
                    let mut acc = 0.0;
                    for q in 0..w {
                        acc += drv[k * w + q] * mem[j * w + q];
                        dmem[j * w + q] += wr[k * n + j] * drv[k * w + q];
                    }
                    dwr[k * n + j] += acc;
                }
            }
            // Read weights: modes, content, forward and backward link weightings.
            let mut dlink = d.link[s * n * n..(s + 1) * n * n].to_vec();
            let dwr_prev = &mut dprev.read_weights[rn..rn + r * n];
            let mut dcr = vec![0f32; r * n];
            for k in 0..r {
                let (mut d0, mut d1, mut d2) = (0.0, 0.0, 0.0);
                for j in 0..n {
                    let gj = dwr[k * n + j];
                    d2 += gj * tape.read_content.weights[rn + k * n + j];
                    d1 += gj * tape.forward_w[rn + k * n + j];
                    d0 += gj * tape.backward_w[rn + k * n + j];
                    dcr[k * n + j] = modes[3 * k + 2] * gj;
                    let (df, db) = (modes[3 * k + 1] * gj, modes[3 * k] * gj);
                    for m in 0..n {
                        // forward[j] = sum_m L[j, m] w[m];  backward[j] = sum_m L[m, j] w[m]
                        dlink[j * n + m] += df * wr_prev[k * n + m];
                        dlink[m * n + j] += db * wr_prev[k * n + m];
                        dwr_prev[k * n + m] += df * link[j * n + m] + db * link[m * n + j];
                    }
                }
                // Softmax over the three modes.
                let dm = [d0, d1, d2];
                let pm = &modes[3 * k..3 * k + 3];
                let inner: f32 = (0..3).map(|c| pm[c] * dm[c]).sum();
                for c in 0..3 {
                    da[sz.modes() + 3 * k + c] = pm[c] * (dm[c] - inner);
                }
            }
            let (dkr, rest) = da[sz.kr()..].split_at_mut(r * w);
            let look = Lookup { n, w, memory: mem, keys: &a[sz.kr()..sz.br()], raw: &a[sz.br()..z] };
            let grads = LookupGrads { memory: &mut dmem, keys: dkr, raw: &mut rest[..r] };
            content_backward(look, &tape.read_content, s, &dcr, grads);
            // Precedence p = p_prev (1 - sum w) + w.
            let dp = &d.precedence[sn..sn + n];
            let mut dww = vec![0f32; n];
            let dtotal: f32 = -(0..n).map(|j| dp[j] * p_prev[j]).sum::<f32>();
            let dp_prev = &mut dprev.precedence[sn..sn + n];
            let total: f32 = ww.iter().sum();
            for j in 0..n {
                dp_prev[j] += dp[j] * (1.0 - total);
                dww[j] += dp[j] + dtotal;
            }
            // Link L[j, m] = (1 - w_j - w_m) L_prev[j, m] + w_j p_prev[m], off the diagonal.
            let dlink_prev = &mut dprev.link[s * n * n..(s + 1) * n * n];
            for j in 0..n {
                for m in 0..n {
                    if j == m {
                        continue;
                    }
                    let gl = dlink[j * n + m];
                    let lp = link_prev[j * n + m];
                    dlink_prev[j * n + m] += gl * (1.0 - (ww[j] + ww[m]));
                    dww[j] += gl * (p_prev[m] - lp);
                    dww[m] -= gl * lp;
                    dp_prev[m] += gl * ww[j];
                }
            }
            // Memory M = M_prev (1 - w e^T) + w v^T.
            let dmem_prev = &mut dprev.memory[nw..nw + n * w];
            for j in 0..n {
                for q in 0..w {
                    let gm = dmem[j * w + q];
                    dmem_prev[j * w + q] += gm * (1.0 - ww[j] * e[q]);
                    dww[j] += gm * (v[q] - mem_prev[j * w + q] * e[q]);
                    da[sz.e() + q] -= gm * mem_prev[j * w + q] * ww[j];
                    da[q] += gm * ww[j];
                }
            }
            // Write weights w = g_w (g_a a + (1 - g_a) c).
            let cw = &tape.write_content.weights[sn..sn + n];
            let alloc = &tape.alloc[sn..sn + n];
            let (mut dgw, mut dga) = (0.0, 0.0);
            let mut dcw = vec![0f32; n];
            let mut dalloc = vec![0f32; n];
            for j in 0..n {
                dgw += dww[j] * (ga * alloc[j] + (1.0 - ga) * cw[j]);
                dga += dww[j] * gw * (alloc[j] - cw[j]);
                dalloc[j] = dww[j] * gw * ga;
                dcw[j] = dww[j] * gw * (1.0 - ga);
            }
            da[sz.gw()] += dgw;
            da[sz.ga()] += dga;
            let (dkw, rest) = da[sz.kw()..].split_at_mut(w);
            let look = Lookup { n, w, memory: mem_prev, keys: &a[sz.kw()..sz.bw()], raw: &a[sz.bw()..sz.kr()] };
            let grads = LookupGrads { memory: dmem_prev, keys: dkw, raw: &mut rest[..1] };
            content_backward(look, &tape.write_content, s, &dcw, grads);
            // Allocation: through the sorted free-ness and its exclusive cumulative product.
            let perm = &tape.perm[sn..sn + n];
            let sorted = &tape.sorted[sn..sn + n];
            let mut du = d.usage[sn..sn + n].to_vec();
            let keep: Vec<f32> = sorted.iter().map(|q| -q + 1.0).collect();
            let mut prefix = 1.0;
            for k in 0..n {
                let ga_k = dalloc[perm[k]];
                let mut dq = ga_k * prefix;
                // d keep_k = sum_{l > k} ga_l q_l prod_{m < l, m != k} keep_m
                let mut partial = prefix;
                let mut dkeep = 0.0;
                for l in k + 1..n {
                    if l - 1 != k {
                        partial *= keep[l - 1];
                    }
                    dkeep += dalloc[perm[l]] * sorted[l] * partial;
                }
                dq -= dkeep;
                du[perm[k]] -= dq * (1.0 - EPS);
                prefix *= keep[k];
            }
            // Usage u = (u_prev + (1 - u_prev) w_prev) prod_k (1 - f_k w^r_prev_k).
            let du_prev = &mut dprev.usage[sn..sn + n];
            for j in 0..n {
                let (kept, psi) = (tape.retained[sn + j], tape.psi[sn + j]);
                du_prev[j] += du[j] * psi * (1.0 - prev.write_weights[sn + j]);
                let dpsi = du[j] * kept;
                for k in 0..r {
                    let mut others = dpsi;
                    for l in 0..r {
                        if l != k {
                            others *= 1.0 - fg[l] * wr_prev[l * n + j];
                        }
                    }
                    da[sz.free() + k] -= others * wr_prev[k * n + j];
                    dwr_prev[k * n + j] -= others * fg[k];
                }
            }
            // Squashed interface parts.
            for q in 0..w {
                da[sz.e() + q] *= e[q] * (1.0 - e[q]);
            }
            for c in sz.free()..sz.modes() {
                da[c] *= a[c] * (1.0 - a[c]);
            }
        }
        // Interface layer.
        matmul(View::new(&dact, b, z).t(), View::new(&cur.h, b, h), diw, true);
        for row in dact.chunks(z) {
            for (acc, v) in dib.iter_mut().zip(row) {
                *acc += v;
            }
        }
        matmul(View::new(&dact, b, z), View::new(p.iw, z, h), &mut d.h, true);
        // Controller.
        let mut dz = vec![0f32; b * g];
        for s in 0..b {
            let gt = &tape.gates[s * g..(s + 1) * g];
            for k in 0..h {
                let idx = s * h + k;
                let (i, j, f, og) = (gt[k], gt[h + k], gt[2 * h + k], gt[3 * h + k]);
                let dh_raw = d.h[idx] * clamp_grad(tape.h_raw[idx], clip);
                let tc = tape.tanh_c[idx];
                let dc_raw = d.c[idx] * clamp_grad(tape.c_raw[idx], clip) + dh_raw * og * (1.0 - tc * tc);
                dz[s * g + k] = dc_raw * j * i * (1.0 - i);
                dz[s * g + h + k] = dc_raw * i * (1.0 - j * j);
                dz[s * g + 2 * h + k] = dc_raw * prev.c[idx] * f * (1.0 - f);
                dz[s * g + 3 * h + k] = dh_raw * tc * og * (1.0 - og);
                dprev.c[idx] = dc_raw * f;
            }
        }
        matmul(View::new(&dz, b, g).t(), View::new(&tape.xin, b, x), dcw, true);
        for row in dz.chunks(g) {
            for (acc, v) in dcb.iter_mut().zip(row) {
                *acc += v;
            }
        }
        let mut dxin = vec![0f32; b * x];
        matmul(View::new(&dz, b, g), View::new(p.cw, g, x), &mut dxin, false);
        for s in 0..b {
            let row = &dxin[s * x..(s + 1) * x];
            dprev.read_vectors[s * r * w..(s + 1) * r * w].copy_from_slice(&row[sz.i..sz.i + r * w]);
            dprev.h[s * h..(s + 1) * h].copy_from_slice(&row[sz.i + r * w..]);
        }
        d = dprev;
    }
    dtheta
}
