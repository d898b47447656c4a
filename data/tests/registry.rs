//! The dataset registry: every row loads from its files (or says which are missing), with the
//! paper's splits and transforms.

mod common;

use common::*;
use data::registry::{self, Data, DataArgs, Input};
use data::{Augment, Caps, DATASETS};

fn images(name: &str, args: &DataArgs) -> data::ImageData {
    match registry::find(name).unwrap().load(args).unwrap_or_else(|e| panic!("{name}: {e}")) {
        Data::Images(d) => d,
        _ => panic!("{name}: image data expected"),
    }
}

#[test]
fn digits_need_no_files() {
    let d = images("digits", &DataArgs { split_seed: 1, ..Default::default() });
    assert_eq!((d.splits.train.len(), d.splits.val.len(), d.splits.test.len()), (1257, 180, 360));
    assert_eq!(d.num_classes, 10);
    let capped = images(
        "digits",
        &DataArgs { caps: Caps { train: Some(100), val: Some(10), test: None }, ..Default::default() },
    );
    assert_eq!((capped.splits.train.len(), capped.splits.val.len()), (100, 10));
}

#[test]
fn cifar_svhn_and_mnist_from_a_data_dir() {
    let dir = temp_dir("registry");
    for b in 1..=5 {
        write_cifar(&dir.join(format!("data_batch_{b}.bin")), 20, 20 * (b - 1), false);
    }
    write_cifar(&dir.join("test_batch.bin"), 10, 500, false);
    let args = DataArgs { data_dir: Some(dir.clone()), augment: true, ..Default::default() };
    let c = images("cifar10", &args);
    assert_eq!((c.splits.train.len(), c.splits.val.len(), c.splits.test.len()), (90, 10, 10));
    assert_eq!(c.augment, Augment::CropFlip { padding: 4 });
    assert!(images("cifar10", &DataArgs { augment: false, ..args.clone() }).augment == Augment::None);

    write_svhn(&dir.join("train_32x32.mat"), 40, true, false, false);
    write_svhn(&dir.join("test_32x32.mat"), 8, true, false, false);
    write_svhn(&dir.join("extra_32x32.mat"), 12, false, true, false);
    let s = images("svhn", &args);
    assert_eq!((s.splits.train.len(), s.splits.val.len(), s.splits.test.len(), s.augment), (36, 4, 8, Augment::None));
    let se = images("svhn-extra", &args);
    assert_eq!(se.splits.train.len(), 36 + 12);
    assert_eq!(se.normalize.mean, [0.0; 3], "SVHN is not normalised in the paper");

    write_idx(&dir, "train", 60, 28, 28, true);
    write_idx(&dir, "t10k", 10, 28, 28, false);
    let m = images("mnist", &args);
    assert_eq!((m.splits.train.len(), m.splits.val.len(), m.splits.test.len()), (50, 10, 10));
}

#[test]
fn imagenet_folders_and_missing_files() {
    let dir = temp_dir("registry-imagenet");
    for split in ["train", "val"] {
        for class in ["n01440764", "n01443537"] {
            std::fs::create_dir_all(dir.join(split).join(class)).unwrap();
            image::RgbImage::from_pixel(40, 30, image::Rgb([1, 2, 3]))
                .save(dir.join(split).join(class).join("a.png"))
                .unwrap();
        }
    }
    let d = images("imagenet", &DataArgs { data_dir: Some(dir.clone()), ..Default::default() });
    assert_eq!((d.splits.train.len(), d.splits.test.len(), d.splits.train.shape()), (2, 2, [3, 224, 224]));
    // A cap keeps a random subset across classes, not the first class.
    let mut labels = std::collections::HashSet::new();
    for seed in 0..8 {
        let capped = images(
            "imagenet",
            &DataArgs {
                data_dir: Some(dir.clone()),
                split_seed: seed,
                caps: Caps { train: Some(1), ..Default::default() },
                ..Default::default()
            },
        );
        assert_eq!(capped.splits.train.len(), 1);
        labels.insert(capped.splits.train.label(0));
    }
    assert_eq!(labels.len(), 2, "both classes can be drawn");

    let empty = temp_dir("registry-empty");
    for name in ["cifar10", "svhn", "imagenet", "mnist", "snli"] {
        let args = DataArgs {
            data_dir: Some(empty.clone()),
            offline: true,
            hub_cache: Some(empty.clone()),
            ..Default::default()
        };
        let err =
            registry::find(name).unwrap().load(&args).err().unwrap_or_else(|| panic!("{name} must fail")).to_string();
        let spec = registry::find(name).unwrap();
        assert!(err.contains(name) || err.contains(spec.files[0]), "{name}: {err}");
        assert!(
            spec.files.iter().any(|f| err.contains(f.split([' ', '[']).next().unwrap())),
            "{name} names its files: {err}"
        );
    }
}

#[test]
fn the_table_is_consistent() {
    let mut names: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), DATASETS.len());
    for d in DATASETS {
        assert!(!d.summary.is_empty() && !d.source.is_empty(), "{}", d.name);
        if let Input::Images { channels, .. } = d.input {
            assert!(channels == 1 || channels == 3);
        }
    }
    let err = registry::find("imagenet22k").err().unwrap().to_string();
    assert!(err.contains("imagenet22k") && err.contains("cifar100") && err.contains("repeat-copy"), "{err}");
    assert!(matches!(registry::find("repeat-copy").unwrap().load(&DataArgs::default()).unwrap(), Data::Sequences(_)));
}
