//! Natural-language inference: sentence pairs batched by [`PairLoader`]s over the frozen word
//! vectors, and the Bi-LSTM-max model.

use std::sync::Arc;

use alig::Scalar;
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use data::{NliData, PairLoader, PairLoaderConfig};
use zoo::Nli;

use super::{correct, Batch, BatchIter, Forward, Split, Task, TaskSetup};
use crate::loss::Criterion;

pub(super) struct PairTask {
    model: Nli,
    loaders: [PairLoader; 3],
    loss: Criterion,
    dtype: DType,
    device: Device,
}

impl PairTask {
    pub(super) fn new(setup: &TaskSetup, d: NliData, model: Nli, device: &Device) -> Result<Self> {
        let vectors = Arc::new(d.vectors);
        let cfg =
            PairLoaderConfig { batch_size: setup.batch_size, shuffle: false, seed: setup.seed, shard: setup.shard };
        let open = |pairs, shuffle, what: &str| {
            PairLoader::new(pairs, vectors.clone(), PairLoaderConfig { shuffle, ..cfg }, device.clone())
                .map_err(|e| anyhow::anyhow!("{what} split of {}: {e}", setup.data))
        };
        let loaders = [
            open(d.splits.train, true, "training")?,
            open(d.splits.val, false, "validation")?,
            open(d.splits.test, false, "test")?,
        ];
        Ok(Self { model, loaders, loss: setup.loss, dtype: setup.dtype, device: device.clone() })
    }
}

impl Task for PairTask {
    fn batches(&self, split: Split) -> usize {
        self.loaders[split as usize].batches()
    }

    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>> {
        let it = self.loaders[split as usize].epoch_from(epoch, first);
        Ok(Box::new(it.map(|b| b.map(Batch::Pairs).map_err(anyhow::Error::from))))
    }

    fn forward(&self, batch: &Batch, _train: bool) -> Result<Forward> {
        let Batch::Pairs(b) = batch else { bail!("NLI task: not a batch of sentence pairs") };
        let (premises, hypotheses) = (b.premises.to_dtype(self.dtype)?, b.hypotheses.to_dtype(self.dtype)?);
        let logits = self.model.forward(&premises, &b.premise_lengths, &hypotheses, &b.hypothesis_lengths)?;
        Ok(Forward {
            loss: self.loss.classification(&logits, &b.labels)?,
            correct: correct(&logits, &b.labels)?,
            count: Scalar::Host(b.len() as f64),
            samples: b.len(),
        })
    }

    fn device(&self) -> &Device {
        &self.device
    }
}
