//! The one table of models: the CLI's `--model` choices, `--list`, the presets and the tests read it.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};

use crate::init::{init_varmap, Init};
use crate::{Densenet, DensenetConfig, Resnet, ResnetConfig, Wrn, WrnConfig};

/// The shape options a model reads (`None`: the model's paper default).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelArgs {
    pub num_classes: usize,
    pub depth: Option<usize>,
    pub width: Option<usize>,
    pub growth: Option<usize>,
    pub dropout: Option<f64>,
}

impl ModelArgs {
    pub fn classes(num_classes: usize) -> Self {
        Self { num_classes, depth: None, width: None, growth: None, dropout: None }
    }
}

/// A model of the zoo, as its users call it.
pub type DynModel = Box<dyn ModuleT + Send + Sync>;

/// One model of the registry.
pub struct ModelSpec {
    pub name: &'static str,
    pub summary: &'static str,
    /// The [`ModelArgs`] fields it reads besides `num_classes`.
    pub options: &'static [&'static str],
    /// The input of one sample in the paper, `[C, H, W]`.
    pub input: [usize; 3],
    build: fn(&ModelArgs, VarBuilder) -> Result<DynModel>,
    /// The reference initialisation of each tensor.
    pub init_rule: fn(&str, &[usize]) -> Option<Init>,
}

impl ModelSpec {
    /// Builds the model's variables into `vb` (names as the PyTorch state dict).
    pub fn build(&self, args: &ModelArgs, vb: VarBuilder) -> Result<DynModel> {
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
    ) -> Result<DynModel> {
        let model = self.build(args, VarBuilder::from_varmap(varmap, dtype, dev))?;
        init_varmap(varmap, seed, self.init_rule)?;
        Ok(model)
    }
}

fn wrn(a: &ModelArgs, vb: VarBuilder) -> Result<DynModel> {
    let d = WrnConfig::default();
    let cfg = WrnConfig {
        depth: a.depth.unwrap_or(d.depth),
        width: a.width.unwrap_or(d.width),
        num_classes: a.num_classes,
        dropout: a.dropout.unwrap_or(d.dropout),
    };
    Ok(Box::new(Wrn::new(&cfg, vb)?))
}

fn densenet(a: &ModelArgs, vb: VarBuilder) -> Result<DynModel> {
    let d = DensenetConfig::default();
    let cfg = DensenetConfig {
        depth: a.depth.unwrap_or(d.depth),
        growth: a.growth.unwrap_or(d.growth),
        num_classes: a.num_classes,
        dropout: a.dropout.unwrap_or(d.dropout),
        ..d
    };
    Ok(Box::new(Densenet::new(&cfg, vb)?))
}

fn resnet18(a: &ModelArgs, vb: VarBuilder) -> Result<DynModel> {
    Ok(Box::new(Resnet::new(&ResnetConfig { num_classes: a.num_classes }, vb)?))
}

/// Every image model of the paper.
pub static MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "wrn",
        summary: "Wide ResNet, pre-activation (paper: WRN-40-4 on CIFAR, WRN-16-4 dropout 0.4 on SVHN)",
        options: &["depth", "width", "dropout"],
        input: [3, 32, 32],
        build: wrn,
        init_rule: Wrn::init_rule,
    },
    ModelSpec {
        name: "densenet",
        summary: "DenseNet-BC (paper: depth 40, growth 40 on CIFAR)",
        options: &["depth", "growth", "dropout"],
        input: [3, 32, 32],
        build: densenet,
        init_rule: Densenet::init_rule,
    },
    ModelSpec {
        name: "resnet18",
        summary: "ResNet-18, torchvision layout (paper: ImageNet, 224x224)",
        options: &[],
        input: [3, 224, 224],
        build: resnet18,
        init_rule: Resnet::init_rule,
    },
];

/// The registry row named `name`; the error lists the valid names.
pub fn find(name: &str) -> Result<&'static ModelSpec> {
    match MODELS.iter().find(|m| m.name == name) {
        Some(m) => Ok(m),
        None => {
            let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
            bail!("unknown model {name:?}; expected one of: {}", names.join(", "))
        }
    }
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
