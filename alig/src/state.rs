//! An optimizer's state, declared once: the buffers and counters it keeps, under the names its
//! state file uses. [`Optimizer`](crate::Optimizer)'s default methods export and strictly import
//! it, and give the optimizer's name and parameters, from the [`Core`] each optimizer holds.
//!
//! Names in a state file: `<opt>.<key>.<param name>` for per-parameter tensors and counters,
//! `<opt>.<key>` for the rest. Counters are 0-d `i64` tensors; buffers keep the parameter dtype.
//! Exported tensors are copies, and imported ones are copied too: the fused kernels update state
//! buffers in place, and must never write into a tensor the caller still holds.
//!
//! Your own optimizer declares its state in `new` and writes only its step and learning rate;
//! `name`, `params`, `state` and the strict `load_state` come with the trait:
//!
//! ```
//! use std::collections::HashMap;
//!
//! use alig::state::{Buffers, Core, State};
//! use alig::{Optimizer, ParamSet, StepReport};
//! use candle_core::{DType, Device, Result, Tensor, Var};
//!
//! /// Momentum on the gradient's sign: `a <- 0.9 a + sign(g)`, `w <- w - lr a`.
//! struct SignMomentum {
//!     core: Core,
//!     lr: f64,
//! }
//!
//! const ACC: Buffers = Buffers("acc"); // signmom.acc.<param> in a state file
//!
//! impl SignMomentum {
//!     fn new(params: ParamSet, lr: f64) -> Result<Self> {
//!         let mut state = State::new();
//!         state.zeros(ACC, &params)?;
//!         Ok(Self { core: Core::new("signmom", params, state), lr })
//!     }
//! }
//!
//! impl Optimizer for SignMomentum {
//!     fn core(&self) -> &Core {
//!         &self.core
//!     }
//!     fn core_mut(&mut self) -> &mut Core {
//!         &mut self.core
//!     }
//!     fn learning_rate(&self) -> Option<f64> {
//!         Some(self.lr)
//!     }
//!     fn set_learning_rate(&mut self, lr: f64) {
//!         self.lr = lr;
//!     }
//!     fn step_with(&mut self, _loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport> {
//!         let lr = self.lr;
//!         self.core.each_grad(grads, |i, w, g, state| {
//!             state[ACC][i] = ((&state[ACC][i] * 0.9)? + g.sign()?)?;
//!             w.set(&(w.as_tensor() - (&state[ACC][i] * lr)?)?)
//!         })?;
//!         Ok(StepReport::at_lr(lr))
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let w = Var::new(&[1f32, -2.0], &Device::Cpu)?;
//! let params = || ParamSet::new([("w".to_string(), w.clone())]);
//! let mut opt = SignMomentum::new(params()?, 0.1)?;
//! let loss = w.as_tensor().sqr()?.sum_all()?;
//! opt.backward_step(&loss)?;
//! assert_eq!(w.to_vec1::<f32>()?, [0.9, -1.9]);
//!
//! let state: HashMap<String, Tensor> = opt.state()?.into_iter().collect();
//! assert_eq!(state["signmom.acc.w"].to_vec1::<f32>()?, [1.0, -1.0]);
//! let mut fresh = SignMomentum::new(params()?, 0.1)?;
//! fresh.load_state(&state)?;
//! let mut extra = state.clone();
//! extra.insert("signmom.acc.b".into(), Tensor::zeros(2, DType::F32, &Device::Cpu)?);
//! assert!(fresh.load_state(&extra).unwrap_err().to_string().contains("signmom.acc.b"));
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::ops::{Index, IndexMut};

use candle_core::{bail, DType, Result, Tensor, Var};

use crate::params::ParamSet;

/// Named state tensors: `<opt>.<buffer>.<param name>` per parameter, `<opt>.<scalar>` otherwise.
pub type NamedTensors = Vec<(String, Tensor)>;

/// A group of per-parameter buffers, one tensor of each parameter's shape: `<opt>.<key>.<param>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers(pub &'static str);

/// Per-parameter step counters: `<opt>.<key>.<param>`, 0-d `i64` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub &'static str);

/// A 0-d tensor in the parameters' dtype: `<opt>.<key>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(pub &'static str);

/// One counter for the whole optimizer: `<opt>.<key>`, 0-d `i64` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub &'static str);

/// torch's first moment `exp_avg` (Adam, AMSGrad, AdamW, Yogi).
pub const EXP_AVG: Buffers = Buffers("exp_avg");
/// torch's second moment `exp_avg_sq` (Adam, AMSGrad, AdamW, Yogi).
pub const EXP_AVG_SQ: Buffers = Buffers("exp_avg_sq");
/// AMSGrad's running maximum of the second moment, `max_exp_avg_sq`.
pub const MAX_EXP_AVG_SQ: Buffers = Buffers("max_exp_avg_sq");
/// torch's `momentum_buffer` (SGD, and the `z` of ALI-G and DFW).
pub const MOMENTUM_BUFFER: Buffers = Buffers("momentum_buffer");
/// torch's per-parameter step count `step`.
pub const STEP: Counters = Counters("step");

/// The state of one optimizer: what it declared, in the order of declaration within each kind
/// (buffers, then counters, values and counts in the exported list). Not `Clone`: the fused CPU
/// kernels update buffers in place, so two states must never share a tensor's storage.
#[derive(Debug, Default)]
pub struct State {
    buffers: Vec<(&'static str, Vec<Tensor>)>,
    counters: Vec<(&'static str, Vec<u64>)>,
    values: Vec<(&'static str, Tensor)>,
    counts: Vec<(&'static str, u64)>,
}

fn slot<'a, T>(entries: &'a [(&'static str, T)], key: &str) -> Option<&'a T> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn slot_mut<'a, T>(entries: &'a mut [(&'static str, T)], key: &str) -> Option<&'a mut T> {
    entries.iter_mut().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn undeclared(key: &str) -> ! {
    panic!("optimizer state: {key:?} was never declared")
}

impl State {
    /// No state (plain SGD's).
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the buffers `key`, zeros of each parameter's shape, dtype and device.
    pub fn zeros(&mut self, key: Buffers, params: &ParamSet) -> Result<()> {
        let zeros = params.vars().iter().map(|v| v.zeros_like()).collect::<Result<_>>()?;
        self.buffers.push((key.0, zeros));
        Ok(())
    }

    /// Declares the buffers `key` as [`State::zeros`] when `wanted` (a momentum buffer exists only
    /// with momentum, as in PyTorch).
    pub fn zeros_if(&mut self, wanted: bool, key: Buffers, params: &ParamSet) -> Result<()> {
        if wanted {
            self.zeros(key, params)?;
        }
        Ok(())
    }

    /// Declares the buffers `key`, each filled with `value`.
    pub fn fill(&mut self, key: Buffers, params: &ParamSet, value: f64) -> Result<()> {
        let filled = params.vars().iter().map(|v| v.ones_like()? * value).collect::<Result<_>>()?;
        self.buffers.push((key.0, filled));
        Ok(())
    }

    /// Declares one counter `key` per parameter, from 0.
    pub fn counters(&mut self, key: Counters, params: &ParamSet) {
        self.counters.push((key.0, vec![0; params.len()]));
    }

    /// Declares the 0-d tensor `key`.
    pub fn value(&mut self, key: Value, t: Tensor) {
        self.values.push((key.0, t));
    }

    /// Declares the counter `key`, starting at `v`.
    pub fn count(&mut self, key: Count, v: u64) {
        self.counts.push((key.0, v));
    }

    /// The buffers `key`, if declared (momentum buffers are declared only with momentum).
    pub fn get(&self, key: Buffers) -> Option<&[Tensor]> {
        slot(&self.buffers, key.0).map(Vec::as_slice)
    }

    /// Everything as named tensors (copies), `opt` the optimizer's name.
    pub fn export(&self, opt: &str, params: &ParamSet) -> Result<NamedTensors> {
        let dev = params.device();
        let counter = |v: u64| Tensor::new(v as i64, dev);
        let mut out = Vec::new();
        for (key, bufs) in &self.buffers {
            for (name, b) in params.names().iter().zip(bufs) {
                out.push((format!("{opt}.{key}.{name}"), b.copy()?));
            }
        }
        for (key, counts) in &self.counters {
            for (name, c) in params.names().iter().zip(counts) {
                out.push((format!("{opt}.{key}.{name}"), counter(*c)?));
            }
        }
        for (key, t) in &self.values {
            out.push((format!("{opt}.{key}"), t.copy()?));
        }
        for (key, c) in &self.counts {
            out.push((format!("{opt}.{key}"), counter(*c)?));
        }
        Ok(out)
    }

    /// The state of the same layout read from `map`, strictly: a missing, misshapen or unexpected
    /// `<opt>.` entry is an error naming it. `self` is left as it is either way.
    pub fn import(&self, opt: &str, params: &ParamSet, map: &HashMap<String, Tensor>) -> Result<State> {
        let mut r = Reader { opt, params, map, used: HashSet::new() };
        let loaded = State {
            buffers: self.buffers.iter().map(|(k, _)| Ok((*k, r.buffers(k)?))).collect::<Result<_>>()?,
            counters: self.counters.iter().map(|(k, _)| Ok((*k, r.counters(k)?))).collect::<Result<_>>()?,
            values: self.values.iter().map(|(k, _)| Ok((*k, r.value(k)?))).collect::<Result<_>>()?,
            counts: self
                .counts
                .iter()
                .map(|(k, _)| Ok((*k, r.count(&format!("{opt}.{k}"))?)))
                .collect::<Result<_>>()?,
        };
        r.finish()?;
        Ok(loaded)
    }
}

/// `state[KEY]` for each kind of key, over the entries of that kind; an undeclared key panics.
macro_rules! index_by {
    ($key:ty => $out:ty, $entries:ident) => {
        impl Index<$key> for State {
            type Output = $out;
            fn index(&self, key: $key) -> &$out {
                slot(&self.$entries, key.0).unwrap_or_else(|| undeclared(key.0))
            }
        }

        impl IndexMut<$key> for State {
            fn index_mut(&mut self, key: $key) -> &mut $out {
                slot_mut(&mut self.$entries, key.0).unwrap_or_else(|| undeclared(key.0))
            }
        }
    };
}

index_by!(Buffers => Vec<Tensor>, buffers);
index_by!(Counters => Vec<u64>, counters);
index_by!(Value => Tensor, values);
index_by!(Count => u64, counts);

/// What every optimizer holds besides its hyper-parameters: its name (the prefix of its state
/// entries), its parameters and its declared [`State`].
pub struct Core {
    /// The registry name (`alig`, `adam`, ...).
    pub name: &'static str,
    /// The parameters it updates.
    pub params: ParamSet,
    /// Its buffers and counters.
    pub state: State,
}

impl Core {
    /// The core of the optimizer `name` over `params` with `state`.
    pub fn new(name: &'static str, params: ParamSet, state: State) -> Self {
        Self { name, params, state }
    }

    /// `grads` checked against the parameters and detached (see [`ParamSet::checked_grads`]).
    pub fn checked_grads(&self, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        self.params.checked_grads(self.name, grads)
    }

    /// Checks `grads` (as [`Core::checked_grads`]) and calls `update(i, w, g, state)` for each
    /// parameter `w = params[i]` that has a gradient `g`, in order.
    pub fn each_grad(
        &mut self,
        grads: &[Option<Tensor>],
        mut update: impl FnMut(usize, &Var, &Tensor, &mut State) -> Result<()>,
    ) -> Result<()> {
        let grads = self.checked_grads(grads)?;
        for (i, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                update(i, &self.params.vars()[i], g, &mut self.state)?;
            }
        }
        Ok(())
    }

    /// The mini-batch loss as a detached 0-d tensor in the parameters' dtype and on their device.
    pub fn loss(&self, loss: &Tensor) -> Result<Tensor> {
        loss.detach().to_device(self.params.device())?.to_dtype(self.params.dtype())?.reshape(())
    }

    /// What a step that looks at the loss and all gradients at once starts from: the loss (as
    /// [`Core::loss`]) and the gradients (as [`Core::checked_grads`]), beside the parameters and
    /// the state to update.
    pub fn inputs(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<Inputs<'_>> {
        let (loss, grads) = (self.loss(loss)?, self.checked_grads(grads)?);
        Ok(Inputs { params: &self.params, state: &mut self.state, loss, grads })
    }
}

/// A step's inputs, from [`Core::inputs`].
pub struct Inputs<'a> {
    /// The parameters.
    pub params: &'a ParamSet,
    /// The state, to update.
    pub state: &'a mut State,
    /// The mini-batch loss, a detached 0-d tensor in the parameters' dtype and on their device.
    pub loss: Tensor,
    /// The gradients, checked against the parameters and detached.
    pub grads: Vec<Option<Tensor>>,
}

struct Reader<'a> {
    opt: &'a str,
    params: &'a ParamSet,
    map: &'a HashMap<String, Tensor>,
    used: HashSet<String>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, name: &str) -> Result<&'a Tensor> {
        let Some(t) = self.map.get(name) else { bail!("optimizer state: missing entry {name:?}") };
        self.used.insert(name.to_string());
        Ok(t)
    }

    /// One tensor per parameter, of the parameter's shape, converted to its dtype and device.
    fn buffers(&mut self, key: &str) -> Result<Vec<Tensor>> {
        let (opt, params) = (self.opt, self.params);
        let mut out = Vec::with_capacity(params.len());
        for (name, var) in params.iter() {
            let full = format!("{opt}.{key}.{name}");
            let t = self.take(&full)?;
            if t.shape() != var.shape() {
                bail!("optimizer state: {full:?} has shape {:?}, the parameter has {:?}", t.shape(), var.shape())
            }
            out.push(t.to_device(var.device())?.to_dtype(var.dtype())?.copy()?);
        }
        Ok(out)
    }

    fn counters(&mut self, key: &str) -> Result<Vec<u64>> {
        let (opt, params) = (self.opt, self.params);
        params.names().iter().map(|name| self.count(&format!("{opt}.{key}.{name}"))).collect()
    }

    fn count(&mut self, full: &str) -> Result<u64> {
        let t = self.take(full)?;
        if t.rank() != 0 || t.dtype().is_float() {
            bail!("optimizer state: {full:?} must be a 0-d integer counter, got {:?} {:?}", t.dtype(), t.shape())
        }
        let v = t.to_dtype(DType::I64)?.to_scalar::<i64>()?;
        u64::try_from(v).map_err(|_| candle_core::Error::Msg(format!("optimizer state: {full:?} is negative ({v})")))
    }

    /// A 0-d tensor `<opt>.<key>`, in the parameters' dtype and on their device.
    fn value(&mut self, key: &str) -> Result<Tensor> {
        let full = format!("{}.{key}", self.opt);
        let t = self.take(&full)?;
        if t.rank() != 0 {
            bail!("optimizer state: {full:?} must be 0-d, got shape {:?}", t.shape())
        }
        t.to_device(self.params.device())?.to_dtype(self.params.dtype())?.copy()
    }

    /// Fails on any `<opt>.` entry that was not read.
    fn finish(self) -> Result<()> {
        let prefix = format!("{}.", self.opt);
        let mut extra: Vec<&String> =
            self.map.keys().filter(|k| k.starts_with(&prefix) && !self.used.contains(*k)).collect();
        extra.sort();
        if let Some(first) = extra.first() {
            bail!("optimizer state: unexpected entry {first:?} ({} unexpected in all)", extra.len())
        }
        Ok(())
    }
}
