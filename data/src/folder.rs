//! ImageNet-style class folders (torchvision's `ImageFolder`): `root/<class>/**/<image>`.
//!
//! Classes are the immediate sub-folders of `root`, sorted by name (with WordNet ids this is the
//! standard 0..999 order); files are found recursively (sorted, following symlinks) and kept by
//! extension (`.jpg .jpeg .png .ppm .pgm .bmp`, any case); images are decoded by content, not by
//! extension (ImageNet has a PNG named `.JPEG` and CMYK JPEGs), and converted to RGB. Transform as
//! the paper's ImageNet runs: the shorter side resized to `size` (antialiased bilinear, the filter
//! of torchvision's `Resize` on PIL images, through `fast_image_resize`'s SIMD code; results
//! differ from torchvision's by rounding), then a `size x size`
//! crop: centred (evaluation, and the paper's `--no_data_augmentation` training) or random with a
//! horizontal flip (training with augmentation).
//!
//! JPEGs in YCbCr or RGB (nearly all photos) are decoded by `zune-jpeg` directly, with the options
//! the `image` crate gives it for them (so into the same bytes), into a buffer each worker thread
//! keeps, and resized into another: no copy of the decoded image, and no fresh pages to fault in
//! for each photo. Every other file (grayscale and CMYK JPEGs, PNG, PPM, BMP) goes through `image`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use candle_core::{bail, Result};

use crate::loader::ImageSource;
use crate::rng::Rng;
use crate::transforms::Augment;

const EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "ppm", "pgm", "bmp"];

/// The files of a class-folder tree, decoded on demand.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// The folder holding one sub-folder per class.
    pub root: PathBuf,
    /// The class names (sub-folder names), sorted: class `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// `(path, class index)`, classes in order, files sorted within each class.
    pub samples: Vec<(PathBuf, u32)>,
    /// Output side: images are `[3, size, size]`.
    pub size: usize,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 64 {
        bail!("{}: folders nested more than 64 deep (a symlink loop?)", dir.display())
    }
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if p.extension().is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())) {
            out.push(p);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Scans `root`. Fails on a missing root, no class folder, or a class without images.
    pub fn scan(root: &Path, size: usize) -> Result<Self> {
        if !root.is_dir() {
            bail!("{}: no such folder (expected one sub-folder of images per class)", root.display())
        }
        if size == 0 {
            bail!("image folder: the output size must be positive")
        }
        let classes: Vec<PathBuf> = sorted_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
        if classes.is_empty() {
            bail!("{}: no class sub-folders", root.display())
        }
        let mut samples = vec![];
        for (k, dir) in classes.iter().enumerate() {
            let mut files = vec![];
            walk(dir, &mut files, 0)?;
            if files.is_empty() {
                bail!("{}: class folder without images ({})", dir.display(), EXTENSIONS.join(", "))
            }
            samples.extend(files.into_iter().map(|f| (f, k as u32)));
        }
        let classes =
            classes.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        Ok(Self { root: root.to_path_buf(), classes, samples, size })
    }

    /// Decodes and transforms sample `i` (see the module docs) into `out` (`[3, size, size]`).
    pub fn load(&self, i: usize, augment: Augment, rng: &mut Rng, out: &mut [u8]) -> Result<()> {
        let path = &self.samples[i].0;
        let bytes = std::fs::read(path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let s = self.size as u32;
        SCRATCH.with_borrow_mut(|scratch| {
            let (w, h) = decode_rgb(&bytes, &mut scratch.decoded)
                .map_err(|e| candle_core::Error::Msg(format!("{}: cannot decode the image: {e}", path.display())))?;
            let (nw, nh) = if w <= h {
                (s, ((h as u64 * s as u64) / w as u64).max(s as u64) as u32)
            } else {
                (((w as u64 * s as u64) / h as u64).max(s as u64) as u32, s)
            };
            scratch.resize(w, h, nw, nh).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
            let (x0, y0, flip) = match augment {
                Augment::None => ((nw - s) / 2, (nh - s) / 2, false),
                Augment::CropFlip { .. } => {
                    (rng.below((nw - s + 1) as u64) as u32, rng.below((nh - s + 1) as u64) as u32, rng.coin())
                }
            };
            crop_planes(&scratch.resized, nw as usize, [x0 as usize, y0 as usize], flip, self.size, out);
            Ok(())
        })
    }
}

/// `out [3, n, n]` (planar) from the `n x n` window at `[x0, y0]` of the interleaved RGB image
/// `rgb` `width` pixels wide, mirrored left to right with `flip`.
fn crop_planes(rgb: &[u8], width: usize, [x0, y0]: [usize; 2], flip: bool, n: usize, out: &mut [u8]) {
    let (r, rest) = out.split_at_mut(n * n);
    let (g, b) = rest.split_at_mut(n * n);
    for y in 0..n {
        let row = &rgb[((y + y0) * width + x0) * 3..][..n * 3];
        let (r, g, b) = (&mut r[y * n..][..n], &mut g[y * n..][..n], &mut b[y * n..][..n]);
        for (x, p) in row.chunks_exact(3).enumerate() {
            let x = if flip { n - 1 - x } else { x };
            (r[x], g[x], b[x]) = (p[0], p[1], p[2]);
        }
    }
}

/// What each loader thread keeps from photo to photo.
struct Scratch {
    /// The decoded image, interleaved RGB.
    decoded: Vec<u8>,
    /// The resized image, interleaved RGB.
    resized: Vec<u8>,
    resizer: fast_image_resize::Resizer,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> =
        RefCell::new(Scratch { decoded: vec![], resized: vec![], resizer: fast_image_resize::Resizer::new() });
}

impl Scratch {
    /// `decoded` (`w x h`) resized into `resized` (`nw x nh`) with the antialiased bilinear
    /// (triangle) filter: `fast_image_resize`'s SIMD convolution, about 9x faster than the `image`
    /// crate's on 500 x 375 photos (measured).
    fn resize(&mut self, w: u32, h: u32, nw: u32, nh: u32) -> std::result::Result<(), String> {
        use fast_image_resize::images::{Image, ImageRef};
        use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions};
        self.resized.resize(nw as usize * nh as usize * 3, 0);
        let src = ImageRef::new(w, h, &self.decoded, PixelType::U8x3).map_err(|e| e.to_string())?;
        let mut dst = Image::from_slice_u8(nw, nh, &mut self.resized, PixelType::U8x3).map_err(|e| e.to_string())?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer.resize(&src, &mut dst, &options).map_err(|e| format!("cannot resize the image: {e}"))
    }
}

/// Decodes an image file's `bytes` into `out` (grown to fit) as interleaved RGB and returns its
/// width and height; see the module docs for which decoder.
fn decode_rgb(bytes: &[u8], out: &mut Vec<u8>) -> std::result::Result<(u32, u32), String> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // The `image` crate's options for JPEGs (codecs/jpeg/decoder.rs of image 0.25).
        let options = DecoderOptions::default()
            .set_strict_mode(false)
            .set_max_width(usize::MAX)
            .set_max_height(usize::MAX)
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        if decoder.decode_headers().is_ok()
            && matches!(decoder.input_colorspace(), Some(ColorSpace::YCbCr | ColorSpace::RGB))
        {
            let (w, h) = decoder.dimensions().ok_or("no dimensions after the headers")?;
            out.resize(decoder.output_buffer_size().ok_or("an image too large to address")?, 0);
            decoder.decode_into(out).map_err(|e| format!("{e:?}"))?;
            return Ok((w as u32, h as u32));
        }
    }
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?.to_rgb8();
    let (w, h) = img.dimensions();
    *out = img.into_raw();
    Ok((w, h))
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn shape(&self) -> [usize; 3] {
        [3, self.size, self.size]
    }
    fn label(&self, i: usize) -> u32 {
        self.samples[i].1
    }
    fn fill(&self, i: usize, augment: Augment, rng: &mut Rng, out: &mut [u8]) -> Result<()> {
        self.load(i, augment, rng, out)
    }
}
