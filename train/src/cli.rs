//! The command line, flags grouped like timm's `train.py`. Every flag is optional: what the user
//! leaves out comes from the paper's preset for the (data, model, optimizer) triple
//! ([`crate::presets`]), then from the defaults of [`crate::config::RunConfig`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

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

const ABOUT: &str = "Train the models of \"Training Neural Networks for and by Interpolation\" (ALI-G, ICML 2020) \
with ALI-G or any baseline of the paper. With no arguments: a short run on the embedded digits data.";

const AFTER: &str = "Examples:
  train                                             # digits, WRN-10-2, ALI-G: about a minute
  train --model wrn --data cifar100 --opt alig      # the paper's CIFAR-100 run (preset)
  train --data snli --opt sgd --data-dir ~/snli     # InferSent on SNLI with the paper's SGD schedule
  train --resume runs/wrn-cifar100-alig-s0          # continue exactly where the run stopped
  train --init hf:owner/repo --eval-only --data cifar10
  train --list                                      # models, datasets, optimizers, presets
  train sweep --opts alig,sgd --lrs 1e-3:1e0 --out runs/sweep -- --data digits --epochs 5
                                                    # a learning-rate grid (train sweep --help)
  train plot runs/a runs/b --out plots              # objective, accuracy, step size (SVG and PNG)
  train export runs/a --to hub/a                    # weights, config and model card for the hub";

#[derive(Parser, Debug, Clone, Default)]
#[command(name = "train", version, about = ABOUT, after_help = AFTER, args_override_self = true)]
pub struct Cli {
    /// Model from the zoo (default: the dataset's usual one; `--list` shows all).
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

    /// Folder with the dataset's files (`--list` names them).
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
    /// constant, step:MILESTONES:FACTOR (e.g. step:60,120,160:0.2), or infersent (x0.99 per epoch, /5 on a plateau).
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
    /// No progress bar and no per-epoch lines.
    #[arg(long, help_heading = "Run")]
    pub quiet: bool,
    /// List models, datasets, optimizers and presets, then exit.
    #[arg(long)]
    pub list: bool,
}
