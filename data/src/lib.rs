//! Datasets of the ALI-G toolkit (Berrada, Zisserman, Kumar, "Training Neural Networks for and by
//! Interpolation", ICML 2020): readers of the real file formats, the paper's splits and
//! transforms, and seeded batch loaders (images, prefetched in worker threads; sentence pairs).

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
