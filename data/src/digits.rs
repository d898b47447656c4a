//! The UCI optical recognition of handwritten digits test set (1,797 8x8 images, pixels 0..16,
//! 10 classes; E. Alpaydin and C. Kaynak, CC BY 4.0), as shipped by scikit-learn
//! (`sklearn/datasets/data/digits.csv.gz`, sha256 09f66e6d...aa22), embedded in the binary so the
//! default run works offline on any machine.

use std::io::Read;

use candle_core::{bail, Result};

use crate::images::ImageSet;

static DIGITS_CSV_GZ: &[u8] = include_bytes!("../assets/digits.csv.gz");

/// All 1,797 digits, shape `[1, 8, 8]`, pixel values 0..16 (normalise by 16).
pub fn load() -> Result<ImageSet> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| candle_core::Error::Msg(format!("embedded digits.csv.gz: {e}")))?;
    let (mut pixels, mut labels) = (Vec::with_capacity(1797 * 64), Vec::with_capacity(1797));
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            bail!("embedded digits.csv.gz: line {} has {} fields, expected 65", i + 1, fields.len())
        }
        for f in &fields[..64] {
            pixels.push(
                f.trim()
                    .parse::<u8>()
                    .map_err(|_| candle_core::Error::Msg(format!("digits line {}: bad pixel {f:?}", i + 1)))?,
            );
        }
        labels.push(
            fields[64]
                .trim()
                .parse::<u32>()
                .map_err(|_| candle_core::Error::Msg(format!("digits line {}: bad label", i + 1)))?,
        );
    }
    ImageSet::new("embedded digits", pixels, labels, [1, 8, 8], 10)
}
