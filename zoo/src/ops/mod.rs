//! Custom ops candle lacks or gets wrong for training (see `shared/spec/candle-cpu.md`).

pub mod cumprod;
pub mod gemm;
pub mod linear;
pub mod lstm;
pub mod maxpool;

pub use cumprod::exclusive_cumprod;
pub use linear::linear;
pub use lstm::lstm_direction;
pub use maxpool::{max_pool2d, max_pool2d_composite};
