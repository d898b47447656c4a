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

use super::DncConfig;
use crate::ops::{contiguous_slices, lock, with_host_f32};

mod backward;
mod content;
mod forward;

use backward::backward;
use forward::{forward, Tape};

/// The small constant of the norms, the cosine similarity and the allocation.
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
    let mut rest = theta;
    let [cw, cb, iw, ib, ow, ob] = sz.blocks().map(|n| {
        let (block, tail) = rest.split_at(n);
        rest = tail;
        block
    });
    Params { cw, cb, iw, ib, ow, ob }
}

fn split_mut<'a>(sz: &Sizes, theta: &'a mut [f32]) -> [&'a mut [f32]; 6] {
    let mut rest = theta;
    sz.blocks().map(|n| {
        let (block, tail) = std::mem::take(&mut rest).split_at_mut(n);
        rest = tail;
        block
    })
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `max(x, 0) + log(1 + exp(-|x|))`, as the composed model computes it.
#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + ((-x.abs()).exp() + 1.0).ln()
}

/// The gradient factor of `clamp(x, -clip, clip)` as candle's backward has it (half on the bound).
#[inline]
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
        let [obs, theta] = contiguous_slices::<f32, 2>("dnc_sequence", [(os, ol), (ts, tl)])?;
        let (logits, states, tapes) = forward(&self.sz, &split(&self.sz, theta), obs, t_max, b);
        *lock(&self.tape, "dnc tape")? = Some((states, tapes));
        Ok((CpuStorage::F32(logits), Shape::from((t_max, b, self.sz.o))))
    }

    fn bwd(&self, obs: &Tensor, theta: &Tensor, _: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, b, _) = obs.dims3()?;
        let guard = lock(&self.tape, "dnc tape")?;
        let Some((states, tapes)) = guard.as_ref() else { bail!("dnc_sequence: backward without a forward") };
        with_host_f32([theta, grad], "dnc_sequence", |[theta_host, dy]| {
            let dtheta = backward(&self.sz, &split(&self.sz, theta_host), states, tapes, dy, b);
            Ok((None, Some(Tensor::from_vec(dtheta, theta.dims(), theta.device())?)))
        })
    }
}
