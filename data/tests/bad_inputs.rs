//! A corpus of bad inputs, each with the one-line error it must give (naming the file and the
//! problem): truncated and oversized files, wrong magic numbers, labels out of range, images of the
//! wrong size, empty data sets.

mod common;

use std::path::Path;

use common::{temp_dir, write_cifar, write_idx};
use data::cifar::{self, Cifar};

fn one_line_error<T>(what: &str, r: candle_core::Result<T>, needles: &[&str]) {
    let Err(e) = r else { panic!("{what}: accepted") };
    // With RUST_BACKTRACE set, candle appends a backtrace after the message's line.
    let msg = e.to_string();
    let msg = msg.lines().next().unwrap_or_default();
    for n in needles {
        assert!(msg.contains(n), "{what}: {n:?} not in {msg:?}");
    }
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn each_bad_input_gives_its_error() {
    let dir = temp_dir("bad-inputs");
    // CIFAR: a truncated record, an oversized file (a record and a half too many), a label of 10.
    let c10 = dir.join("data_batch_1.bin");
    write_cifar(&c10, 3, 0, false);
    rewrite(&c10, |b| b.truncate(3073 * 2 + 100));
    one_line_error("truncated CIFAR", cifar::read(&c10, Cifar::C10), &["data_batch_1.bin", "3073"]);
    write_cifar(&c10, 3, 0, false);
    rewrite(&c10, |b| b.extend(vec![0u8; 3073 + 1536]));
    one_line_error("oversized CIFAR", cifar::read(&c10, Cifar::C10), &["data_batch_1.bin", "3073"]);
    write_cifar(&c10, 3, 0, false);
    rewrite(&c10, |b| b[3073] = 10);
    one_line_error("CIFAR label out of range", cifar::read(&c10, Cifar::C10), &["data_batch_1.bin", "10"]);
    std::fs::write(&c10, b"").unwrap();
    one_line_error("empty CIFAR file", cifar::read(&c10, Cifar::C10), &["data_batch_1.bin"]);

    // IDX: wrong magic, a label out of range, counts that disagree, an image file cut short.
    write_idx(&dir, "train", 4, 5, 3, false);
    let (img, lbl) = (dir.join("train-images-idx3-ubyte"), dir.join("train-labels-idx1-ubyte"));
    let read = || data::idx::parse(&std::fs::read(&img).unwrap(), &std::fs::read(&lbl).unwrap(), 10, "train");
    rewrite(&img, |b| b[3] = 0x01);
    one_line_error("IDX wrong magic", read(), &["train", "magic"]);
    write_idx(&dir, "train", 4, 5, 3, false);
    rewrite(&lbl, |b| b[9] = 11);
    one_line_error("IDX label out of range", read(), &["train", "11"]);
    write_idx(&dir, "train", 4, 5, 3, false);
    rewrite(&lbl, |b| b.truncate(10));
    one_line_error("IDX label count", read(), &["train"]);
    write_idx(&dir, "train", 4, 5, 3, false);
    rewrite(&img, |b| b.truncate(40));
    one_line_error("IDX images cut short", read(), &["train"]);

    // An image folder with an image that is not one, and an empty class tree.
    let root = dir.join("folder");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    one_line_error("empty image folder", data::ImageFolder::scan(&root, 8), &["folder"]);
    std::fs::write(root.join("cat/1.png"), b"not a png").unwrap();
    let f = data::ImageFolder::scan(&root, 8).unwrap();
    let mut out = vec![0u8; 3 * 8 * 8];
    one_line_error(
        "undecodable image",
        f.load(0, data::Augment::None, &mut data::rng::Rng::new(0, 0), &mut out),
        &["1.png", "decode"],
    );
    // A loader over an empty set.
    let empty = data::ImageSet::new("empty", vec![], vec![], [1, 2, 2], 10);
    if let Ok(set) = empty {
        let loader = data::Loader::new(
            std::sync::Arc::new(set),
            data::LoaderConfig::default(),
            data::Normalize::unit(1, 1.0),
            candle_core::Device::Cpu,
        );
        one_line_error("empty data set", loader, &["empty"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
