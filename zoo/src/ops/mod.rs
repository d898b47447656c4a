//! Custom ops candle lacks or gets wrong for training (see `shared/spec/candle-cpu.md`).

pub mod batch_norm;
pub mod conv;
pub mod cumprod;
pub mod gemm;
pub mod linear;
pub mod lstm;
pub mod malloc;
pub mod maxpool;
pub mod threads;

pub use conv::{conv2d, conv2d_no_bias, custom_ops, set_custom_ops, Conv2d};
pub use cumprod::exclusive_cumprod;
pub use linear::linear;
pub use lstm::lstm_direction;
pub use malloc::keep_freed_memory;
pub use maxpool::{max_pool2d, max_pool2d_composite};
pub use threads::cache_thread_count;
