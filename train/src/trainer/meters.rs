//! Running sums of an epoch's scalars (loss, correct predictions, step sizes), kept where the
//! values are: a scalar still on the device is added on the device, a host scalar on the host, and
//! the device parts are read together, in one read, only when asked.

use alig::Scalar;
use candle_core::{DType, Device, Result, Tensor};

/// `N` running sums, each part host and part device.
pub struct Sums<const N: usize> {
    host: [f64; N],
    device: [Option<Tensor>; N],
    dtype: DType,
}

impl<const N: usize> Sums<N> {
    /// Zero sums for scalars of `device`: accumulated in f64 where the device has it (Metal has
    /// not: f32 there), so that an f64 run logs f64 numbers.
    pub fn new(device: &Device) -> Self {
        let dtype = if device.is_metal() { DType::F32 } else { DType::F64 };
        Self { host: [0.0; N], device: std::array::from_fn(|_| None), dtype }
    }

    /// Adds `v` to sum `k`, without reading the device.
    pub fn add(&mut self, k: usize, v: &Scalar) -> Result<()> {
        match v {
            Scalar::Host(x) => self.host[k] += x,
            Scalar::Device(t) => self.add_tensor(k, t)?,
        }
        Ok(())
    }

    /// Adds the single-element tensor `t` to sum `k`, on its device.
    pub fn add_tensor(&mut self, k: usize, t: &Tensor) -> Result<()> {
        self.add_scaled(k, t, 1.0)
    }

    /// Adds `factor * t` (a single-element tensor, converted to the sums' dtype first) to sum `k`.
    pub fn add_scaled(&mut self, k: usize, t: &Tensor, factor: f64) -> Result<()> {
        let mut t = t.detach().reshape(())?.to_dtype(self.dtype)?;
        if factor != 1.0 {
            t = (t * factor)?;
        }
        self.device[k] = Some(match self.device[k].take() {
            Some(acc) => (acc + t)?,
            None => t,
        });
        Ok(())
    }

    /// The device parts as one tensor `[M]` (`M <= N`: the sums that have one), after `first`
    /// (values that ride along in the same read), converted to the sums' dtype.
    pub fn stacked(&self, first: &[&Tensor]) -> Result<Option<Tensor>> {
        let mut parts: Vec<Tensor> = first.iter().map(|t| t.reshape(1)?.to_dtype(self.dtype)).collect::<Result<_>>()?;
        parts.extend(self.device.iter().flatten().map(|t| t.reshape(1)).collect::<Result<Vec<_>>>()?);
        if parts.is_empty() {
            return Ok(None);
        }
        Tensor::cat(&parts, 0).map(Some)
    }

    /// The sums, given `read`: the host values of [`Sums::stacked`] after its `skip` leading values.
    pub fn values(&self, read: &[f64], skip: usize) -> [f64; N] {
        let mut out = self.host;
        let mut it = read.iter().skip(skip);
        for (k, d) in self.device.iter().enumerate() {
            if d.is_some() {
                out[k] += it.next().copied().unwrap_or(f64::NAN);
            }
        }
        out
    }

    /// The sums, in one read of the device parts (none when every part is on the host).
    pub fn read(&self) -> Result<[f64; N]> {
        match self.stacked(&[])? {
            Some(t) => Ok(self.values(&super::host::read(&t)?, 0)),
            None => Ok(self.host),
        }
    }
}

/// `a + b`: on the host when both are, else on the device (in the device value's dtype).
pub fn plus(a: &Scalar, b: &Scalar) -> Result<Scalar> {
    Ok(match (a, b) {
        (Scalar::Host(x), Scalar::Host(y)) => Scalar::Host(x + y),
        (Scalar::Device(t), Scalar::Host(v)) | (Scalar::Host(v), Scalar::Device(t)) => {
            Scalar::Device(t.affine(1.0, *v)?)
        }
        (Scalar::Device(t), Scalar::Device(u)) => Scalar::Device((t + u.to_dtype(t.dtype())?)?),
    })
}

/// Two micro-batches' forward passes as one: losses (already weighted by their shares), correct
/// predictions, counts and samples added.
pub fn merged(a: crate::task::Forward, b: crate::task::Forward) -> Result<crate::task::Forward> {
    Ok(crate::task::Forward {
        loss: (a.loss + b.loss)?,
        correct: plus(&a.correct, &b.correct)?,
        count: plus(&a.count, &b.count)?,
        samples: a.samples + b.samples,
    })
}

/// Gradients added parameter by parameter (a parameter without a gradient in one keeps the other's).
pub fn added(a: Vec<Option<Tensor>>, b: Vec<Option<Tensor>>) -> Result<Vec<Option<Tensor>>> {
    a.into_iter()
        .zip(b)
        .map(|pair| match pair {
            (Some(x), Some(y)) => (x + y).map(Some),
            (x, y) => Ok(x.or(y)),
        })
        .collect()
}
