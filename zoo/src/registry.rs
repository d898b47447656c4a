//! The one table of models: the CLI's `--model` choices, `--list`, the presets and the tests read it.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};

use crate::init::{init_varmap, Init};
use crate::{Densenet, DensenetConfig, Dnc, DncConfig, Nli, NliConfig, Resnet, ResnetConfig, Wrn, WrnConfig};

/// The shape options a model reads (`None`: the model's paper default).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelArgs {
    /// Classes (image and NLI models), or output channels (DNC).
    pub num_classes: usize,
    /// WRN and DenseNet-BC: the depth (`6n + 4`).
    pub depth: Option<usize>,
    /// WRN: the widening factor `k`.
    pub width: Option<usize>,
    /// DenseNet-BC: the growth rate `k`.
    pub growth: Option<usize>,
    /// WRN and DenseNet-BC: dropout in training.
    pub dropout: Option<f64>,
    /// Recurrent size: the Bi-LSTM's per direction (2048), the DNC controller's (64).
    pub hidden: Option<usize>,
    /// Input size: image channels (image models, 3), word vectors (NLI, 300) or observation
    /// channels (DNC, 6).
    pub input: Option<usize>,
}

impl ModelArgs {
    /// Every option at the paper's default, for `num_classes` outputs.
    pub fn classes(num_classes: usize) -> Self {
        Self { num_classes, depth: None, width: None, growth: None, dropout: None, hidden: None, input: None }
    }
}

/// How each tensor `(name, shape)` is initialised (`None`: left as built).
pub type InitRule = Box<dyn Fn(&str, &[usize]) -> Option<Init>>;

/// An image model of the zoo, as its users call it.
pub type DynModel = Box<dyn ModuleT + Send + Sync>;

/// A built model: what it consumes ([`ModelKind`]) decides how it is called.
pub enum Model {
    /// Images `[N, C, H, W]` -> logits, via `forward_t(x, train)`.
    Images(DynModel),
    /// Sentence pairs of word vectors -> logits (the NLI model).
    Pairs(Nli),
    /// Bit sequences -> per-step logits (the DNC).
    Sequences(Dnc),
}

impl Model {
    /// The image model, or an error naming what this model consumes instead.
    pub fn into_image(self) -> Result<DynModel> {
        match self {
            Model::Images(m) => Ok(m),
            Model::Pairs(_) => bail!("this model takes sentence pairs, not images"),
            Model::Sequences(_) => bail!("this model takes bit sequences, not images"),
        }
    }
}

/// What a model consumes; the same three words name the kinds of dataset (`data::Input`), of
/// loaded data (`data::Data`) and of batch throughout the toolkit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Image classification.
    Images,
    /// Sentence pairs (natural-language inference).
    Pairs,
    /// Bit sequences (the DNC's tasks).
    Sequences,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Images => "images",
            ModelKind::Pairs => "sentence pairs",
            ModelKind::Sequences => "bit sequences",
        })
    }
}

/// One model of the registry.
pub struct ModelSpec {
    /// The name on the command line (`wrn`, `densenet`, `resnet18`, `bilstm`, `dnc`).
    pub name: &'static str,
    /// One line for `train list`: the model and its reference.
    pub summary: &'static str,
    /// The [`ModelArgs`] fields it reads besides `num_classes`.
    pub options: &'static [&'static str],
    /// What it consumes: images, sentence pairs or sequences.
    pub kind: ModelKind,
    build: fn(&ModelArgs, VarBuilder) -> Result<Model>,
    /// The reference initialisation of each tensor, for these arguments.
    init_rule: fn(&ModelArgs) -> InitRule,
}

impl ModelSpec {
    /// Builds the model's variables into `vb` (names as the PyTorch state dict).
    pub fn build(&self, args: &ModelArgs, vb: VarBuilder) -> Result<Model> {
        (self.build)(args, vb)
    }

    /// Builds the model into `varmap` and initialises it as the reference does, from `seed`.
    pub fn build_seeded(
        &self,
        args: &ModelArgs,
        varmap: &VarMap,
        dtype: DType,
        dev: &Device,
        seed: u64,
    ) -> Result<Model> {
        let model = self.build(args, VarBuilder::from_varmap(varmap, dtype, dev))?;
        init_varmap(varmap, seed, (self.init_rule)(args))?;
        Ok(model)
    }
}

fn wrn(a: &ModelArgs, vb: VarBuilder) -> Result<Model> {
    let d = WrnConfig::default();
    let cfg = WrnConfig {
        depth: a.depth.unwrap_or(d.depth),
        width: a.width.unwrap_or(d.width),
        num_classes: a.num_classes,
        in_channels: a.input.unwrap_or(d.in_channels),
        dropout: a.dropout.unwrap_or(d.dropout),
    };
    Ok(Model::Images(Box::new(Wrn::new(&cfg, vb)?)))
}

fn densenet(a: &ModelArgs, vb: VarBuilder) -> Result<Model> {
    let d = DensenetConfig::default();
    let cfg = DensenetConfig {
        depth: a.depth.unwrap_or(d.depth),
        growth: a.growth.unwrap_or(d.growth),
        num_classes: a.num_classes,
        in_channels: a.input.unwrap_or(d.in_channels),
        dropout: a.dropout.unwrap_or(d.dropout),
        ..d
    };
    Ok(Model::Images(Box::new(Densenet::new(&cfg, vb)?)))
}

fn resnet18(a: &ModelArgs, vb: VarBuilder) -> Result<Model> {
    Ok(Model::Images(Box::new(Resnet::new(
        &ResnetConfig { num_classes: a.num_classes, in_channels: a.input.unwrap_or(3) },
        vb,
    )?)))
}

fn nli_config(a: &ModelArgs) -> NliConfig {
    let d = NliConfig::default();
    NliConfig {
        word_dim: a.input.unwrap_or(d.word_dim),
        hidden: a.hidden.unwrap_or(d.hidden),
        num_classes: a.num_classes,
        ..d
    }
}

fn nli(a: &ModelArgs, vb: VarBuilder) -> Result<Model> {
    Ok(Model::Pairs(Nli::new(&nli_config(a), vb)?))
}

fn dnc_config(a: &ModelArgs) -> DncConfig {
    let d = DncConfig::default();
    DncConfig {
        input_size: a.input.unwrap_or(d.input_size),
        hidden: a.hidden.unwrap_or(d.hidden),
        output_size: a.num_classes,
        ..d
    }
}

fn dnc(a: &ModelArgs, vb: VarBuilder) -> Result<Model> {
    Ok(Model::Sequences(Dnc::new(&dnc_config(a), vb)?))
}

/// Every image model of the paper.
pub static MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "wrn",
        summary: "Wide ResNet, pre-activation (paper: WRN-40-4 on CIFAR, WRN-16-4 dropout 0.4 on SVHN)",
        options: &["depth", "width", "dropout", "input"],
        kind: ModelKind::Images,
        build: wrn,
        init_rule: |_| Box::new(Wrn::init_rule),
    },
    ModelSpec {
        name: "densenet",
        summary: "DenseNet-BC (paper: depth 40, growth 40 on CIFAR)",
        options: &["depth", "growth", "dropout", "input"],
        kind: ModelKind::Images,
        build: densenet,
        init_rule: |_| Box::new(Densenet::init_rule),
    },
    ModelSpec {
        name: "resnet18",
        summary: "ResNet-18, torchvision layout (paper: ImageNet, 224x224)",
        options: &["input"],
        kind: ModelKind::Images,
        build: resnet18,
        init_rule: |_| Box::new(Resnet::init_rule),
    },
    ModelSpec {
        name: "nli",
        summary: "InferSent Bi-LSTM-max encoder and linear classifier (paper: SNLI, 2048 per direction)",
        options: &["hidden", "input"],
        kind: ModelKind::Pairs,
        build: nli,
        init_rule: |a| Box::new(Nli::init_rule(&nli_config(a))),
    },
    ModelSpec {
        name: "dnc",
        summary: "Differentiable Neural Computer (paper: repeat copy, memory 16 x 16, 4 read heads)",
        options: &["hidden", "input"],
        kind: ModelKind::Sequences,
        build: dnc,
        init_rule: |a| Box::new(Dnc::init_rule(&dnc_config(a))),
    },
];

/// The registry row named `name`; the error lists the valid names.
pub fn find(name: &str) -> Result<&'static ModelSpec> {
    alig::registry::lookup(MODELS, "model", name, |m| m.name)
}

macro_rules! module_t {
    ($($t:ty),*) => {$(
        impl ModuleT for $t {
            fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
                <$t>::forward_t(self, x, train)
            }
        }
    )*};
}
module_t!(Wrn, Densenet, Resnet);
