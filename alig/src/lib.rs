//! ALI-G and the baselines of "Training Neural Networks for and by Interpolation" (Berrada,
//! Zisserman, Kumar, ICML 2020), on candle.
//!
//! Reference code: oval-group/ali-g (ALI-G, AdamW, Yogi, the l2 projection), oval-group/dfw (DFW,
//! BPGrad, the multi-class hinge loss), lberrada/L4.pytorch (L4Adam, L4Mom) and `torch.optim` (SGD,
//! Adam, AMSGrad, Adagrad). Each optimizer's file states its update rule; the golden tests compare
//! every step with trajectories recorded from the reference code, in f32 and f64.
//!
//! The [`Optimizer`] trait differs from candle's: a step receives the mini-batch loss (a 0-d tensor,
//! so ALI-G's step size stays on the device) next to the gradients, returns a [`StepReport`], and
//! the whole state exports to and imports from named tensors for exact resumption. Optimizers work
//! on a [`ParamSet`]: trainable variables sorted by name, BatchNorm running statistics excluded.
//!
//! A custom training loop with ALI-G on a `VarMap`:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{linear, loss, Module, VarBuilder, VarMap};
//! use alig::{Alig, AligConfig, Optimizer, ParamSet};
//!
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! let varmap = VarMap::new();
//! let model = linear(2, 2, VarBuilder::from_varmap(&varmap, DType::F32, &dev).pp("fc"))?;
//! let x = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 1.], [0., 0.]], &dev)?;
//! let y = Tensor::new(&[0u32, 1, 1, 0], &dev)?;
//!
//! let params = ParamSet::trainable(&varmap.data().lock().unwrap())?;
//! let cfg = AligConfig { max_lr: Some(1.0), momentum: 0.9, max_norm: Some(10.0), ..Default::default() };
//! let mut opt = Alig::new(params, cfg)?;
//! let first = loss::cross_entropy(&model.forward(&x)?, &y)?.to_scalar::<f32>()?;
//! for _ in 0..50 {
//!     let l = loss::cross_entropy(&model.forward(&x)?, &y)?;
//!     let report = opt.backward_step(&l)?; // backward, then the step that reads l
//!     let _gamma = report.step_size; // read lazily: no device synchronisation
//! }
//! let last = loss::cross_entropy(&model.forward(&x)?, &y)?.to_scalar::<f32>()?;
//! assert!(last < first);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod check;
mod decay;
mod moments;
mod ops;

pub mod adagrad;
pub mod adam;
pub mod adamw;
pub mod alig;
pub mod bpgrad;
pub mod dfw;
pub mod l4;
pub mod loss;
pub mod momentum;
pub mod optimizer;
pub mod params;
pub mod projection;
pub mod registry;
pub mod rmsprop;
pub mod schedule;
pub mod seed;
pub mod sgd;
pub mod state;
pub mod yogi;

pub use crate::adagrad::{Adagrad, AdagradConfig};
pub use crate::adam::{Adam, AdamConfig};
pub use crate::adamw::{Adamw, AdamwConfig};
pub use crate::alig::{Alig, AligConfig, GroupMaxLr};
pub use crate::bpgrad::{Bpgrad, BpgradConfig};
pub use crate::dfw::{Dfw, DfwConfig};
pub use crate::l4::{L4Config, L4Direction, L4};
pub use crate::loss::multiclass_hinge;
pub use crate::momentum::{Momentum, MomentumConfig};
pub use crate::ops::{vectorised, Kernels};
pub use crate::optimizer::{Hyper, Optimizer, Scalar, StepReport};
pub use crate::params::{clip_grad_norm, grad_sq_norm, is_buffer_name, ParamSet};
pub use crate::projection::project_l2_ball;
pub use crate::registry::{OptimizerSpec, OPTIMIZERS};
pub use crate::rmsprop::{Rmsprop, RmspropConfig};
pub use crate::schedule::Schedule;
pub use crate::sgd::{Sgd, SgdConfig};
pub use crate::state::NamedTensors;
pub use crate::yogi::{Yogi, YogiConfig};
