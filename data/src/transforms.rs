//! The paper's transforms. Augmentation works on `u8` images on the host; normalisation runs on
//! the device, after the batch is converted to f32 there.

use candle_core::{Device, Result, Tensor};

use crate::rng::Rng;

/// `(x * scale - mean[c]) / std[c]` per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Maps the stored integers to [0, 1]: 1/255 for 8-bit images, 1/16 for the UCI digits.
    pub scale: f32,
    /// Per channel, after the scaling.
    pub mean: Vec<f32>,
    /// Per channel, after the scaling.
    pub std: Vec<f32>,
}

impl Normalize {
    /// CIFAR-10/100 (the reference's mean `[125.3, 123.0, 113.9] / 255`, std `[63.0, 62.1, 66.7] / 255`).
    pub fn cifar() -> Self {
        Self {
            scale: 1.0 / 255.0,
            mean: vec![125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0],
            std: vec![63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0],
        }
    }

    /// ImageNet (mean `[0.485, 0.456, 0.406]`, std `[0.229, 0.224, 0.225]`).
    pub fn imagenet() -> Self {
        Self { scale: 1.0 / 255.0, mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// MNIST (mean 0.1307, std 0.3081).
    pub fn mnist() -> Self {
        Self { scale: 1.0 / 255.0, mean: vec![0.1307], std: vec![0.3081] }
    }

    /// Only rescaling to [0, 1] (`ToTensor`), as the paper's SVHN runs; `max` is the largest stored value.
    pub fn unit(channels: usize, max: f32) -> Self {
        Self { scale: 1.0 / max, mean: vec![0.0; channels], std: vec![1.0; channels] }
    }

    /// The normalisation of `u8` images `[B, C, plane]` on the host, in f32 with the same
    /// arithmetic as [`Normalize::apply`]: `(x * scale - mean) * (1 / std)`.
    pub fn apply_host(&self, pixels: &[u8], plane: usize) -> Vec<f32> {
        let c = self.mean.len();
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let mut out = Vec::with_capacity(pixels.len());
        for (k, chunk) in pixels.chunks(plane).enumerate() {
            let ch = k % c;
            let (m, s) = (self.mean[ch], inv[ch]);
            out.extend(chunk.iter().map(|&p| (p as f32 * self.scale - m) * s));
        }
        out
    }

    /// Applies the normalisation to a `[B, C, H, W]` f32 tensor on its device.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.mean.len();
        let dev: &Device = x.device();
        let mean = Tensor::from_vec(self.mean.clone(), (1, c, 1, 1), dev)?;
        let inv_std = Tensor::from_vec(self.std.iter().map(|s| 1.0 / s).collect::<Vec<f32>>(), (1, c, 1, 1), dev)?;
        (x * self.scale as f64)?.broadcast_sub(&mean)?.broadcast_mul(&inv_std)
    }
}

/// Random augmentation of training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    /// The image as stored.
    None,
    /// `RandomCrop(H, padding)` with zero padding, then `RandomHorizontalFlip(0.5)`: the paper's
    /// CIFAR augmentation with `padding` 4.
    CropFlip {
        /// Zero pixels added on each side before the crop.
        padding: usize,
    },
}

impl Augment {
    /// Writes the augmented `src` (`[C, H, W]` u8) into `dst` (same size).
    pub fn apply(&self, src: &[u8], shape: [usize; 3], rng: &mut Rng, dst: &mut [u8]) {
        match *self {
            Augment::None => dst.copy_from_slice(src),
            Augment::CropFlip { padding } => {
                let [c, h, w] = shape;
                // Offsets into the zero-padded image, uniform in 0..=2p on each axis.
                let dy = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
                let dx = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
                let flip = rng.coin();
                for ch in 0..c {
                    for y in 0..h {
                        let sy = y as isize + dy;
                        let row = &mut dst[(ch * h + y) * w..(ch * h + y + 1) * w];
                        if sy < 0 || sy >= h as isize {
                            row.fill(0);
                            continue;
                        }
                        let src_row = &src[(ch * h + sy as usize) * w..(ch * h + sy as usize + 1) * w];
                        for (x, out) in row.iter_mut().enumerate() {
                            // The flip mirrors the cropped image: output column x reads crop column w-1-x.
                            let cx = if flip { w - 1 - x } else { x } as isize + dx;
                            *out = if cx < 0 || cx >= w as isize { 0 } else { src_row[cx as usize] };
                        }
                    }
                }
            }
        }
    }
}
