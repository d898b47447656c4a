//! The hub's parquet mirrors of the paper's datasets (`uoft-cs/cifar10`, `uoft-cs/cifar100`,
//! `ufldl-stanford/svhn`, `stanfordnlp/snli`), read with the parquet record API.
//!
//! Images are a struct column `{bytes, path}` holding PNG (or JPEG) bytes, decoded here to RGB and
//! stored CHW (candle-datasets' CIFAR parquet path permutes them to CWH: every image transposed;
//! not this one). Labels are int64; SNLI's `-1` (no gold label) pairs are dropped.

use std::path::Path;

use candle_core::{bail, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::images::ImageSet;
use crate::snli::RawPairs;
use crate::tokenize::ptb_tokenize;

fn open(path: &Path) -> Result<SerializedFileReader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    SerializedFileReader::new(f)
        .map_err(|e| candle_core::Error::Msg(format!("{}: not a parquet file: {e}", path.display())))
}

/// Runs a read, turning a panic inside the parquet crate into an error naming the file: the crate
/// asserts on some malformed files (found by `tests/fuzz.rs`; the input is kept in
/// `tests/fuzz_corpus/parquet/`).
fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        bail!("{}: corrupt parquet file (the parquet reader failed: {why})", path.display())
    })
}

/// Image rows: the struct column `image_column` and the integer column `label_column`.
pub fn read_images(path: &Path, image_column: &str, label_column: &str, num_classes: usize) -> Result<ImageSet> {
    guarded(path, || read_image_rows(path, image_column, label_column, num_classes))
}

fn read_image_rows(path: &Path, image_column: &str, label_column: &str, num_classes: usize) -> Result<ImageSet> {
    let what = path.display().to_string();
    let reader = open(path)?;
    let rows = reader.get_row_iter(None).map_err(|e| candle_core::Error::Msg(format!("{what}: {e}")))?;
    let (mut pixels, mut labels) = (vec![], vec![]);
    let mut shape = None;
    for (n, row) in rows.enumerate() {
        let row = row.map_err(|e| candle_core::Error::Msg(format!("{what}: row {n}: {e}")))?;
        let (mut bytes, mut label) = (None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                (c, Field::Group(g)) if c == image_column => {
                    for (k, v) in g.get_column_iter() {
                        if let ("bytes", Field::Bytes(b)) = (k.as_str(), v) {
                            bytes = Some(b.data().to_vec());
                        }
                    }
                }
                (c, Field::Long(v)) if c == label_column => label = Some(*v),
                (c, Field::Int(v)) if c == label_column => label = Some(*v as i64),
                _ => {}
            }
        }
        let (Some(bytes), Some(label)) = (bytes, label) else {
            bail!("{what}: row {n} lacks the columns {image_column:?} (image bytes) and {label_column:?}")
        };
        let img = image::load_from_memory(&bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{what}: row {n}: {e}")))?
            .to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        if *shape.get_or_insert([3, h, w]) != [3, h, w] {
            bail!("{what}: row {n} is {w}x{h}, earlier rows are {:?}", shape)
        }
        let raw = img.as_raw();
        for c in 0..3 {
            pixels.extend((0..h * w).map(|p| raw[p * 3 + c]));
        }
        // SVHN mirrors may keep MATLAB's 10 for the digit 0.
        let label = if num_classes == 10 && label == 10 { 0 } else { label };
        labels.push(
            u32::try_from(label).map_err(|_| candle_core::Error::Msg(format!("{what}: row {n}: label {label}")))?,
        );
    }
    let Some(shape) = shape else { bail!("{what}: no rows") };
    ImageSet::new(&what, pixels, labels, shape, num_classes)
}

/// SNLI rows (`premise`, `hypothesis`, `label`), tokenised as the jsonl files.
pub fn read_snli(path: &Path) -> Result<RawPairs> {
    guarded(path, || read_snli_rows(path))
}

fn read_snli_rows(path: &Path) -> Result<RawPairs> {
    let what = path.display().to_string();
    let reader = open(path)?;
    let rows = reader.get_row_iter(None).map_err(|e| candle_core::Error::Msg(format!("{what}: {e}")))?;
    let mut out = RawPairs::default();
    for (n, row) in rows.enumerate() {
        let row = row.map_err(|e| candle_core::Error::Msg(format!("{what}: row {n}: {e}")))?;
        let (mut p, mut h, mut l) = (None, None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("premise", Field::Str(s)) => p = Some(s.clone()),
                ("hypothesis", Field::Str(s)) => h = Some(s.clone()),
                ("label", Field::Long(v)) => l = Some(*v),
                ("label", Field::Int(v)) => l = Some(*v as i64),
                _ => {}
            }
        }
        let (Some(p), Some(h), Some(l)) = (p, h, l) else {
            bail!("{what}: row {n} lacks premise, hypothesis or label")
        };
        match l {
            -1 => out.dropped += 1,
            0..=2 => {
                out.premises.push(ptb_tokenize(&p));
                out.hypotheses.push(ptb_tokenize(&h));
                out.labels.push(l as u32);
            }
            other => bail!("{what}: row {n}: label {other} (expected -1, 0, 1 or 2)"),
        }
    }
    Ok(out)
}
