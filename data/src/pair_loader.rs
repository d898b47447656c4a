//! Batches of sentence pairs for the NLI model, beside the image [`crate::Loader`]: a seeded
//! per-epoch shuffle (training), each sentence's word vectors looked up in the frozen table and
//! zero-padded time-major `[T, B, D]`, uploaded to the device.
//!
//! Determinism: the order of epoch `e` is the permutation of stream `0x5e1 ^ e` of the seed, so a
//! resumed run (same seed, epoch and first batch) sees the same batches. The lookup is a copy of a
//! few hundred kilobytes per batch, done when the batch is asked for. With a [`Shard`], a process
//! takes its slice of each global batch.

use std::sync::Arc;

use candle_core::{bail, Device, Result, Tensor};

use crate::glove::Vectors;
use crate::rng::Rng;
use crate::shard::Shard;
use crate::snli::NliPairs;

/// How a [`PairLoader`] batches a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairLoaderConfig {
    /// Pairs per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Reshuffle every epoch (training); in order otherwise (evaluation).
    pub shuffle: bool,
    /// The seed of the shuffle.
    pub seed: u64,
    /// This process's slice of every batch (data-parallel training).
    pub shard: Shard,
}

/// One batch of sentence pairs on the device.
#[derive(Clone, Debug)]
pub struct PairBatch {
    /// Premise word vectors `[T1, B, D]`, zero after each sentence's end.
    pub premises: Tensor,
    /// The length of each premise (its `<s>` and `</s>` included).
    pub premise_lengths: Vec<usize>,
    /// Hypothesis word vectors `[T2, B, D]`.
    pub hypotheses: Tensor,
    /// The length of each hypothesis.
    pub hypothesis_lengths: Vec<usize>,
    /// Labels `[B]` (u32: entailment, neutral, contradiction).
    pub labels: Tensor,
}

impl PairBatch {
    /// Pairs in the batch.
    pub fn len(&self) -> usize {
        self.premise_lengths.len()
    }

    /// True for a batch without pairs (a loader never yields one).
    pub fn is_empty(&self) -> bool {
        self.premise_lengths.is_empty()
    }
}

/// Batches of one split of token-id pairs.
pub struct PairLoader {
    pairs: NliPairs,
    vectors: Arc<Vectors>,
    cfg: PairLoaderConfig,
    device: Device,
}

/// The stream of the training shuffle (kept from the first version, so that runs repeat).
const SHUFFLE_STREAM: u64 = 0x5e1;

impl PairLoader {
    /// A loader over `pairs`, whose ids index rows of `vectors`. Fails on an empty split, a zero
    /// batch size, or an id outside the table.
    pub fn new(pairs: NliPairs, vectors: Arc<Vectors>, cfg: PairLoaderConfig, device: Device) -> Result<Self> {
        if cfg.batch_size == 0 {
            bail!("pair loader: batch size must be positive")
        }
        if pairs.is_empty() {
            bail!("pair loader: the split is empty")
        }
        let rows = vectors.vectors.len() / vectors.dim.max(1);
        if let Some(id) = pairs.premises.iter().chain(&pairs.hypotheses).flatten().find(|&&id| id as usize >= rows) {
            bail!("pair loader: word id {id} is outside the {rows} word vectors")
        }
        if !cfg.shard.is_whole() {
            cfg.shard.check(pairs.len(), cfg.batch_size, "pair loader")?;
        }
        Ok(Self { pairs, vectors, cfg, device })
    }

    /// Pairs in the split.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True for an empty split (never, once built).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        self.pairs.len().div_ceil(self.cfg.batch_size)
    }

    /// The pair order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        if self.cfg.shuffle {
            Rng::new(self.cfg.seed, SHUFFLE_STREAM ^ epoch as u64).permutation(self.pairs.len())
        } else {
            (0..self.pairs.len()).collect()
        }
    }

    /// The batches of `epoch`, starting at batch `first`.
    pub fn epoch_from(&self, epoch: usize, first: usize) -> impl Iterator<Item = Result<PairBatch>> + '_ {
        let order = self.order(epoch);
        let shard = self.cfg.shard;
        let chunks: Vec<Vec<usize>> =
            order.chunks(self.cfg.batch_size).skip(first).map(|c| c[shard.range(c.len())].to_vec()).collect();
        chunks.into_iter().map(move |idx| self.batch(&idx))
    }

    /// The batch of pairs `idx`.
    pub fn batch(&self, idx: &[usize]) -> Result<PairBatch> {
        let p = &self.pairs;
        let (premises, premise_lengths) = self.embed(idx.iter().map(|&i| &p.premises[i]))?;
        let (hypotheses, hypothesis_lengths) = self.embed(idx.iter().map(|&i| &p.hypotheses[i]))?;
        let labels = Tensor::from_vec(idx.iter().map(|&i| p.labels[i]).collect(), idx.len(), &self.device)?;
        Ok(PairBatch { premises, premise_lengths, hypotheses, hypothesis_lengths, labels })
    }

    /// Word vectors `[T, B, D]` (zero padded, time-major) and lengths of `sentences`.
    fn embed<'a>(&self, sentences: impl Iterator<Item = &'a Vec<u32>>) -> Result<(Tensor, Vec<usize>)> {
        let sentences: Vec<&Vec<u32>> = sentences.collect();
        let dim = self.vectors.dim;
        let lengths: Vec<usize> = sentences.iter().map(|s| s.len()).collect();
        let (t_max, b) = (lengths.iter().copied().max().unwrap_or(1).max(1), sentences.len());
        let mut x = vec![0f32; t_max * b * dim];
        for (j, s) in sentences.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                let v = &self.vectors.vectors[id as usize * dim..(id as usize + 1) * dim];
                x[(t * b + j) * dim..(t * b + j + 1) * dim].copy_from_slice(v);
            }
        }
        Ok((Tensor::from_vec(x, (t_max, b, dim), &self.device)?, lengths))
    }
}
