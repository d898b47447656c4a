//! SVHN cropped digits (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`), MATLAB 5 files
//! with `X` (uint8, `[32, 32, 3, N]` column-major) and `y` (`[N, 1]`, 1..10 where 10 is the digit
//! 0, mapped to 0 here as torchvision and tensorflow-datasets do).
//!
//! `X` is streamed image by image: each 3,072-byte column-major image is transposed to CHW on the
//! fly, so the 531,131-image `extra` split (1.6 GB of pixels) is held once in memory.

use std::path::Path;

use candle_core::{bail, Result};

use crate::images::ImageSet;
use crate::mat5::{self, MI_UINT8};

const IMAGE: usize = 3 * 32 * 32;

/// Reads one SVHN `.mat` file.
pub fn read(path: &Path) -> Result<ImageSet> {
    let what = path.display().to_string();
    if !path.is_file() {
        bail!("{what}: no such file; get train_32x32.mat, test_32x32.mat and extra_32x32.mat from http://ufldl.stanford.edu/housenumbers/ or let the hub feature fetch ufldl-stanford/svhn")
    }
    let mut pixels: Option<Vec<u8>> = None;
    let mut labels: Option<Vec<u32>> = None;
    mat5::read_arrays(path, |h, r| {
        match h.name.as_str() {
            "X" => {
                if h.dims.len() != 4 || h.dims[..3] != [32, 32, 3] {
                    bail!("{what}: X has dimensions {:?}, expected [32, 32, 3, N]", h.dims)
                }
                if h.data_type != MI_UINT8 || h.data_bytes != h.elem_count() {
                    bail!("{what}: X must be stored as uint8 (found mi type {}, {} bytes)", h.data_type, h.data_bytes)
                }
                let n = h.dims[3];
                let mut out = vec![0u8; n * IMAGE];
                let mut col = [0u8; IMAGE];
                for img in out.chunks_exact_mut(IMAGE) {
                    r.read_exact(&mut col)
                        .map_err(|e| candle_core::Error::Msg(format!("{what}: X is truncated: {e}")))?;
                    // column-major (row fastest, then column, then channel) -> CHW row-major
                    for ch in 0..3 {
                        for row in 0..32 {
                            for c in 0..32 {
                                img[ch * 1024 + row * 32 + c] = col[row + 32 * c + 1024 * ch];
                            }
                        }
                    }
                }
                pixels = Some(out);
            }
            "y" => {
                let v = h.read_f64(r)?;
                let mut ls = Vec::with_capacity(v.len());
                for (i, x) in v.into_iter().enumerate() {
                    if x.fract() != 0.0 || !(0.0..=10.0).contains(&x) {
                        bail!("{what}: label {x} of image {i} is not in 1..10")
                    }
                    ls.push(x as u32 % 10);
                }
                labels = Some(ls);
            }
            _ => {}
        }
        Ok(())
    })?;
    let (Some(pixels), Some(labels)) = (pixels, labels) else {
        bail!("{what}: expected arrays X and y (an SVHN cropped-digits file)")
    };
    ImageSet::new(&what, pixels, labels, [3, 32, 32], 10)
}

/// `train`, `test` and, when `extra`, the extra split from `dir`.
pub fn load(dir: &Path, extra: bool) -> Result<(ImageSet, Option<ImageSet>, ImageSet)> {
    let train = read(&dir.join("train_32x32.mat"))?;
    let test = read(&dir.join("test_32x32.mat"))?;
    let extra = if extra { Some(read(&dir.join("extra_32x32.mat"))?) } else { None };
    Ok((train, extra, test))
}
