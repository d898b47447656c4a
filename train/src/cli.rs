//! The command line: `train [FLAGS]` trains (flags grouped like timm's `train.py`), and the
//! subcommands `sweep`, `plot`, `export` and `list` do the rest. Every training flag is optional:
//! what the user leaves out comes from the paper's preset for the (data, model, optimizer) triple
//! ([`crate::presets`]), then from the registries' defaults (see [`crate::config`]).
//!
//! The training flags are one serialisable struct, [`TrainArgs`]: presets and checkpoint metadata
//! are parsed into it and laid under the user's flags ([`TrainArgs::overlay`]), and a
//! configuration is written back as flags ([`TrainArgs::to_argv`]) for a model card.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// A number, or `none` (no clipping, no projection, unclipped ALI-G step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrNone(pub Option<f64>);

impl FromStr for OrNone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(OrNone(None));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(OrNone(Some(v))),
            _ => Err(format!("expected a non-negative number or `none`, got {s:?}")),
        }
    }
}

impl fmt::Display for OrNone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => write!(f, "none"),
        }
    }
}

crate::text::serde_as_text!(OrNone);

const ABOUT: &str = "Train the models of \"Training Neural Networks for and by Interpolation\" (ALI-G, ICML 2020) \
with ALI-G or any baseline of the paper. With no arguments: a short run on the embedded digits data.";

const AFTER: &str = "Examples:
  train                                             # digits, WRN-10-2, ALI-G: about half a minute
  train --model wrn --data cifar100 --opt alig      # the paper's CIFAR-100 run (preset)
  train --data snli --opt sgd --data-dir ~/snli     # InferSent on SNLI with the paper's SGD schedule
  train --resume runs/wrn-cifar100-alig-s0          # continue exactly where the run stopped
  train --init hf:owner/repo --eval-only --data cifar10
  train list                                        # models, datasets, optimizers, presets
  train sweep --opts alig,sgd --lrs 1e-3:1e0 --out runs/sweep -- --data digits --epochs 5
                                                    # a learning-rate grid (train sweep --help)
  train plot runs/a runs/b --out plots              # objective, accuracy, step size (SVG and PNG)
  train export runs/a --to hub/a                    # weights, config and model card for the hub";

/// The whole command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "train",
    version,
    about = ABOUT,
    after_help = AFTER,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// What `train` does besides training.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run a grid of optimizers x learning rates x seeds, then summarise and plot it.
    Sweep(SweepArgs),
    /// Draw runs: objective, accuracy and step size against epochs (SVG and PNG).
    Plot(PlotArgs),
    /// Make a hub-ready folder (weights, config, model card) from a run.
    Export(ExportArgs),
    /// List models, datasets, optimizers and presets.
    List,
    /// Self-test a device: every model and optimizer against the CPU, the golden cases, checkpoints.
    Check(CheckArgs),
    /// Time training steps of the paper's models at the paper's batch sizes on a device.
    Bench(BenchArgs),
}

/// The flags of a training run.
#[derive(Parser, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[command(name = "train", args_override_self = true)]
pub struct TrainArgs {
    /// Model from the zoo (default: the dataset's usual one; `train list` shows all).
    #[arg(long, help_heading = "What to train")]
    pub model: Option<String>,
    /// Dataset (default: digits, embedded).
    #[arg(long, help_heading = "What to train")]
    pub data: Option<String>,
    /// Optimizer (default: alig).
    #[arg(long, help_heading = "What to train")]
    pub opt: Option<String>,
    /// Training loss: ce, svm, smooth-svm, topk (ImageNet's top-5 truncated entropy) or sigmoid-ce (DNC).
    #[arg(long, help_heading = "What to train")]
    pub loss: Option<String>,

    /// Folder with the dataset's files (`train list` names them).
    #[arg(long, help_heading = "Data")]
    pub data_dir: Option<PathBuf>,
    /// SNLI: the GloVe text file (default: <data-dir>/glove.840B.300d.txt).
    #[arg(long, help_heading = "Data")]
    pub glove: Option<PathBuf>,
    /// Samples per optimizer step.
    #[arg(long, help_heading = "Data")]
    pub batch_size: Option<usize>,
    /// Use at most this many training samples.
    #[arg(long, help_heading = "Data")]
    pub train_size: Option<usize>,
    /// Use at most this many validation samples.
    #[arg(long, help_heading = "Data")]
    pub val_size: Option<usize>,
    /// Use at most this many test samples.
    #[arg(long, help_heading = "Data")]
    pub test_size: Option<usize>,
    /// Turn off the paper's training augmentation (random crop and flip).
    #[arg(long, help_heading = "Data")]
    pub no_augment: bool,
    /// Loader threads.
    #[arg(long, help_heading = "Data")]
    pub workers: Option<usize>,
    /// Gradient accumulation: split each step's batch (--batch-size) into N micro-batches, run one
    /// after the other, and step once on their summed gradients (the mean over the whole batch).
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub accumulate: Option<usize>,
    /// Steps per epoch of generated data (the DNC task: 1,000 x 10 epochs = the paper's 10,000 iterations).
    #[arg(long, help_heading = "Data")]
    pub steps_per_epoch: Option<usize>,

    /// Learning rate; for ALI-G its maximal learning rate (`none`: unclipped), for DFW and BPGrad eta.
    #[arg(long, visible_aliases = ["eta", "max-lr"], help_heading = "Optimizer")]
    pub lr: Option<OrNone>,
    /// Momentum: Nesterov for SGD, ALI-G's, DFW's and BPGrad's own form.
    #[arg(long, help_heading = "Optimizer")]
    pub momentum: Option<f64>,
    /// ALI-G: radius of the l2 ball the parameters are projected onto (`none`: no projection).
    #[arg(long, help_heading = "Optimizer")]
    pub max_norm: Option<OrNone>,
    /// l2 weight decay (coupled; decoupled for AdamW). ALI-G uses --max-norm instead.
    #[arg(long, help_heading = "Optimizer")]
    pub weight_decay: Option<f64>,
    /// constant, step:MILESTONES:FACTOR (e.g. step:60,120,160:0.2), cosine[:EPOCHS] (to 0 over the run's
    /// epochs after any warmup), each with an optional linear warmup `:warmup=EPOCHS` (e.g.
    /// cosine:warmup=5), or infersent (x0.99 per epoch, /5 on a plateau).
    #[arg(long, help_heading = "Optimizer")]
    pub schedule: Option<String>,
    /// Rescale gradients to this global norm before the step (`none`: off), as torch's clip_grad_norm_.
    #[arg(long, help_heading = "Optimizer")]
    pub clip_grad_norm: Option<OrNone>,
    /// The optimizer's small constant.
    #[arg(long, help_heading = "Optimizer")]
    pub eps: Option<f64>,
    /// L4: the fraction of the predicted decrease.
    #[arg(long, help_heading = "Optimizer")]
    pub fraction: Option<f64>,
    /// Adagrad: the value the sum of squared gradients starts at (torch: 0; TensorFlow 1: 0.1).
    #[arg(long, help_heading = "Optimizer")]
    pub initial_accumulator: Option<f64>,

    /// Cross-entropy with label smoothing EPS: the target puts 1 - EPS on the label and EPS spread
    /// over all classes (PyTorch's `label_smoothing`).
    #[arg(long, value_name = "EPS", help_heading = "Optimizer")]
    pub label_smoothing: Option<f64>,

    /// WRN: 6n+4; DenseNet-BC: 6n+4.
    #[arg(long, help_heading = "Model")]
    pub depth: Option<usize>,
    /// WRN widening factor k.
    #[arg(long, help_heading = "Model")]
    pub width: Option<usize>,
    /// DenseNet growth rate k.
    #[arg(long, help_heading = "Model")]
    pub growth: Option<usize>,
    /// Dropout in training (WRN between the convolutions of a unit; DenseNet after each convolution).
    #[arg(long, help_heading = "Model")]
    pub dropout: Option<f64>,
    /// Recurrent size (Bi-LSTM per direction, DNC controller).
    #[arg(long, help_heading = "Model")]
    pub hidden: Option<usize>,

    /// Passes over the training split.
    #[arg(long, help_heading = "Run")]
    pub epochs: Option<usize>,
    /// auto, cpu, cuda[:N] or metal[:N].
    #[arg(long, help_heading = "Run")]
    pub device: Option<String>,
    /// The floating-point type of the forward and backward passes: f32 (default), f64, or mixed
    /// precision bf16 / f16 (half-precision compute, f32 master weights and optimizer state; f16
    /// with dynamic loss scaling).
    #[arg(long, value_name = "f32|f64|bf16|f16", help_heading = "Run")]
    pub precision: Option<String>,
    /// f16: the dynamic loss scale's starting value (default 65536, as PyTorch's GradScaler);
    /// halved on a step whose gradients overflow (the step is skipped), doubled after 2000 good
    /// steps.
    #[arg(long, value_name = "SCALE", help_heading = "Run")]
    pub loss_scale: Option<f64>,
    /// Fixes initialisation, data order, augmentation and dropout.
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Run directory (default: runs/<model>-<data>-<opt>-s<seed>).
    #[arg(long, help_heading = "Run")]
    pub out: Option<PathBuf>,
    /// Continue the run in RUN_DIR exactly where its last checkpoint left it.
    #[arg(long, value_name = "RUN_DIR", help_heading = "Run")]
    pub resume: Option<PathBuf>,
    /// Start from these weights: a safetensors file, a checkpoint folder, or hf:owner/repo[@revision][/file].
    #[arg(long, value_name = "PATH", help_heading = "Run")]
    pub init: Option<String>,
    /// Never download; read the hub cache only.
    #[arg(long, help_heading = "Run")]
    pub offline: bool,
    /// The hub cache (default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub).
    #[arg(long, help_heading = "Run")]
    pub hub_cache: Option<PathBuf>,
    /// Evaluate (validation and test) without training.
    #[arg(long, help_heading = "Run")]
    pub eval_only: bool,
    /// With --eval-only: also run the model on the tensor `input` of this safetensors file and write
    /// `predictions.safetensors` (`logits`) into the run directory.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub predict: Option<PathBuf>,
    /// On a non-finite loss or gradient: `stop` (default; the last checkpoint stays) or `skip` the step.
    #[arg(long, value_name = "stop|skip", help_heading = "Run")]
    pub on_nonfinite: Option<String>,
    /// Under mpirun/srun (data-parallel): BatchNorm statistics over the whole global batch, as one
    /// process computes them (default: each process's own, as PyTorch DDP).
    #[arg(long, help_heading = "Run")]
    pub sync_bn: bool,
    /// CUDA: fp32 matrix products on tensor cores (TF32's 10-bit mantissa), as PyTorch's
    /// `allow_tf32`; weights, optimizer state and everything else stay f32.
    #[arg(long, help_heading = "Run")]
    pub tf32: bool,
    /// Keep an exponential moving average of the weights (`ema = DECAY ema + (1 - DECAY) w` after
    /// every step, BatchNorm statistics too), evaluated each epoch (`val_acc_ema`) and saved in
    /// each checkpoint as `ema.safetensors`.
    #[arg(long, value_name = "DECAY", help_heading = "Run")]
    pub ema: Option<f64>,
    /// Also keep the checkpoints of the N best epochs by validation score, as
    /// checkpoints/epoch-NNNN (last and best are always kept).
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub keep: Option<usize>,
    /// Stop early after E epochs without a better validation score.
    #[arg(long, value_name = "E", help_heading = "Run")]
    pub patience: Option<usize>,
    /// Write no TensorBoard event files (by default they go into <run>/tb/).
    #[arg(long, help_heading = "Run")]
    pub no_tensorboard: bool,
    /// No progress bar and no per-epoch lines.
    #[arg(long, help_heading = "Run")]
    pub quiet: bool,
    /// List models, datasets, optimizers and presets, then exit (as `train list`).
    #[arg(long)]
    pub list: bool,
}

impl TrainArgs {
    /// Parses training flags (no program name): a preset's, a checkpoint's shape flags, a sweep's.
    pub fn from_flags<S: AsRef<str>>(flags: &[S]) -> Result<Self> {
        let argv = std::iter::once("train").chain(flags.iter().map(AsRef::as_ref));
        Ok(TrainArgs::try_parse_from(argv)?)
    }

    /// `self` under `top`: every flag `top` gives (a value, or a switch turned on) replaces this
    /// one's; the rest stay.
    pub fn overlay(&self, top: &TrainArgs) -> Result<TrainArgs> {
        let (mut base, top) = (serde_json::to_value(self)?, serde_json::to_value(top)?);
        let (Some(fields), Some(given)) = (base.as_object_mut(), top.as_object()) else {
            anyhow::bail!("training flags serialise to an object")
        };
        for (name, value) in given.iter().filter(|(_, v)| is_given(v)) {
            fields.insert(name.clone(), value.clone());
        }
        Ok(serde_json::from_value(base)?)
    }

    /// The flags that are given, as `--name` (one per field, in declaration order).
    pub fn given(&self) -> Result<Vec<String>> {
        Ok(self.fields()?.into_iter().filter(|(_, v)| is_given(v)).map(|(k, _)| flag(&k)).collect())
    }

    /// The command line that parses back to these flags (no program name).
    pub fn to_argv(&self) -> Result<Vec<String>> {
        let mut argv = vec![];
        for (name, value) in self.fields()? {
            match value {
                serde_json::Value::Bool(true) => argv.push(flag(&name)),
                serde_json::Value::String(s) => argv.extend([flag(&name), s]),
                serde_json::Value::Number(n) => argv.extend([flag(&name), n.to_string()]),
                _ => {}
            }
        }
        Ok(argv)
    }

    /// Every field with its value, in the order the flags are declared (`--model --data --opt`
    /// first), which is the order `--help` lists them in.
    fn fields(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let value = serde_json::to_value(self).context("serialising the training flags")?;
        let mut map = value.as_object().cloned().unwrap_or_default();
        let order = <TrainArgs as clap::CommandFactory>::command();
        Ok(order.get_arguments().filter_map(|a| map.remove_entry(a.get_id().as_str())).collect())
    }
}

fn is_given(v: &serde_json::Value) -> bool {
    !(v.is_null() || *v == serde_json::Value::Bool(false))
}

fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// `train sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Optimizers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub opts: Vec<String>,
    /// Learning rates: comma-separated values (`none` for ALI-G's unclipped step), or the powers of
    /// ten from A to B as `A:B` (e.g. `1e-4:1e1`). Optimizers without a learning rate (L4) run once.
    #[arg(long, default_value = "1e-3:1e0")]
    pub lrs: String,
    /// L4's fractions (it has no learning rate), comma-separated; the paper's DNC grid is
    /// 0.05,0.1,...,0.95. Without it L4 runs once per seed with its default 0.15.
    #[arg(long, value_delimiter = ',')]
    pub fractions: Vec<f64>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// The sweep's folder: one run directory per point, and the summary.
    #[arg(long)]
    pub out: PathBuf,
    /// Runs at the same time (each uses the machine's threads; 1 is usually fastest on a CPU).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Training flags for every run (model, data, epochs, ...), after `--`.
    #[arg(last = true)]
    pub run_flags: Vec<String>,
}

/// `train plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where the pictures go.
    #[arg(long, default_value = "plots")]
    pub out: PathBuf,
}

/// `train export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// The folder to write (created; an existing model.safetensors there is not overwritten).
    #[arg(long)]
    pub to: PathBuf,
    /// Export the last checkpoint instead of the best.
    #[arg(long)]
    pub last: bool,
}

/// `train check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The device under test: cpu (candle's own ops, the path CUDA and Metal take), cuda[:N],
    /// metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The golden folder holding zoo/ (default: $ALIG_GOLDEN_DIR, or ../shared/golden or
    /// shared/golden when present; none: the golden cases are skipped).
    #[arg(long)]
    pub golden: Option<PathBuf>,
    /// Steps of every optimizer of the registry on WRN-10-1 (each model case takes one).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `train bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// cpu, cuda[:N], metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Comma-separated: wrn-40-4 (batch 128), densenet-bc-40-40 (64), resnet18 (256, 224x224),
    /// bilstm (64), dnc (16).
    #[arg(long, value_delimiter = ',', default_value = "wrn-40-4,densenet-bc-40-40,resnet18,bilstm,dnc")]
    pub model: Vec<String>,
    /// f32, tf32 (CUDA: fp32 matrix products on tensor cores), or mixed precision bf16 / f16
    /// (half-precision passes, f32 master weights, as `train --precision`).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Every model at this batch size instead of the paper's.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The optimizer that steps.
    #[arg(long, default_value = "sgd")]
    pub opt: String,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_overlay_and_render_back() {
        let preset = TrainArgs::from_flags(&["--lr", "0.1", "--depth", "40", "--no-augment"]).unwrap();
        let user = TrainArgs::from_flags(&["--lr", "none", "--epochs", "3"]).unwrap();
        let merged = preset.overlay(&user).unwrap();
        assert_eq!(
            (merged.lr, merged.depth, merged.epochs, merged.no_augment),
            (Some(OrNone(None)), Some(40), Some(3), true)
        );
        assert_eq!(merged.given().unwrap(), ["--no-augment", "--lr", "--depth", "--epochs"]);
        let back = TrainArgs::from_flags(&merged.to_argv().unwrap()).unwrap();
        assert_eq!(back, merged);
    }

    #[test]
    fn subcommands_and_plain_flags_both_parse() {
        let cli = Cli::try_parse_from(["train", "--model", "wrn", "--epochs", "2"]).unwrap();
        assert!(cli.command.is_none() && cli.train.model.as_deref() == Some("wrn"));
        let cli =
            Cli::try_parse_from(["train", "sweep", "--opts", "alig", "--out", "s", "--", "--data", "digits"]).unwrap();
        let Some(Command::Sweep(s)) = cli.command else { panic!("not a sweep") };
        assert_eq!(s.run_flags, ["--data", "digits"]);
        assert!(matches!(Cli::try_parse_from(["train", "list"]).unwrap().command, Some(Command::List)));
        let help = <Cli as clap::CommandFactory>::command().render_help().to_string();
        for sub in ["sweep", "plot", "export", "list"] {
            assert!(help.contains(sub), "{sub} missing from --help:\n{help}");
        }
    }
}
