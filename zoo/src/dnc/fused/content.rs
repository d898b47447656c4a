//! Content-based addressing `C(M, k, beta)`: cosine similarity of keys and memory rows, sharpened
//! by the strength and normalised by a softmax over the slots; forward and backward for one
//! sequence.

use super::{sigmoid, softplus, EPS};

/// One sequence's lookup: `memory [N, W]`, `keys [K, W]` and their raw strengths `[K]`.
pub(super) struct Lookup<'a> {
    pub n: usize,
    pub w: usize,
    pub memory: &'a [f32],
    pub keys: &'a [f32],
    pub raw: &'a [f32],
}

/// Where a lookup's gradients are added: `memory [N, W]`, `keys [K, W]`, `raw [K]`.
pub(super) struct LookupGrads<'a> {
    pub memory: &'a mut [f32],
    pub keys: &'a mut [f32],
    pub raw: &'a mut [f32],
}

/// A content lookup of `K` keys for all sequences, kept for the backward.
pub(super) struct Content {
    pub weights: Vec<f32>, // [B, K, N]
    sim: Vec<f32>,
    den: Vec<f32>,
    key_norm: Vec<f32>, // [B, K]
    beta: Vec<f32>,
    mem_norm: Vec<f32>, // [B, N]
}

impl Content {
    pub(super) fn new(b: usize, k: usize, n: usize) -> Self {
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

/// `C(M, k, b)` for sequence `s`; writes the weights and what the backward needs into `out`.
pub(super) fn content(look: Lookup, out: &mut Content, s: usize) {
    let Lookup { n, w, memory, keys, raw } = look;
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

/// Adds the gradients of sequence `s`'s content lookup, given the gradient `dw [K, N]` of its
/// weights, to `grads`.
pub(super) fn content_backward(look: Lookup, c: &Content, s: usize, dw: &[f32], grads: LookupGrads) {
    let Lookup { n, w, memory, keys, raw } = look;
    let LookupGrads { memory: dmem, keys: dkeys, raw: draw } = grads;
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
            let (dkey, dmem_row) = (&mut dkeys[k * w..(k + 1) * w], &mut dmem[j * w..(j + 1) * w]);
            add_products(ddot, &memory[j * w..(j + 1) * w], key, dkey, dmem_row);
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

/// `dkey += d row` and `dmem_row += d key`: the similarity's gradient through one dot product. Its
/// own function so that the four rows are separate slice arguments, which the compiler knows do
/// not overlap (the loop vectorises; as fields of a struct they would be reloaded every step).
#[inline]
fn add_products(d: f32, row: &[f32], key: &[f32], dkey: &mut [f32], dmem_row: &mut [f32]) {
    for (((dk, dm), &r), &k) in dkey.iter_mut().zip(dmem_row.iter_mut()).zip(row).zip(key) {
        *dk += d * r;
        *dm += d * k;
    }
}
