//! Image classification: three seeded, prefetching [`Loader`]s and any image model of the zoo.

use alig::Scalar;
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use data::{ImageData, Loader, LoaderConfig};
use zoo::registry::DynModel;

use super::{correct, Batch, BatchIter, Forward, Split, Task, TaskSetup};
use crate::loss::Criterion;

pub(super) struct ImageTask {
    model: DynModel,
    loaders: [Loader; 3],
    loss: Criterion,
    dtype: DType,
    device: Device,
}

impl ImageTask {
    pub(super) fn new(setup: &TaskSetup, d: ImageData, model: DynModel, device: &Device) -> Result<Self> {
        let base = LoaderConfig {
            batch_size: setup.batch_size,
            seed: setup.seed,
            workers: setup.workers,
            shuffle: false,
            shard: setup.shard,
            ..LoaderConfig::default()
        };
        let train = LoaderConfig { shuffle: true, augment: d.augment, ..base.clone() };
        let open = |set, c: LoaderConfig, what: &str| {
            Loader::new(set, c, d.normalize.clone(), device.clone())
                .map_err(|e| anyhow::anyhow!("{what} split of {}: {e}", setup.data))
        };
        let loaders = [
            open(d.splits.train.clone(), train, "training")?,
            open(d.splits.val.clone(), base.clone(), "validation")?,
            open(d.splits.test.clone(), base, "test")?,
        ];
        Ok(Self { model, loaders, loss: setup.loss, dtype: setup.dtype, device: device.clone() })
    }

    fn loader(&self, split: Split) -> &Loader {
        &self.loaders[split as usize]
    }
}

impl Task for ImageTask {
    fn batches(&self, split: Split) -> usize {
        self.loader(split).batches()
    }

    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>> {
        let it = self.loader(split).epoch_from(epoch, first);
        Ok(Box::new(it.map(|b| b.map(|(x, y)| Batch::Images { x, y }).map_err(anyhow::Error::from))))
    }

    fn forward(&self, batch: &Batch, train: bool) -> Result<Forward> {
        let Batch::Images { x, y } = batch else { bail!("image task: not an image batch") };
        let logits = self.model.forward_t(&x.to_dtype(self.dtype)?, train)?;
        let n = y.dim(0)?;
        Ok(Forward {
            loss: self.loss.classification(&logits, y)?,
            correct: correct(&logits, y)?,
            count: Scalar::Host(n as f64),
            samples: n,
        })
    }

    fn device(&self) -> &Device {
        &self.device
    }
}
