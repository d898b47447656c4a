//! Cross-check with candle-datasets (the `candle-datasets` feature): its MNIST reader and ours
//! decode the same un-gzipped IDX files to the same images and labels.
#![cfg(feature = "candle-datasets")]

mod common;

use common::{temp_dir, write_idx};

#[test]
fn our_idx_reader_agrees_with_candle_datasets() {
    let dir = temp_dir("candle-datasets");
    write_idx(&dir, "train", 30, 28, 28, false);
    write_idx(&dir, "t10k", 12, 28, 28, false);
    let theirs = candle_datasets::vision::mnist::load_dir(&dir).unwrap();
    for (prefix, images, labels) in
        [("train", &theirs.train_images, &theirs.train_labels), ("t10k", &theirs.test_images, &theirs.test_labels)]
    {
        let ours = data::idx::load(&dir, prefix).unwrap();
        // candle-datasets scales to [0, 1] and flattens: undo the scaling.
        let pixels: Vec<u8> =
            images.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(pixels, ours.pixels, "{prefix} images");
        let labels: Vec<u32> = labels.to_dtype(candle_core::DType::U32).unwrap().to_vec1().unwrap();
        assert_eq!(labels, ours.labels, "{prefix} labels");
    }
}
