//! Your own candle-nn model on a `VarMap`, trained with ALI-G on the 1,797 UCI digits (embedded in
//! the `data` crate): full-batch steps, then the test accuracy.
//!
//! `cargo run --release -p alig --example digits`

use alig::{Alig, AligConfig, Optimizer, ParamSet};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{linear, loss, Linear, Module, VarBuilder, VarMap};
use data::paper::{self, Options};
use data::{ImageSource, Loader, LoaderConfig, Normalize};
use std::sync::Arc;

struct Mlp(Linear, Linear);

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.1.forward(&self.0.forward(x)?.relu()?)
    }
}

/// The whole of `set` as one batch: images flattened to rows of 64 pixels / 16, and the labels.
fn whole(set: &Arc<dyn ImageSource>, normalize: &Normalize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let cfg = LoaderConfig { batch_size: set.len(), shuffle: false, workers: 1, ..Default::default() };
    let batch = Loader::new(set.clone(), cfg, normalize.clone(), dev.clone())?.epoch(0).next();
    let (x, y) = batch.expect("one batch")?;
    Ok((x.flatten_from(1)?, y))
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let digits = paper::digits(&Options::default())?; // 1,257 / 180 / 360, seeded
    let (x, y) = whole(&digits.splits.train, &digits.normalize, &dev)?;

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = Mlp(linear(64, 128, vb.pp("fc1"))?, linear(128, 10, vb.pp("fc2"))?);

    let params = ParamSet::trainable(&varmap.data().lock().unwrap())?;
    let cfg = AligConfig { max_lr: Some(1.0), momentum: 0.9, max_norm: Some(20.0), ..Default::default() };
    let mut opt = Alig::new(params, cfg)?;
    for step in 0..200 {
        let l = loss::cross_entropy(&model.forward(&x)?, &y)?;
        let report = opt.backward_step(&l)?; // backward, then the step that reads l
        if step % 50 == 0 {
            let gamma = report.step_size.map(|s| s.to_f64()).transpose()?.unwrap_or(0.0);
            println!("step {step:3}  loss {:.4}  step size {gamma:.4}", l.to_scalar::<f32>()?);
        }
    }

    let (xt, yt) = whole(&digits.splits.test, &digits.normalize, &dev)?;
    let right = model.forward(&xt)?.argmax(D::Minus1)?.eq(&yt)?.to_dtype(DType::F32)?.mean_all()?;
    println!("test accuracy {:.1}%", 100.0 * right.to_scalar::<f32>()?);
    Ok(())
}
