//! The one table of datasets: names, classes, inputs, the files expected in `--data-dir`, where to
//! get them, and how they are split and transformed as in the paper.

use std::path::PathBuf;

use candle_core::{bail, Result};

use crate::cifar::{self, Cifar};
use crate::images::ImageSet;
use crate::paper::{self, Options};
pub use crate::paper::{ImageData, NliData};
use crate::repeat_copy::RepeatCopyConfig;
use crate::snli::{self, RawPairs};
use crate::splits::Caps;
use crate::{idx, svhn};

/// Where the data comes from and how it is cut.
#[derive(Clone, Debug, Default)]
pub struct DataArgs {
    /// The folder holding the dataset's files (see [`DatasetSpec::files`]).
    pub data_dir: Option<PathBuf>,
    /// Read the hub cache only, never download.
    pub offline: bool,
    /// The hub cache (default: `$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
    pub hub_cache: Option<PathBuf>,
    /// Seed of the validation split.
    pub split_seed: u64,
    /// Caps on the split sizes (quick runs).
    pub caps: Caps,
    /// The paper's training augmentation (where the paper has one).
    pub augment: bool,
    /// SNLI: the GloVe text file (default `<data-dir>/glove.840B.300d.txt`).
    pub glove: Option<PathBuf>,
}

/// What one sample is (the same three kinds as `zoo::ModelKind` and [`Data`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// An image of `channels x height x width`.
    Images {
        /// Colour channels (3, or 1 for the digits).
        channels: usize,
        /// Rows of pixels.
        height: usize,
        /// Columns of pixels.
        width: usize,
    },
    /// Two sentences as word vectors of `dim`.
    Pairs {
        /// The word-vector size.
        dim: usize,
    },
    /// The DNC's bit sequences of `bits` data bits.
    Sequences {
        /// Data bits per step.
        bits: usize,
    },
}

/// A loaded dataset, by kind (see [`Input`]).
pub enum Data {
    /// Image classification splits.
    Images(ImageData),
    /// Sentence pairs with their word vectors.
    Pairs(NliData),
    /// A generated sequence task.
    Sequences(RepeatCopyConfig),
}

/// One dataset of the registry.
pub struct DatasetSpec {
    /// The name on the command line (`cifar100`, `svhn`, `snli`, ...).
    pub name: &'static str,
    /// One line for `train list`.
    pub summary: &'static str,
    /// Classes of its labels (0 for the DNC task).
    pub num_classes: usize,
    /// What one sample is.
    pub input: Input,
    /// The files expected in `--data-dir`.
    pub files: &'static [&'static str],
    /// The hub mirror used when the files are not there (with the `hub` feature).
    pub hub: Option<&'static str>,
    /// Where to get the files.
    pub source: &'static str,
    /// The model it is usually trained with (`train --model` when none is given).
    pub default_model: &'static str,
    /// The training loss of the paper's runs on it (`train --loss` when none is given).
    pub default_loss: &'static str,
    load: fn(&DatasetSpec, &DataArgs) -> Result<Data>,
}

impl DatasetSpec {
    /// Opens the dataset: train/val/test as in the paper, capped as asked.
    pub fn load(&self, args: &DataArgs) -> Result<Data> {
        (self.load)(self, args).map_err(|e| candle_core::Error::Msg(format!("dataset {}: {e}", self.name)))
    }

    fn missing(&self, args: &DataArgs) -> candle_core::Error {
        let dir =
            args.data_dir.as_ref().map_or("no --data-dir given".to_string(), |d| format!("{} lacks them", d.display()));
        let hub = match (self.hub, cfg!(feature = "hub"), args.offline) {
            (Some(h), true, true) => format!("; the hub mirror {h} is not in the hub cache (--offline)"),
            (Some(h), false, _) => format!("; or build with the `hub` feature to fetch {h}"),
            _ => String::new(),
        };
        candle_core::Error::Msg(format!(
            "expected {} ({dir}); get them from {}{hub}",
            self.files.join(", "),
            self.source
        ))
    }
}

impl DataArgs {
    fn options(&self) -> Options {
        Options { split_seed: self.split_seed, caps: self.caps, augment: self.augment }
    }
}

fn dir_with(args: &DataArgs, file: &str, subfolders: &[&str]) -> Option<PathBuf> {
    let d = args.data_dir.as_ref()?;
    std::iter::once(d.clone()).chain(subfolders.iter().map(|s| d.join(s))).find(|p| p.join(file).is_file())
}

#[cfg(feature = "hub")]
fn hub_files(spec: &DatasetSpec, args: &DataArgs, files: &[&str]) -> Result<Vec<PathBuf>> {
    let Some(repo) = spec.hub else { return Err(spec.missing(args)) };
    let hub = crate::hub::Hub::new(args.hub_cache.as_deref(), args.offline)?;
    files
        .iter()
        .map(|f| hub.file(crate::hub::RepoKind::Dataset, repo, None, f))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| candle_core::Error::Msg(format!("{}; {e}", spec.missing(args))))
}

fn digits_data(_: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let source = "embedded UCI digits (scikit-learn's digits.csv.gz)".into();
    Ok(Data::Images(ImageData { source, ..paper::digits(&args.options())? }))
}

fn idx_data(spec: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let Some(dir) = args.data_dir.as_ref().filter(|d| d.is_dir()) else { return Err(spec.missing(args)) };
    let (train, test) = (idx::load(dir, "train")?, idx::load(dir, "t10k")?);
    Ok(Data::Images(ImageData { source: dir.display().to_string(), ..paper::mnist(train, test, &args.options())? }))
}

fn cifar_data(spec: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let kind = if spec.num_classes == 10 { Cifar::C10 } else { Cifar::C100 };
    let (train, test, source) = match args.data_dir.as_ref().map(|d| cifar::find_dir(d, kind)) {
        Some(Ok(d)) => {
            let (tr, te) = cifar::load(&d, kind)?;
            (tr, te, d.display().to_string())
        }
        Some(Err(e)) if !cfg!(feature = "hub") => return Err(e),
        _ => cifar_from_hub(spec, args, kind)?,
    };
    Ok(Data::Images(ImageData { source, ..paper::cifar(train, test, kind, &args.options())? }))
}

#[cfg(feature = "hub")]
fn cifar_from_hub(spec: &DatasetSpec, args: &DataArgs, kind: Cifar) -> Result<(ImageSet, ImageSet, String)> {
    let (folder, label) = match kind {
        Cifar::C10 => ("plain_text", "label"),
        Cifar::C100 => ("cifar100", "fine_label"),
    };
    let (train, test) =
        (format!("{folder}/train-00000-of-00001.parquet"), format!("{folder}/test-00000-of-00001.parquet"));
    let paths = hub_files(spec, args, &[&train, &test])?;
    let read = |p: &PathBuf| crate::parquet_mirror::read_images(p, "img", label, spec.num_classes);
    Ok((read(&paths[0])?, read(&paths[1])?, format!("hub {}", spec.hub.unwrap_or_default())))
}

#[cfg(not(feature = "hub"))]
fn cifar_from_hub(spec: &DatasetSpec, args: &DataArgs, _: Cifar) -> Result<(ImageSet, ImageSet, String)> {
    Err(spec.missing(args))
}

fn svhn_data(spec: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let extra = spec.name == "svhn-extra";
    let (train, extra_set, test, source) = match dir_with(args, "train_32x32.mat", &["svhn"]) {
        Some(d) => {
            let (tr, ex, te) = svhn::load(&d, extra)?;
            (tr, ex, te, d.display().to_string())
        }
        None => svhn_from_hub(spec, args, extra)?,
    };
    Ok(Data::Images(ImageData { source, ..paper::svhn(train, extra_set, test, &args.options())? }))
}

#[cfg(feature = "hub")]
fn svhn_from_hub(
    spec: &DatasetSpec,
    args: &DataArgs,
    extra: bool,
) -> Result<(ImageSet, Option<ImageSet>, ImageSet, String)> {
    let mut names = vec!["cropped_digits/train-00000-of-00001.parquet", "cropped_digits/test-00000-of-00001.parquet"];
    if extra {
        names.extend(["cropped_digits/extra-00000-of-00002.parquet", "cropped_digits/extra-00001-of-00002.parquet"]);
    }
    let paths = hub_files(spec, args, &names)?;
    let read = |p: &PathBuf| crate::parquet_mirror::read_images(p, "image", "label", 10);
    let extra_set = if extra { Some(read(&paths[2])?.concat(read(&paths[3])?)?) } else { None };
    Ok((read(&paths[0])?, extra_set, read(&paths[1])?, format!("hub {}", spec.hub.unwrap_or_default())))
}

#[cfg(not(feature = "hub"))]
fn svhn_from_hub(
    spec: &DatasetSpec,
    args: &DataArgs,
    _: bool,
) -> Result<(ImageSet, Option<ImageSet>, ImageSet, String)> {
    Err(spec.missing(args))
}

fn imagenet_data(spec: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let Some(dir) = args.data_dir.as_ref() else { return Err(spec.missing(args)) };
    let root = if dir.join("images/train").is_dir() { dir.join("images") } else { dir.clone() };
    if !root.join("train").is_dir() || !root.join("val").is_dir() {
        return Err(spec.missing(args));
    }
    Ok(Data::Images(ImageData { source: root.display().to_string(), ..paper::imagenet(&root, &args.options())? }))
}

fn snli_data(spec: &DatasetSpec, args: &DataArgs) -> Result<Data> {
    let names = ["snli_1.0_train.jsonl", "snli_1.0_dev.jsonl", "snli_1.0_test.jsonl"];
    let (raw, source) = match dir_with(args, names[0], &["snli_1.0"]) {
        Some(d) => {
            let read = |n: &str| snli::read_jsonl(&d.join(n));
            ([read(names[0])?, read(names[1])?, read(names[2])?], d.display().to_string())
        }
        None => snli_from_hub(spec, args)?,
    };
    let glove_path = match (&args.glove, &args.data_dir) {
        (Some(g), _) => g.clone(),
        (None, Some(d)) => d.join("glove.840B.300d.txt"),
        (None, None) => {
            bail!("snli: needs GloVe vectors: pass their text file (glove.840B.300d.txt) or put it in --data-dir")
        }
    };
    Ok(Data::Pairs(NliData { source, ..paper::snli(raw, &glove_path, &args.options())? }))
}

#[cfg(feature = "hub")]
fn snli_from_hub(spec: &DatasetSpec, args: &DataArgs) -> Result<([RawPairs; 3], String)> {
    let names = [
        "plain_text/train-00000-of-00001.parquet",
        "plain_text/validation-00000-of-00001.parquet",
        "plain_text/test-00000-of-00001.parquet",
    ];
    let paths = hub_files(spec, args, &names)?;
    let read = |p: &PathBuf| crate::parquet_mirror::read_snli(p);
    Ok(([read(&paths[0])?, read(&paths[1])?, read(&paths[2])?], format!("hub {}", spec.hub.unwrap_or_default())))
}

#[cfg(not(feature = "hub"))]
fn snli_from_hub(spec: &DatasetSpec, args: &DataArgs) -> Result<([RawPairs; 3], String)> {
    Err(spec.missing(args))
}

fn repeat_copy_data(_: &DatasetSpec, _: &DataArgs) -> Result<Data> {
    Ok(Data::Sequences(RepeatCopyConfig::default()))
}

const CIFAR_SOURCE: &str = "https://www.cs.toronto.edu/~kriz/cifar.html (the binary version)";
const SVHN_SOURCE: &str = "http://ufldl.stanford.edu/housenumbers/ (format 2, cropped digits)";

/// What CIFAR and SVHN share: 3x32x32 images, trained with the WRN and cross-entropy.
const IMAGES_32: DatasetSpec = DatasetSpec {
    name: "",
    summary: "",
    num_classes: 10,
    input: Input::Images { channels: 3, height: 32, width: 32 },
    files: &[],
    hub: None,
    source: "",
    default_model: "wrn",
    default_loss: "ce",
    load: cifar_data,
};

/// Every dataset of the paper, and two small ones for quick runs.
pub static DATASETS: &[DatasetSpec] = &[
    DatasetSpec {
        name: "digits",
        summary: "UCI handwritten digits, 1,797 8x8 images, embedded (quick runs; no download)",
        num_classes: 10,
        input: Input::Images { channels: 1, height: 8, width: 8 },
        files: &[],
        hub: None,
        source: "embedded (scikit-learn's copy of the UCI set, CC BY 4.0)",
        default_model: "wrn",
        default_loss: "ce",
        load: digits_data,
    },
    DatasetSpec {
        name: "mnist",
        summary: "MNIST or Fashion-MNIST IDX files (50,000 / 10,000 / 10,000)",
        num_classes: 10,
        input: Input::Images { channels: 1, height: 28, width: 28 },
        files: &[
            "train-images-idx3-ubyte[.gz]",
            "train-labels-idx1-ubyte[.gz]",
            "t10k-images-idx3-ubyte[.gz]",
            "t10k-labels-idx1-ubyte[.gz]",
        ],
        hub: None,
        source: "http://yann.lecun.com/exdb/mnist/ or Debian's dataset-fashion-mnist",
        default_model: "wrn",
        default_loss: "ce",
        load: idx_data,
    },
    DatasetSpec {
        name: "cifar10",
        summary: "CIFAR-10: 45,000 / 5,000 / 10,000, random crop and flip",
        num_classes: 10,
        files: &["data_batch_1.bin .. data_batch_5.bin", "test_batch.bin"],
        hub: Some("uoft-cs/cifar10"),
        source: CIFAR_SOURCE,
        load: cifar_data,
        ..IMAGES_32
    },
    DatasetSpec {
        name: "cifar100",
        summary: "CIFAR-100 (fine labels): 45,000 / 5,000 / 10,000, random crop and flip",
        num_classes: 100,
        files: &["train.bin", "test.bin"],
        hub: Some("uoft-cs/cifar100"),
        source: CIFAR_SOURCE,
        load: cifar_data,
        ..IMAGES_32
    },
    DatasetSpec {
        name: "svhn",
        summary: "SVHN: 67,257 / 6,000 / 26,032, no augmentation",
        num_classes: 10,
        files: &["train_32x32.mat", "test_32x32.mat"],
        hub: Some("ufldl-stanford/svhn"),
        source: SVHN_SOURCE,
        load: svhn_data,
        ..IMAGES_32
    },
    DatasetSpec {
        name: "svhn-extra",
        summary: "SVHN with the extra images (the paper's): 598,388 / 6,000 / 26,032",
        num_classes: 10,
        files: &["train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"],
        hub: Some("ufldl-stanford/svhn"),
        source: SVHN_SOURCE,
        load: svhn_data,
        ..IMAGES_32
    },
    DatasetSpec {
        name: "imagenet",
        summary: "ImageNet-style class folders train/, val/ (and test/), 224x224",
        num_classes: 1000,
        input: Input::Images { channels: 3, height: 224, width: 224 },
        files: &["train/<class>/<images>", "val/<class>/<images>", "test/<class>/<images> (optional)"],
        hub: None,
        source: "https://image-net.org (ILSVRC2012, one folder per WordNet id)",
        default_model: "resnet18",
        default_loss: "ce",
        load: imagenet_data,
    },
    DatasetSpec {
        name: "snli",
        summary: "SNLI 1.0 with frozen GloVe 840B vectors (550k / 10k / 10k pairs, '-' dropped)",
        num_classes: 3,
        input: Input::Pairs { dim: 300 },
        files: &["snli_1.0_train.jsonl", "snli_1.0_dev.jsonl", "snli_1.0_test.jsonl", "glove.840B.300d.txt"],
        hub: Some("stanfordnlp/snli"),
        source: "https://nlp.stanford.edu/projects/snli/ and https://nlp.stanford.edu/projects/glove/",
        default_model: "nli",
        default_loss: "ce",
        load: snli_data,
    },
    DatasetSpec {
        name: "repeat-copy",
        summary: "the DNC repeat-copy task (4 bits, lengths 1-2, repeats 1-2), generated",
        num_classes: 0,
        input: Input::Sequences { bits: 4 },
        files: &[],
        hub: None,
        source: "generated from the seed",
        default_model: "dnc",
        default_loss: "sigmoid-ce",
        load: repeat_copy_data,
    },
];

/// The registry row named `name`; the error lists the valid names.
pub fn find(name: &str) -> Result<&'static DatasetSpec> {
    alig::registry::lookup(DATASETS, "dataset", name, |d| d.name)
}
