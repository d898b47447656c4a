//! BatchNorm2d in training and evaluation mode, with PyTorch's state (`weight`, `bias`,
//! `running_mean`, `running_var`, `num_batches_tracked`), momentum 0.1 and eps 1e-5 as
//! `torch.nn.BatchNorm2d`. On the CPU in f32, training mode runs the fused op of
//! [`crate::ops::batch_norm`]; elsewhere, and in evaluation mode, candle-nn's `BatchNorm` (same
//! definition, including the unbiased `n / (n - 1)` factor of the running variance).

use candle_core::{DType, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder};

use crate::ops::batch_norm::batch_norm_train;

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    inner: candle_nn::BatchNorm,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = BatchNormConfig { eps: EPS, remove_mean: true, affine: true, momentum: MOMENTUM };
        let inner = candle_nn::batch_norm(channels, cfg, vb.clone())?;
        let nbt = vb.get_with_hints_dtype((), "num_batches_tracked", candle_nn::Init::Const(0.0), DType::I64)?;
        let (weight, bias) = inner.weight_and_bias().map(|(w, b)| (w.clone(), b.clone())).expect("affine batch norm");
        // The same variables as `inner`'s (a variable's `Var::from_tensor` shares its storage).
        let running_mean = Var::from_tensor(inner.running_mean())?;
        let running_var = Var::from_tensor(inner.running_var())?;
        Ok(Self { inner, weight, bias, running_mean, running_var, num_batches_tracked: Var::from_tensor(&nbt)? })
    }

    /// Batch statistics and a running-statistics update when `train`, running statistics otherwise.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return self.inner.forward_t(x, false);
        }
        let n = self.num_batches_tracked.as_tensor();
        self.num_batches_tracked.set(&(n + 1.0)?)?;
        let fused = x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
            && x.rank() == 4
            && crate::ops::custom_ops();
        if !fused {
            return self.inner.forward_t(x, true);
        }
        let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, EPS)?;
        let (b, _, h, w) = x.dims4()?;
        let count = (b * h * w) as f64;
        let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        let update = |var: &Var, batch: Vec<f64>| -> Result<()> {
            let batch = Tensor::from_vec(batch, var.dims(), var.device())?.to_dtype(var.dtype())?;
            var.set(&((var.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?)
        };
        update(&self.running_mean, stats.mean)?;
        update(&self.running_var, stats.var.iter().map(|v| v * unbiased).collect())?;
        Ok(y)
    }
}

impl Module for BatchNorm2d {
    /// Evaluation mode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}
