//! Model zoo of the ALI-G toolkit (Berrada, Zisserman, Kumar, "Training Neural Networks for and by
//! Interpolation", ICML 2020): the paper's networks on candle, with the PyTorch reference's
//! state-dict keys so that checkpoints load without renaming.
//!
//! Every model: `XConfig` (`Default` = the paper's setting), `X::new(&cfg, vb)`,
//! `forward_t(&x, train)`, and a seeded host-side initialisation ([`init`]).
//!
//! Done: Wide ResNet ([`wrn`]), BatchNorm with PyTorch's state ([`bn`]), strict checkpoint loading
//! ([`checkpoint`]). Still to come (issues #3 and #5): DenseNet-BC, ResNet-18 (and its padded
//! max-pool), the Bi-LSTM NLI model and the DNC.

pub mod bn;
pub mod checkpoint;
pub mod init;
pub mod wrn;

pub use wrn::{Wrn, WrnConfig};
