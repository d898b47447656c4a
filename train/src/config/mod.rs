//! The resolved run configuration: one typed value, nested by concern (model, data, optimizer,
//! schedule, run), resolved from the command line over the preset over the registries' defaults
//! ([`resolve`]), checked before any data is read, written to `config.json` before the first step
//! and read back by `--resume` and `train export` ([`RunConfig::read`]; the flat files of version
//! 0.1 still load, see [`legacy`]). [`RunConfig::to_args`] gives the flags that rebuild it.
//!
//! One name per quantity: a field is named as its flag (`--batch-size` is `data.batch_size`,
//! `--opt` is `optimizer.name`), and the metrics and docs use the same words.

mod args;
mod legacy;
mod resolve;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::loss::LossKind;
use crate::schedule::LrPolicy;
use crate::text::serde_as_text;
use crate::trainer::OnNonFinite;

pub use crate::mixed::Precision;
pub use resolve::{parse, resolve, Options, Request};

serde_as_text!(LossKind, LrPolicy, DeviceSpec);

/// Everything a run depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The toolkit version that wrote this file.
    pub version: String,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub optimizer: OptimizerConfig,
    /// The learning-rate policy over epochs (`--schedule`).
    pub schedule: LrPolicy,
    pub run: RunSettings,
    /// The preset flags applied before the user's, and where they come from.
    pub preset: Option<String>,
}

/// The network (`--model` and its shape flags; `None`: the model's paper default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The registry name (`--model`).
    pub name: String,
    pub depth: Option<usize>,
    pub width: Option<usize>,
    pub growth: Option<usize>,
    pub dropout: Option<f64>,
    pub hidden: Option<usize>,
}

/// The dataset, where its files are and how it is batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// The registry name (`--data`).
    pub name: String,
    /// The folder with the dataset's files (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// SNLI: the GloVe vectors file (`--glove`).
    pub glove: Option<PathBuf>,
    /// Samples per optimizer step (over all processes of a data-parallel run).
    pub batch_size: usize,
    /// Generated data only (the DNC task).
    pub steps_per_epoch: usize,
    /// Use at most this many training samples (`--train-size`).
    pub train_size: Option<usize>,
    /// Use at most this many validation samples.
    pub val_size: Option<usize>,
    /// Use at most this many test samples.
    pub test_size: Option<usize>,
    /// The paper's training augmentation (off with `--no-augment`).
    pub augment: bool,
    /// Loader threads that decode and augment ahead of the step (`--workers`).
    pub workers: usize,
    /// Gradient accumulation (`--accumulate`): each step's batch is split into this many
    /// micro-batches, run one after the other, their gradients summed.
    #[serde(default = "one")]
    pub accumulate: usize,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// The objective and the optimizer that minimises it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The registry name (`--opt`).
    pub name: String,
    /// The training loss.
    pub loss: LossKind,
    /// The learning rate (ALI-G: `max_lr`, `None` = unclipped; DFW/BPGrad: `eta`; `None` for L4).
    pub lr: Option<f64>,
    /// The momentum coefficient (0: none).
    pub momentum: f64,
    /// The l2 regularisation (ALI-G: use `max_norm` instead, as the paper).
    pub weight_decay: f64,
    /// ALI-G's l2-ball radius (`None`: no projection).
    pub max_norm: Option<f64>,
    /// The optimizer's small constant (`None`: its default).
    pub eps: Option<f64>,
    /// L4's fraction (`None`: its default).
    pub fraction: Option<f64>,
    /// Adagrad's initial accumulator (`None`: torch's 0).
    pub initial_accumulator: Option<f64>,
    /// Global gradient-norm clipping before the step (`None`: off).
    pub clip_grad_norm: Option<f64>,
    /// Cross-entropy's label smoothing (`--label-smoothing`; 0: off), as PyTorch's
    /// `CrossEntropyLoss(label_smoothing=...)`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// How long, where and from what the run goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Epochs to train (a resumed run counts the ones it has).
    pub epochs: usize,
    /// `--device`: cpu, cuda[:N] or metal[:N].
    pub device: DeviceSpec,
    /// Fixes the initialisation, the data order, augmentation and dropout.
    pub seed: u64,
    /// The run directory.
    pub out: PathBuf,
    /// Initial weights (`--init`): a file, a checkpoint folder or `hf:owner/repo...`.
    pub init: Option<String>,
    /// Read the hub cache only.
    pub offline: bool,
    /// The hub cache (`None`: `$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
    pub hub_cache: Option<PathBuf>,
    /// What a non-finite loss or gradient does (`--on-nonfinite`).
    pub on_nonfinite: OnNonFinite,
    /// Data-parallel runs: BatchNorm statistics over the whole global batch (`--sync-bn`).
    #[serde(default)]
    pub sync_bn: bool,
    /// The dtype of the forward pass, and of the weights and optimizer state unless it is a
    /// mixed precision (`--precision`).
    #[serde(default)]
    pub precision: Precision,
    /// f16: the dynamic loss scale's starting value (`--loss-scale`; PyTorch's GradScaler starts
    /// at 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// CUDA: fp32 matrix products in TF32 (`--tf32`).
    #[serde(default)]
    pub tf32: bool,
    /// An exponential moving average of the weights with this decay, evaluated and checkpointed
    /// beside them (`--ema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// Also keep the checkpoints of the N best epochs by validation score (`--keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
    /// Stop after this many epochs without a better validation score (`--patience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// TensorBoard event files in `tb/` (off with `--no-tensorboard`).
    #[serde(default = "yes")]
    pub tensorboard: bool,
}

impl RunConfig {
    /// The configuration in `config.json` of `dir` (this version's, or a flat one of 0.1).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = fs::read_to_string(&path).with_context(|| format!("{}: no run there", dir.display()))?;
        Self::from_json(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses a `config.json` of any version.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if value.get("model").is_some_and(serde_json::Value::is_string) {
            return legacy::FlatConfig::deserialize(value)?.into_config();
        }
        Ok(serde_json::from_value(value)?)
    }

    /// Writes `config.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(self)? + "\n";
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The optimizer's hyper-parameters.
    pub fn hyper(&self) -> alig::Hyper {
        let o = &self.optimizer;
        alig::Hyper {
            lr: o.lr,
            momentum: o.momentum,
            weight_decay: o.weight_decay,
            max_norm: o.max_norm,
            eps: o.eps,
            fraction: o.fraction,
            initial_accumulator: o.initial_accumulator,
            ..alig::Hyper::default()
        }
    }

    /// The model's shape options for a dataset with `num_classes` outputs and `input` size.
    pub fn model_args(&self, num_classes: usize, input: Option<usize>) -> zoo::ModelArgs {
        let m = &self.model;
        zoo::ModelArgs {
            num_classes,
            depth: m.depth,
            width: m.width,
            growth: m.growth,
            dropout: m.dropout,
            hidden: m.hidden,
            input,
        }
    }

    /// The shape flags that rebuild the model's tensors (stored in checkpoints).
    pub fn shape_flags(&self) -> Vec<String> {
        let m = &self.model;
        [("--depth", m.depth), ("--width", m.width), ("--growth", m.growth), ("--hidden", m.hidden)]
            .into_iter()
            .filter_map(|(flag, v)| v.map(|v| [flag.to_string(), v.to_string()]))
            .flatten()
            .collect()
    }

    /// Where and how the data is read.
    pub fn data_args(&self) -> data::DataArgs {
        let d = &self.data;
        data::DataArgs {
            data_dir: d.data_dir.clone(),
            offline: self.run.offline,
            hub_cache: self.run.hub_cache.clone(),
            split_seed: self.run.seed,
            caps: data::Caps { train: d.train_size, val: d.val_size, test: d.test_size },
            augment: d.augment,
            glove: d.glove.clone(),
        }
    }

    /// The resolved configuration in a few lines (`config.json` holds all of it).
    pub fn describe(&self) -> String {
        let (o, r) = (&self.optimizer, &self.run);
        let opt = [
            o.lr.map(|v| format!("lr {v}")),
            (o.momentum != 0.0).then(|| format!("momentum {}", o.momentum)),
            (o.weight_decay != 0.0).then(|| format!("weight_decay {}", o.weight_decay)),
            o.max_norm.map(|v| format!("max_norm {v}")),
            o.clip_grad_norm.map(|v| format!("clip_grad_norm {v}")),
            (!self.schedule.is_constant()).then(|| format!("schedule {}", self.schedule)),
        ];
        let opt: Vec<String> = opt.into_iter().flatten().collect();
        let mut s = format!(
            "train: {} on {} with {} ({}), loss {}, {} epochs of batch {}, seed {}, device {}",
            self.model.name,
            self.data.name,
            o.name,
            opt.join(", "),
            o.loss,
            r.epochs,
            self.data.batch_size,
            r.seed,
            r.device
        );
        if r.precision != Precision::F32 {
            s += &format!(", precision {}", r.precision);
        }
        if let Some(p) = &self.preset {
            s += &format!("\npreset: {p}");
        }
        s + &format!("\nrun directory: {} (config.json holds every setting)", r.out.display())
    }
}
