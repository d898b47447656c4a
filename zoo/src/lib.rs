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

#![deny(missing_docs)]

pub mod bn;
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
