//! The DNC unrolled over a whole sequence as one CPU op with a hand-written backward through time.
//!
//! Composed of candle ops, one DNC time step is about a hundred tiny ops forward and twice that
//! backward, each costing more in dispatch and allocation than in arithmetic (16 slots of 16
//! words); this op runs the same equations ([`crate::dnc`], `shared/spec/models.md` section 7.1)
//! on host buffers, the three products per step (controller, interface, output) through `gemm`.
//!
//! Inputs: the observations `obs [T, B, I]` (no gradient) and every parameter flattened into one
//! vector `theta`, in this order: controller weight `[4H, I + RW + H]` and bias `[4H]`; the
//! interface weights stacked by rows `[Z, H]` in [`crate::dnc::Dnc`]'s field order (write vector,
//! erase, free gates, allocation gate, write gate, read modes, write key, write strength, read
//! keys, read strengths) and their biases `[Z]`; output weight `[O, H + RW]` and bias `[O]`.
//! Output: the clipped logits `[T, B, O]`. The forward keeps every intermediate the backward
//! needs; the backward walks the steps in reverse carrying the gradients of the recurrent state.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::gemm::{matmul_into_serial as matmul, View};
use super::{contiguous_slice, host_f32};
use crate::dnc::DncConfig;

const EPS: f32 = 1e-6;

/// Logits `[T, B, O]` of `obs [T, B, I]` from the zero state, `theta` packed as the module docs say
/// (CPU, f32).
pub fn dnc_sequence(cfg: &DncConfig, obs: &Tensor, theta: &Tensor) -> Result<Tensor> {
    let sz = Sizes::new(cfg);
    let (_, _, i) = obs.dims3()?;
    if i != sz.i || theta.dims1()? != sz.params() {
        bail!("dnc_sequence: obs {:?} and {} parameters do not fit the configuration", obs.dims(), theta.elem_count())
    }
    obs.contiguous()?.apply_op2(&theta.contiguous()?, DncSequence { sz, tape: Mutex::new(None) })
}

/// The sizes of the configuration and the offsets of the interface vector's parts.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    i: usize,
    o: usize,
    h: usize,
    n: usize,
    w: usize,
    r: usize,
    clip: f32,
}

impl Sizes {
    fn new(cfg: &DncConfig) -> Self {
        let c = cfg;
        Self {
            i: c.input_size,
            o: c.output_size,
            h: c.hidden,
            n: c.memory_size,
            w: c.word_size,
            r: c.read_heads,
            clip: c.clip as f32,
        }
    }
    /// Controller input `[x; r_{t-1}; h_{t-1}]`.
    fn x(&self) -> usize {
        self.i + self.r * self.w + self.h
    }
    /// Output layer input `[h; r_t]`.
    fn hr(&self) -> usize {
        self.h + self.r * self.w
    }
    // Interface vector parts.
    fn e(&self) -> usize {
        self.w
    }
    fn free(&self) -> usize {
        2 * self.w
    }
    fn ga(&self) -> usize {
        2 * self.w + self.r
    }
    fn gw(&self) -> usize {
        self.ga() + 1
    }
    fn modes(&self) -> usize {
        self.gw() + 1
    }
    fn kw(&self) -> usize {
        self.modes() + 3 * self.r
    }
    fn bw(&self) -> usize {
        self.kw() + self.w
    }
    fn kr(&self) -> usize {
        self.bw() + 1
    }
    fn br(&self) -> usize {
        self.kr() + self.r * self.w
    }
    /// Interface vector length.
    fn z(&self) -> usize {
        self.br() + self.r
    }
    /// Lengths of the six parameter blocks of `theta`.
    fn blocks(&self) -> [usize; 6] {
        let g = 4 * self.h;
        [g * self.x(), g, self.z() * self.h, self.z(), self.o * self.hr(), self.o]
    }
    fn params(&self) -> usize {
        self.blocks().iter().sum()
    }
}

/// `theta`'s six blocks.
struct Params<'a> {
    cw: &'a [f32],
    cb: &'a [f32],
    iw: &'a [f32],
    ib: &'a [f32],
    ow: &'a [f32],
    ob: &'a [f32],
}

fn split<'a>(sz: &Sizes, theta: &'a [f32]) -> Params<'a> {
    let [a, b, c, d, e, _] = sz.blocks();
    let (cw, rest) = theta.split_at(a);
    let (cb, rest) = rest.split_at(b);
    let (iw, rest) = rest.split_at(c);
    let (ib, rest) = rest.split_at(d);
    let (ow, ob) = rest.split_at(e);
    Params { cw, cb, iw, ib, ow, ob }
}

fn split_mut<'a>(sz: &Sizes, theta: &'a mut [f32]) -> [&'a mut [f32]; 6] {
    let [a, b, c, d, e, _] = sz.blocks();
    let (cw, rest) = theta.split_at_mut(a);
    let (cb, rest) = rest.split_at_mut(b);
    let (iw, rest) = rest.split_at_mut(c);
    let (ib, rest) = rest.split_at_mut(d);
    let (ow, ob) = rest.split_at_mut(e);
    [cw, cb, iw, ib, ow, ob]
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `max(x, 0) + log(1 + exp(-|x|))`, as the composed model computes it.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + ((-x.abs()).exp() + 1.0).ln()
}

/// The gradient factor of `clamp(x, -clip, clip)` as candle's backward has it (half on the bound).
fn clamp_grad(x: f32, clip: f32) -> f32 {
    let a = x.abs();
    if a < clip {
        1.0
    } else if a == clip {
        0.5
    } else {
        0.0
    }
}

/// The recurrent state of all `B` sequences, row-major per sequence.
#[derive(Clone)]
struct State {
    memory: Vec<f32>,       // [B, N, W]
    read_weights: Vec<f32>, // [B, R, N]
    write_weights: Vec<f32>,
    link: Vec<f32>, // [B, N, N]
    precedence: Vec<f32>,
    usage: Vec<f32>,
    read_vectors: Vec<f32>, // [B, R, W]
    h: Vec<f32>,
    c: Vec<f32>,
}

impl State {
    fn zeros(sz: &Sizes, b: usize) -> Self {
        let (n, w, r, h) = (sz.n, sz.w, sz.r, sz.h);
        Self {
            memory: vec![0.0; b * n * w],
            read_weights: vec![0.0; b * r * n],
            write_weights: vec![0.0; b * n],
            link: vec![0.0; b * n * n],
            precedence: vec![0.0; b * n],
            usage: vec![0.0; b * n],
            read_vectors: vec![0.0; b * r * w],
            h: vec![0.0; b * h],
            c: vec![0.0; b * h],
        }
    }
}

/// A content lookup of `K` keys for all sequences, kept for the backward.
struct Content {
    weights: Vec<f32>, // [B, K, N]
    sim: Vec<f32>,
    den: Vec<f32>,
    key_norm: Vec<f32>, // [B, K]
    beta: Vec<f32>,
    mem_norm: Vec<f32>, // [B, N]
}

impl Content {
    fn new(b: usize, k: usize, n: usize) -> Self {
        Self {
            weights: vec![0.0; b * k * n],
            sim: vec![0.0; b * k * n],
            den: vec![0.0; b * k * n],
            key_norm: vec![0.0; b * k],
            beta: vec![0.0; b * k],
            mem_norm: vec![0.0; b * n],
        }
    }
}

/// What one time step keeps for the backward.
struct Tape {
    xin: Vec<f32>,   // [B, X]
    gates: Vec<f32>, // [B, 4H]: s(i), tanh(j), s(f + 1), s(o)
    c_raw: Vec<f32>,
    tanh_c: Vec<f32>,
    h_raw: Vec<f32>,
    act: Vec<f32>,      // [B, Z]: interface, gates squashed, modes softmaxed, keys and strengths raw
    retained: Vec<f32>, // [B, N]: u_{t-1} + (1 - u_{t-1}) w^w_{t-1}
    psi: Vec<f32>,      // [B, N]: prod_k (1 - f_k w^r_{t-1, k})
    perm: Vec<usize>,   // [B, N]: free-ness sorted in descending order
    sorted: Vec<f32>,   // [B, N]: q at perm
    alloc: Vec<f32>,
    write_content: Content,
    read_content: Content,
    forward_w: Vec<f32>, // [B, R, N]
    backward_w: Vec<f32>,
    hr: Vec<f32>, // [B, H + RW]
    y_raw: Vec<f32>,
}

/// `C(M, k, b)` for one sequence: `memory [N, W]`, `keys [K, W]`, raw strengths `[K]`; writes the
/// weights and what the backward needs into `out` at sequence `s`.
fn content(n: usize, w: usize, memory: &[f32], keys: &[f32], raw: &[f32], out: &mut Content, s: usize) {
    let k_count = raw.len();
    let mn = &mut out.mem_norm[s * n..(s + 1) * n];
    for (j, m) in mn.iter_mut().enumerate() {
        *m = (memory[j * w..(j + 1) * w].iter().map(|v| v * v).sum::<f32>() + EPS).sqrt();
    }
    for k in 0..k_count {
        let key = &keys[k * w..(k + 1) * w];
        let kn = (key.iter().map(|v| v * v).sum::<f32>() + EPS).sqrt();
        let beta = softplus(raw[k]);
        out.key_norm[s * k_count + k] = kn;
        out.beta[s * k_count + k] = beta;
        let base = (s * k_count + k) * n;
        let mut max = f32::NEG_INFINITY;
        for j in 0..n {
            let dot: f32 = key.iter().zip(&memory[j * w..(j + 1) * w]).map(|(a, b)| a * b).sum();
            let den = kn * out.mem_norm[s * n + j] + EPS;
            let sim = dot / den;
            out.den[base + j] = den;
            out.sim[base + j] = sim;
            max = max.max(beta * sim);
        }
        let mut total = 0.0;
        for j in 0..n {
            let e = (beta * out.sim[base + j] - max).exp();
            out.weights[base + j] = e;
            total += e;
        }
        for j in 0..n {
            out.weights[base + j] /= total;
        }
    }
}

/// Adds the gradients of one sequence's content lookup, given `dw [K, N]`, to `dmem [N, W]`,
/// `dkeys [K, W]` and `draw [K]`.
#[allow(clippy::too_many_arguments)]
fn content_backward(
    n: usize,
    w: usize,
    memory: &[f32],
    keys: &[f32],
    raw: &[f32],
    c: &Content,
    s: usize,
    dw: &[f32],
    dmem: &mut [f32],
    dkeys: &mut [f32],
    draw: &mut [f32],
) {
    let k_count = raw.len();
    let mut dmn = vec![0f32; n];
    let mn = &c.mem_norm[s * n..(s + 1) * n];
    for k in 0..k_count {
        let base = (s * k_count + k) * n;
        let (kn, beta) = (c.key_norm[s * k_count + k], c.beta[s * k_count + k]);
        let weights = &c.weights[base..base + n];
        let g = &dw[k * n..(k + 1) * n];
        let inner: f32 = weights.iter().zip(g).map(|(a, b)| a * b).sum();
        let key = &keys[k * w..(k + 1) * w];
        let mut dbeta = 0.0;
        let mut dkn = 0.0;
        for j in 0..n {
            let ds = weights[j] * (g[j] - inner); // d(beta sim_j)
            let sim = c.sim[base + j];
            dbeta += ds * sim;
            let dsim = beta * ds;
            let den = c.den[base + j];
            let ddot = dsim / den;
            let dden = -dsim * sim / den;
            dkn += dden * mn[j];
            dmn[j] += dden * kn;
            let row = &memory[j * w..(j + 1) * w];
            for q in 0..w {
                dkeys[k * w + q] += ddot * row[q];
                dmem[j * w + q] += ddot * key[q];
            }
        }
        draw[k] += dbeta * sigmoid(raw[k]);
        for q in 0..w {
            dkeys[k * w + q] += dkn * key[q] / kn;
        }
    }
    for j in 0..n {
        for q in 0..w {
            dmem[j * w + q] += dmn[j] * memory[j * w + q] / mn[j];
        }
    }
}

fn forward(sz: &Sizes, p: &Params, obs: &[f32], t_max: usize, b: usize) -> (Vec<f32>, Vec<State>, Vec<Tape>) {
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
            content(n, w, mem_prev, &a[sz.kw()..sz.bw()], &a[sz.bw()..sz.kr()], &mut tape.write_content, s);
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
            content(n, w, mem, &a[sz.kr()..sz.br()], &a[sz.br()..z], &mut tape.read_content, s);
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

/// The gradient of `theta` given the gradient of the logits `dy [T, B, O]`.
fn backward(sz: &Sizes, p: &Params, states: &[State], tapes: &[Tape], dy: &[f32], b: usize) -> Vec<f32> {
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
            content_backward(
                n,
                w,
                mem,
                &a[sz.kr()..sz.br()],
                &a[sz.br()..z],
                &tape.read_content,
                s,
                &dcr,
                &mut dmem,
                dkr,
                &mut rest[..r],
            );
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
            content_backward(
                n,
                w,
                mem_prev,
                &a[sz.kw()..sz.bw()],
                &a[sz.bw()..sz.kr()],
                &tape.write_content,
                s,
                &dcw,
                dmem_prev,
                dkw,
                &mut rest[..1],
            );
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

struct DncSequence {
    sz: Sizes,
    tape: Mutex<Option<(Vec<State>, Vec<Tape>)>>,
}

impl CustomOp2 for DncSequence {
    fn name(&self) -> &'static str {
        "dnc-sequence"
    }

    fn cpu_fwd(&self, os: &CpuStorage, ol: &Layout, ts: &CpuStorage, tl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (t_max, b, _) = ol.shape().dims3()?;
        let obs = contiguous_slice::<f32>(os, ol, "dnc_sequence")?;
        let theta = contiguous_slice::<f32>(ts, tl, "dnc_sequence")?;
        let (logits, states, tapes) = forward(&self.sz, &split(&self.sz, theta), obs, t_max, b);
        *super::lock(&self.tape, "dnc tape")? = Some((states, tapes));
        Ok((CpuStorage::F32(logits), Shape::from((t_max, b, self.sz.o))))
    }

    fn bwd(
        &self,
        obs: &Tensor,
        theta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, b, _) = obs.dims3()?;
        let guard = super::lock(&self.tape, "dnc tape")?;
        let Some((states, tapes)) = guard.as_ref() else { bail!("dnc_sequence: backward without a forward") };
        let theta_host = host_f32(theta)?;
        let dtheta = backward(&self.sz, &split(&self.sz, &theta_host), states, tapes, &host_f32(grad)?, b);
        Ok((None, Some(Tensor::from_vec(dtheta, theta.dims(), theta.device())?)))
    }
}
