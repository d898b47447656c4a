//! One training step summed across processes, in a few large collectives.
//!
//! Process `r` holds the mean loss `l_r` and gradients `g_r` of its `n_r` samples of a global
//! batch of `m = sum n_r`. The gradients of the global batch's mean loss are
//! `sum_r (n_r / m) g_r`, its loss `sum_r n_r l_r / m`: each process scales its gradients by `n_r`,
//! flattens them into buckets of at most [`BUCKET_ELEMENTS`] values, appends `n_r l_r`, `n_r` and
//! its meters (correct predictions, scored count) to the first bucket, and the buckets are summed
//! across processes; `m` comes back with them, and everything is divided by it on the device. Every
//! process then holds the same gradients and the same loss, so ALI-G's `loss / (|g|^2 + eps)`,
//! the clipping's norm and the non-finite checks agree everywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use alig::Scalar;
use anyhow::{bail, Result};
use candle_core::{DType, Shape, Tensor};

use super::Communicator;
use crate::task::Forward;

/// Values per bucket (16 MiB of f32, PyTorch DDP's 25 MB order): a few collectives per step,
/// each large enough to run at the engine's bandwidth.
pub const BUCKET_ELEMENTS: usize = 1 << 22;

/// The global numbers of a step, on the device: the mean loss over the global batch, and the
/// meters summed over the processes.
pub struct Global {
    pub loss: Tensor,
    pub samples: Tensor,
    pub correct: Scalar,
    pub count: Scalar,
}

/// Values summed with the first bucket: `n_r l_r`, `n_r`, correct, count.
const EXTRAS: usize = 4;

/// Replaces `grads` by the gradients of the global batch's mean loss and returns the global
/// numbers of the step (see the module's text). Calls the communicator once per bucket.
pub fn step(comm: &dyn Communicator, grads: &mut [Option<Tensor>], out: &Forward) -> Result<Global> {
    let present: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].is_some()).collect();
    let Some(&first) = present.first() else { bail!("data-parallel step: the loss has no gradient") };
    let dtype = grads[first].as_ref().map_or(DType::F32, Tensor::dtype);
    let device = out.loss.device().clone();
    let n = out.samples as f64;
    let extras = Tensor::cat(
        &[
            (out.loss.detach().to_dtype(dtype)? * n)?.reshape(1)?,
            scalar(&Scalar::Host(n), dtype, &device)?,
            scalar(&out.correct, dtype, &device)?,
            scalar(&out.count, dtype, &device)?,
        ],
        0,
    )?;
    let buckets = plan(&present, grads);
    let mut global = None;
    for (k, bucket) in buckets.iter().enumerate() {
        let flat: Vec<Tensor> = bucket
            .iter()
            .map(|&i| grads[i].as_ref().expect("present").flatten_all()?.to_dtype(dtype))
            .collect::<candle_core::Result<_>>()?;
        let mut values = (Tensor::cat(&flat, 0)? * n)?;
        drop(flat);
        let elements = values.elem_count();
        if k == 0 {
            values = Tensor::cat(&[values, extras.clone()], 0)?;
        }
        let started = Instant::now();
        let summed = comm.all_reduce(&values)?;
        SPENT_NS.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        BYTES.fetch_add((values.elem_count() * values.dtype().size_in_bytes()) as u64, Ordering::Relaxed);
        if k == 0 {
            global = Some(summed.narrow(0, elements, EXTRAS)?);
        }
        // m, the global batch, rides with the first bucket (see `plan`); every bucket divides by it.
        let m = match &global {
            Some(g) => g.narrow(0, 1, 1)?,
            None => bail!("data-parallel step: the bucket with the batch size was not summed first"),
        };
        let mean = summed.narrow(0, 0, elements)?.broadcast_div(&m)?;
        let mut offset = 0;
        for &i in bucket {
            let g = grads[i].as_ref().expect("present");
            let (len, shape, dt): (usize, Shape, DType) = (g.elem_count(), g.shape().clone(), g.dtype());
            grads[i] = Some(mean.narrow(0, offset, len)?.reshape(shape)?.to_dtype(dt)?);
            offset += len;
        }
    }
    let g = global.expect("the first bucket was summed").to_dtype(out.loss.dtype())?;
    let part = |k: usize| g.narrow(0, k, 1).and_then(|t| t.reshape(()));
    let samples = part(1)?;
    Ok(Global {
        loss: part(0)?.div(&samples)?,
        samples,
        correct: Scalar::Device(part(2)?),
        count: Scalar::Device(part(3)?),
    })
}

static SPENT_NS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Seconds this process has spent in the gradient all-reduce (waiting for the slowest process
/// included) and the bytes it has reduced, since it started.
pub fn spent() -> (f64, u64) {
    (SPENT_NS.load(Ordering::Relaxed) as f64 * 1e-9, BYTES.load(Ordering::Relaxed))
}

/// The buckets: consecutive present gradients, at most [`BUCKET_ELEMENTS`] values each (a larger
/// tensor is a bucket of its own); the last parameters' bucket goes first (it carries the extras:
/// in a backward pass the last layers' gradients are ready first, where an engine overlaps).
fn plan(present: &[usize], grads: &[Option<Tensor>]) -> Vec<Vec<usize>> {
    let mut buckets: Vec<Vec<usize>> = vec![];
    let mut filled = 0;
    for &i in present {
        let len = grads[i].as_ref().map_or(0, Tensor::elem_count);
        match buckets.last_mut() {
            Some(b) if filled + len <= BUCKET_ELEMENTS => {
                b.push(i);
                filled += len;
            }
            _ => {
                buckets.push(vec![i]);
                filled = len;
            }
        }
    }
    buckets.rotate_right(1);
    buckets
}

/// A meter as a one-element tensor of `dtype` on `device`.
fn scalar(s: &Scalar, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    Ok(match s {
        Scalar::Host(v) => Tensor::new(&[*v], &candle_core::Device::Cpu)?.to_dtype(dtype)?.to_device(device)?,
        Scalar::Device(t) => t.detach().to_dtype(dtype)?.reshape(1)?,
    })
}
