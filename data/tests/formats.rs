//! Readers of the real formats, on small files written here in those formats with asymmetric,
//! label-dependent pixels; and the error messages for missing, truncated and malformed files.

mod common;

use common::*;
use data::cifar::{self, Cifar};
use data::{idx, svhn};

fn check_pixels(set: &data::ImageSet, offset: usize) {
    for i in 0..set.len() {
        let img = set.image(i);
        let [c, h, w] = set.shape;
        for ch in 0..c {
            for r in 0..h {
                for col in 0..w {
                    assert_eq!(
                        img[(ch * h + r) * w + col],
                        pixel(i + offset, ch, r, col),
                        "image {i} ch {ch} ({r}, {col})"
                    );
                }
            }
        }
    }
}

#[test]
fn cifar10_binary_files() {
    let dir = temp_dir("cifar10");
    let sub = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    for b in 1..=5 {
        write_cifar(&sub.join(format!("data_batch_{b}.bin")), 3, (b - 1) * 3, false);
    }
    write_cifar(&sub.join("test_batch.bin"), 4, 100, false);
    let (train, test) = cifar::load(&dir, Cifar::C10).unwrap();
    assert_eq!((train.len(), test.len(), train.shape, train.num_classes), (15, 4, [3, 32, 32], 10));
    check_pixels(&train, 0);
    check_pixels(&test, 100);
    assert_eq!(train.labels, (0..15).map(|i| (i % 10) as u32).collect::<Vec<_>>());
    assert_ne!(train.image(0)[1], train.image(0)[32], "pixel (0,1) differs from (1,0)");

    // Truncated: the error names the file and the record size.
    let bytes = std::fs::read(sub.join("test_batch.bin")).unwrap();
    std::fs::write(sub.join("test_batch.bin"), &bytes[..bytes.len() - 10]).unwrap();
    let err = cifar::load(&dir, Cifar::C10).unwrap_err().to_string();
    assert!(err.contains("test_batch.bin") && err.contains("3073"), "{err}");
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = temp_dir("cifar100");
    write_cifar(&dir.join("train.bin"), 5, 0, true);
    write_cifar(&dir.join("test.bin"), 2, 50, true);
    let (train, test) = cifar::load(&dir, Cifar::C100).unwrap();
    assert_eq!((train.len(), test.len(), train.num_classes), (5, 2, 100));
    assert_eq!(test.labels, [50, 51]);
    check_pixels(&train, 0);
}

#[test]
fn cifar_missing_and_python_folders_explain_themselves() {
    let dir = temp_dir("cifar-missing");
    let err = cifar::load(&dir, Cifar::C10).unwrap_err().to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("cifar-10-binary.tar.gz"), "{err}");
    std::fs::create_dir_all(dir.join("cifar-100-python")).unwrap();
    let err = cifar::load(&dir, Cifar::C100).unwrap_err().to_string();
    assert!(err.contains("pickle") && err.contains("cifar-100-binary.tar.gz"), "{err}");
    let err = cifar::parse(&[0u8; 3073 * 2], Cifar::C100, "x.bin").unwrap_err().to_string();
    assert!(err.contains("3074"), "{err}");
}

#[test]
fn svhn_mat_files_all_variants() {
    let dir = temp_dir("svhn");
    for (compress, y_double, be) in
        [(true, false, false), (false, false, false), (true, true, false), (false, true, true), (true, false, true)]
    {
        let path = dir.join(format!("v_{compress}_{y_double}_{be}.mat"));
        write_svhn(&path, 12, compress, y_double, be);
        let set = svhn::read(&path).unwrap_or_else(|e| panic!("{compress} {y_double} {be}: {e}"));
        assert_eq!((set.len(), set.shape, set.num_classes), (12, [3, 32, 32], 10));
        check_pixels(&set, 0);
        // 1..10 with 10 meaning the digit 0.
        assert_eq!(set.labels[..10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
    }
}

#[test]
fn svhn_errors_name_the_file_and_the_problem() {
    let dir = temp_dir("svhn-bad");
    let err = svhn::read(&dir.join("train_32x32.mat")).unwrap_err().to_string();
    assert!(err.contains("train_32x32.mat") && err.contains("ufldl"), "{err}");
    std::fs::write(dir.join("junk.mat"), vec![7u8; 300]).unwrap();
    let err = svhn::read(&dir.join("junk.mat")).unwrap_err().to_string();
    assert!(err.contains("junk.mat") && err.contains("MAT-file"), "{err}");
    write_svhn(&dir.join("t.mat"), 4, false, false, false);
    let bytes = std::fs::read(dir.join("t.mat")).unwrap();
    std::fs::write(dir.join("t.mat"), &bytes[..5000]).unwrap();
    let err = svhn::read(&dir.join("t.mat")).unwrap_err().to_string();
    assert!(err.contains("t.mat"), "{err}");
    // An array with the wrong shape.
    let x = mat_array("X", 9, &[28, 28, 1, 2], 2, &[0u8; 28 * 28 * 2], false);
    let y = mat_array("y", 9, &[2, 1], 2, &[1, 2], false);
    write_mat(&dir.join("shape.mat"), &[x, y], true, false);
    let err = svhn::read(&dir.join("shape.mat")).unwrap_err().to_string();
    assert!(err.contains("[32, 32, 3, N]"), "{err}");
}

#[test]
fn idx_plain_and_gzipped() {
    for gz in [false, true] {
        let dir = temp_dir(&format!("idx-{gz}"));
        write_idx(&dir, "train", 7, 28, 28, gz);
        let set = idx::load(&dir, "train").unwrap();
        assert_eq!((set.len(), set.shape), (7, [1, 28, 28]));
        check_pixels(&set, 0);
        assert_eq!(set.labels, [0, 1, 2, 3, 4, 5, 6]);
    }
    let dir = temp_dir("idx-bad");
    let err = idx::load(&dir, "t10k").unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
    write_idx(&dir, "t10k", 3, 4, 4, false);
    let mut img = std::fs::read(dir.join("t10k-images-idx3-ubyte")).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &img[..40]).unwrap();
    let err = idx::load(&dir, "t10k").unwrap_err().to_string();
    assert!(err.contains("3 x 4 x 4") && err.contains("file has 40"), "truncated: {err}");
    img[3] = 0x01;
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &img).unwrap();
    let err = idx::load(&dir, "t10k").unwrap_err().to_string();
    assert!(err.contains("2051"), "{err}");
}

#[test]
fn the_embedded_digits() {
    let d = data::digits::load().unwrap();
    assert_eq!((d.len(), d.shape, d.num_classes), (1797, [1, 8, 8], 10));
    assert!(d.pixels.iter().all(|&p| p <= 16) && d.pixels.contains(&16));
    for c in 0..10u32 {
        let n = d.labels.iter().filter(|&&l| l == c).count();
        assert!((170..=190).contains(&n), "class {c}: {n}");
    }
    // The first row of scikit-learn's file: a zero.
    assert_eq!(d.labels[0], 0);
    assert_eq!(&d.image(0)[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
}
