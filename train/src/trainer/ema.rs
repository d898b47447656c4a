//! An exponential moving average of the weights (timm's `ModelEmaV2`): after every optimizer step
//! `ema = decay * ema + (1 - decay) * w` for each floating tensor of the state dict, BatchNorm's
//! running statistics included; integer buffers (`num_batches_tracked`) are copied. It starts
//! from the weights of step 0 and holds the f32 values of a mixed-precision run (its master
//! weights'), in tensors of its own on the model's device.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

/// The averaged weights.
pub struct Ema {
    pub decay: f64,
    tensors: Vec<(String, Tensor)>,
}

impl Ema {
    /// An average starting at `state` (copied).
    pub fn new(decay: f64, state: &[(String, Tensor)]) -> Result<Self> {
        let tensors = state.iter().map(|(k, t)| Ok((k.clone(), t.copy()?))).collect::<Result<_>>()?;
        Ok(Self { decay, tensors })
    }

    /// One step of the average towards `state` (the same names, in the same order).
    pub fn update(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if state.len() != self.tensors.len() {
            bail!("EMA: {} tensors against the model's {}", self.tensors.len(), state.len())
        }
        for ((name, e), (k, w)) in self.tensors.iter_mut().zip(state) {
            if name != k {
                bail!("EMA: tensor {name} against the model's {k}")
            }
            let w = w.detach().to_dtype(e.dtype())?;
            *e = match e.dtype().is_float() {
                true => (e.affine(self.decay, 0.0)? + w.affine(1.0 - self.decay, 0.0)?)?,
                // A copy: the average must not share the variable's storage (it is loaded back
                // into the variable to evaluate it).
                false => w.copy()?,
            };
        }
        Ok(())
    }

    /// The averaged tensors, sorted by name (as the state dict).
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// Replaces the average with a checkpoint's `ema.safetensors` (every name, no other).
    pub fn load(&mut self, mut saved: HashMap<String, Tensor>) -> Result<()> {
        for (name, e) in self.tensors.iter_mut() {
            let t = saved.remove(name.as_str()).with_context(|| format!("no tensor {name}"))?;
            *e = t.to_dtype(e.dtype())?.to_device(e.device())?;
        }
        if let Some(extra) = saved.keys().next() {
            bail!("unexpected tensor {extra}")
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// After k updates from w0 towards w1..wk: `d^k w0 + (1 - d) sum_i d^(k - i) w_i`.
    #[test]
    fn the_average_has_its_closed_form() {
        let dev = Device::Cpu;
        let w = |v: f64| vec![("a".to_string(), Tensor::new(&[v, 2.0 * v], &dev).unwrap())];
        let count = |n: i64| ("n".to_string(), Tensor::new(&[n], &dev).unwrap());
        let mut start = w(1.0);
        start.push(count(0));
        let d = 0.9;
        let mut ema = Ema::new(d, &start).unwrap();
        let steps = [3.0, -1.0, 0.5, 4.0];
        for (i, v) in steps.iter().enumerate() {
            let mut s = w(*v);
            s.push(count(i as i64 + 1));
            ema.update(&s).unwrap();
        }
        let k = steps.len() as i32;
        let want =
            d.powi(k) + (1.0 - d) * steps.iter().enumerate().map(|(i, v)| d.powi(k - 1 - i as i32) * v).sum::<f64>();
        let got = ema.tensors()[0].1.to_vec1::<f64>().unwrap();
        assert!((got[0] - want).abs() < 1e-15 && (got[1] - 2.0 * want).abs() < 1e-15, "{got:?} against {want}");
        assert_eq!(ema.tensors()[1].1.to_vec1::<i64>().unwrap(), [4]);
        // The start was copied: the average does not alias the weights it started from.
        assert_eq!(start[0].1.to_vec1::<f64>().unwrap(), [1.0, 2.0]);
        let saved: HashMap<String, Tensor> =
            [("a".to_string(), Tensor::zeros(2, DType::F32, &dev).unwrap()), count(9)].into_iter().collect();
        ema.load(saved).unwrap();
        assert_eq!(ema.tensors()[0].1.dtype(), DType::F64);
        assert!(ema.load(HashMap::new()).unwrap_err().to_string().contains("no tensor a"));
    }
}
