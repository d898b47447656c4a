//! Custom ops candle lacks or gets wrong for training (see `shared/spec/candle-cpu.md`).

pub mod batch_norm;
pub mod chain;
pub mod conv;
pub mod cumprod;
pub mod gemm;
pub mod linear;
pub mod lstm;
pub mod malloc;
pub mod maxpool;
#[cfg(feature = "onednn")]
pub mod onednn;
pub mod relu;
pub mod threads;

pub use conv::{conv2d, conv2d_no_bias, Conv2d};
pub use cumprod::exclusive_cumprod;
pub use linear::linear;
pub use lstm::lstm_bidirectional;
pub use malloc::keep_freed_memory;
pub use maxpool::{max_pool2d, max_pool2d_composite};
pub use relu::relu;
pub use threads::cache_thread_count;

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{bail, CpuStorage, Layout, Result, Tensor, WithDType};

/// A process-wide on/off switch, on unless its environment variable is `0` (read on first use)
/// or it is set otherwise.
pub(crate) struct Switch {
    /// 0: not decided yet (read `var`), 1: on, 2: off.
    state: AtomicU8,
    var: &'static str,
}

impl Switch {
    pub(crate) const fn new(var: &'static str) -> Self {
        Self { state: AtomicU8::new(0), var }
    }

    pub(crate) fn set(&self, on: bool) {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            0 => {
                let on = std::env::var(self.var).map_or(true, |v| v != "0");
                self.set(on);
                on
            }
            v => v == 1,
        }
    }
}

static CUSTOM_OPS: Switch = Switch::new("ZOO_CUSTOM_OPS");

/// Turns the zoo's CPU custom ops on or off: convolutions, training BatchNorm, linear layers, the
/// LSTM recurrence, ReLU, max pooling, the cumulative product, the DNC's fused step and the fused
/// residual units ([`chain`]). Off, the CPU runs candle's own ops, the code path CUDA and Metal take
/// (for `train check` and comparisons; default on, or `ZOO_CUSTOM_OPS=0` in the environment).
pub fn set_custom_ops(on: bool) {
    CUSTOM_OPS.set(on)
}

/// Whether the CPU custom ops are on.
pub fn custom_ops() -> bool {
    CUSTOM_OPS.get()
}

static CHAINS: Switch = Switch::new("ZOO_CHAINS");

/// Turns the fused residual units on or off ([`chain`]): on (the default, or unless `ZOO_CHAINS=0`
/// in the environment), a WRN unit, a ResNet block or stem trains on the CPU as one op; off, its
/// layers run one by one through the single-layer custom ops (the same kernels, the same results
/// bit for bit, more memory traffic).
pub fn set_chains(on: bool) {
    CHAINS.set(on)
}

/// Whether the fused residual units are on (and the custom ops, which they are made of).
pub fn chains() -> bool {
    CHAINS.get() && custom_ops()
}

/// The elements of a contiguous CPU storage as `T`, for the custom ops' forward passes; the error
/// names the op.
pub(crate) fn contiguous_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => {
            let all = T::cpu_storage_as_slice(s).map_err(|e| candle_core::Error::Msg(format!("{op}: {e}")))?;
            Ok(&all[a..b])
        }
        None => bail!("{op}: input must be contiguous"),
    }
}

/// [`contiguous_slice`] of each operand of the op `op`.
pub(crate) fn contiguous_slices<'a, T: WithDType, const N: usize>(
    op: &str,
    operands: [(&'a CpuStorage, &Layout); N],
) -> Result<[&'a [T]; N]> {
    let mut slices = [&[][..]; N];
    for (slice, (s, l)) in slices.iter_mut().zip(operands) {
        *slice = contiguous_slice(s, l, op)?;
    }
    Ok(slices)
}

/// A vector of `len` f32 filled by `fill(k, chunk)` over its consecutive `chunk`-long pieces in
/// parallel (the last may be shorter), without zero-filling it first: `vec![0.0; len]` is a serial
/// pass over memory that the kernels overwrite anyway.
///
/// # Safety
///
/// `fill` must write every element of the piece it is given.
pub(crate) unsafe fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(k, piece)| fill(k, piece));
    // SAFETY: the caller's `fill` wrote each of the `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Locks a custom op's cache, a poisoned lock becoming an error that names `what`.
pub(crate) fn lock<'a, T>(m: &'a std::sync::Mutex<T>, what: &str) -> Result<std::sync::MutexGuard<'a, T>> {
    m.lock().map_err(|_| candle_core::Error::Msg(format!("{what} poisoned")))
}

/// Calls `f` with the elements of f32 CPU tensors, borrowed from their storage (a tensor that is
/// not contiguous is made so first): a backward pass reads its inputs without copying them to
/// host vectors. The storages stay read-locked while `f` runs.
pub(crate) fn with_host_f32<const N: usize, R>(
    ts: [&Tensor; N],
    op: &str,
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let owned: Vec<Tensor> = ts.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = [&[][..]; N];
    for (slice, (storage, layout)) in slices.iter_mut().zip(&guards) {
        let candle_core::Storage::Cpu(cpu) = &**storage else { bail!("{op}: not a CPU tensor") };
        *slice = contiguous_slice(cpu, layout, op)?;
    }
    f(slices)
}
