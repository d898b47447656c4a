//! Helpers shared by the integration tests of the `alig` crate.
#![allow(dead_code)]

use candle_core::{DType, Result, Tensor};

/// `|got - want| <= atol + rtol |want|` element-wise; the error names `what` and the worst element.
pub fn check_close(what: &str, got: &Tensor, want: &Tensor, atol: f64, rtol: f64) -> std::result::Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!("{what}: shape {:?}, expected {:?}", got.dims(), want.dims()));
    }
    let g = flat(got).map_err(|e| format!("{what}: {e}"))?;
    let w = flat(want).map_err(|e| format!("{what}: {e}"))?;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let (diff, bound) = ((a - b).abs(), atol + rtol * b.abs());
        let ratio = diff / bound;
        if (diff.is_nan() || diff > bound) && worst.is_none_or(|(_, r)| ratio > r) {
            worst = Some((i, ratio));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, r)) => Err(format!("{what}: element {i} is {} but expected {} ({r:.1}x the tolerance)", g[i], w[i])),
    }
}

pub fn flat(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

/// The shared golden folder: `$ALIG_GOLDEN_DIR`, else `../shared/golden` beside the checkout.
pub fn golden_dir() -> std::path::PathBuf {
    match std::env::var_os("ALIG_GOLDEN_DIR") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden"),
    }
}

use candle_core::{Device, Var};
use std::collections::HashMap;

/// A seeded xorshift generator: the tests' data and weights are the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub fn tensor(&mut self, shape: &[usize], scale: f64, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| scale * self.uniform()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }
}

/// A small classification problem: a 2-layer MLP (PyTorch names `fc1.weight`, ...), 32 samples of 6
/// features in 3 classes, and a BatchNorm-style buffer `bn.running_mean` in the same map.
pub struct Problem {
    pub vars: HashMap<String, Var>,
    pub x: Tensor,
    pub y: Tensor,
}

impl Problem {
    pub fn new(seed: u64, dtype: DType) -> Problem {
        let mut rng = Rng::new(seed);
        let x = rng.tensor(&[32, 6], 2.0, dtype);
        let y: Vec<u32> = (0..32).map(|i| (i % 3) as u32).collect();
        // Labels depend on the inputs, so that the problem can be fit.
        let shift = Tensor::from_vec(y.iter().map(|&c| c as f64 - 1.0).collect::<Vec<_>>(), (32, 1), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let x = x.broadcast_add(&shift).unwrap();
        let y = Tensor::new(y, &Device::Cpu).unwrap();
        let mut vars = HashMap::new();
        for (name, shape, scale) in [
            ("fc1.weight", vec![16, 6], 0.4),
            ("fc1.bias", vec![16], 0.4),
            ("fc2.weight", vec![3, 16], 0.25),
            ("fc2.bias", vec![3], 0.25),
            ("bn.running_mean", vec![16], 1.0),
        ] {
            vars.insert(name.to_string(), Var::from_tensor(&rng.tensor(&shape, scale, dtype)).unwrap());
        }
        Problem { vars, x, y }
    }

    pub fn logits(&self) -> Tensor {
        let v = |n: &str| self.vars[n].as_tensor().clone();
        let h = self
            .x
            .matmul(&v("fc1.weight").t().unwrap())
            .unwrap()
            .broadcast_add(&v("fc1.bias"))
            .unwrap()
            .relu()
            .unwrap();
        h.matmul(&v("fc2.weight").t().unwrap()).unwrap().broadcast_add(&v("fc2.bias")).unwrap()
    }

    /// Cross-entropy, or the multi-class hinge loss for DFW (the loss it is meant for).
    pub fn loss(&self, optimizer: &str) -> Tensor {
        let logits = self.logits();
        if optimizer == "dfw" {
            alig::multiclass_hinge(&logits, &self.y, false).unwrap()
        } else {
            candle_nn::loss::cross_entropy(&logits, &self.y).unwrap()
        }
    }

    pub fn snapshot(&self) -> HashMap<String, Vec<f64>> {
        self.vars.iter().map(|(k, v)| (k.clone(), flat(v.as_tensor()).unwrap())).collect()
    }
}
