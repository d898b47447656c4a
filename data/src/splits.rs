//! The paper's splits (oval-group/ali-g `experiments/data/loaders.py`): a validation set drawn
//! from the training images with a fixed seed. The reference draws it with numpy's legacy RNG
//! seeded 1234; ours is a different but equally fixed draw from the run's split seed.

use candle_core::{bail, Result};

use crate::images::ImageSet;
use crate::rng::Rng;

/// The seed of the paper's splits.
pub const SPLIT_SEED: u64 = 1234;
/// CIFAR-10/100: 5,000 of the 50,000 training images are the validation set.
pub const CIFAR_VAL: usize = 5000;
/// SVHN: 6,000 of the 73,257 training images are the validation set.
pub const SVHN_VAL: usize = 6000;

/// Train, validation and test sets.
#[derive(Clone, Debug)]
pub struct Splits<T> {
    /// The training set.
    pub train: T,
    /// The validation set.
    pub val: T,
    /// The test set.
    pub test: T,
}

/// Splits `set` into `(rest, held_out)` with `held_out` images drawn at random (seeded); both keep
/// the original order.
pub fn hold_out(set: &ImageSet, held_out: usize, seed: u64) -> Result<(ImageSet, ImageSet)> {
    if held_out >= set.len() {
        bail!("cannot hold out {held_out} of {} images", set.len())
    }
    let perm = Rng::new(seed, 0).permutation(set.len());
    let mut val: Vec<usize> = perm[..held_out].to_vec();
    let mut train: Vec<usize> = perm[held_out..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Ok((set.subset(&train), set.subset(&val)))
}

/// Caps on the sizes of the three sets, for quick runs (`None`: all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// At most this many training samples.
    pub train: Option<usize>,
    /// At most this many validation samples.
    pub val: Option<usize>,
    /// At most this many test samples.
    pub test: Option<usize>,
}

impl Splits<ImageSet> {
    /// Applies `caps` (the first images of each set; the sets are already in a random order or
    /// the caller does not care).
    pub fn capped(self, caps: Caps) -> Self {
        let cap = |s: ImageSet, c: Option<usize>| match c {
            Some(n) => s.truncate(n),
            None => s,
        };
        Splits { train: cap(self.train, caps.train), val: cap(self.val, caps.val), test: cap(self.test, caps.test) }
    }

    /// `val` images of `train` held out as the validation set: CIFAR with [`CIFAR_VAL`] (45,000 /
    /// 5,000), MNIST-style sets likewise; test = the test set.
    pub fn held_out(train: ImageSet, test: ImageSet, val: usize, seed: u64) -> Result<Self> {
        let (train, val) = hold_out(&train, val, seed)?;
        Ok(Splits { train, val, test })
    }

    /// SVHN: `val` ([`SVHN_VAL`]) of the 73,257 training images held out; train = the rest, plus
    /// `extra` when given (the paper's `svhn-extra`: 67,257 + 531,131 = 598,388); test = the test set.
    pub fn svhn(train: ImageSet, extra: Option<ImageSet>, test: ImageSet, val: usize, seed: u64) -> Result<Self> {
        let (mut rest, val) = hold_out(&train, val, seed)?;
        if let Some(extra) = extra {
            rest = rest.concat(extra)?;
        }
        Ok(Splits { train: rest, val, test })
    }
}
