//! The optimizer trait of the toolkit, its step report and the hyper-parameters of the registry.
//!
//! candle's own `Optimizer` trait cannot carry ALI-G: its step gets no loss and it has no state
//! export. Ours gets both the gradients and the mini-batch loss, as a 0-d tensor on the device, so
//! that a step size such as ALI-G's `min(loss / (|g|^2 + eps), max_lr)` never leaves the device.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

use crate::ops;
use crate::params::ParamSet;
use crate::state::{Core, NamedTensors};

/// A scalar the optimizer reports: known on the host, or a 0-d tensor still on the device.
#[derive(Clone, Debug)]
pub enum Scalar {
    /// A value already on the host.
    Host(f64),
    /// A 0-d tensor on the device (read only when asked).
    Device(Tensor),
}

impl Scalar {
    /// The value on the host (synchronises with the device for [`Scalar::Device`]).
    pub fn to_f64(&self) -> Result<f64> {
        match self {
            Scalar::Host(v) => Ok(*v),
            Scalar::Device(t) => ops::host_f64(t),
        }
    }
}

/// What one step did. The trainer reads it lazily: nothing here forces a device synchronisation.
#[derive(Clone, Debug, Default)]
pub struct StepReport {
    /// The step size actually used: ALI-G's clipped `gamma`, the learning rate of SGD/Adam/...,
    /// DFW's line-search `gamma` in [0, 1], BPGrad's `obj / (|g| + eps)`, L4's `eta_k`.
    pub step_size: Option<Scalar>,
    /// ALI-G only: `loss / (|g|^2 + eps)` before the `max_lr` cap.
    pub step_size_unclipped: Option<Scalar>,
    /// `sum_p ||g_p||^2` of the gradients the step used, where the optimizer computes it (ALI-G).
    pub grad_sq_norm: Option<Scalar>,
    /// Other monitored scalars, named as in the golden files (e.g. `l4_min_loss`,
    /// `norm_before_projection`).
    pub extra: Vec<(&'static str, Scalar)>,
}

impl StepReport {
    /// The report of a step at the learning rate `lr`, known on the host.
    pub fn at_lr(lr: f64) -> Self {
        Self { step_size: Some(Scalar::Host(lr)), ..Default::default() }
    }

    /// The reported scalar named `key` (`step_size`, `step_size_unclipped`, `grad_sq_norm`, or an
    /// [`StepReport::extra`] name), if the step reported it.
    pub fn get(&self, key: &str) -> Option<&Scalar> {
        match key {
            "step_size" => self.step_size.as_ref(),
            "step_size_unclipped" => self.step_size_unclipped.as_ref(),
            "grad_sq_norm" => self.grad_sq_norm.as_ref(),
            _ => self.extra.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
        }
    }
}

/// The accessors every optimizer of this crate writes alike, inside its `impl Optimizer`:
/// `core`/`core_mut` over its `core` field and, given the path of its learning-rate field
/// (`plumbing!(cfg.lr)`), `learning_rate`/`set_learning_rate` over that field. With
/// `per_parameter` (`plumbing!(cfg.lr, per_parameter)`) also the step of an optimizer that
/// updates each parameter on its own: `Self::update(&self.cfg, i, w, g, state)` for every
/// parameter with a gradient, reported at that learning rate.
macro_rules! plumbing {
    () => {
        fn core(&self) -> &$crate::state::Core {
            &self.core
        }

        fn core_mut(&mut self) -> &mut $crate::state::Core {
            &mut self.core
        }
    };
    ($($field:ident).+) => {
        $crate::optimizer::plumbing!();

        fn learning_rate(&self) -> Option<f64> {
            Some(self.$($field).+)
        }

        fn set_learning_rate(&mut self, lr: f64) {
            self.$($field).+ = lr;
        }
    };
    ($($field:ident).+, per_parameter) => {
        $crate::optimizer::plumbing!($($field).+);

        fn step_with(
            &mut self,
            _loss: &candle_core::Tensor,
            grads: &[Option<candle_core::Tensor>],
        ) -> candle_core::Result<$crate::optimizer::StepReport> {
            let c = &self.cfg;
            self.core.each_grad(grads, |i, w, g, state| Self::update(c, i, w, g, state))?;
            Ok($crate::optimizer::StepReport::at_lr(self.$($field).+))
        }
    };
}
pub(crate) use plumbing;

/// An optimizer over a [`ParamSet`].
///
/// An implementation holds a [`Core`] (its name, parameters and declared state) and writes the
/// step and the learning rate; the name, the parameters, the state export and its strict import
/// come from the core.
pub trait Optimizer: Send {
    /// The name, parameters and state of this optimizer.
    fn core(&self) -> &Core;

    /// The same, to update or restore.
    fn core_mut(&mut self) -> &mut Core;

    /// The registry name (`alig`, `sgd`, ...): the prefix of its state entries.
    fn name(&self) -> &'static str {
        self.core().name
    }

    /// The parameters this optimizer updates, sorted by name.
    fn params(&self) -> &ParamSet {
        &self.core().params
    }

    /// One step from the mini-batch `loss` (0-d tensor, unregularised data loss of the forward pass
    /// that produced the gradients) and `grads[i]`, the gradient of `params().vars()[i]` (`None`:
    /// the parameter is skipped, as PyTorch skips `p.grad is None`).
    fn step_with(&mut self, loss: &Tensor, grads: &[Option<Tensor>]) -> Result<StepReport>;

    /// One step as [`Optimizer::step_with`], given `sq_norm`: the 0-d tensor `sum_p ||g_p||^2` of
    /// these gradients, already computed by the caller (gradient clipping and a trainer's
    /// finiteness check compute it). An optimizer whose step needs that sum (ALI-G) uses it
    /// instead of reading the gradients once more; the others ignore it.
    fn step_with_sq_norm(&mut self, loss: &Tensor, grads: &[Option<Tensor>], sq_norm: &Tensor) -> Result<StepReport> {
        let _ = sq_norm;
        self.step_with(loss, grads)
    }

    /// One step with the gradients of a `GradStore` (what `loss.backward()` returns).
    fn step(&mut self, loss: &Tensor, grads: &GradStore) -> Result<StepReport> {
        let grads = self.params().grads(grads);
        self.step_with(loss, &grads)
    }

    /// The backward pass of `loss` and one step with its gradients, in one call (as candle-nn's
    /// `Optimizer::backward_step`): `loss` is both what is differentiated and the mini-batch loss
    /// the step reads (ALI-G's step size, DFW's, BPGrad's and L4's).
    fn backward_step(&mut self, loss: &Tensor) -> Result<StepReport> {
        let grads = loss.backward()?;
        self.step(loss, &grads)
    }

    /// The learning rate the schedules scale: `lr`, ALI-G's `max_lr`, DFW/BPGrad's `eta`, L4's
    /// `fraction`. `None` for ALI-G without `max_lr`.
    fn learning_rate(&self) -> Option<f64>;

    /// Sets the learning rate returned by [`Optimizer::learning_rate`].
    fn set_learning_rate(&mut self, lr: f64);

    /// The whole state (every buffer and counter) as named tensors, copies that later steps leave
    /// untouched.
    fn state(&self) -> Result<NamedTensors> {
        let core = self.core();
        core.state.export(core.name, &core.params)
    }

    /// Restores a state exported by [`Optimizer::state`] of the same optimizer over the same
    /// parameters. Strict: a missing, misshapen or unexpected `<opt>.` entry is an error naming it,
    /// and the optimizer is left unchanged on error.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let core = self.core();
        let loaded = core.state.import(core.name, &core.params, state)?;
        self.core_mut().state = loaded;
        Ok(())
    }
}

/// The hyper-parameters the registry builds optimizers from; each optimizer reads the fields it
/// uses (its registry row lists them) and documents the rest as ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// `lr` of SGD/Adam/AMSGrad/Adagrad/AdamW/Yogi, ALI-G's maximal learning rate `max_lr` (`None`:
    /// unclipped Polyak step), the proximal coefficient `eta` of DFW and BPGrad. L4 ignores it,
    /// exactly as the paper's experiments did (see `fraction`).
    pub lr: Option<f64>,
    /// `mu`: ALI-G/DFW/BPGrad momentum, SGD momentum (Nesterov when `nesterov`).
    pub momentum: f64,
    /// `lambda`: coupled l2 weight decay (SGD, Adam, Adagrad, Yogi, DFW, BPGrad, L4), decoupled
    /// (AdamW). ALI-G has none: its regularisation is the l2-ball constraint `max_norm`.
    pub weight_decay: f64,
    /// ALI-G: radius `r` of the l2 ball the parameters are projected onto (`None`: no projection).
    pub max_norm: Option<f64>,
    /// The optimizer's small constant; `None` keeps the reference default.
    pub eps: Option<f64>,
    /// `(beta1, beta2)` of Adam/AMSGrad/AdamW/Yogi; `None` keeps `(0.9, 0.999)`.
    pub betas: Option<(f64, f64)>,
    /// SGD: Nesterov momentum; `None` = on when `momentum > 0`, as the paper's experiments.
    pub nesterov: Option<bool>,
    /// ALI-G: the "adjusted" momentum form instead of the "standard" one of the experiments.
    pub adjusted_momentum: bool,
    /// L4: the fraction `alpha` of the predicted loss decrease; `None` keeps 0.15.
    pub fraction: Option<f64>,
    /// Adagrad: the value its sum of squares starts at; `None` keeps torch's 0 (TensorFlow 1's
    /// `AdagradOptimizer`, used by the DNC experiment, starts at 0.1).
    pub initial_accumulator: Option<f64>,
}

impl Default for Hyper {
    fn default() -> Self {
        Self {
            lr: None,
            momentum: 0.0,
            weight_decay: 0.0,
            max_norm: None,
            eps: None,
            betas: None,
            nesterov: None,
            adjusted_momentum: false,
            fraction: None,
            initial_accumulator: None,
        }
    }
}
