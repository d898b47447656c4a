//! One process's part of every batch, for data-parallel training.
//!
//! A run over `world` processes takes the same global batches as one process would (same seeded
//! order, same per-sample augmentation streams, keyed by the sample's global position); process
//! `rank` takes the contiguous slice `[m r / N, m (r + 1) / N)` of each global batch of `m`
//! samples. The union of the slices is the global batch, in order, whatever the world size.

use std::ops::Range;

use candle_core::{bail, Result};

/// Process `rank` of `world`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This process, from 0.
    pub rank: usize,
    /// The number of processes.
    pub world: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    /// One process: the whole batch.
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// Process `rank` of `world`; fails unless `rank < world`.
    pub fn new(rank: usize, world: usize) -> Result<Self> {
        if rank >= world {
            bail!("shard: rank {rank} of a world of {world} processes")
        }
        Ok(Self { rank, world })
    }

    /// True for a single process.
    pub fn is_whole(&self) -> bool {
        self.world == 1
    }

    /// This process's positions in a global batch of `m` samples.
    pub fn range(&self, m: usize) -> Range<usize> {
        m * self.rank / self.world..m * (self.rank + 1) / self.world
    }

    /// Fails when a split of `len` samples in batches of `batch_size` would leave some process an
    /// empty slice (its last batch has fewer samples than there are processes).
    pub fn check(&self, len: usize, batch_size: usize, what: &str) -> Result<()> {
        let smallest = match len % batch_size {
            0 => batch_size.min(len),
            r => r,
        };
        if smallest < self.world {
            bail!(
                "{what}: a batch of {smallest} samples (of {len} in batches of {batch_size}) cannot be shared by {} \
                 processes; change the batch size or the number of processes",
                self.world
            )
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slices_tile_the_batch_in_order() {
        for world in 1..6 {
            for m in world..40 {
                let mut next = 0;
                for rank in 0..world {
                    let r = Shard::new(rank, world).unwrap().range(m);
                    assert_eq!(r.start, next);
                    assert!(!r.is_empty());
                    next = r.end;
                }
                assert_eq!(next, m);
            }
        }
        assert!(Shard::new(2, 2).is_err());
    }

    #[test]
    fn a_last_batch_smaller_than_the_world_is_refused() {
        let s = Shard::new(0, 4).unwrap();
        assert!(s.check(130, 128, "training split").is_err());
        assert!(s.check(132, 128, "training split").is_ok());
        assert!(s.check(3, 128, "x").is_err());
        assert!(Shard::WHOLE.check(129, 128, "x").is_ok());
    }
}
