//! BatchNorm2d in training and evaluation mode, with PyTorch's state: candle-nn's `BatchNorm`
//! (batch statistics and running-statistics update in train mode, matching
//! `torch.nn.BatchNorm2d` with momentum 0.1 and eps 1e-5) plus the `num_batches_tracked` counter.

use candle_core::{DType, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder};

/// `weight`, `bias`, `running_mean`, `running_var` and `num_batches_tracked` (i64, `[]`).
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    inner: candle_nn::BatchNorm,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
        let inner = candle_nn::batch_norm(channels, cfg, vb.clone())?;
        let nbt = vb.get_with_hints_dtype((), "num_batches_tracked", candle_nn::Init::Const(0.0), DType::I64)?;
        Ok(Self { inner, num_batches_tracked: Var::from_tensor(&nbt)? })
    }

    /// Batch statistics and a running-statistics update when `train`, running statistics otherwise.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let n = self.num_batches_tracked.as_tensor();
            self.num_batches_tracked.set(&(n + 1.0)?)?;
        }
        self.inner.forward_t(x, train)
    }
}

impl Module for BatchNorm2d {
    /// Evaluation mode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}
