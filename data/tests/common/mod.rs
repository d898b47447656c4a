//! Writers of small files in the real formats, for the data tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("data-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asymmetric, label-dependent pixels: a transposed, flipped or shifted image fails.
pub fn pixel(n: usize, ch: usize, r: usize, c: usize) -> u8 {
    ((7 * n + 31 * ch + 5 * r + 11 * c) % 256) as u8
}

/// A binary CIFAR file of `n` records (CIFAR-100 when `c100`: coarse then fine label).
pub fn write_cifar(path: &Path, n: usize, offset: usize, c100: bool) {
    let mut bytes = vec![];
    for i in offset..offset + n {
        if c100 {
            bytes.push((i * 3 % 20) as u8);
            bytes.push((i % 100) as u8);
        } else {
            bytes.push((i % 10) as u8);
        }
        for ch in 0..3 {
            for r in 0..32 {
                for c in 0..32 {
                    bytes.push(pixel(i, ch, r, c));
                }
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn pad8(v: &mut Vec<u8>) {
    while v.len() % 8 != 0 {
        v.push(0);
    }
}

/// One sub-element `[type, nbytes, data, padding]` in the given byte order.
fn element(ty: u32, data: &[u8], be: bool) -> Vec<u8> {
    let mut v = vec![];
    let w = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    if data.len() <= 4 && ty != 14 {
        // small element
        v.extend(w(ty | ((data.len() as u32) << 16)));
        let mut d = data.to_vec();
        d.resize(4, 0);
        v.extend(d);
        return v;
    }
    v.extend(w(ty));
    v.extend(w(data.len() as u32));
    v.extend_from_slice(data);
    pad8(&mut v);
    v
}

/// A numeric MAT v5 array element: `class` (9 uint8, 6 double), stored as `data_type`
/// (2 miUINT8, 9 miDOUBLE) with raw `data` already in the file's byte order.
pub fn mat_array(name: &str, class: u8, dims: &[i32], data_type: u32, data: &[u8], be: bool) -> Vec<u8> {
    let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut flags = vec![];
    flags.extend(w32(class as u32));
    flags.extend(w32(0));
    let mut body = element(6, &flags, be);
    let dims_bytes: Vec<u8> = dims.iter().flat_map(|d| if be { d.to_be_bytes() } else { d.to_le_bytes() }).collect();
    body.extend(element(5, &dims_bytes, be));
    body.extend(element(1, name.as_bytes(), be));
    body.extend(element(data_type, data, be));
    element(14, &body, be)
}

/// A MAT v5 file with the given array elements, each wrapped in a zlib `miCOMPRESSED` element
/// when `compress`.
pub fn write_mat(path: &Path, arrays: &[Vec<u8>], compress: bool, be: bool) {
    let mut out = b"MATLAB 5.0 MAT-file, Platform: test".to_vec();
    out.resize(116, b' ');
    out.extend([0u8; 8]);
    out.extend(if be { 0x0100u16.to_be_bytes() } else { 0x0100u16.to_le_bytes() });
    out.extend(if be { b"MI" } else { b"IM" });
    for a in arrays {
        if compress {
            let mut z = flate2::write::ZlibEncoder::new(vec![], flate2::Compression::default());
            z.write_all(a).unwrap();
            let payload = z.finish().unwrap();
            let w = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
            out.extend(w(15));
            out.extend(w(payload.len() as u32));
            out.extend(payload); // no padding after compressed elements, as MATLAB writes them
        } else {
            out.extend(a);
        }
    }
    std::fs::write(path, out).unwrap();
}

/// An SVHN-shaped file: `X` uint8 [32, 32, 3, n] column-major from [`pixel`], `y` with labels
/// `1 + i % 10` (so 10 appears), stored as uint8 or as double.
pub fn write_svhn(path: &Path, n: usize, compress: bool, y_double: bool, be: bool) {
    let mut x = vec![0u8; n * 3072];
    for i in 0..n {
        for ch in 0..3 {
            for r in 0..32 {
                for c in 0..32 {
                    x[r + 32 * c + 1024 * ch + 3072 * i] = pixel(i, ch, r, c);
                }
            }
        }
    }
    let labels: Vec<u32> = (0..n).map(|i| 1 + (i % 10) as u32).collect();
    let y = if y_double {
        let data: Vec<u8> =
            labels.iter().flat_map(|&l| if be { (l as f64).to_be_bytes() } else { (l as f64).to_le_bytes() }).collect();
        mat_array("y", 6, &[n as i32, 1], 9, &data, be)
    } else {
        mat_array("y", 9, &[n as i32, 1], 2, &labels.iter().map(|&l| l as u8).collect::<Vec<_>>(), be)
    };
    let xa = mat_array("X", 9, &[32, 32, 3, n as i32], 2, &x, be);
    write_mat(path, &[xa, y], compress, be);
}

/// IDX image and label files of `n` `rows x cols` images (gzipped when `gz`).
pub fn write_idx(dir: &Path, prefix: &str, n: usize, rows: usize, cols: usize, gz: bool) {
    let mut img = vec![];
    img.extend(2051u32.to_be_bytes());
    img.extend((n as u32).to_be_bytes());
    img.extend((rows as u32).to_be_bytes());
    img.extend((cols as u32).to_be_bytes());
    for i in 0..n {
        for r in 0..rows {
            for c in 0..cols {
                img.push(pixel(i, 0, r, c));
            }
        }
    }
    let mut lbl = vec![];
    lbl.extend(2049u32.to_be_bytes());
    lbl.extend((n as u32).to_be_bytes());
    lbl.extend((0..n).map(|i| (i % 10) as u8));
    let write = |name: String, bytes: Vec<u8>| {
        if gz {
            let mut z = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
            z.write_all(&bytes).unwrap();
            std::fs::write(dir.join(format!("{name}.gz")), z.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    write(format!("{prefix}-images-idx3-ubyte"), img);
    write(format!("{prefix}-labels-idx1-ubyte"), lbl);
}

/// A CIFAR-style parquet: `img {bytes, path}` with PNGs of [`pixel`], and `label`.
pub fn write_image_parquet(path: &Path, n: usize, offset: usize, label_column: &str) {
    let schema = std::sync::Arc::new(
        parquet::schema::parser::parse_message_type(&format!(
            "message schema {{ optional group img {{ optional binary bytes; optional binary path (UTF8); }} optional int64 {label_column}; }}"
        ))
        .unwrap(),
    );
    let mut pngs = vec![];
    for i in offset..offset + n {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([
                pixel(i, 0, y as usize, x as usize),
                pixel(i, 1, y as usize, x as usize),
                pixel(i, 2, y as usize, x as usize),
            ])
        });
        let mut bytes = std::io::Cursor::new(vec![]);
        img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        pngs.push(parquet::data_type::ByteArray::from(bytes.into_inner()));
    }
    let labels: Vec<i64> = (offset..offset + n).map(|i| (i % 10) as i64).collect();
    let mut w = parquet::file::writer::SerializedFileWriter::new(
        std::fs::File::create(path).unwrap(),
        schema,
        std::sync::Arc::new(parquet::file::properties::WriterProperties::builder().build()),
    )
    .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut k = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match k {
            0 => col.typed::<parquet::data_type::ByteArrayType>().write_batch(&pngs, Some(&vec![2; n]), None).unwrap(),
            1 => col.typed::<parquet::data_type::ByteArrayType>().write_batch(&[], Some(&vec![1; n]), None).unwrap(),
            _ => col.typed::<parquet::data_type::Int64Type>().write_batch(&labels, Some(&vec![1; n]), None).unwrap(),
        };
        col.close().unwrap();
        k += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}
