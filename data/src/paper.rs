//! The paper's datasets as library calls: each function takes the loaded files and returns them
//! split, normalised and augmented as in the paper's experiments (the registry, and so
//! `train --data`, calls these).
//!
//! | dataset | train / validation / test | normalisation | training augmentation |
//! |---|---|---|---|
//! | CIFAR-10/100 | 45,000 / 5,000 held out of train (seeded) / test | per-channel mean and std | pad 4, random 32x32 crop, flip |
//! | SVHN | train minus 6,000 held out (+ extra) / 6,000 / test | none (`[0, 1]`) | none |
//! | ImageNet folders | `train/` / `val/` / `test/` (or `val/`) | ImageNet mean and std | resize 224, random crop, flip |
//! | SNLI | the official train / dev / test | frozen GloVe vectors | none |
//!
//! ```no_run
//! use data::cifar::{self, Cifar};
//! use data::paper::{self, Options};
//!
//! # fn main() -> candle_core::Result<()> {
//! let dir = cifar::find_dir("data".as_ref(), Cifar::C100)?;
//! let (train, test) = cifar::load(&dir, Cifar::C100)?;
//! let cifar100 = paper::cifar(train, test, Cifar::C100, &Options { split_seed: 0, ..Options::default() })?;
//! assert_eq!((cifar100.splits.train.len(), cifar100.splits.val.len()), (45_000, 5_000));
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;

use candle_core::Result;

use crate::cifar::Cifar;
use crate::folder::ImageFolder;
use crate::glove::{self, Vectors};
use crate::images::ImageSet;
use crate::loader::ImageSource;
use crate::rng::Rng;
use crate::snli::{self, NliPairs, RawPairs};
use crate::splits::{hold_out, Caps, Splits, CIFAR_VAL, SVHN_VAL};
use crate::transforms::{Augment, Normalize};

/// How the splits are drawn and cut.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Seed of the validation split (and of an ImageNet cap's subset).
    pub split_seed: u64,
    /// Caps on the split sizes (quick runs).
    pub caps: Caps,
    /// The paper's training augmentation, where the paper has one.
    pub augment: bool,
}

impl Default for Options {
    /// Seed 0, no caps, the paper's augmentation.
    fn default() -> Self {
        Self { split_seed: 0, caps: Caps::default(), augment: true }
    }
}

/// Image classification data, ready for [`crate::Loader`]s.
pub struct ImageData {
    /// The train, validation and test images.
    pub splits: Splits<Arc<dyn ImageSource>>,
    /// The normalisation every batch gets.
    pub normalize: Normalize,
    /// The training augmentation (`Augment::None` when off or when the paper has none).
    pub augment: Augment,
    /// Labels lie in `0..num_classes`.
    pub num_classes: usize,
    /// Where the files came from, for the run's record (empty when the caller loaded them).
    pub source: String,
}

/// Natural-language inference data with its frozen word vectors.
pub struct NliData {
    /// The train, validation and test pairs, as ids into `vectors`.
    pub splits: Splits<NliPairs>,
    /// The frozen word vectors (GloVe), one row per id.
    pub vectors: Vectors,
    /// Where the files came from, for the run's record (empty when the caller loaded them).
    pub source: String,
}

fn images(s: Splits<ImageSet>, normalize: Normalize, augment: Augment, num_classes: usize) -> ImageData {
    let splits = Splits { train: Arc::new(s.train) as _, val: Arc::new(s.val) as _, test: Arc::new(s.test) as _ };
    ImageData { splits, normalize, augment, num_classes, source: String::new() }
}

/// CIFAR-10 or CIFAR-100: 5,000 training images held out for validation (a tenth of smaller sets),
/// per-channel normalisation, and with `augment` the random crop (padding 4) and flip.
pub fn cifar(train: ImageSet, test: ImageSet, kind: Cifar, o: &Options) -> Result<ImageData> {
    let val = CIFAR_VAL.min(train.len() / 10).max(1);
    let s = Splits::held_out(train, test, val, o.split_seed)?.capped(o.caps);
    let augment = if o.augment { Augment::CropFlip { padding: 4 } } else { Augment::None };
    let classes = match kind {
        Cifar::C10 => 10,
        Cifar::C100 => 100,
    };
    Ok(images(s, Normalize::cifar(), augment, classes))
}

/// SVHN: 6,000 training images held out for validation (a tenth of smaller sets), `extra` added
/// to the rest; no normalisation and no augmentation, as the paper.
pub fn svhn(train: ImageSet, extra: Option<ImageSet>, test: ImageSet, o: &Options) -> Result<ImageData> {
    let val = SVHN_VAL.min(train.len() / 10).max(1);
    let s = Splits::svhn(train, extra, test, val, o.split_seed)?.capped(o.caps);
    Ok(images(s, Normalize::unit(3, 255.0), Augment::None, 10))
}

/// MNIST as the reference: 10,000 training images held out for validation (a sixth of smaller
/// sets), MNIST's normalisation.
pub fn mnist(train: ImageSet, test: ImageSet, o: &Options) -> Result<ImageData> {
    let val = 10_000.min(train.len() / 6).max(1);
    let s = Splits::held_out(train, test, val, o.split_seed)?.capped(o.caps);
    Ok(images(s, Normalize::mnist(), Augment::None, 10))
}

/// The embedded UCI digits (quick runs): 360 test and 180 validation images held out.
pub fn digits(o: &Options) -> Result<ImageData> {
    let all = crate::digits::load()?;
    let (rest, test) = hold_out(&all, 360, o.split_seed ^ 0xd161)?;
    let s = Splits::held_out(rest, test, 180, o.split_seed)?.capped(o.caps);
    Ok(images(s, Normalize::unit(1, 16.0), Augment::None, 10))
}

/// ImageNet-style class folders under `root` (`train/`, `val/`, and `test/` if present, else `val/`
/// again): resized to 224, ImageNet's normalisation, and with `augment` the random crop and flip.
/// A cap keeps a seeded random subset of the files, in order (the files are grouped by class).
pub fn imagenet(root: &Path, o: &Options) -> Result<ImageData> {
    let open = |s: &str| ImageFolder::scan(&root.join(s), 224);
    let (train, val) = (open("train")?, open("val")?);
    let test = if root.join("test").is_dir() { open("test")? } else { val.clone() };
    let cap = |mut f: ImageFolder, c: Option<usize>| {
        if let Some(n) = c.filter(|&n| n < f.samples.len()) {
            let mut keep = Rng::new(o.split_seed, 7).permutation(f.samples.len());
            keep.truncate(n);
            keep.sort_unstable();
            f.samples = keep.into_iter().map(|i| f.samples[i].clone()).collect();
        }
        Arc::new(f) as Arc<dyn ImageSource>
    };
    let splits = Splits { train: cap(train, o.caps.train), val: cap(val, o.caps.val), test: cap(test, o.caps.test) };
    let augment = if o.augment { Augment::CropFlip { padding: 0 } } else { Augment::None };
    Ok(ImageData { splits, normalize: Normalize::imagenet(), augment, num_classes: 1000, source: String::new() })
}

/// SNLI from its `[train, dev, test]` pairs, as ids into the 300-d GloVe vectors of the words
/// they use (read from `glove`, the text file, through its cache).
pub fn snli(raw: [RawPairs; 3], glove: &Path, o: &Options) -> Result<NliData> {
    let vectors = glove::load_cached(glove, 300, &snli::word_set(&raw))?;
    let index = vectors.index();
    let [train, val, test] = raw;
    let ids = |r: &RawPairs, cap: Option<usize>| -> Result<NliPairs> {
        let pairs = snli::to_ids(r, &index)?;
        Ok(match cap {
            Some(n) => pairs.truncate(n),
            None => pairs,
        })
    };
    let splits =
        Splits { train: ids(&train, o.caps.train)?, val: ids(&val, o.caps.val)?, test: ids(&test, o.caps.test)? };
    Ok(NliData { splits, vectors, source: String::new() })
}
