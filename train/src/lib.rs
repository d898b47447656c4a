//! The `train` binary of the ALI-G toolkit as a library: any model of the `zoo` on any dataset of
//! `data` with any optimizer of `alig`, the paper's hyper-parameters as presets, a run directory
//! with metrics and atomic checkpoints, exact resume, and `--init` from files or the hub.
//!
//! ```text
//! cli (flags, subcommands) -> config (preset, registries, checks) -> run (model, data, task,
//! optimizer) -> trainer (train_one_epoch, evaluate) -> metrics, TensorBoard, checkpoint
//!                             sweep, plot, export: around runs
//! ```

// Short functions with few arguments (thresholds in clippy.toml).
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod dist;
pub mod export;
pub mod loss;
pub mod metrics;
pub mod mixed;
pub mod plot;
pub mod presets;
pub mod run;
pub mod schedule;
pub mod sweep;
pub mod task;
pub mod tensorboard;
mod text;
pub mod trainer;

pub use app::{list, main_with_args, run};
