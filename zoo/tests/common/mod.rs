//! Helpers of the zoo's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The shared golden folder: `$ALIG_GOLDEN_DIR`, else `../shared/golden` beside the checkout.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("ALIG_GOLDEN_DIR") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden"),
    }
}

pub fn load(path: PathBuf) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Element-wise `|got - want| <= atol + rtol |want|`.
pub fn close(what: &str, got: &Tensor, want: &Tensor, atol: f64, rtol: f64) -> Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!("{what}: shape {:?}, expected {:?}", got.dims(), want.dims()));
    }
    for (i, (a, b)) in flat(got).iter().zip(flat(want)).enumerate() {
        if (a - b).is_nan() || (a - b).abs() > atol + rtol * b.abs() {
            return Err(format!("{what}: element {i} is {a}, expected {b}"));
        }
    }
    Ok(())
}

/// The golden README's gradient rule: `max |got - want| <= rel * max |want| + abs`.
pub fn close_scaled(what: &str, got: &Tensor, want: &Tensor, rel: f64, abs: f64) -> Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!("{what}: shape {:?}, expected {:?}", got.dims(), want.dims()));
    }
    let (g, w) = (flat(got), flat(want));
    let scale = w.iter().fold(0f64, |m, x| m.max(x.abs()));
    let worst = g.iter().zip(&w).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    if worst.is_nan() || worst > rel * scale + abs {
        return Err(format!("{what}: max abs diff {worst:e} > {rel} * {scale:e} + {abs}"));
    }
    Ok(())
}

/// `(key, shape)` of a manifest's state dict and its parameter count.
pub fn manifest(name: &str) -> (Vec<(String, Vec<usize>)>, usize) {
    let path = golden_dir().join("zoo/manifests").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = v["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (e["key"].as_str().unwrap().to_string(), shape)
        })
        .collect();
    (keys, v["num_params"].as_u64().unwrap() as usize)
}

/// The counter-based generator of `shared/golden/zoo/README.md` (resnet18's portable weights):
/// `r_i = 2 u_i - 1` with `u_i = (splitmix64(fnv1a64(key) + i) >> 40) * 2^-24`, then
/// `r_i * scale + offset`, all in f32 without FMA.
pub fn portable(key: &str, n: usize, scale: f32, offset: f32) -> Vec<f32> {
    let seed = zoo::init::fnv1a64(key);
    (0..n as u64)
        .map(|i| {
            let u = (zoo::init::splitmix64(seed.wrapping_add(i)) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
            let r = 2.0 * u - 1.0;
            r * scale + offset
        })
        .collect()
}

/// `max |a - b|` (f32 tensors).
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// `max |a - b| / max |b|` (f32 tensors): the fused ops' distance to candle's composed ones.
pub fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    max_diff(a, b) / scale
}

/// One convolution of the op tests: (x shape, out channels, kernel, stride, padding).
pub type ConvCase = ((usize, usize, usize, usize), usize, usize, usize, usize);

/// Every kind of convolution in the zoo's models, small: WRN 3x3 s1/s2, shortcuts 1x1 s1/s2,
/// ResNet's 7x7/s2/p3 stem, DenseNet's 1x1 bottleneck, candle#3404's C == H == W, and two more
/// strided edges (stride 2 without padding, stride 3 with padding 1; candle's own gradient, the
/// reference of `conv.rs`, needs (H + 2p - k) divisible by the stride).
pub const CONV_EDGE_CASES: [ConvCase; 9] = [
    ((2, 3, 9, 9), 4, 3, 2, 0),
    ((1, 2, 7, 7), 3, 3, 3, 1),
    ((2, 3, 8, 8), 4, 3, 1, 1),
    ((3, 4, 9, 7), 6, 3, 2, 1),
    ((2, 5, 6, 6), 3, 1, 1, 0),
    ((2, 4, 8, 8), 6, 1, 2, 0),
    ((2, 3, 16, 16), 4, 7, 2, 3),
    ((1, 5, 5, 5), 3, 3, 1, 1),
    ((2, 2, 5, 5), 3, 3, 1, 0),
];
