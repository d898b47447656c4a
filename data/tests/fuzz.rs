//! A bounded mutation fuzzer for every reader of untrusted bytes in this crate: CIFAR binary, IDX
//! (plain and gzipped), MAT v5 (plain and compressed, through the SVHN reader), SNLI jsonl, GloVe
//! text, the hub's parquet rows, and image decoding of folder datasets. Each target starts from valid files written in the
//! real format, applies random mutations (bit flips, interesting bytes and 32-bit values where
//! length fields live, truncation, extension, duplicated blocks) and requires an `Ok` or an `Err`:
//! never a panic. Inputs kept in `tests/fuzz_corpus/<target>/` (past findings) are replayed first.
//!
//! `FUZZ_ITERS` sets the mutations per target (default 300, what CI runs); `FUZZ_SEED` the stream.

mod common;
#[path = "fuzz_mutate.rs"]
mod fuzz_mutate;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::{temp_dir, write_cifar, write_idx, write_svhn};
use data::rng::Rng;
use fuzz_mutate::mutate;

/// Runs `read` on the corpus, then on `iters` mutations of the seeds; fails on the first panic,
/// keeping the input where the message says.
fn fuzz(target: &str, seeds: &[Vec<u8>], read: impl Fn(&Path) -> bool) -> usize {
    let dir = temp_dir(&format!("fuzz-{target}"));
    let iters: usize = std::env::var("FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut rng = Rng::new(seed, target.bytes().map(u64::from).sum());
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&corpus)
        .map(|d| d.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    inputs.extend(seeds.iter().cloned());
    let replayed = inputs.len();
    let mut errors = 0;
    for k in 0..replayed + iters {
        let bytes = if k < replayed { inputs[k].clone() } else { mutate(&seeds[k % seeds.len()], &mut rng) };
        let path = dir.join("input");
        std::fs::write(&path, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| read(&path))) {
            Ok(ok) => errors += usize::from(!ok),
            Err(_) => {
                let kept = dir.join(format!("crash-{k}"));
                std::fs::write(&kept, &bytes).unwrap();
                panic!("{target}: the reader panicked on {} (add it to {})", kept.display(), corpus.display());
            }
        }
    }
    // Valid seeds parse; most mutations must be rejected, not silently accepted.
    assert!(errors > 0 || iters == 0, "{target}: no mutation was rejected");
    std::fs::remove_dir_all(&dir).ok();
    replayed + iters
}

fn file(dir: &Path, name: &str, write: impl FnOnce(&Path)) -> Vec<u8> {
    let p = dir.join(name);
    write(&p);
    std::fs::read(p).unwrap()
}

#[test]
fn cifar_binary() {
    let dir = temp_dir("fuzz-seed-cifar");
    let seeds = [file(&dir, "c10.bin", |p| write_cifar(p, 3, 0, false))];
    fuzz("cifar", &seeds, |p| data::cifar::read(p, data::cifar::Cifar::C10).is_ok());
    let seeds = [file(&dir, "c100.bin", |p| write_cifar(p, 3, 0, true))];
    fuzz("cifar100", &seeds, |p| data::cifar::read(p, data::cifar::Cifar::C100).is_ok());
}

#[test]
fn idx_files() {
    let dir = temp_dir("fuzz-seed-idx");
    write_idx(&dir, "train", 4, 5, 3, false);
    write_idx(&dir, "gz", 4, 5, 3, true);
    let images = std::fs::read(dir.join("train-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
    let gz = std::fs::read(dir.join("gz-images-idx3-ubyte.gz")).unwrap();
    fuzz("idx-images", std::slice::from_ref(&images), |p| {
        data::idx::parse(&std::fs::read(p).unwrap(), &labels, 10, "fuzz").is_ok()
    });
    fuzz("idx-labels", std::slice::from_ref(&labels), |p| {
        data::idx::parse(&images, &std::fs::read(p).unwrap(), 10, "fuzz").is_ok()
    });
    fuzz("idx-gz", &[gz], |p| {
        data::idx::read_maybe_gz(p).and_then(|b| data::idx::parse(&b, &labels, 10, "fuzz")).is_ok()
    });
}

#[test]
fn mat_v5_through_the_svhn_reader() {
    let dir = temp_dir("fuzz-seed-mat");
    let seeds = [
        file(&dir, "plain.mat", |p| write_svhn(p, 3, false, false, false)),
        file(&dir, "zipped.mat", |p| write_svhn(p, 3, true, true, false)),
        file(&dir, "be.mat", |p| write_svhn(p, 2, false, false, true)),
    ];
    fuzz("mat5", &seeds, |p| data::svhn::read(p).is_ok());
}

#[test]
fn snli_jsonl() {
    let line =
        |l: &str, a: &str, b: &str| serde_json::json!({"gold_label": l, "sentence1": a, "sentence2": b}).to_string();
    let text = [
        line("entailment", "A dog runs.", "An animal moves."),
        line("-", "x", "y"),
        line("neutral", "Two men (one tall) talk.", "They're friends."),
    ]
    .join("\n");
    fuzz("snli", &[text.into_bytes()], |p| data::snli::read_jsonl(p).is_ok());
}

#[test]
fn glove_text() {
    let text = "the 0.1 -0.2 0.3\ndog 1e-3 2 -3\n. 0 0 0\n<s> 1 1 1\n".as_bytes().to_vec();
    let keep: BTreeSet<String> = ["the", "dog", ".", "<s>"].iter().map(|s| s.to_string()).collect();
    fuzz("glove", &[text], |p| data::glove::read_text(p, 3, &keep).is_ok());
}

#[cfg(feature = "hub")]
#[test]
fn parquet_rows() {
    let dir = temp_dir("fuzz-seed-parquet");
    let seeds = [file(&dir, "c10.parquet", |p| common::write_image_parquet(p, 3, 0, "label"))];
    fuzz("parquet", &seeds, |p| data::parquet_mirror::read_images(p, "img", "label", 10).is_ok());
}

#[test]
fn folder_images() {
    let dir = temp_dir("fuzz-seed-images");
    let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 7]));
    let mut seeds = vec![];
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::Bmp] {
        let mut bytes = std::io::Cursor::new(vec![]);
        img.write_to(&mut bytes, format).unwrap();
        seeds.push(bytes.into_inner());
    }
    // A folder dataset of one class whose only image is the fuzzed file.
    let root = dir.join("set");
    std::fs::create_dir_all(root.join("class")).unwrap();
    fuzz("image", &seeds, |p| {
        std::fs::copy(p, root.join("class/x.png")).unwrap();
        let Ok(folder) = data::ImageFolder::scan(&root, 8) else { return false };
        let mut out = vec![0u8; 3 * 8 * 8];
        folder.load(0, data::Augment::CropFlip { padding: 0 }, &mut Rng::new(0, 0), &mut out).is_ok()
    });
}
