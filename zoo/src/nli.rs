//! The InferSent Bi-LSTM-max sentence encoder and NLI classifier, as the ALI-G paper's SNLI runs
//! (lberrada/InferSent branch `ali-g`, `models.py`).
//!
//! Input: frozen word vectors, time-major `[T, B, D]` (D = 300, GloVe), with per-sentence lengths.
//! Encoder `encoder.enc_lstm`: one bidirectional LSTM layer (H = 2048 per direction), PyTorch's
//! cell (gate blocks i, f, g, o):
//!
//! ```text
//! [i f g o] = W_ih x_t + b_ih + W_hh h + b_hh
//! c' = sigmoid(f) c + sigmoid(i) tanh(g) ;  h' = sigmoid(o) tanh(c')
//! ```
//!
//! Each direction runs over exactly its sentence's length (the backward direction starts at the
//! sentence's own last token, as a packed sequence); outputs beyond a length are zero. The sentence
//! embedding is the max over time of the `[T, B, 2H]` outputs: by default over all `T` rows, padding
//! zeros included, as the reference (so a short sentence's features are `max(true max, 0)`); or over
//! its own steps only ([`Pooling::Masked`]). Pair features `[u, v, |u - v|, u * v]` (8H) go through
//! `classifier.0` (8H -> 512), `classifier.1` (512 -> 512), `classifier.2` (512 -> 3) with no
//! non-linearity in between (the reference's `nonlinear_fc = 0`).

use candle_core::{bail, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

use crate::init::Init;

/// Max-pooling over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Over all padded steps, zeros included: the reference's behaviour (paper parity).
    #[default]
    MaxWithPadding,
    /// Over each sentence's own steps.
    Masked,
}

/// The NLI model's hyper-parameters. `Default` is the paper's.
#[derive(Clone, Debug, PartialEq)]
pub struct NliConfig {
    /// `D`, the word-vector size.
    pub word_dim: usize,
    /// `H`, per direction.
    pub hidden: usize,
    /// The classifier's hidden layer (512).
    pub fc_dim: usize,
    /// Classes of the logits (entailment, neutral, contradiction).
    pub num_classes: usize,
    /// How the encoder's outputs are pooled over time.
    pub pooling: Pooling,
}

impl Default for NliConfig {
    fn default() -> Self {
        Self { word_dim: 300, hidden: 2048, fc_dim: 512, num_classes: 3, pooling: Pooling::MaxWithPadding }
    }
}

/// One direction of an LSTM layer, with PyTorch's tensors.
struct LstmDirection {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: usize,
}

impl LstmDirection {
    fn new(d: usize, h: usize, vb: &VarBuilder, suffix: &str) -> Result<Self> {
        let init = candle_nn::Init::Const(0.0);
        Ok(Self {
            w_ih: vb.get_with_hints((4 * h, d), &format!("weight_ih_l0{suffix}"), init)?,
            w_hh: vb.get_with_hints((4 * h, h), &format!("weight_hh_l0{suffix}"), init)?,
            b_ih: vb.get_with_hints(4 * h, &format!("bias_ih_l0{suffix}"), init)?,
            b_hh: vb.get_with_hints(4 * h, &format!("bias_hh_l0{suffix}"), init)?,
            hidden: h,
        })
    }

    /// `b_ih + b_hh`, the bias of the input projection.
    fn bias(&self) -> Result<Tensor> {
        &self.b_ih + &self.b_hh
    }

    /// Outputs `[T, B, H]` of this direction over `x` `[T, B, D]`, composed of candle ops (the
    /// fused CPU op is `ops::lstm_bidirectional`); `mask[t]` is `[B, 1]` (1 inside the sentence).
    /// `reverse` runs from the last step to the first.
    fn run(&self, x: &Tensor, mask: &[Tensor], reverse: bool) -> Result<Tensor> {
        let (t_max, b, _) = x.dims3()?;
        let h = self.hidden;
        // The input projection of every step in one product.
        let xw = crate::ops::linear(x, &self.w_ih, &self.bias()?)?; // [T, B, 4H]
        let w_hh_t = self.w_hh.t()?;
        let mut state_h = Tensor::zeros((b, h), x.dtype(), x.device())?;
        let mut state_c = state_h.clone();
        let mut outputs = vec![None; t_max];
        let steps: Vec<usize> = if reverse { (0..t_max).rev().collect() } else { (0..t_max).collect() };
        for t in steps {
            let gates = (xw.get(t)? + state_h.matmul(&w_hh_t)?)?;
            let i = candle_nn::ops::sigmoid(&gates.narrow(1, 0, h)?)?;
            let f = candle_nn::ops::sigmoid(&gates.narrow(1, h, h)?)?;
            let g = gates.narrow(1, 2 * h, h)?.tanh()?;
            let o = candle_nn::ops::sigmoid(&gates.narrow(1, 3 * h, h)?)?;
            let c_new = ((f * &state_c)? + (i * g)?)?;
            let h_new = (o * c_new.tanh()?)?;
            let m = &mask[t];
            let keep = m.affine(-1.0, 1.0)?;
            state_c = (c_new.broadcast_mul(m)? + state_c.broadcast_mul(&keep)?)?;
            let out = h_new.broadcast_mul(m)?;
            state_h = (&out + state_h.broadcast_mul(&keep)?)?;
            outputs[t] = Some(out);
        }
        let outputs: Vec<Tensor> = outputs.into_iter().map(|o| o.expect("every step ran")).collect();
        Tensor::stack(&outputs, 0)
    }
}

/// The Bi-LSTM-max encoder and the NLI classifier.
pub struct Nli {
    forward_lstm: LstmDirection,
    backward_lstm: LstmDirection,
    classifier: Vec<Linear>,
    cfg: NliConfig,
}

impl Nli {
    /// The model of `cfg`, its tensors made (or loaded) under `vb`; fails on a zero size.
    pub fn new(cfg: &NliConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.word_dim == 0 || cfg.hidden == 0 || cfg.fc_dim == 0 || cfg.num_classes == 0 {
            bail!("nli: word_dim, hidden, fc_dim and num_classes must be positive")
        }
        let lstm = vb.pp("encoder").pp("enc_lstm");
        let (d, h) = (cfg.word_dim, cfg.hidden);
        let c = vb.pp("classifier");
        let classifier = vec![
            linear(8 * h, cfg.fc_dim, c.pp("0"))?,
            linear(cfg.fc_dim, cfg.fc_dim, c.pp("1"))?,
            linear(cfg.fc_dim, cfg.num_classes, c.pp("2"))?,
        ];
        Ok(Self {
            forward_lstm: LstmDirection::new(d, h, &lstm, "")?,
            backward_lstm: LstmDirection::new(d, h, &lstm, "_reverse")?,
            classifier,
            cfg: cfg.clone(),
        })
    }

    /// The sentence embeddings `[B, 2H]` of word vectors `x` `[T, B, D]` with `lengths` (each in
    /// `1..=T`).
    pub fn encode(&self, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (t_max, b, d) = x.dims3()?;
        if lengths.len() != b || d != self.cfg.word_dim {
            bail!(
                "nli: input [T, B, D] = {:?} with {} lengths; the model expects D = {}",
                x.dims(),
                lengths.len(),
                self.cfg.word_dim
            )
        }
        if let Some(l) = lengths.iter().find(|&&l| l == 0 || l > t_max) {
            bail!("nli: sentence length {l} is outside 1..={t_max}")
        }
        let host_mask: Vec<f32> = (0..t_max).flat_map(|t| lengths.iter().map(move |&l| (t < l) as u8 as f32)).collect();
        let mask: Vec<Tensor> = host_mask
            .chunks(b)
            .map(|m| Tensor::from_slice(m, (b, 1), x.device())?.to_dtype(x.dtype()))
            .collect::<Result<_>>()?;
        let (f, r) = (&self.forward_lstm, &self.backward_lstm);
        // The outputs of both directions, and which of their dimensions is time.
        let (out, time) = if crate::ops::custom_ops() && x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
            // Both directions in one op with a hand-written backward, the input projection and
            // its bias included (as a last column of the input weights); [2H, T, B] out.
            let w_ih = Tensor::cat(&[&f.w_ih, &r.w_ih], 0)?; // [8H, D]
            let bias = Tensor::cat(&[f.bias()?, r.bias()?], 0)?.unsqueeze(1)?;
            let w_ih = Tensor::cat(&[w_ih, bias], 1)?; // [8H, D + 1]
            let w_hh = Tensor::stack(&[&f.w_hh, &r.w_hh], 0)?;
            (crate::ops::lstm_bidirectional(x, &w_ih, &w_hh, host_mask)?, 1)
        } else {
            // Composed of candle ops, [T, B, 2H].
            (Tensor::cat(&[f.run(x, &mask, false)?, r.run(x, &mask, true)?], 2)?, 0)
        };
        let pooled = match self.cfg.pooling {
            Pooling::MaxWithPadding => out.max(time)?,
            Pooling::Masked => {
                // Steps outside a sentence get a large negative value before the max.
                let m = Tensor::stack(&mask, 0)?; // [T, B, 1]
                let m = if time == 1 { m.reshape((1, t_max, b))? } else { m };
                let penalty = (m.affine(-1.0, 1.0)? * -1e30)?;
                out.broadcast_add(&penalty)?.max(time)?
            }
        };
        if time == 1 {
            pooled.t()?.contiguous() // [2H, B] -> [B, 2H]
        } else {
            Ok(pooled)
        }
    }

    /// Logits `[B, classes]` of premise/hypothesis pairs (word vectors `[T, B, D]` and lengths).
    pub fn forward(&self, s1: &Tensor, len1: &[usize], s2: &Tensor, len2: &[usize]) -> Result<Tensor> {
        let (u, v) = (self.encode(s1, len1)?, self.encode(s2, len2)?);
        let features = Tensor::cat(&[&u, &v, &(&u - &v)?.abs()?, &(&u * &v)?], D::Minus1)?;
        let mut h = features;
        for l in &self.classifier {
            h = l.forward(&h)?;
        }
        Ok(h)
    }

    /// PyTorch's defaults for `cfg`: LSTM tensors `U(+-1/sqrt(H))`, each linear layer's weight and
    /// bias `U(+-1/sqrt(fan_in))`.
    pub fn init_rule(cfg: &NliConfig) -> impl Fn(&str, &[usize]) -> Option<Init> {
        let (h, fc) = (cfg.hidden, cfg.fc_dim);
        move |name, _| {
            let fan_in = if name.contains("enc_lstm") {
                h
            } else if name.starts_with("classifier.0.") {
                8 * h
            } else if name.starts_with("classifier.") {
                fc
            } else {
                return None;
            };
            Some(Init::TorchLinear { fan_in })
        }
    }
}
