//! BatchNorm2d in training and evaluation mode, with PyTorch's state (`weight`, `bias`,
//! `running_mean`, `running_var`, `num_batches_tracked`), momentum 0.1 and eps 1e-5 as
//! `torch.nn.BatchNorm2d`. On the CPU in f32, training mode runs the fused op of
//! [`crate::ops::batch_norm`]; elsewhere, and in evaluation mode, candle-nn's `BatchNorm` (same
//! definition, including the unbiased `n / (n - 1)` factor of the running variance).
//!
//! **Half precision.** Built from a bf16/f16 [`VarBuilder`], the layer keeps its weights and
//! running statistics in f32 and normalises in f32: a half-precision input is widened, normalised
//! and narrowed back (as PyTorch's autocast keeps batch norm in f32), so the statistics are never
//! rounded to 8 or 11 bits.
//!
//! **Synchronised BatchNorm** (data-parallel training, `--sync-bn`): once
//! [`set_cross_replica_sum`] is given the run's communicator, training mode computes the batch
//! statistics over the samples of *every* process: the per-channel sums (and the count) are
//! summed across processes, then the centred sums of squares; the backward pass sums the
//! gradients of those two reductions across processes again ([`sum_across_replicas`] is its own
//! adjoint). N processes then compute what one process computes on the whole batch. The
//! statistics are computed in f64, with candle's ops (on any device; the sums go through the host).

use std::sync::{Arc, RwLock};

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, ModuleT, Result, Shape, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder};

use crate::ops::batch_norm::{batch_norm_train, BatchStats};

/// PyTorch's default eps.
pub(crate) const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

/// PyTorch's `BatchNorm2d` (eps 1e-5, momentum 0.1) with its state-dict names: `weight`,
/// `bias`, `running_mean`, `running_var`, `num_batches_tracked`. Input and output `[N, C, H, W]`;
/// in a half-precision model it keeps f32 weights and statistics and normalises in f32.
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
    /// A layer over `channels` channels, its tensors made (or loaded) under `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let vb = if is_half(vb.dtype()) { vb.set_dtype(DType::F32) } else { vb };
        let cfg = BatchNormConfig { eps: EPS, remove_mean: true, affine: true, momentum: MOMENTUM };
        let inner = candle_nn::batch_norm(channels, cfg, vb.clone())?;
        let nbt =
            vb.get_with_hints_dtype((), alig::params::NUM_BATCHES_TRACKED, candle_nn::Init::Const(0.0), DType::I64)?;
        let (weight, bias) = inner.weight_and_bias().map(|(w, b)| (w.clone(), b.clone())).expect("affine batch norm");
        // The same variables as `inner`'s (a variable's `Var::from_tensor` shares its storage).
        let running_mean = Var::from_tensor(inner.running_mean())?;
        let running_var = Var::from_tensor(inner.running_var())?;
        Ok(Self { inner, weight, bias, running_mean, running_var, num_batches_tracked: Var::from_tensor(&nbt)? })
    }

    /// Batch statistics and a running-statistics update when `train`, running statistics otherwise.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_maybe_relu(x, train, false)
    }

    /// `relu(self.forward_t(x, train))`; in training on the CPU one fused op (see
    /// [`crate::ops::batch_norm`]).
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_maybe_relu(x, train, true)
    }

    fn forward_maybe_relu(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let unfused = |y: Tensor| if relu { crate::ops::relu(&y) } else { Ok(y) };
        if x.dtype() != self.weight.dtype() && is_half(x.dtype()) {
            return self.forward_maybe_relu(&x.to_dtype(self.weight.dtype())?, train, relu)?.to_dtype(x.dtype());
        }
        if !train {
            return unfused(self.inner.forward_t(x, false)?);
        }
        if self.fusable(x, train) {
            let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, EPS, relu)?;
            self.record(stats)?;
            return Ok(y);
        }
        self.count_batch()?;
        if let Some(sum) = cross_replica_sum() {
            return unfused(self.forward_synchronised(x, &sum)?);
        }
        unfused(self.inner.forward_t(x, true)?)
    }

    /// Whether training mode on `x` runs the CPU's fused kernels ([`crate::ops::batch_norm`]):
    /// an f32 `[N, C, H, W]` CPU tensor and f32 weights, the custom ops on, statistics of this
    /// process only. Then the caller runs them (here or inside a fused chain of layers,
    /// [`crate::ops::chain`]) and hands the batch statistics to [`Self::record`].
    pub(crate) fn fusable(&self, x: &Tensor, train: bool) -> bool {
        train
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
            && x.rank() == 4
            && crate::ops::custom_ops()
            && cross_replica_sum().is_none()
    }

    /// The affine weights, `(weight, bias)`.
    pub(crate) fn weight_and_bias(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    /// The number of channels.
    pub(crate) fn channels(&self) -> usize {
        self.weight.dim(0).unwrap_or(0)
    }

    fn count_batch(&self) -> Result<()> {
        let n = self.num_batches_tracked.as_tensor();
        self.num_batches_tracked.set(&(n + 1.0)?)
    }

    /// Counts a training batch and moves the running statistics towards its statistics `stats`
    /// (PyTorch's rule: the running variance takes the unbiased estimate).
    pub(crate) fn record(&self, stats: BatchStats) -> Result<()> {
        self.count_batch()?;
        let count = stats.count as f64;
        let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        let update = |var: &Var, batch: Vec<f64>| -> Result<()> {
            let batch = Tensor::from_vec(batch, var.dims(), var.device())?.to_dtype(var.dtype())?;
            var.set(&((var.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?)
        };
        update(&self.running_mean, stats.mean)?;
        update(&self.running_var, stats.var.iter().map(|v| v * unbiased).collect())
    }
}

impl BatchNorm2d {
    /// Training mode with the statistics of every process's batch (see the module's text).
    fn forward_synchronised(&self, x: &Tensor, sum: &Arc<dyn CrossReplicaSum>) -> Result<Tensor> {
        let c = x.dim(1)?;
        let channels = |t: &Tensor| t.reshape((1, c, 1, 1));
        let x64 = x.to_dtype(DType::F64)?;
        let local_count = Tensor::new(&[(x.elem_count() / c) as f64], x.device())?;
        let sums = sum_across_replicas(&Tensor::cat(&[x64.sum((0, 2, 3))?, local_count], 0)?, sum)?;
        let count = sums.narrow(0, c, 1)?;
        let mean = sums.narrow(0, 0, c)?.broadcast_div(&count)?;
        let centred = x64.broadcast_sub(&channels(&mean)?)?;
        let var = sum_across_replicas(&centred.sqr()?.sum((0, 2, 3))?, sum)?.broadcast_div(&count)?;
        let (gamma, beta) = (self.weight.to_dtype(DType::F64)?, self.bias.to_dtype(DType::F64)?);
        let scale = ((var.clone() + EPS)?.sqrt()?.recip()? * gamma)?;
        let y = centred.broadcast_mul(&channels(&scale)?)?.broadcast_add(&channels(&beta)?)?;
        let unbiased = count.broadcast_div(&(count.clone() - 1.0)?.maximum(1.0)?)?;
        let update = |var: &Var, batch: Tensor| -> Result<()> {
            let batch = batch.detach().to_dtype(var.dtype())?;
            var.set(&((var.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?)
        };
        update(&self.running_mean, mean)?;
        update(&self.running_var, var.broadcast_mul(&unbiased)?)?;
        y.to_dtype(x.dtype())
    }
}

/// Sums buffers over the processes of a data-parallel run: what synchronised BatchNorm needs of
/// the run's communicator (implemented in `train`).
pub trait CrossReplicaSum: Send + Sync {
    /// Sums `buf` over all processes, in place (every process calls it, in the same order).
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()>;
}

static CROSS_REPLICA_SUM: RwLock<Option<Arc<dyn CrossReplicaSum>>> = RwLock::new(None);

/// Makes every BatchNorm of this process compute its training statistics across processes
/// through `sum` (`None`: per-process statistics, the default).
pub fn set_cross_replica_sum(sum: Option<Arc<dyn CrossReplicaSum>>) {
    *CROSS_REPLICA_SUM.write().unwrap_or_else(|p| p.into_inner()) = sum;
}

fn cross_replica_sum() -> Option<Arc<dyn CrossReplicaSum>> {
    CROSS_REPLICA_SUM.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `t` summed over the processes, differentiably: the gradient of a sum that every process
/// holds is the sum of the processes' gradients, so the backward pass is the same collective.
pub fn sum_across_replicas(t: &Tensor, sum: &Arc<dyn CrossReplicaSum>) -> Result<Tensor> {
    let host = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.contiguous()?;
    host.apply_op1(SumAcrossReplicas(sum.clone()))?.to_dtype(t.dtype())?.to_device(t.device())
}

struct SumAcrossReplicas(Arc<dyn CrossReplicaSum>);

impl CustomOp1 for SumAcrossReplicas {
    fn name(&self) -> &'static str {
        "sum-across-replicas"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F64(v), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("sum-across-replicas: expected a contiguous f64 tensor")
        };
        let mut buf = v[start..end].to_vec();
        self.0.sum_f64(&mut buf)?;
        Ok((CpuStorage::F64(buf), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        sum_across_replicas(grad, &self.0).map(Some)
    }
}

/// bf16 or f16: kept in f32 by this layer.
fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

impl Module for BatchNorm2d {
    /// Evaluation mode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}
