//! Dropout with a seeded, per-thread mask generator, so that a training run (and a resumed one)
//! draws the same masks: candle's own dropout draws from an unseeded generator.
//!
//! Each thread holds a `(seed, counter)` pair; every element of every mask is a counter-based
//! draw `splitmix64(seed + counter)`, so the masks depend only on the seed and on the order of
//! the dropout calls since [`reseed`]. A trainer reseeds once per step (from the run's seed and
//! the step number), which makes a resumed run draw what the uninterrupted run drew.

use std::cell::Cell;

use candle_core::{bail, Result, Tensor};

use crate::init::splitmix64;

thread_local! {
    static STATE: Cell<(u64, u64)> = const { Cell::new((0x5eed_d50f, 0)) };
}

/// Restarts this thread's mask stream at `seed`.
pub fn reseed(seed: u64) {
    STATE.with(|s| s.set((splitmix64(seed), 0)));
}

/// Zeroes each element of `x` with probability `p` and scales the rest by `1 / (1 - p)`, as
/// `torch.nn.functional.dropout` in training mode.
pub fn dropout(x: &Tensor, p: f64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        bail!("dropout: p must be in [0, 1), got {p}")
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let n = x.elem_count();
    let (seed, start) = STATE.with(|s| {
        let (seed, counter) = s.get();
        s.set((seed, counter + n as u64));
        (seed, counter)
    });
    // Keep when a uniform 24-bit draw is at least p.
    let threshold = (p * (1u64 << 24) as f64) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..n as u64)
        .map(|i| if splitmix64(seed.wrapping_add(start + i)) >> 40 >= threshold { scale } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn seeded_masks_repeat_and_keep_the_expectation() {
        let x = Tensor::ones(20_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        reseed(7);
        let (a, b) = (dropout(&x, 0.4).unwrap(), dropout(&x, 0.4).unwrap());
        reseed(7);
        let a2 = dropout(&x, 0.4).unwrap();
        let v = |t: &Tensor| t.to_vec1::<f32>().unwrap();
        assert_eq!(v(&a), v(&a2));
        assert_ne!(v(&a), v(&b));
        let kept = v(&a).iter().filter(|&&e| e > 0.0).count() as f64 / 20_000.0;
        assert!((kept - 0.6).abs() < 0.02, "kept {kept}");
        let mean = v(&a).iter().sum::<f32>() / 20_000.0;
        assert!((mean - 1.0).abs() < 0.04, "mean {mean}");
        assert!(dropout(&x, 1.0).is_err());
    }
}
