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
