//! The DNC's repeat-copy task: batches generated from the seed (training: a new stream position per
//! step; validation and test: fixed streams), scored by the bits right on the scored steps.

use alig::Scalar;
use anyhow::{bail, Result};
use candle_core::{DType, Device, D};
use data::{RepeatCopyBatch, RepeatCopyConfig, Shard};
use zoo::Dnc;

use super::{Batch, BatchIter, Forward, Split, Task, TaskSetup};

/// Validation and test batches of the generated task (fixed streams, independent of training).
const EVAL_BATCHES: [usize; 2] = [20, 50];
const STREAMS: [u64; 3] = [0xc0b1, 0x7a11, 0x7e57];

pub(super) struct SequenceTask {
    model: Dnc,
    task: RepeatCopyConfig,
    steps: usize,
    seed: u64,
    shard: Shard,
    dtype: DType,
    device: Device,
}

impl SequenceTask {
    pub(super) fn new(setup: &TaskSetup, task: RepeatCopyConfig, model: Dnc, device: &Device) -> Result<Self> {
        let task = RepeatCopyConfig { batch_size: setup.batch_size, ..task };
        task.validate()?;
        if setup.batch_size < setup.shard.world {
            bail!("--batch-size {} cannot be shared by {} processes", setup.batch_size, setup.shard.world)
        }
        let (steps, seed, shard) = (setup.steps_per_epoch, setup.seed, setup.shard);
        Ok(Self { model, task, steps, seed, shard, dtype: setup.dtype, device: device.clone() })
    }

    /// This process's sequences of a generated batch (all of them for one process): the same
    /// length `T` as the whole batch, so the model sees what one process would.
    fn mine(&self, b: RepeatCopyBatch) -> Result<RepeatCopyBatch> {
        if self.shard.is_whole() {
            return Ok(b);
        }
        let r = self.shard.range(b.obs.dim(1)?);
        let cut = |t: &candle_core::Tensor| t.narrow(1, r.start, r.len())?.contiguous();
        Ok(RepeatCopyBatch { obs: cut(&b.obs)?, target: cut(&b.target)?, mask: cut(&b.mask)? })
    }
}

impl Task for SequenceTask {
    fn batches(&self, split: Split) -> usize {
        match split {
            Split::Train => self.steps,
            Split::Val => EVAL_BATCHES[0],
            Split::Test => EVAL_BATCHES[1],
        }
    }

    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>> {
        let n = self.batches(split);
        let stream = self.seed ^ STREAMS[split as usize];
        let offset = if split == Split::Train { (epoch * n) as u64 } else { 0 };
        Ok(Box::new((first..n).map(move |i| {
            Ok(Batch::Sequences(self.mine(self.task.batch(stream, offset + i as u64, &self.device)?)?))
        })))
    }

    fn forward(&self, batch: &Batch, _train: bool) -> Result<Forward> {
        let Batch::Sequences(b) = batch else { bail!("DNC task: not a batch of sequences") };
        let logits = crate::loss::widened(&self.model.forward(&b.obs.to_dtype(self.dtype)?)?)?;
        let loss = zoo::masked_sigmoid_cross_entropy(&logits, &b.target, &b.mask)?;
        // Bits right on the scored steps, out of the scored steps' bits (on the device).
        let predicted = logits.ge(0.0)?.to_dtype(DType::F32)?;
        let truth = b.target.ge(0.5)?.to_dtype(DType::F32)?;
        let agree = predicted.eq(&truth)?.to_dtype(DType::F32)?.sum(D::Minus1)?;
        let correct = (agree * &b.mask)?.sum_all()?;
        let count = (b.mask.sum_all()? * b.target.dim(2)? as f64)?;
        Ok(Forward { loss, correct: Scalar::Device(correct), count: Scalar::Device(count), samples: b.obs.dim(1)? })
    }

    fn device(&self) -> &Device {
        &self.device
    }
}
