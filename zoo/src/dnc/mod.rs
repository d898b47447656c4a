//! The Differentiable Neural Computer (Graves et al., Nature 2016) as deepmind/dnc computes it
//! (`dnc.py`, `access.py`, `addressing.py`; the ALI-G paper's fork lberrada/dnc), for the
//! repeat-copy task. The equations of one step are those of `shared/spec/models.md` section 7.1.
//!
//! Shapes (batch `B`): memory `M [B, N, W]`, read weights `[B, R, N]`, one write head `[B, N]`,
//! link `[B, N, N]`, precedence and usage `[B, N]`, read vectors `[B, R, W]`, a Sonnet LSTM
//! controller (gate blocks i, j, f, o; forget bias +1 at run time; `h` and `c` clipped to
//! `[-clip, clip]`). Input `[T, B, I]` time-major, logits `[T, B, O]` clipped to `[-clip, clip]`.
//!
//! Allocation sorts the free-ness `1 - u'` in descending order (ties: lower slot first) with a
//! constant permutation, and takes an exclusive cumulative product of the sorted values
//! ([`crate::ops::exclusive_cumprod`]); the previous write weights enter the usage update without
//! a gradient, as in the reference.

use candle_core::{bail, DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

mod fused;

pub use fused::dnc_sequence;

use crate::init::Init;
use crate::ops::exclusive_cumprod;

const EPS: f64 = 1e-6;

/// The DNC's sizes. `Default` is the paper's repeat-copy configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DncConfig {
    /// Observation channels (`num_bits + 2`).
    pub input_size: usize,
    /// Logits (`num_bits + 1`).
    pub output_size: usize,
    /// Controller LSTM size.
    pub hidden: usize,
    /// `N` slots of `W` words.
    pub memory_size: usize,
    /// `W`, the size of a memory word.
    pub word_size: usize,
    /// `R` read heads (one write head).
    pub read_heads: usize,
    /// Controller outputs and logits are clipped to `[-clip, clip]` (20).
    pub clip: f64,
}

impl Default for DncConfig {
    fn default() -> Self {
        Self { input_size: 6, output_size: 5, hidden: 64, memory_size: 16, word_size: 16, read_heads: 4, clip: 20.0 }
    }
}

/// The recurrent state.
#[derive(Clone, Debug)]
pub struct DncState {
    /// `M` `[B, N, W]`.
    pub memory: Tensor,
    /// `[B, R, N]`.
    pub read_weights: Tensor,
    /// `[B, N]`.
    pub write_weights: Tensor,
    /// The temporal link matrix `L` `[B, N, N]`.
    pub link: Tensor,
    /// The precedence weighting `p` `[B, N]`.
    pub precedence: Tensor,
    /// The usage `u` `[B, N]`.
    pub usage: Tensor,
    /// The last read vectors `[B, R, W]`.
    pub read_vectors: Tensor,
    /// The controller LSTM's output `[B, hidden]`.
    pub h: Tensor,
    /// The controller LSTM's cell `[B, hidden]`.
    pub c: Tensor,
}

/// The Differentiable Neural Computer (Graves et al., Nature 2016; DeepMind's `dnc` code, as the
/// paper's DNC experiment): observations `[T, B, I]` to logits `[T, B, O]`, time-major.
pub struct Dnc {
    controller_w: Tensor,
    controller_b: Tensor,
    write_vectors: Linear,
    erase_vectors: Linear,
    free_gate: Linear,
    allocation_gate: Linear,
    write_gate: Linear,
    read_mode: Linear,
    write_keys: Linear,
    write_strengths: Linear,
    read_keys: Linear,
    read_strengths: Linear,
    output: Linear,
    cfg: DncConfig,
}

fn sigmoid(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x)
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    // log(1 + exp(x)), stable: max(x, 0) + log(1 + exp(-|x|))
    let pos = x.relu()?;
    pos + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// `C(M, k, b)[n] = softmax_n(softplus(b) <k, M_n> / (|k| |M_n| + eps))`, `|x| = sqrt(sum x^2 + eps)`.
/// `memory [B, N, W]`, `keys [B, K, W]`, `strengths [B, K]` -> `[B, K, N]`.
fn content_weights(memory: &Tensor, keys: &Tensor, strengths: &Tensor) -> Result<Tensor> {
    let dot = keys.matmul(&memory.transpose(1, 2)?)?; // [B, K, N]
    let mem_norm = (memory.sqr()?.sum_keepdim(2)? + EPS)?.sqrt()?.transpose(1, 2)?; // [B, 1, N]
    let key_norm = (keys.sqr()?.sum_keepdim(2)? + EPS)?.sqrt()?; // [B, K, 1]
    let sim = dot.div(&(key_norm.broadcast_mul(&mem_norm)? + EPS)?)?;
    let scaled = sim.broadcast_mul(&softplus(strengths)?.unsqueeze(2)?)?;
    candle_nn::ops::softmax(&scaled, D::Minus1)
}

impl Dnc {
    /// The model of `cfg`, its tensors made (or loaded) under `vb`; fails on a zero size.
    pub fn new(cfg: &DncConfig, vb: VarBuilder) -> Result<Self> {
        let (h, w, r, n) = (cfg.hidden, cfg.word_size, cfg.read_heads, cfg.memory_size);
        if h == 0 || w == 0 || r == 0 || n == 0 || cfg.input_size == 0 || cfg.output_size == 0 {
            bail!("dnc: every size must be positive")
        }
        let controller_in = cfg.input_size + r * w + h;
        let a = vb.pp("access");
        let init = candle_nn::Init::Const(0.0);
        Ok(Self {
            controller_w: vb.pp("controller").get_with_hints((4 * h, controller_in), "weight", init)?,
            controller_b: vb.pp("controller").get_with_hints(4 * h, "bias", init)?,
            write_vectors: linear(h, w, a.pp("write_vectors"))?,
            erase_vectors: linear(h, w, a.pp("erase_vectors"))?,
            free_gate: linear(h, r, a.pp("free_gate"))?,
            allocation_gate: linear(h, 1, a.pp("allocation_gate"))?,
            write_gate: linear(h, 1, a.pp("write_gate"))?,
            read_mode: linear(h, 3 * r, a.pp("read_mode"))?,
            write_keys: linear(h, w, a.pp("write_keys"))?,
            write_strengths: linear(h, 1, a.pp("write_strengths"))?,
            read_keys: linear(h, r * w, a.pp("read_keys"))?,
            read_strengths: linear(h, r, a.pp("read_strengths"))?,
            output: linear(h + r * w, cfg.output_size, vb.pp("output_linear"))?,
            cfg: cfg.clone(),
        })
    }

    /// The all-zero state for a batch of `b`.
    pub fn initial_state(&self, b: usize, dtype: DType, dev: &candle_core::Device) -> Result<DncState> {
        let (n, w, r, h) = (self.cfg.memory_size, self.cfg.word_size, self.cfg.read_heads, self.cfg.hidden);
        let z = |s: &[usize]| Tensor::zeros(s, dtype, dev);
        Ok(DncState {
            memory: z(&[b, n, w])?,
            read_weights: z(&[b, r, n])?,
            write_weights: z(&[b, n])?,
            link: z(&[b, n, n])?,
            precedence: z(&[b, n])?,
            usage: z(&[b, n])?,
            read_vectors: z(&[b, r, w])?,
            h: z(&[b, h])?,
            c: z(&[b, h])?,
        })
    }

    /// The allocation weighting `[B, N]` of usage `u` `[B, N]`.
    fn allocation(&self, usage: &Tensor) -> Result<Tensor> {
        let (b, n) = usage.dims2()?;
        let u = ((usage * (1.0 - EPS))? + EPS)?;
        let free = u.affine(-1.0, 1.0)?; // q = 1 - u'
                                         // The permutation sorting q in descending order, ties to the lower slot: a constant.
        let q = free.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let mut perm = Vec::with_capacity(b * n);
        let mut inverse = vec![0u32; b * n];
        for (row, qr) in q.iter().enumerate() {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&i, &j| qr[j].total_cmp(&qr[i]).then(i.cmp(&j)));
            for (k, &i) in idx.iter().enumerate() {
                inverse[row * n + i] = k as u32;
            }
            perm.extend(idx.into_iter().map(|i| i as u32));
        }
        let perm = Tensor::from_vec(perm, (b, n), usage.device())?;
        let inverse = Tensor::from_vec(inverse, (b, n), usage.device())?;
        let sorted = free.gather(&perm, 1)?;
        let s = sorted.affine(-1.0, 1.0)?; // 1 - q, computed as the reference does
        let sorted_alloc = (&sorted * exclusive_cumprod(&s)?)?;
        sorted_alloc.gather(&inverse, 1)
    }

    /// One time step from observation `x` `[B, I]`; returns the logits `[B, O]` and the new state.
    pub fn step(&self, x: &Tensor, s: &DncState) -> Result<(Tensor, DncState)> {
        let cfg = &self.cfg;
        let (b, hsz, r, w, n) = (x.dim(0)?, cfg.hidden, cfg.read_heads, cfg.word_size, cfg.memory_size);
        let clip = cfg.clip;
        // Controller: Sonnet LSTM on [x; r_{t-1}; h].
        let input = Tensor::cat(&[x, &s.read_vectors.reshape((b, r * w))?, &s.h], 1)?;
        let z = input.matmul(&self.controller_w.t()?)?.broadcast_add(&self.controller_b)?;
        let gate = |k: usize| z.narrow(1, k * hsz, hsz);
        let (i, j, f, o) = (gate(0)?, gate(1)?, gate(2)?, gate(3)?);
        let c = ((sigmoid(&(f + 1.0)?)? * &s.c)? + (sigmoid(&i)? * j.tanh()?)?)?;
        let h = (c.tanh()? * sigmoid(&o)?)?;
        let (h, c) = (h.clamp(-clip, clip)?, c.clamp(-clip, clip)?);

        // Interface.
        let write_vector = self.write_vectors.forward(&h)?; // [B, W]
        let erase = sigmoid(&self.erase_vectors.forward(&h)?)?;
        let free_gates = sigmoid(&self.free_gate.forward(&h)?)?; // [B, R]
        let alloc_gate = sigmoid(&self.allocation_gate.forward(&h)?)?; // [B, 1]
        let write_gate = sigmoid(&self.write_gate.forward(&h)?)?; // [B, 1]
        let modes = candle_nn::ops::softmax(&self.read_mode.forward(&h)?.reshape((b, r, 3))?, D::Minus1)?;
        let write_key = self.write_keys.forward(&h)?.reshape((b, 1, w))?;
        let write_strength = self.write_strengths.forward(&h)?; // [B, 1]
        let read_keys = self.read_keys.forward(&h)?.reshape((b, r, w))?;
        let read_strengths = self.read_strengths.forward(&h)?; // [B, R]

        // Usage, with the previous write weights as constants.
        let prev_w = s.write_weights.detach();
        let u = (&s.usage + (s.usage.affine(-1.0, 1.0)? * &prev_w)?)?;
        // prod_j (1 - f_j w^r_{t-1, j})
        let mut retention = Tensor::ones((b, n), x.dtype(), x.device())?;
        for k in 0..r {
            let fk = free_gates.narrow(1, k, 1)?; // [B, 1]
            retention =
                (retention * fk.broadcast_mul(&s.read_weights.narrow(1, k, 1)?.squeeze(1)?)?.affine(-1.0, 1.0)?)?;
        }
        let usage = (u * retention)?;

        // Write weights from the previous memory.
        let content_w = content_weights(&s.memory, &write_key, &write_strength)?.squeeze(1)?; // [B, N]
        let alloc = self.allocation(&usage)?;
        let ww = write_gate.broadcast_mul(
            &(alloc_gate.broadcast_mul(&alloc)? + alloc_gate.affine(-1.0, 1.0)?.broadcast_mul(&content_w)?)?,
        )?;

        // Memory: erase, then add.
        let wcol = ww.unsqueeze(2)?; // [B, N, 1]
        let erase_m = wcol.matmul(&erase.unsqueeze(1)?)?; // [B, N, W]
        let memory = ((&s.memory * erase_m.affine(-1.0, 1.0)?)? + wcol.matmul(&write_vector.unsqueeze(1)?)?)?;

        // Temporal link and precedence.
        let w_n = ww.unsqueeze(2)?; // rows
        let w_m = ww.unsqueeze(1)?; // columns
        let keep = w_n.broadcast_add(&w_m)?.affine(-1.0, 1.0)?; // 1 - w[n] - w[m]
        let link = ((keep * &s.link)? + w_n.broadcast_mul(&s.precedence.unsqueeze(1)?)?)?;
        let off_diag = Tensor::eye(n, link.dtype(), link.device())?.affine(-1.0, 1.0)?;
        let link = link.broadcast_mul(&off_diag)?;
        let precedence = (s.precedence.broadcast_mul(&ww.sum_keepdim(1)?.affine(-1.0, 1.0)?)? + &ww)?;

        // Read weights from the new memory.
        let content_r = content_weights(&memory, &read_keys, &read_strengths)?; // [B, R, N]
        let forward_w = s.read_weights.matmul(&link.transpose(1, 2)?)?; // (L w)_n = sum_m L[n, m] w[m]
        let backward_w = s.read_weights.matmul(&link)?; // (L^T w)_n = sum_m L[m, n] w[m]
        let mode = |k: usize| modes.narrow(2, k, 1); // [B, R, 1]: 0 backward, 1 forward, 2 content
        let read_weights = ((mode(2)?.broadcast_mul(&content_r)? + mode(1)?.broadcast_mul(&forward_w)?)?
            + mode(0)?.broadcast_mul(&backward_w)?)?;
        let read_vectors = read_weights.matmul(&memory)?; // [B, R, W]

        let out =
            self.output.forward(&Tensor::cat(&[&h, &read_vectors.reshape((b, r * w))?], 1)?)?.clamp(-clip, clip)?;
        let state = DncState { memory, read_weights, write_weights: ww, link, precedence, usage, read_vectors, h, c };
        Ok((out, state))
    }

    /// Logits `[T, B, O]` of observations `[T, B, I]` from the zero state: one op over the whole
    /// sequence on the CPU in f32 ([`fused::dnc_sequence`], unless the custom ops are off),
    /// otherwise [`Dnc::forward_composed`].
    pub fn forward(&self, obs: &Tensor) -> Result<Tensor> {
        self.check_input(obs)?;
        if crate::ops::custom_ops() && obs.device().is_cpu() && obs.dtype() == DType::F32 {
            fused::dnc_sequence(&self.cfg, obs, &self.packed_parameters()?)
        } else {
            self.forward_composed(obs)
        }
    }

    fn check_input(&self, obs: &Tensor) -> Result<()> {
        let (_, _, i) = obs.dims3()?;
        if i != self.cfg.input_size {
            bail!("dnc: observations have {i} channels, the model expects {}", self.cfg.input_size)
        }
        Ok(())
    }

    /// Every parameter in one vector, in the order [`fused::dnc_sequence`] reads (a
    /// differentiable concatenation, so gradients reach the variables).
    fn packed_parameters(&self) -> Result<Tensor> {
        let interface = [
            &self.write_vectors,
            &self.erase_vectors,
            &self.free_gate,
            &self.allocation_gate,
            &self.write_gate,
            &self.read_mode,
            &self.write_keys,
            &self.write_strengths,
            &self.read_keys,
            &self.read_strengths,
        ];
        let mut parts = vec![self.controller_w.flatten_all()?, self.controller_b.clone()];
        parts.extend(interface.iter().map(|l| l.weight().flatten_all()).collect::<Result<Vec<_>>>()?);
        for l in interface {
            match l.bias() {
                Some(b) => parts.push(b.clone()),
                None => bail!("dnc: interface layers have biases"),
            }
        }
        parts.push(self.output.weight().flatten_all()?);
        match self.output.bias() {
            Some(b) => parts.push(b.clone()),
            None => bail!("dnc: the output layer has a bias"),
        }
        Tensor::cat(&parts, 0)
    }

    /// [`Dnc::forward`] as candle ops, one [`Dnc::step`] per time step (any device and dtype).
    pub fn forward_composed(&self, obs: &Tensor) -> Result<Tensor> {
        self.check_input(obs)?;
        let (t_max, b, _) = obs.dims3()?;
        let mut state = self.initial_state(b, obs.dtype(), obs.device())?;
        let mut outs = Vec::with_capacity(t_max);
        for t in 0..t_max {
            let (y, s) = self.step(&obs.get(t)?, &state)?;
            outs.push(y);
            state = s;
        }
        Tensor::stack(&outs, 0)
    }

    /// Sonnet's defaults: every weight truncated normal with std `1/sqrt(fan_in)` (here a plain
    /// normal clipped at two standard deviations), linear biases 0, the LSTM bias like its weight.
    pub fn init_rule(cfg: &DncConfig) -> impl Fn(&str, &[usize]) -> Option<Init> {
        let controller_in = cfg.input_size + cfg.read_heads * cfg.word_size + cfg.hidden;
        move |name, shape| {
            Some(match name {
                "controller.weight" | "controller.bias" => {
                    Init::TruncatedNormal { std: 1.0 / (controller_in as f64).sqrt() }
                }
                n if n.ends_with(".weight") => Init::TruncatedNormal { std: 1.0 / (shape[1] as f64).sqrt() },
                n if n.ends_with(".bias") => Init::Const(0.0),
                _ => return None,
            })
        }
    }
}

/// The DNC task's loss: sigmoid cross-entropy of `logits` against `target` (both `[T, B, O]`),
/// summed over channels, weighted by `mask` `[T, B]`, summed over time and batch, divided by `B`.
///
/// Computed in f64 and returned in the logits' dtype: TensorFlow's `log1p(exp(-|x|))` keeps the
/// loss of a confident logit positive (2e-9 at the clip, 20), where `log(1 + exp(-|x|))` in f32
/// rounds it to 0 - and a zero loss is a zero step for ALI-G and L4.
pub fn masked_sigmoid_cross_entropy(logits: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let b = logits.dim(1)?;
    let dtype = logits.dtype();
    let (x, z, m) = (logits.to_dtype(DType::F64)?, target.to_dtype(DType::F64)?, mask.to_dtype(DType::F64)?);
    // max(x, 0) - x z + log(1 + exp(-|x|))
    let per = ((x.relu()? - (&x * z)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let per_step = per.sum(D::Minus1)?; // [T, B]
    ((per_step * m)?.sum_all()? / b as f64)?.to_dtype(dtype)
}
