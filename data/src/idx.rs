//! IDX files (MNIST, Fashion-MNIST), plain or gzipped: big-endian magic 2051 (images: count,
//! rows, cols, then bytes) and 2049 (labels: count, then bytes).

use std::io::Read;
use std::path::Path;

use candle_core::{bail, Result};

use crate::images::ImageSet;

/// The file's bytes, inflated when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = vec![];
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| candle_core::Error::Msg(format!("{}: corrupt gzip stream: {e}", path.display())))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file and its label file into an image set of shape `[1, rows, cols]`.
pub fn parse(images: &[u8], labels: &[u8], num_classes: usize, what: &str) -> Result<ImageSet> {
    if images.len() < 16 || be_u32(images, 0) != 2051 {
        bail!("{what}: not an IDX image file (expected magic 2051 = 0x00000803 in a 16-byte header)")
    }
    if labels.len() < 8 || be_u32(labels, 0) != 2049 {
        bail!("{what}: not an IDX label file (expected magic 2049 = 0x00000801 in an 8-byte header)")
    }
    let (n, rows, cols) = (be_u32(images, 4) as usize, be_u32(images, 8) as usize, be_u32(images, 12) as usize);
    let expected = n.checked_mul(rows * cols).and_then(|x| x.checked_add(16));
    if expected != Some(images.len()) {
        bail!("{what}: images header says {n} x {rows} x {cols} ({expected:?} bytes), file has {}", images.len())
    }
    if be_u32(labels, 4) as usize != n || labels.len() != 8 + n {
        bail!("{what}: {n} images but the label file holds {} labels in {} bytes", be_u32(labels, 4), labels.len())
    }
    let labels = labels[8..].iter().map(|&l| l as u32).collect();
    ImageSet::new(what, images[16..].to_vec(), labels, [1, rows, cols], num_classes)
}

/// Reads `<dir>/<prefix>-images-idx3-ubyte[.gz]` and `<dir>/<prefix>-labels-idx1-ubyte[.gz]`
/// (`prefix` is `train` or `t10k`).
pub fn load(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let find = |kind: &str| {
        let base = format!("{prefix}-{kind}");
        [dir.join(&base), dir.join(format!("{base}.gz"))].into_iter().find(|p| p.is_file()).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: no {base} or {base}.gz (MNIST / Fashion-MNIST IDX files)",
                dir.display()
            ))
        })
    };
    let (img_path, lbl_path) = (find("images-idx3-ubyte")?, find("labels-idx1-ubyte")?);
    parse(&read_maybe_gz(&img_path)?, &read_maybe_gz(&lbl_path)?, 10, &img_path.display().to_string())
}
