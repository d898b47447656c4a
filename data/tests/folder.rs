//! ImageNet-style class folders: discovery as torchvision's ImageFolder, decoding by content,
//! resize and crops, errors.

mod common;

use std::sync::Arc;

use candle_core::Device;
use common::temp_dir;
use data::rng::Rng;
use data::{Augment, ImageFolder, Loader, LoaderConfig, Normalize};

/// A `w x h` RGB image with asymmetric pixels.
fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13 + y * 3) as u8, (y * 17 + 5) as u8, (x * y) as u8]))
}

/// The folder's images in order, `batch_size` at a time, with the ImageNet normalisation.
fn in_order(f: ImageFolder, batch_size: usize) -> Loader {
    let cfg = LoaderConfig { batch_size, shuffle: false, ..Default::default() };
    Loader::new(Arc::new(f), cfg, Normalize::imagenet(), Device::Cpu).unwrap()
}

#[test]
fn classes_files_and_decoding() {
    let root = temp_dir("folder");
    std::fs::create_dir_all(root.join("b_class")).unwrap();
    std::fs::create_dir_all(root.join("a_class/sub")).unwrap();
    picture(16, 8).save(root.join("b_class/x.png")).unwrap();
    picture(8, 8).save_with_format(root.join("a_class/sub/y.JPG"), image::ImageFormat::Jpeg).unwrap();
    // A PNG named .jpeg decodes by content.
    picture(10, 12).save_with_format(root.join("a_class/z.jpeg"), image::ImageFormat::Png).unwrap();
    std::fs::write(root.join("a_class/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("README"), "a file at the top level is not a class").unwrap();

    let f = ImageFolder::scan(&root, 8).unwrap();
    assert_eq!(f.classes, ["a_class", "b_class"]);
    let names: Vec<(String, u32)> =
        f.samples.iter().map(|(p, c)| (p.strip_prefix(&root).unwrap().display().to_string(), *c)).collect();
    assert_eq!(
        names,
        [("a_class/sub/y.JPG".to_string(), 0), ("a_class/z.jpeg".to_string(), 0), ("b_class/x.png".to_string(), 1)]
    );

    // 16x8 with size 8: no resize, centre crop of columns 4..12.
    let mut out = vec![0u8; 3 * 64];
    f.load(2, Augment::None, &mut Rng::new(0, 0), &mut out).unwrap();
    let src = picture(16, 8);
    for y in 0..8 {
        for x in 0..8 {
            for c in 0..3 {
                assert_eq!(out[c * 64 + y * 8 + x], src.get_pixel(x as u32 + 4, y as u32)[c], "({x}, {y}) channel {c}");
            }
        }
    }
    // Random crops stay inside the image and flips mirror them.
    for t in 0..50 {
        f.load(2, Augment::CropFlip { padding: 0 }, &mut Rng::new(1, t), &mut out).unwrap();
        let first_row: Vec<u8> = (0..8).map(|x| out[x]).collect();
        let found = (0..=8).any(|x0| {
            let row: Vec<u8> = (0..8).map(|x| src.get_pixel(x0 + x, 0)[0]).collect();
            row == first_row || row.iter().rev().copied().collect::<Vec<_>>() == first_row
        });
        assert!(found, "trial {t}: {first_row:?}");
    }
    // Through the loader, normalised with the ImageNet constants.
    let batches: Vec<_> = in_order(f, 2).epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches[0].0.dims(), [2, 3, 8, 8]);
    assert_eq!(batches[1].1.to_vec1::<u32>().unwrap(), [1]);
}

#[test]
fn errors_name_the_folder_or_file() {
    let root = temp_dir("folder-bad");
    assert!(ImageFolder::scan(&root.join("absent"), 8).unwrap_err().to_string().contains("absent"));
    assert!(ImageFolder::scan(&root, 8).unwrap_err().to_string().contains("no class sub-folders"));
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::create_dir_all(root.join("dog")).unwrap();
    std::fs::write(root.join("cat/a.png"), b"not a png at all").unwrap();
    let err = ImageFolder::scan(&root, 8).unwrap_err().to_string();
    assert!(err.contains("dog") && err.contains("without images"), "{err}");
    std::fs::write(root.join("dog/b.jpg"), b"junk").unwrap();
    let f = ImageFolder::scan(&root, 8).unwrap();
    let err = f.load(0, Augment::None, &mut Rng::new(0, 0), &mut [0u8; 192]).unwrap_err().to_string();
    assert!(err.contains("a.png") && err.contains("decode"), "{err}");
    // The loader hands the error over instead of panicking.
    assert!(in_order(f, 1).epoch(0).next().unwrap().is_err());
}

/// The reference pipeline, written plainly: `image`'s own decoding, a fresh resized image, the
/// centre crop, planar.
fn reference_centre(path: &std::path::Path, size: u32) -> Vec<u8> {
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let img = image::open(path).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h { (size, h * size / w) } else { (w * size / h, size) };
    let src = Image::from_vec_u8(w, h, img.into_raw(), PixelType::U8x3).unwrap();
    let mut dst = Image::new(nw, nh, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&src, &mut dst, &options).unwrap();
    let (x0, y0, n) = ((nw - size) / 2, (nh - size) / 2, size as usize);
    let px = dst.buffer();
    let mut out = vec![0u8; 3 * n * n];
    for c in 0..3 {
        for y in 0..n {
            for x in 0..n {
                out[c * n * n + y * n + x] = px[((y + y0 as usize) * nw as usize + x + x0 as usize) * 3 + c];
            }
        }
    }
    out
}

/// JPEGs: a colour photo (decoded by zune-jpeg directly, into buffers the thread keeps) and a
/// grayscale one (through `image`) give exactly the pixels of `image`'s decoding, resized and
/// cropped plainly; loaded in turn, so the kept buffers change size between images.
#[test]
fn jpegs_decode_as_the_image_crate_does() {
    let root = temp_dir("folder-jpeg");
    std::fs::create_dir_all(root.join("c")).unwrap();
    // Smooth enough to survive JPEG, detailed enough that a shifted or transposed copy fails.
    let photo = image::RgbImage::from_fn(97, 71, |x, y| {
        let (fx, fy) = (x as f32 / 9.0, y as f32 / 7.0);
        image::Rgb([(128.0 + 90.0 * fx.sin()) as u8, (128.0 + 90.0 * (fx + fy).cos()) as u8, (x * 2 + y) as u8])
    });
    photo.save_with_format(root.join("c/a_colour.jpg"), image::ImageFormat::Jpeg).unwrap();
    image::imageops::grayscale(&image::imageops::rotate90(&photo))
        .save_with_format(root.join("c/b_grey.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    let f = ImageFolder::scan(&root, 40).unwrap();
    let mut out = vec![0u8; 3 * 40 * 40];
    for i in [0, 1, 0, 1] {
        f.load(i, Augment::None, &mut Rng::new(0, 0), &mut out).unwrap();
        let want = reference_centre(&f.samples[i].0, 40);
        let differ = out.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{}: {differ} of {} values differ", f.samples[i].0.display(), out.len());
    }
}
