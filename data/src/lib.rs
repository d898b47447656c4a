//! Datasets of the ALI-G toolkit (Berrada, Zisserman, Kumar, "Training Neural Networks for and by
//! Interpolation", ICML 2020): readers of the real file formats, the paper's splits and
//! transforms, and seeded batch loaders (images, prefetched in worker threads; sentence pairs).
//!
//! The paper's datasets are in [`paper`] (and by name in the [`registry`] that `train --data`
//! reads). The embedded digits, split as for quick runs, in seeded shuffled batches:
//!
//! ```
//! use candle_core::Device;
//! use data::paper::{self, Options};
//! use data::{Loader, LoaderConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! let digits = paper::digits(&Options { split_seed: 7, ..Options::default() })?;
//! assert_eq!((digits.splits.train.len(), digits.splits.val.len(), digits.splits.test.len()), (1257, 180, 360));
//! let cfg = LoaderConfig { batch_size: 32, augment: digits.augment, seed: 0, ..Default::default() };
//! let loader = Loader::new(digits.splits.train, cfg, digits.normalize, Device::Cpu)?;
//! for batch in loader.epoch(0).take(2) {
//!     let (images, labels) = batch?; // [32, 1, 8, 8] f32 normalised, [32] u32
//!     assert_eq!((images.dims(), labels.dims()), (&[32, 1, 8, 8][..], &[32][..]));
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod cifar;
pub mod digits;
pub mod folder;
pub mod glove;
#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;
pub mod images;
pub mod loader;
pub mod mat5;
pub mod pair_loader;
pub mod paper;
#[cfg(feature = "hub")]
pub mod parquet_mirror;
pub mod registry;
pub mod repeat_copy;
pub mod rng;
pub mod shard;
pub mod snli;
pub mod splits;
pub mod svhn;
pub mod tokenize;
pub mod transforms;

pub use folder::ImageFolder;
pub use images::ImageSet;
pub use loader::{ImageSource, Loader, LoaderConfig};
pub use pair_loader::{PairBatch, PairLoader, PairLoaderConfig};
pub use paper::{ImageData, NliData};
pub use registry::{Data, DataArgs, DatasetSpec, Input, DATASETS};
pub use repeat_copy::{RepeatCopyBatch, RepeatCopyConfig};
pub use shard::Shard;
pub use splits::{Caps, Splits};
pub use transforms::{Augment, Normalize};
