//! The forward pass through time: controller, interface, usage and allocation, write weights,
//! memory, temporal links, read weights and read vectors, output; every intermediate the
//! backward needs is kept on a [`Tape`] per step.

use super::content::{content, Content, Lookup};
use super::{sigmoid, Params, Sizes, State, EPS};
use crate::ops::gemm::{matmul_into_serial as matmul, View};

/// What one time step keeps for the backward.
pub(super) struct Tape {
    pub(super) xin: Vec<f32>,   // [B, X]
    pub(super) gates: Vec<f32>, // [B, 4H]: s(i), tanh(j), s(f + 1), s(o)
    pub(super) c_raw: Vec<f32>,
    pub(super) tanh_c: Vec<f32>,
    pub(super) h_raw: Vec<f32>,
    pub(super) act: Vec<f32>, // [B, Z]: interface, gates squashed, modes softmaxed, keys and strengths raw
    pub(super) retained: Vec<f32>, // [B, N]: u_{t-1} + (1 - u_{t-1}) w^w_{t-1}
    pub(super) psi: Vec<f32>, // [B, N]: prod_k (1 - f_k w^r_{t-1, k})
    pub(super) perm: Vec<usize>, // [B, N]: free-ness sorted in descending order
    pub(super) sorted: Vec<f32>, // [B, N]: q at perm
    pub(super) alloc: Vec<f32>,
    pub(super) write_content: Content,
    pub(super) read_content: Content,
    pub(super) forward_w: Vec<f32>, // [B, R, N]
    pub(super) backward_w: Vec<f32>,
    pub(super) hr: Vec<f32>, // [B, H + RW]
    pub(super) y_raw: Vec<f32>,
}

/// The logits `[T, B, O]` of `obs [T, B, I]` from the zero state, with every state and tape.
pub(super) fn forward(
    sz: &Sizes,
    p: &Params,
    obs: &[f32],
    t_max: usize,
    b: usize,
) -> (Vec<f32>, Vec<State>, Vec<Tape>) {
    let (i_sz, h, n, w, r, o, z, x) = (sz.i, sz.h, sz.n, sz.w, sz.r, sz.o, sz.z(), sz.x());
    let g = 4 * h;
    let clip = sz.clip;
    let mut logits = vec![0f32; t_max * b * o];
    let mut states = vec![State::zeros(sz, b)];
    let mut tapes = Vec::with_capacity(t_max);
    for t in 0..t_max {
        let prev = states.last().expect("the zero state is first");
        let mut next = State::zeros(sz, b);
        // Controller: Sonnet LSTM on [x; r_{t-1}; h_{t-1}].
        let mut xin = vec![0f32; b * x];
        for s in 0..b {
            let row = &mut xin[s * x..(s + 1) * x];
            row[..i_sz].copy_from_slice(&obs[(t * b + s) * i_sz..(t * b + s + 1) * i_sz]);
            row[i_sz..i_sz + r * w].copy_from_slice(&prev.read_vectors[s * r * w..(s + 1) * r * w]);
            row[i_sz + r * w..].copy_from_slice(&prev.h[s * h..(s + 1) * h]);
        }
        let mut gates = p.cb.repeat(b);
        matmul(View::new(&xin, b, x), View::new(p.cw, g, x).t(), &mut gates, true);
        let (mut c_raw, mut tanh_c, mut h_raw) = (vec![0f32; b * h], vec![0f32; b * h], vec![0f32; b * h]);
        for s in 0..b {
            let zr = &mut gates[s * g..(s + 1) * g];
            for k in 0..h {
                let (i, j, f, og) =
                    (sigmoid(zr[k]), zr[h + k].tanh(), sigmoid(zr[2 * h + k] + 1.0), sigmoid(zr[3 * h + k]));
                (zr[k], zr[h + k], zr[2 * h + k], zr[3 * h + k]) = (i, j, f, og);
                let c = f * prev.c[s * h + k] + i * j;
                let tc = c.tanh();
                let hv = tc * og;
                c_raw[s * h + k] = c;
                tanh_c[s * h + k] = tc;
                h_raw[s * h + k] = hv;
                next.c[s * h + k] = c.clamp(-clip, clip);
                next.h[s * h + k] = hv.clamp(-clip, clip);
            }
        }
        // Interface.
        let mut act = p.ib.repeat(b);
        matmul(View::new(&next.h, b, h), View::new(p.iw, z, h).t(), &mut act, true);
        for s in 0..b {
            let a = &mut act[s * z..(s + 1) * z];
            for v in &mut a[sz.e()..sz.e() + w] {
                *v = sigmoid(*v);
            }
            for v in &mut a[sz.free()..sz.modes()] {
                *v = sigmoid(*v); // free gates, allocation gate, write gate
            }
            for m in a[sz.modes()..sz.kw()].chunks_mut(3) {
                let max = m.iter().fold(f32::NEG_INFINITY, |acc, &v| acc.max(v));
                let mut total = 0.0;
                for v in m.iter_mut() {
                    *v = (*v - max).exp();
                    total += *v;
                }
                for v in m.iter_mut() {
                    *v /= total;
                }
            }
        }
        let mut tape = Tape {
            xin,
            gates,
            c_raw,
            tanh_c,
            h_raw,
            act,
            retained: vec![0.0; b * n],
            psi: vec![0.0; b * n],
            perm: vec![0; b * n],
            sorted: vec![0.0; b * n],
            alloc: vec![0.0; b * n],
            write_content: Content::new(b, 1, n),
            read_content: Content::new(b, r, n),
            forward_w: vec![0.0; b * r * n],
            backward_w: vec![0.0; b * r * n],
            hr: vec![0.0; b * sz.hr()],
            y_raw: vec![0.0; b * o],
        };
        for s in 0..b {
            let a = &tape.act[s * z..(s + 1) * z];
            let (v, e, fg) = (&a[..w], &a[sz.e()..sz.e() + w], &a[sz.free()..sz.free() + r]);
            let (ga, gw, modes) = (a[sz.ga()], a[sz.gw()], &a[sz.modes()..sz.kw()]);
            let sn = s * n;
            let wr_prev = &prev.read_weights[s * r * n..(s + 1) * r * n];
            // Usage, the previous write weights held constant.
            for j in 0..n {
                let u = prev.usage[sn + j];
                let kept = u + (1.0 - u) * prev.write_weights[sn + j];
                let mut psi = 1.0;
                for k in 0..r {
                    psi *= 1.0 - fg[k] * wr_prev[k * n + j];
                }
                tape.retained[sn + j] = kept;
                tape.psi[sn + j] = psi;
                next.usage[sn + j] = kept * psi;
            }
            // Allocation: free-ness sorted in descending order (ties: lower slot), exclusive cumprod.
            let q: Vec<f32> = next.usage[sn..sn + n].iter().map(|u| -(u * (1.0 - EPS) + EPS) + 1.0).collect();
            let perm = &mut tape.perm[sn..sn + n];
            for (k, p) in perm.iter_mut().enumerate() {
                *p = k;
            }
            perm.sort_by(|&i, &j| q[j].total_cmp(&q[i]).then(i.cmp(&j)));
            let mut prod = 1.0;
            for k in 0..n {
                let qs = q[perm[k]];
                tape.sorted[sn + k] = qs;
                tape.alloc[sn + perm[k]] = qs * prod;
                prod *= -qs + 1.0;
            }
            // Write weights, from the previous memory.
            let mem_prev = &prev.memory[s * n * w..(s + 1) * n * w];
            let look = Lookup { n, w, memory: mem_prev, keys: &a[sz.kw()..sz.bw()], raw: &a[sz.bw()..sz.kr()] };
            content(look, &mut tape.write_content, s);
            let cw = &tape.write_content.weights[sn..sn + n];
            let ww = &mut next.write_weights[sn..sn + n];
            for j in 0..n {
                ww[j] = gw * (ga * tape.alloc[sn + j] + (-ga + 1.0) * cw[j]);
            }
            // Memory: erase, then add.
            let mem = &mut next.memory[s * n * w..(s + 1) * n * w];
            for j in 0..n {
                for q in 0..w {
                    mem[j * w + q] = mem_prev[j * w + q] * (1.0 - ww[j] * e[q]) + ww[j] * v[q];
                }
            }
            // Temporal link and precedence.
            let link_prev = &prev.link[s * n * n..(s + 1) * n * n];
            let p_prev = &prev.precedence[sn..sn + n];
            let link = &mut next.link[s * n * n..(s + 1) * n * n];
            for j in 0..n {
                for m in 0..n {
                    link[j * n + m] =
                        if j == m { 0.0 } else { (1.0 - (ww[j] + ww[m])) * link_prev[j * n + m] + ww[j] * p_prev[m] };
                }
            }
            let total: f32 = ww.iter().sum();
            for j in 0..n {
                next.precedence[sn + j] = p_prev[j] * (1.0 - total) + ww[j];
            }
            // Read weights from the new memory, then the read vectors.
            let look = Lookup { n, w, memory: mem, keys: &a[sz.kr()..sz.br()], raw: &a[sz.br()..z] };
            content(look, &mut tape.read_content, s);
            let rn = s * r * n;
            for k in 0..r {
                for j in 0..n {
                    let (mut fwd, mut bwd) = (0.0, 0.0);
                    for m in 0..n {
                        fwd += link[j * n + m] * wr_prev[k * n + m];
                        bwd += link[m * n + j] * wr_prev[k * n + m];
                    }
                    tape.forward_w[rn + k * n + j] = fwd;
                    tape.backward_w[rn + k * n + j] = bwd;
                    let cr = tape.read_content.weights[rn + k * n + j];
                    next.read_weights[rn + k * n + j] =
                        modes[3 * k + 2] * cr + modes[3 * k + 1] * fwd + modes[3 * k] * bwd;
                }
            }
            for k in 0..r {
                for q in 0..w {
                    let mut acc = 0.0;
                    for j in 0..n {
                        acc += next.read_weights[rn + k * n + j] * mem[j * w + q];
                    }
                    next.read_vectors[(s * r + k) * w + q] = acc;
                }
            }
            let hr = &mut tape.hr[s * sz.hr()..(s + 1) * sz.hr()];
            hr[..h].copy_from_slice(&next.h[s * h..(s + 1) * h]);
            hr[h..].copy_from_slice(&next.read_vectors[s * r * w..(s + 1) * r * w]);
        }
        // Output.
        let mut y = p.ob.repeat(b);
        matmul(View::new(&tape.hr, b, sz.hr()), View::new(p.ow, o, sz.hr()).t(), &mut y, true);
        for (dst, &v) in logits[t * b * o..(t + 1) * b * o].iter_mut().zip(&y) {
            *dst = v.clamp(-clip, clip);
        }
        tape.y_raw = y;
        tapes.push(tape);
        states.push(next);
    }
    (logits, states, tapes)
}
