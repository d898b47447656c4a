//! The DNC repeat-copy task (deepmind/dnc `dnc/repeat_copy.py`, as the ALI-G paper's fork
//! lberrada/dnc runs it), generated from a seed.
//!
//! Per batch element: a length `L` in `min_length..=max_length`, a repeat count `R` in
//! `min_repeats..=max_repeats` and a pattern of `L x num_bits` fair bits. With `T_b = L (R + 1) + 3`
//! and the batch length `T = max_b T_b` (shorter elements zero-padded at the end), time-major:
//!
//! - observation `[T, B, num_bits + 2]`: start flag (channel `num_bits`) at `t = 0`; the pattern
//!   at `t = 1..=L`; the repeat channel (`num_bits + 1`) = `R / norm_max` at `t = L + 1`;
//! - target `[T, B, num_bits + 1]`: the pattern `R` times from `t = L + 2`, then the end marker
//!   (channel `num_bits`) at `t = L + 2 + R L`;
//! - mask `[T, B]`: 1 for `t` in `L + 2 ..= L + 2 + R L`.

use candle_core::{bail, Device, Result, Tensor};

use crate::rng::Rng;

/// The task's parameters. `Default` is what the paper's DNC runs used.
#[derive(Clone, Debug, PartialEq)]
pub struct RepeatCopyConfig {
    /// Bits per pattern row.
    pub num_bits: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// The shortest pattern, in rows.
    pub min_length: usize,
    /// The longest pattern, in rows.
    pub max_length: usize,
    /// The fewest repeats asked for.
    pub min_repeats: usize,
    /// The most repeats asked for.
    pub max_repeats: usize,
    /// The repeat count is given to the model as `R / norm_max`.
    pub norm_max: f32,
}

impl Default for RepeatCopyConfig {
    fn default() -> Self {
        Self {
            num_bits: 4,
            batch_size: 16,
            min_length: 1,
            max_length: 2,
            min_repeats: 1,
            max_repeats: 2,
            norm_max: 10.0,
        }
    }
}

/// One batch: `obs [T, B, bits + 2]`, `target [T, B, bits + 1]`, `mask [T, B]`, all f32.
#[derive(Clone, Debug)]
pub struct RepeatCopyBatch {
    /// The observations `[T, B, bits + 2]`.
    pub obs: Tensor,
    /// The targets `[T, B, bits + 1]`.
    pub target: Tensor,
    /// 1 on the steps that are scored, `[T, B]`.
    pub mask: Tensor,
}

impl RepeatCopyConfig {
    /// Fails on a zero size, `min > max`, or a non-positive `norm_max`.
    pub fn validate(&self) -> Result<()> {
        if self.num_bits == 0 || self.batch_size == 0 || self.min_length == 0 || self.min_repeats == 0 {
            bail!("repeat-copy: num_bits, batch_size, min_length and min_repeats must be positive")
        }
        if self.min_length > self.max_length || self.min_repeats > self.max_repeats {
            bail!("repeat-copy: min_length <= max_length and min_repeats <= max_repeats are required")
        }
        if !self.norm_max.is_finite() || self.norm_max <= 0.0 {
            bail!("repeat-copy: norm_max must be positive")
        }
        Ok(())
    }

    /// Batch number `index` of the stream `seed` (the same pair gives the same batch).
    pub fn batch(&self, seed: u64, index: u64, dev: &Device) -> Result<RepeatCopyBatch> {
        self.validate()?;
        let mut rng = Rng::new(seed, index);
        let (bits, b) = (self.num_bits, self.batch_size);
        let draws: Vec<(usize, usize, Vec<f32>)> = (0..b)
            .map(|_| {
                let l = self.min_length + rng.below((self.max_length - self.min_length + 1) as u64) as usize;
                let r = self.min_repeats + rng.below((self.max_repeats - self.min_repeats + 1) as u64) as usize;
                let pattern = (0..l * bits).map(|_| rng.coin() as u8 as f32).collect();
                (l, r, pattern)
            })
            .collect();
        let t_max = draws.iter().map(|(l, r, _)| l * (r + 1) + 3).max().unwrap_or(0);
        let (wo, wt) = (bits + 2, bits + 1);
        let mut obs = vec![0f32; t_max * b * wo];
        let mut target = vec![0f32; t_max * b * wt];
        let mut mask = vec![0f32; t_max * b];
        for (e, (l, r, p)) in draws.iter().enumerate() {
            let (l, r) = (*l, *r);
            obs[e * wo + bits] = 1.0;
            for t in 0..l {
                for k in 0..bits {
                    obs[((1 + t) * b + e) * wo + k] = p[t * bits + k];
                }
            }
            obs[((l + 1) * b + e) * wo + bits + 1] = r as f32 / self.norm_max;
            for rep in 0..r {
                for t in 0..l {
                    for k in 0..bits {
                        target[((l + 2 + rep * l + t) * b + e) * wt + k] = p[t * bits + k];
                    }
                }
            }
            target[((l + 2 + r * l) * b + e) * wt + bits] = 1.0;
            for t in l + 2..=l + 2 + r * l {
                mask[t * b + e] = 1.0;
            }
        }
        Ok(RepeatCopyBatch {
            obs: Tensor::from_vec(obs, (t_max, b, wo), dev)?,
            target: Tensor::from_vec(target, (t_max, b, wt), dev)?,
            mask: Tensor::from_vec(mask, (t_max, b), dev)?,
        })
    }
}
