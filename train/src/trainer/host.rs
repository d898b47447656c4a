//! The one way the trainer reads values from the device. A read drains the device's queue (on a
//! GPU the host waits for every kernel launched so far), so the step loop reads once per step,
//! everything it needs stacked into one small tensor; each read is counted per thread so that a
//! test can hold the loop to that.

use std::cell::Cell;

use candle_core::{DType, Device, Result, Tensor};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// The elements of `t` on the host, in f64 (one device-to-host copy).
pub fn read(t: &Tensor) -> Result<Vec<f64>> {
    READS.with(|r| r.set(r.get() + 1));
    t.flatten_all()?.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// The one element of a single-element tensor on the host.
pub fn read_scalar(t: &Tensor) -> Result<f64> {
    Ok(read(t)?.first().copied().unwrap_or(f64::NAN))
}

/// Reads through [`read`] made by this thread so far.
pub fn reads() -> u64 {
    READS.with(Cell::get)
}
