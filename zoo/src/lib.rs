//! Model zoo of the ALI-G toolkit (Berrada, Zisserman, Kumar, "Training Neural Networks for and by
//! Interpolation", ICML 2020): the paper's networks on candle, with the PyTorch reference's
//! state-dict keys so that checkpoints load without renaming.
//!
//! Every model: `XConfig` (`Default` = the paper's setting), `X::new(&cfg, vb)`,
//! `forward_t(&x, train)`, and a seeded host-side initialisation ([`init`]).
//!
//! Image models: Wide ResNet ([`wrn`]), DenseNet-BC ([`densenet`]), ResNet-18 ([`resnet`]), all in
//! the [`registry`]; BatchNorm with PyTorch's state ([`bn`]); a padded max-pool with a correct
//! backward ([`ops`]); strict checkpoint loading ([`checkpoint`]). Sequence models: the InferSent
//! Bi-LSTM-max NLI model ([`nli`]) and the Differentiable Neural Computer ([`dnc`]). Dropout draws
//! seeded masks ([`dropout`]), so runs and resumed runs repeat exactly.
//!
//! On the CPU in f32 the layers run the zoo's own training ops ([`ops`]). The cargo feature
//! `onednn` (Debian's `libdnnl-dev`) sends the convolutions and matrix products through oneDNN,
//! the library PyTorch's CPU convolutions use; the same model code runs either way.
//!
//! A WRN-16-2 for CIFAR-100 from the registry, seeded, on a batch of two images (the paper's
//! WRN-40-4 is `ModelArgs::classes(100)` alone):
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::VarMap;
//! use zoo::{registry, ModelArgs};
//!
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! let varmap = VarMap::new();
//! let args = ModelArgs { depth: Some(16), width: Some(2), ..ModelArgs::classes(100) };
//! let model = registry::find("wrn")?.build_seeded(&args, &varmap, DType::F32, &dev, 0)?.into_image()?;
//! let images = Tensor::zeros((2, 3, 32, 32), DType::F32, &dev)?;
//! let logits = model.forward_t(&images, /* train */ false)?;
//! assert_eq!(logits.dims(), [2, 100]);
//! // PyTorch state-dict names, so the reference's checkpoints load as they are.
//! assert!(varmap.data().lock().unwrap().contains_key("block1.layer.0.bn1.running_var"));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod bn;
mod chain;
pub mod checkpoint;
pub mod densenet;
pub mod dnc;
pub mod dropout;
pub mod init;
pub mod nli;
pub mod ops;
pub mod registry;
pub mod resnet;
pub mod wrn;

pub use densenet::{Densenet, DensenetConfig};
pub use dnc::{masked_sigmoid_cross_entropy, Dnc, DncConfig, DncState};
pub use nli::{Nli, NliConfig, Pooling};
pub use registry::{Model, ModelArgs, ModelSpec, MODELS};
pub use resnet::{Resnet, ResnetConfig};
pub use wrn::{Wrn, WrnConfig};
