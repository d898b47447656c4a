//! CIFAR-10 and CIFAR-100, binary version (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`).
//!
//! A record is one label byte (CIFAR-10) or a coarse and a fine label byte (CIFAR-100; the paper
//! trains on the fine label), then 3,072 pixel bytes: the red, green and blue 32x32 planes, each
//! row-major, i.e. CHW already. The record count comes from the file length.

use std::path::{Path, PathBuf};

use candle_core::{bail, Result};

use crate::images::ImageSet;

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// CIFAR-10: 10 classes, one label byte per record.
    C10,
    /// CIFAR-100: 100 fine classes, a coarse and a fine label byte per record.
    C100,
}

impl Cifar {
    fn label_bytes(self) -> usize {
        match self {
            Cifar::C10 => 1,
            Cifar::C100 => 2,
        }
    }

    /// 10 or 100.
    pub fn num_classes(self) -> usize {
        match self {
            Cifar::C10 => 10,
            Cifar::C100 => 100,
        }
    }

    /// The folder the official tarball unpacks to.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar::C10 => "cifar-10-batches-bin",
            Cifar::C100 => "cifar-100-binary",
        }
    }

    /// The training and test files, in reading order.
    pub fn files(self) -> (Vec<&'static str>, &'static str) {
        match self {
            Cifar::C10 => (
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            Cifar::C100 => (vec!["train.bin"], "test.bin"),
        }
    }

    fn download_hint(self) -> &'static str {
        match self {
            Cifar::C10 => "get cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it there, or let the hub feature fetch uoft-cs/cifar10",
            Cifar::C100 => "get cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it there, or let the hub feature fetch uoft-cs/cifar100",
        }
    }
}

/// Decodes the bytes of one binary CIFAR file; `what` names it in errors.
pub fn parse(bytes: &[u8], kind: Cifar, what: &str) -> Result<ImageSet> {
    let record = kind.label_bytes() + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        bail!("{what}: {} bytes is not a whole number of {record}-byte CIFAR records (truncated or not a {kind:?} binary file)", bytes.len())
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for r in bytes.chunks_exact(record) {
        labels.push(r[kind.label_bytes() - 1] as u32);
        pixels.extend_from_slice(&r[kind.label_bytes()..]);
    }
    ImageSet::new(what, pixels, labels, [3, 32, 32], kind.num_classes())
}

/// Reads one binary CIFAR file.
pub fn read(path: &Path, kind: Cifar) -> Result<ImageSet> {
    let bytes = std::fs::read(path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    parse(&bytes, kind, &path.display().to_string())
}

/// The folder holding the binary files: `dir` itself or the tarball's folder inside it.
pub fn find_dir(dir: &Path, kind: Cifar) -> Result<PathBuf> {
    let (train, _) = kind.files();
    for d in [dir.to_path_buf(), dir.join(kind.folder())] {
        if d.join(train[0]).is_file() {
            return Ok(d);
        }
    }
    let python = match kind {
        Cifar::C10 => "cifar-10-batches-py",
        Cifar::C100 => "cifar-100-python",
    };
    if dir.join(python).is_dir() {
        bail!(
            "{}: found the Python (pickle) version {python}/, which is not supported; {}",
            dir.display(),
            kind.download_hint()
        )
    }
    bail!("{}: no {} (looked in it and in {}/); {}", dir.display(), train[0], kind.folder(), kind.download_hint())
}

/// The official training set (50,000 images) and test set (10,000) from `dir`.
pub fn load(dir: &Path, kind: Cifar) -> Result<(ImageSet, ImageSet)> {
    let d = find_dir(dir, kind)?;
    let (train_files, test_file) = kind.files();
    let mut train: Option<ImageSet> = None;
    for f in train_files {
        let part = read(&d.join(f), kind)?;
        train = Some(match train {
            None => part,
            Some(t) => t.concat(part)?,
        });
    }
    let test = read(&d.join(test_file), kind)?;
    Ok((train.expect("at least one training file"), test))
}
