//! The parameter set an optimizer works on: trainable variables sorted by name, buffers excluded.
//!
//! candle keeps BatchNorm running statistics in the same `VarMap` as the weights, in hash order.
//! Handing `VarMap::all_vars()` to an optimizer would step, decay and project them, and would key
//! the optimizer state in an order that changes from run to run. [`ParamSet`] fixes both: it keeps
//! `(name, Var)` pairs sorted by name and leaves out every buffer.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Device, Result, Tensor, Var};

use crate::ops;
pub use crate::ops::Kernels;

/// Trainable parameters, sorted by name, with buffers excluded.
#[derive(Clone)]
pub struct ParamSet {
    names: Vec<String>,
    vars: Vec<Var>,
    kernels: Kernels,
}

/// BatchNorm's running mean, under PyTorch's name (the last segment of the tensor's name).
pub const RUNNING_MEAN: &str = "running_mean";
/// BatchNorm's running variance, under PyTorch's name.
pub const RUNNING_VAR: &str = "running_var";
/// BatchNorm's count of training batches, under PyTorch's name.
pub const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// Suffixes of the buffers that candle's `VarMap` holds next to the weights (PyTorch's names):
/// the one list of them in the toolkit (`zoo` and `train` read it).
pub const BUFFER_SUFFIXES: [&str; 3] = [RUNNING_MEAN, RUNNING_VAR, NUM_BATCHES_TRACKED];

/// True for a BatchNorm running statistic or counter: never stepped, decayed or projected.
pub fn is_buffer_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    BUFFER_SUFFIXES.contains(&last)
}

impl ParamSet {
    /// Every named variable, sorted by name. Fails on an empty set, a repeated name, or variables
    /// of mixed dtype or device. Buffers are kept: use [`ParamSet::trainable`] to drop them.
    pub fn new(named: impl IntoIterator<Item = (String, Var)>) -> Result<Self> {
        let mut pairs: Vec<(String, Var)> = named.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if pairs.is_empty() {
            bail!("parameter set: no trainable parameters")
        }
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                bail!("parameter set: the name {:?} appears twice", w[0].0)
            }
        }
        let (first_name, first) = &pairs[0];
        for (name, var) in &pairs[1..] {
            if var.dtype() != first.dtype() {
                bail!(
                    "parameter set: {name:?} is {:?} but {first_name:?} is {:?}; all parameters must share one dtype",
                    var.dtype(),
                    first.dtype()
                )
            }
            if !var.device().same_device(first.device()) {
                bail!("parameter set: {name:?} is on another device than {first_name:?}")
            }
        }
        let (names, vars) = pairs.into_iter().unzip();
        Ok(Self { names, vars, kernels: Kernels::Auto })
    }

    /// The trainable variables of a map such as `VarMap::data()`: buffers
    /// ([`is_buffer_name`]) are left out.
    pub fn trainable(map: &HashMap<String, Var>) -> Result<Self> {
        Self::trainable_by(map, |name| !is_buffer_name(name))
    }

    /// The variables of `map` for which `keep(name)` is true.
    pub fn trainable_by(map: &HashMap<String, Var>, keep: impl Fn(&str) -> bool) -> Result<Self> {
        Self::new(map.iter().filter(|(n, _)| keep(n)).map(|(n, v)| (n.clone(), v.clone())))
    }

    /// Chooses how optimizers built on this set run their element-wise updates.
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// How optimizers built on this set run their element-wise updates.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True for a set without parameters (the constructors refuse one).
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The parameters' names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters, in the order of [`ParamSet::names`].
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The parameters with their names, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.names.iter().map(String::as_str).zip(self.vars.iter())
    }

    /// The parameters' dtype (one for the whole set).
    pub fn dtype(&self) -> DType {
        self.vars[0].dtype()
    }

    /// The parameters' device (one for the whole set).
    pub fn device(&self) -> &Device {
        self.vars[0].device()
    }

    /// Total number of scalar parameters.
    pub fn elem_count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// The gradient of each parameter, in the set's order (`None` where backward produced none).
    pub fn grads(&self, store: &GradStore) -> Vec<Option<Tensor>> {
        self.vars.iter().map(|v| store.get(v.as_tensor()).cloned()).collect()
    }

    /// `sum_p ||p||^2` as a 0-d tensor on the parameters' device.
    pub fn sq_norm(&self) -> Result<Tensor> {
        let detached: Vec<Tensor> = self.vars.iter().map(|v| v.as_detached_tensor()).collect();
        ops::sum_sq(&detached.iter().collect::<Vec<_>>(), self.kernels)
    }

    /// Checks that `grads` lines up with the set (same length; each gradient of its parameter's
    /// shape and dtype) and returns them detached from any autograd graph, so that no optimizer
    /// state ever holds on to a forward pass.
    pub fn checked_grads(&self, who: &str, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        if grads.len() != self.len() {
            bail!("{who}: {} gradients for {} parameters", grads.len(), self.len())
        }
        for ((name, var), g) in self.iter().zip(grads) {
            if let Some(g) = g {
                if g.shape() != var.shape() || g.dtype() != var.dtype() {
                    bail!(
                        "{who}: gradient of {name:?} is {:?} {:?}, the parameter is {:?} {:?}",
                        g.dtype(),
                        g.shape(),
                        var.dtype(),
                        var.shape()
                    )
                }
            }
        }
        Ok(grads.iter().map(|g| g.as_ref().map(Tensor::detach)).collect())
    }
}

/// `sum ||g||^2` over the gradients that exist, as a 0-d tensor (`None` when there is none).
pub fn grad_sq_norm(grads: &[Option<Tensor>], kernels: Kernels) -> Result<Option<Tensor>> {
    let ts: Vec<&Tensor> = grads.iter().flatten().collect();
    if ts.is_empty() {
        return Ok(None);
    }
    ops::sum_sq(&ts, kernels).map(Some)
}

/// Rescales the gradients in place so that their global l2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (factor `min(1, max_norm / (norm + 1e-6))`). Returns the
/// norm before clipping as a 0-d tensor. Runs on the device: no host synchronisation.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<Option<Tensor>> {
    crate::check::positive("clip_grad_norm", &[("max_norm", max_norm)])?;
    let Some(sq) = grad_sq_norm(grads, Kernels::Tensor)? else { return Ok(None) };
    let norm = sq.sqrt()?;
    let factor = ((&norm + 1e-6)?.recip()? * max_norm)?.clamp(0.0, 1.0)?;
    for g in grads.iter_mut().flatten() {
        *g = g.broadcast_mul(&factor)?;
    }
    Ok(Some(norm))
}
