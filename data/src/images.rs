//! In-memory image datasets: `u8` pixels, channel-first, with integer labels.

use candle_core::{bail, Result};

/// `n` images of shape `[C, H, W]` as `u8` (CHW row-major, image after image), with labels in
/// `0..num_classes`. Augmentation works on these bytes; the loader converts batches to f32 on
/// the device.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Every image's bytes, CHW, one image after the other.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u32>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Labels lie in `0..num_classes`.
    pub num_classes: usize,
}

impl ImageSet {
    /// Checks the sizes and the label range; `what` names the source in errors.
    pub fn new(what: &str, pixels: Vec<u8>, labels: Vec<u32>, shape: [usize; 3], num_classes: usize) -> Result<Self> {
        let per = shape.iter().product::<usize>();
        if per == 0 || pixels.len() != per * labels.len() {
            bail!("{what}: {} pixel bytes for {} images of shape {shape:?}", pixels.len(), labels.len())
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= num_classes) {
            bail!("{what}: label {l} of image {i} is out of range (expected 0..{num_classes})")
        }
        Ok(Self { pixels, labels, shape, num_classes })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for a set without images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image, `C * H * W`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The bytes of image `i` (CHW).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self { pixels, labels, shape: self.shape, num_classes: self.num_classes }
    }

    /// The first `n` images (all when `n` is larger).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }

    /// `self` followed by `other` (same shape and classes).
    pub fn concat(mut self, other: ImageSet) -> Result<Self> {
        if other.shape != self.shape || other.num_classes != self.num_classes {
            bail!("cannot join image sets of shapes {:?} and {:?}", self.shape, other.shape)
        }
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
        Ok(self)
    }
}
