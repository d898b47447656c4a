//! A task is a model with its data: it yields batches and turns a batch into a loss and a score.
//! Three kinds cover the paper, named as everywhere in the toolkit ([`zoo::registry::ModelKind`]):
//! images (classification), pairs (natural-language inference) and sequences (the DNC). The
//! trainer sees only the [`Task`] trait.

mod images;
mod pairs;
mod sequences;

use alig::Scalar;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use data::{Data, DatasetSpec, Input, PairBatch, RepeatCopyBatch};
use zoo::registry::ModelKind;
use zoo::{Model, ModelSpec};

use crate::loss::{Criterion, LossKind};

/// One of the three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// One batch on the device.
pub enum Batch {
    /// Images `[B, C, H, W]` and labels `[B]`.
    Images { x: Tensor, y: Tensor },
    /// Sentence pairs.
    Pairs(PairBatch),
    /// The DNC's observations, targets and masks.
    Sequences(RepeatCopyBatch),
}

impl Batch {
    /// Samples in the batch.
    pub fn len(&self) -> Result<usize> {
        Ok(match self {
            Batch::Images { y, .. } => y.dim(0)?,
            Batch::Pairs(b) => b.len(),
            Batch::Sequences(b) => b.obs.dim(1)?,
        })
    }

    /// True for a batch without samples (a loader never yields one).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Part `index` of `parts` (gradient accumulation's micro-batch): its samples are the batch's
    /// positions `[len * index / parts, len * (index + 1) / parts)`, in order. Padding stays as the
    /// batch had it (sentences and sequences keep the batch's length, masked as before).
    pub fn part(&self, index: usize, parts: usize) -> Result<Batch> {
        let r = data::Shard::new(index, parts)?.range(self.len()?);
        let cut = |t: &Tensor, dim: usize| t.narrow(dim, r.start, r.len())?.contiguous();
        Ok(match self {
            Batch::Images { x, y } => Batch::Images { x: cut(x, 0)?, y: cut(y, 0)? },
            Batch::Pairs(b) => Batch::Pairs(PairBatch {
                premises: cut(&b.premises, 1)?,
                premise_lengths: b.premise_lengths[r.clone()].to_vec(),
                hypotheses: cut(&b.hypotheses, 1)?,
                hypothesis_lengths: b.hypothesis_lengths[r.clone()].to_vec(),
                labels: cut(&b.labels, 0)?,
            }),
            Batch::Sequences(b) => Batch::Sequences(RepeatCopyBatch {
                obs: cut(&b.obs, 1)?,
                target: cut(&b.target, 1)?,
                mask: cut(&b.mask, 1)?,
            }),
        })
    }
}

/// A forward pass: the mean loss (0-d) and the score, `correct` predictions out of `count` (for
/// the DNC, correct bits on the steps that are scored). Nothing here is read from the device.
pub struct Forward {
    pub loss: Tensor,
    pub correct: Scalar,
    pub count: Scalar,
    /// Samples in the batch.
    pub samples: usize,
}

pub type BatchIter<'a> = Box<dyn Iterator<Item = Result<Batch>> + 'a>;

/// A model with its data, as the trainer sees it.
pub trait Task {
    /// Batches in one pass over `split`.
    fn batches(&self, split: Split) -> usize;
    /// The batches of `split` for `epoch`, starting at batch `first` (training order is seeded
    /// by the run's seed and the epoch).
    fn iter(&self, split: Split, epoch: usize, first: usize) -> Result<BatchIter<'_>>;
    /// The loss and score of `batch`, in training or evaluation mode.
    fn forward(&self, batch: &Batch, train: bool) -> Result<Forward>;
    /// Where the batches and the model live.
    fn device(&self) -> &Device;
}

/// What a task needs besides its data and model.
#[derive(Clone, Debug)]
pub struct TaskSetup {
    /// The dataset's name, for messages.
    pub data: String,
    pub batch_size: usize,
    pub seed: u64,
    /// Loader threads (image data).
    pub workers: usize,
    /// Training batches per epoch of generated data.
    pub steps_per_epoch: usize,
    pub loss: Criterion,
    /// This process's slice of every batch (data-parallel training).
    pub shard: data::Shard,
    /// The model's dtype: batches are converted to it.
    pub dtype: DType,
}

/// The kind of model that consumes a dataset's samples.
pub fn kind_of(input: Input) -> ModelKind {
    match input {
        Input::Images { .. } => ModelKind::Images,
        Input::Pairs { .. } => ModelKind::Pairs,
        Input::Sequences { .. } => ModelKind::Sequences,
    }
}

/// The model's output and input sizes for a dataset with `input` samples and `num_classes`.
pub fn model_sizes(input: Input, num_classes: usize) -> (usize, Option<usize>) {
    match input {
        Input::Images { channels, .. } => (num_classes, Some(channels)),
        Input::Pairs { dim } => (num_classes, Some(dim)),
        Input::Sequences { bits } => (bits + 1, Some(bits + 2)),
    }
}

/// Fails unless `model` consumes `data`'s samples and `loss` fits that kind of task.
pub fn check_fit(data: &DatasetSpec, model: &ModelSpec, loss: LossKind) -> Result<()> {
    let kind = kind_of(data.input);
    if model.kind != kind {
        let fitting: Vec<&str> = zoo::MODELS.iter().filter(|m| m.kind == kind).map(|m| m.name).collect();
        bail!("model {} does not fit dataset {} ({kind}); models for it: {}", model.name, data.name, fitting.join(", "))
    }
    let sequences = kind == ModelKind::Sequences;
    if sequences != (loss == LossKind::SigmoidCe) {
        let allowed = if sequences { "sigmoid-ce" } else { "ce, svm, smooth-svm, topk" };
        bail!("--loss {loss} does not fit {kind}; use one of: {allowed}")
    }
    Ok(())
}

/// Builds the task around a loaded dataset and a built model of the same kind.
pub fn build(data: Data, model: Model, setup: &TaskSetup, device: &Device) -> Result<Box<dyn Task>> {
    Ok(match (data, model) {
        (Data::Images(d), Model::Images(m)) => Box::new(images::ImageTask::new(setup, d, m, device)?),
        (Data::Pairs(d), Model::Pairs(m)) => Box::new(pairs::PairTask::new(setup, d, m, device)?),
        (Data::Sequences(c), Model::Sequences(m)) => Box::new(sequences::SequenceTask::new(setup, c, m, device)?),
        _ => bail!("the model does not fit dataset {}", setup.data),
    })
}

/// Correct predictions of `logits [N, C]` against labels `y [N]`, as a 0-d tensor on the device.
fn correct(logits: &Tensor, y: &Tensor) -> Result<Scalar> {
    let hits = logits.argmax(D::Minus1)?.eq(&y.to_dtype(DType::U32)?)?.to_dtype(DType::F32)?;
    Ok(Scalar::Device(hits.sum_all()?))
}
