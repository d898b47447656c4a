//! A task is a model with its data: it yields batches and turns a batch into a loss and a score.
//! Three kinds cover the paper: image classification, NLI sentence pairs, and the DNC's bit
//! sequences. The trainer sees only the [`Task`] trait.

use std::fmt;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use data::{Data, ImageData, Input, Loader, LoaderConfig, NliData, RepeatCopyBatch, RepeatCopyConfig};
use zoo::registry::{DynModel, ModelKind};
use zoo::{Dnc, Model, Nli};

use crate::config::RunConfig;
use crate::loss::LossKind;

/// What a dataset's samples are, hence how a model is fed and scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Classify,
    Nli,
    Sequence,
}

impl TaskKind {
    pub fn of(input: Input) -> Self {
        match input {
            Input::Image { .. } => TaskKind::Classify,
            Input::SentencePair { .. } => TaskKind::Nli,
            Input::BitSequence { .. } => TaskKind::Sequence,
        }
    }

    pub fn model_kind(self) -> ModelKind {
        match self {
            TaskKind::Classify => ModelKind::Image,
            TaskKind::Nli => ModelKind::SentencePair,
            TaskKind::Sequence => ModelKind::Sequence,
        }
    }

    pub fn check_loss(self, loss: LossKind) -> Result<()> {
        let ok = match self {
            TaskKind::Sequence => loss == LossKind::SigmoidCe,
            _ => loss != LossKind::SigmoidCe,
        };
        if !ok {
            let allowed = match self {
                TaskKind::Sequence => "sigmoid-ce",
                _ => "ce, svm, smooth-svm, topk",
            };
            bail!("--loss {loss} does not fit {self}; use one of: {allowed}")
        }
        Ok(())
    }

    /// The model's output and input sizes for a dataset with `input` samples and `num_classes`.
    pub fn model_sizes(input: Input, num_classes: usize) -> (usize, Option<usize>) {
        match input {
            Input::Image { channels, .. } => (num_classes, Some(channels)),
            Input::SentencePair { dim } => (num_classes, Some(dim)),
            Input::BitSequence { bits } => (bits + 1, Some(bits + 2)),
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskKind::Classify => "image classification",
            TaskKind::Nli => "sentence pairs",
            TaskKind::Sequence => "bit sequences",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

/// One batch on the device.
pub enum Batch {
    Images { x: Tensor, y: Tensor },
    Pairs { s1: Tensor, len1: Vec<usize>, s2: Tensor, len2: Vec<usize>, y: Tensor },
    Sequences(RepeatCopyBatch),
}

/// A forward pass: the mean loss (0-d) and the score (correct predictions out of `count`; for
/// the DNC, correct bits on the steps that are scored).
pub struct Forward {
    pub loss: Tensor,
    pub correct: f64,
    pub count: f64,
    /// Samples in the batch.
    pub samples: usize,
}

pub type BatchIter<'a> = Box<dyn Iterator<Item = Result<Batch>> + 'a>;

pub trait Task {
    /// Batches in one pass over `split`.
    fn batches(&self, split: Split) -> usize;
    /// The batches of `split` for `epoch`, starting at batch `first` (training order is seeded
    /// by the run's seed and the epoch).
    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>>;
    fn forward(&self, batch: &Batch, train: bool) -> Result<Forward>;
}

/// Builds the task of `cfg` around a loaded dataset and a built model.
pub fn build(cfg: &RunConfig, data: Data, model: Model, device: &Device) -> Result<Box<dyn Task>> {
    let loss: LossKind = cfg.loss.parse().map_err(anyhow::Error::msg)?;
    Ok(match (data, model) {
        (Data::Images(d), Model::Image(m)) => Box::new(ImageTask::new(cfg, d, m, loss, device)?),
        (Data::Nli(d), Model::Nli(m)) => Box::new(NliTask::new(cfg, d, m, loss, device)?),
        (Data::RepeatCopy(c), Model::Dnc(m)) => Box::new(CopyTask::new(cfg, c, m, device)?),
        _ => bail!("model {} does not fit dataset {}", cfg.model, cfg.data),
    })
}

fn correct(logits: &Tensor, y: &Tensor) -> Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(&y.to_dtype(DType::U32)?)?.to_dtype(DType::F32)?;
    Ok(hits.sum_all()?.to_scalar::<f32>()? as f64)
}

struct ImageTask {
    model: DynModel,
    loaders: [Loader; 3],
    loss: LossKind,
}

impl ImageTask {
    fn new(cfg: &RunConfig, d: ImageData, model: DynModel, loss: LossKind, device: &Device) -> Result<Self> {
        let base = LoaderConfig {
            batch_size: cfg.batch_size,
            seed: cfg.seed,
            workers: cfg.workers,
            shuffle: false,
            ..LoaderConfig::default()
        };
        let train = LoaderConfig { shuffle: true, augment: d.augment, ..base.clone() };
        let open = |set, c: LoaderConfig, what: &str| {
            Loader::new(set, c, d.normalize.clone(), device.clone())
                .map_err(|e| anyhow::anyhow!("{what} split of {}: {e}", cfg.data))
        };
        let loaders = [
            open(d.splits.train.clone(), train, "training")?,
            open(d.splits.val.clone(), base.clone(), "validation")?,
            open(d.splits.test.clone(), base, "test")?,
        ];
        Ok(Self { model, loaders, loss })
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
        let logits = self.model.forward_t(x, train)?;
        Ok(Forward {
            loss: self.loss.classification(&logits, y)?,
            correct: correct(&logits, y)?,
            count: y.dim(0)? as f64,
            samples: y.dim(0)?,
        })
    }
}

struct NliTask {
    model: Nli,
    data: NliData,
    loss: LossKind,
    batch_size: usize,
    seed: u64,
    device: Device,
}

impl NliTask {
    fn new(cfg: &RunConfig, data: NliData, model: Nli, loss: LossKind, device: &Device) -> Result<Self> {
        for (name, s) in
            [("training", &data.splits.train), ("validation", &data.splits.val), ("test", &data.splits.test)]
        {
            if s.is_empty() {
                bail!("{name} split of {} is empty", cfg.data)
            }
        }
        Ok(Self { model, data, loss, batch_size: cfg.batch_size, seed: cfg.seed, device: device.clone() })
    }

    fn split(&self, split: Split) -> &data::snli::NliPairs {
        match split {
            Split::Train => &self.data.splits.train,
            Split::Val => &self.data.splits.val,
            Split::Test => &self.data.splits.test,
        }
    }

    /// Word vectors `[T, B, D]` (zero padded, time-major) and lengths of sentences `ids`.
    fn embed(&self, sentences: &[&Vec<u32>]) -> Result<(Tensor, Vec<usize>)> {
        let dim = self.data.vectors.dim;
        let lengths: Vec<usize> = sentences.iter().map(|s| s.len()).collect();
        let (t_max, b) = (lengths.iter().copied().max().unwrap_or(1), sentences.len());
        let mut x = vec![0f32; t_max * b * dim];
        for (j, s) in sentences.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                let v = &self.data.vectors.vectors[id as usize * dim..(id as usize + 1) * dim];
                x[(t * b + j) * dim..(t * b + j + 1) * dim].copy_from_slice(v);
            }
        }
        Ok((Tensor::from_vec(x, (t_max, b, dim), &self.device)?, lengths))
    }
}

impl Task for NliTask {
    fn batches(&self, split: Split) -> usize {
        self.split(split).len().div_ceil(self.batch_size)
    }

    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>> {
        let pairs = self.split(split);
        let order = if split == Split::Train {
            data::rng::Rng::new(self.seed, 0x5e1 ^ epoch as u64).permutation(pairs.len())
        } else {
            (0..pairs.len()).collect()
        };
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch_size).skip(first).map(<[usize]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter().map(move |idx| {
            let (s1, len1) = self.embed(&idx.iter().map(|&i| &pairs.premises[i]).collect::<Vec<_>>())?;
            let (s2, len2) = self.embed(&idx.iter().map(|&i| &pairs.hypotheses[i]).collect::<Vec<_>>())?;
            let y = Tensor::from_vec(idx.iter().map(|&i| pairs.labels[i]).collect(), idx.len(), &self.device)?;
            Ok(Batch::Pairs { s1, len1, s2, len2, y })
        })))
    }

    fn forward(&self, batch: &Batch, _train: bool) -> Result<Forward> {
        let Batch::Pairs { s1, len1, s2, len2, y } = batch else { bail!("NLI task: not a batch of sentence pairs") };
        let logits = self.model.forward(s1, len1, s2, len2)?;
        Ok(Forward {
            loss: self.loss.classification(&logits, y)?,
            correct: correct(&logits, y)?,
            count: len1.len() as f64,
            samples: len1.len(),
        })
    }
}

/// Validation and test batches of the generated task (fixed streams, independent of training).
const COPY_EVAL_BATCHES: [usize; 2] = [20, 50];
const COPY_STREAMS: [u64; 3] = [0xc0b1, 0x7a11, 0x7e57];

struct CopyTask {
    model: Dnc,
    task: RepeatCopyConfig,
    steps: usize,
    seed: u64,
    device: Device,
}

impl CopyTask {
    fn new(cfg: &RunConfig, task: RepeatCopyConfig, model: Dnc, device: &Device) -> Result<Self> {
        let task = RepeatCopyConfig { batch_size: cfg.batch_size, ..task };
        task.validate()?;
        Ok(Self { model, task, steps: cfg.steps_per_epoch, seed: cfg.seed, device: device.clone() })
    }
}

impl Task for CopyTask {
    fn batches(&self, split: Split) -> usize {
        match split {
            Split::Train => self.steps,
            Split::Val => COPY_EVAL_BATCHES[0],
            Split::Test => COPY_EVAL_BATCHES[1],
        }
    }

    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>> {
        let n = self.batches(split);
        let stream = self.seed ^ COPY_STREAMS[split as usize];
        let offset = if split == Split::Train { (epoch * n) as u64 } else { 0 };
        Ok(Box::new(
            (first..n).map(move |i| Ok(Batch::Sequences(self.task.batch(stream, offset + i as u64, &self.device)?))),
        ))
    }

    fn forward(&self, batch: &Batch, _train: bool) -> Result<Forward> {
        let Batch::Sequences(b) = batch else { bail!("DNC task: not a batch of sequences") };
        let logits = self.model.forward(&b.obs)?;
        let loss = zoo::masked_sigmoid_cross_entropy(&logits, &b.target, &b.mask)?;
        // Bits right on the scored steps.
        let predicted = logits.ge(0.0)?.to_dtype(DType::F32)?;
        let truth = b.target.ge(0.5)?.to_dtype(DType::F32)?;
        let agree = predicted.eq(&truth)?.to_dtype(DType::F32)?.sum(D::Minus1)?;
        let correct = (agree * &b.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
        let width = b.target.dim(2)? as f64;
        let count = b.mask.sum_all()?.to_scalar::<f32>()? as f64 * width;
        Ok(Forward { loss, correct, count, samples: b.obs.dim(1)? })
    }
}
