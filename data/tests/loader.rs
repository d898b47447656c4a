//! The loader: determinism (seed, epoch, workers, resume), coverage, batching, augmentation
//! statistics, normalisation; and the splits.

use std::collections::HashSet;
use std::sync::Arc;

use candle_core::Device;
use data::rng::Rng;
use data::{Augment, ImageSet, Loader, LoaderConfig, Normalize, Splits};

/// `n` 3x8x8 images whose first pixel encodes the index (for coverage checks).
fn tagged(n: usize) -> ImageSet {
    let mut pixels = vec![];
    for i in 0..n {
        for k in 0..192 {
            pixels.push(if k == 0 { i as u8 } else { ((i * 7 + k * 3) % 251) as u8 });
        }
    }
    ImageSet::new("tagged", pixels, (0..n).map(|i| (i % 3) as u32).collect(), [3, 8, 8], 3).unwrap()
}

fn unit() -> Normalize {
    Normalize { scale: 1.0, mean: vec![0.0; 3], std: vec![1.0; 3] }
}

fn collect(loader: &Loader, epoch: usize, first: usize) -> Vec<(Vec<f32>, Vec<u32>)> {
    loader
        .epoch_from(epoch, first)
        .map(|b| {
            let (x, y) = b.unwrap();
            (x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), y.to_vec1::<u32>().unwrap())
        })
        .collect()
}

fn loader(set: &Arc<ImageSet>, cfg: LoaderConfig) -> Loader {
    Loader::new(set.clone(), cfg, unit(), Device::Cpu).unwrap()
}

#[test]
fn an_epoch_covers_every_sample_once_in_a_seeded_order() {
    let set = Arc::new(tagged(50));
    let cfg = LoaderConfig { batch_size: 8, seed: 3, workers: 3, ..Default::default() };
    let l = loader(&set, cfg.clone());
    assert_eq!(l.batches(), 7);
    let e0 = collect(&l, 0, 0);
    assert_eq!(e0.iter().map(|(_, y)| y.len()).collect::<Vec<_>>(), [8, 8, 8, 8, 8, 8, 2]);
    let seen: Vec<u32> = e0.iter().flat_map(|(x, _)| x.chunks(192).map(|img| img[0] as u32)).collect();
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len(), 50, "every image once");
    assert_ne!(seen, (0..50).collect::<Vec<u32>>(), "shuffled");
    // Same seed: same batches, whatever the number of workers; other epoch or seed: another order.
    for workers in [1, 2, 5] {
        assert_eq!(collect(&loader(&set, LoaderConfig { workers, ..cfg.clone() }), 0, 0), e0, "{workers} workers");
    }
    assert_ne!(collect(&l, 1, 0), e0);
    assert_ne!(collect(&loader(&set, LoaderConfig { seed: 4, ..cfg.clone() }), 0, 0), e0);
    // Resuming at batch 3 of epoch 0 gives the rest of that epoch.
    assert_eq!(collect(&l, 0, 3), e0[3..].to_vec());
    // Labels travel with their images.
    for (x, y) in &e0 {
        for (img, &label) in x.chunks(192).zip(y) {
            assert_eq!(img[0] as u32 % 3, label);
        }
    }
}

#[test]
fn evaluation_order_drop_last_and_bad_configs() {
    let set = Arc::new(tagged(10));
    let l = loader(&set, LoaderConfig { batch_size: 4, shuffle: false, drop_last: true, ..Default::default() });
    let batches = collect(&l, 0, 0);
    assert_eq!(batches.len(), 2);
    let seen: Vec<u32> = batches.iter().flat_map(|(x, _)| x.chunks(192).map(|img| img[0] as u32)).collect();
    assert_eq!(seen, (0..8).collect::<Vec<u32>>());
    let err = |cfg: LoaderConfig| Loader::new(set.clone(), cfg, unit(), Device::Cpu).err().unwrap().to_string();
    assert!(err(LoaderConfig { batch_size: 11, drop_last: true, ..Default::default() })
        .contains("larger than the data set"));
    assert!(err(LoaderConfig { batch_size: 0, ..Default::default() }).contains("batch size"));
    let empty = Arc::new(ImageSet::new("e", vec![], vec![], [3, 8, 8], 3).unwrap());
    assert!(Loader::new(empty, LoaderConfig::default(), unit(), Device::Cpu)
        .err()
        .unwrap()
        .to_string()
        .contains("empty"));
    let gray = Normalize { scale: 1.0, mean: vec![0.0], std: vec![1.0] };
    assert!(Loader::new(set, LoaderConfig::default(), gray, Device::Cpu)
        .err()
        .unwrap()
        .to_string()
        .contains("channels"));
    // Stopping early joins the workers without hanging.
    let l =
        loader(&Arc::new(tagged(200)), LoaderConfig { batch_size: 2, workers: 4, prefetch: 1, ..Default::default() });
    let mut it = l.epoch(0);
    it.next().unwrap().unwrap();
    drop(it);
}

#[test]
fn normalisation_happens_on_the_device_as_torchvision() {
    let set = Arc::new(ImageSet::new("one", vec![255; 3 * 2 * 2], vec![0], [3, 2, 2], 1).unwrap());
    let l = Loader::new(set, LoaderConfig { batch_size: 1, ..Default::default() }, Normalize::cifar(), Device::Cpu)
        .unwrap();
    let (x, _) = l.epoch(0).next().unwrap().unwrap();
    let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let n = Normalize::cifar();
    for (ch, chunk) in v.chunks(4).enumerate() {
        let want = (1.0 - n.mean[ch]) / n.std[ch];
        assert!(chunk.iter().all(|&a| (a - want).abs() < 1e-5), "channel {ch}: {chunk:?} vs {want}");
    }
    assert_eq!(x.dims(), [1, 3, 2, 2]);
    assert!((n.mean[0] - 0.491373).abs() < 1e-6 && (n.std[2] - 0.261569).abs() < 1e-6);
}

/// `RandomCrop(5, padding=2)` then `RandomHorizontalFlip` as torchvision defines them, drawing
/// the crop corner of the zero-padded image and the flip in the loader's order.
fn reference_crop_flip(src: &[u8], p: usize, rng: &mut Rng) -> (Vec<u8>, (u64, u64), bool) {
    let (oy, ox, flip) = (rng.below(2 * p as u64 + 1), rng.below(2 * p as u64 + 1), rng.coin());
    let padded =
        |y: isize, x: isize| if (0..5).contains(&y) && (0..5).contains(&x) { src[(y * 5 + x) as usize] } else { 0 };
    let mut out = vec![0u8; 25];
    for y in 0..5 {
        for x in 0..5 {
            let cx = if flip { 4 - x } else { x };
            out[y * 5 + x] = padded(y as isize + oy as isize - p as isize, cx as isize + ox as isize - p as isize);
        }
    }
    (out, (oy, ox), flip)
}

#[test]
fn crop_and_flip_match_torchvision_and_are_uniform() {
    let src: Vec<u8> = (1..=25).collect();
    let aug = Augment::CropFlip { padding: 2 };
    let (mut flips, mut corners) = (0, std::collections::HashMap::new());
    let trials = 5000;
    for t in 0..trials {
        let mut out = vec![0u8; 25];
        aug.apply(&src, [1, 5, 5], &mut Rng::new(9, t), &mut out);
        let (want, corner, flip) = reference_crop_flip(&src, 2, &mut Rng::new(9, t));
        assert_eq!(out, want, "trial {t}");
        flips += flip as usize;
        *corners.entry(corner).or_insert(0usize) += 1;
    }
    assert_eq!(corners.len(), 25, "every crop corner of the padded image occurs");
    assert!(corners.values().all(|&n| (120..280).contains(&n)), "corners roughly uniform: {corners:?}");
    assert!((0.45..0.55).contains(&(flips as f64 / trials as f64)), "flip rate {}", flips as f64 / trials as f64);
    let mut out = vec![0u8; 25];
    Augment::None.apply(&src, [1, 5, 5], &mut Rng::new(1, 1), &mut out);
    assert_eq!(out, src);
}

#[test]
fn augmentation_is_seeded_and_different_across_epochs() {
    let set = Arc::new(tagged(16));
    let cfg = LoaderConfig {
        batch_size: 16,
        shuffle: false,
        augment: Augment::CropFlip { padding: 4 },
        seed: 5,
        ..Default::default()
    };
    let l = loader(&set, cfg.clone());
    let (a, b) = (collect(&l, 0, 0), collect(&l, 1, 0));
    assert_eq!(a, collect(&loader(&set, LoaderConfig { workers: 1, ..cfg }), 0, 0));
    assert_ne!(a, b, "epochs draw fresh augmentations");
}

#[test]
fn splits_are_disjoint_sized_and_seeded() {
    let set = tagged(100);
    let test = tagged(10);
    let s = Splits::held_out(set.clone(), test.clone(), 10, 1234).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (90, 10, 10));
    let tags = |x: &ImageSet| (0..x.len()).map(|i| x.image(i)[0]).collect::<HashSet<_>>();
    assert!(tags(&s.train).is_disjoint(&tags(&s.val)));
    assert_eq!(tags(&s.train).len() + tags(&s.val).len(), 100);
    assert_eq!(tags(&Splits::held_out(set.clone(), test.clone(), 10, 1234).unwrap().val), tags(&s.val));
    assert_ne!(tags(&Splits::held_out(set.clone(), test.clone(), 10, 1).unwrap().val), tags(&s.val));
    let sv = Splits::svhn(set.clone(), Some(tagged(7)), test.clone(), 6, 1234).unwrap();
    assert_eq!((sv.train.len(), sv.val.len()), (94 + 7, 6));
    let capped = s.capped(data::Caps { train: Some(5), val: None, test: Some(3) });
    assert_eq!((capped.train.len(), capped.val.len(), capped.test.len()), (5, 10, 3));
    assert!(Splits::held_out(set, test, 100, 1).is_err());
}

#[test]
fn labels_and_shapes_are_checked() {
    let err = ImageSet::new("bad.bin", vec![0; 12], vec![0, 5], [3, 2, 1], 3).unwrap_err().to_string();
    assert!(err.contains("bad.bin") && err.contains("label 5"), "{err}");
    assert!(ImageSet::new("short", vec![0; 5], vec![0], [3, 2, 1], 3).is_err());
}

/// The CPU loader normalises in its workers; other devices normalise after the transfer: both
/// must give the same numbers.
#[test]
fn host_and_device_normalisation_agree_bit_for_bit() {
    let mut rng = Rng::new(2, 2);
    let pixels: Vec<u8> = (0..2 * 3 * 5 * 5).map(|_| rng.next_u64() as u8).collect();
    for n in [Normalize::cifar(), Normalize::imagenet(), Normalize::unit(3, 255.0)] {
        let host = n.apply_host(&pixels, 25);
        let t = candle_core::Tensor::from_vec(pixels.clone(), (2, 3, 5, 5), &Device::Cpu)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let dev = n.apply(&t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(host, dev);
    }
}

#[test]
fn shards_of_every_batch_put_together_are_the_single_process_batch() {
    // 50 images in batches of 8 (the last one of 2), shuffled and augmented.
    let set = Arc::new(tagged(50));
    let cfg = LoaderConfig { batch_size: 8, seed: 9, augment: Augment::CropFlip { padding: 4 }, ..Default::default() };
    let whole = collect(&loader(&set, cfg.clone()), 2, 0);
    for world in [2, 3] {
        let parts: Vec<_> = (0..world)
            .map(|rank| {
                let shard = data::Shard::new(rank, world).unwrap();
                let cfg = LoaderConfig { shard, workers: 1 + rank, ..cfg.clone() };
                if world == 3 {
                    // The last batch of 2 images cannot be shared by 3 processes.
                    let err = Loader::new(set.clone(), cfg, unit(), Device::Cpu).err().unwrap().to_string();
                    assert!(err.contains("batch of 2") && err.contains("3 processes"), "{err}");
                    return None;
                }
                let l = loader(&set, cfg);
                assert_eq!(l.batches(), 7);
                Some(collect(&l, 2, 0))
            })
            .collect();
        let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() else { continue };
        for (b, want) in whole.iter().enumerate() {
            let (mut x, mut y) = (vec![], vec![]);
            for p in &parts {
                assert!(!p[b].1.is_empty(), "every process gets samples of batch {b}");
                x.extend_from_slice(&p[b].0);
                y.extend_from_slice(&p[b].1);
            }
            assert_eq!((&x, &y), (&want.0, &want.1), "batch {b} on {world} processes");
        }
    }
    // Resuming a shard at batch 3 gives that shard's rest of the epoch.
    let shard = data::Shard::new(1, 2).unwrap();
    let l = loader(&set, LoaderConfig { shard, ..cfg });
    assert_eq!(collect(&l, 2, 3), collect(&l, 2, 0)[3..].to_vec());
}
