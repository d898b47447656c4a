//! Loader throughput on CIFAR-shaped data (50,000 3x32x32 u8 images, the paper's training
//! transform: random crop with padding 4, horizontal flip, normalisation), batch 128, shuffled;
//! median images/s over epochs after a warm-up epoch. Then the time a training loop waits for data
//! when each step takes 20 ms. Prints JSON lines (read by `bench/loader.py`, which runs
//! torchvision's DataLoader on the same data in the same run).
//!
//! With a FOLDER of class folders of JPEGs, also the ImageNet pipeline on it: decode, the shorter
//! side resized to 224, a random 224 x 224 crop, a flip, normalisation, batch 64 (a `jpeg` row).
//!
//! `cargo bench -p data --bench loader [-- WORKERS EPOCHS [FOLDER]]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use data::rng::Rng;
use data::{Augment, ImageFolder, ImageSet, Loader, LoaderConfig, Normalize};

/// Median images/s of `loader` over `epochs` epochs after a warm-up epoch.
fn rate(loader: &Loader, epochs: usize) -> f64 {
    let mut rates = vec![];
    for e in 0..=epochs {
        let start = Instant::now();
        let mut images = 0;
        for b in loader.epoch(e) {
            let (x, _) = b.unwrap();
            images += x.dims()[0];
        }
        if e > 0 {
            rates.push(images as f64 / start.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let folder = std::env::args().skip(1).find(|a| a.parse::<usize>().is_err());
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let workers = args.first().copied().unwrap_or(2);
    let epochs = args.get(1).copied().unwrap_or(5);
    let n = 50_000;
    let mut rng = Rng::new(1, 0);
    let pixels: Vec<u8> = (0..n * 3072).map(|_| rng.next_u64() as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    let set = Arc::new(ImageSet::new("synthetic", pixels, labels, [3, 32, 32], 10).unwrap());
    let cfg = LoaderConfig {
        batch_size: 128,
        augment: Augment::CropFlip { padding: 4 },
        workers,
        prefetch: 4,
        ..Default::default()
    };
    let loader = Loader::new(set, cfg.clone(), Normalize::cifar(), Device::Cpu).unwrap();
    println!(
        "{{\"what\": \"loader\", \"workers\": {workers}, \"images_per_s\": {:.0}, \"epochs\": {epochs}}}",
        rate(&loader, epochs)
    );
    if let Some(dir) = &folder {
        let photos = Arc::new(ImageFolder::scan(std::path::Path::new(dir), 224).unwrap());
        let cfg = LoaderConfig { batch_size: 64, ..cfg.clone() };
        let jpeg = Loader::new(photos, cfg, Normalize::imagenet(), Device::Cpu).unwrap();
        println!(
            "{{\"what\": \"jpeg\", \"workers\": {workers}, \"images_per_s\": {:.1}, \"epochs\": {epochs}}}",
            rate(&jpeg, epochs)
        );
    }

    // A training loop whose step takes 20 ms: how long does it wait for each batch?
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    let mut it = loader.epoch(epochs + 1);
    it.next().unwrap().unwrap(); // the first batch is never prefetched
    let mut batches = 0;
    for _ in 0..100 {
        std::thread::sleep(step);
        let t = Instant::now();
        it.next().unwrap().unwrap();
        waited += t.elapsed();
        batches += 1;
    }
    println!(
        "{{\"what\": \"wait\", \"step_ms\": 20, \"mean_wait_ms\": {:.3}, \"batches\": {batches}}}",
        waited.as_secs_f64() * 1e3 / batches as f64
    );
}
