//! The paper's WRN-40-4 on CIFAR-100 as a chain of library calls: the model from `zoo`, the
//! paper's split, normalisation, augmentation and loader from `data`, ALI-G from `alig` with the
//! paper's CIFAR-100 hyper-parameters; then the validation accuracy, and a checkpoint (weights and
//! optimizer state) saved, loaded into a fresh model and optimizer, and checked.
//!
//! `cargo run --release -p zoo --example wrn_cifar100 -- DATA_DIR [STEPS]` (DATA_DIR holds
//! `train.bin` and `test.bin` of the binary CIFAR-100, or their `cifar-100-binary/` folder).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use alig::{Alig, AligConfig, Optimizer, ParamSet};
use candle_core::{DType, Device, Error, Result, Tensor, D};
use candle_nn::{loss, VarBuilder, VarMap};
use data::cifar::{self, Cifar};
use data::paper::{self, Options};
use data::{ImageData, Loader, LoaderConfig};
use zoo::{Wrn, WrnConfig};

/// WRN-40-4 for CIFAR-100, initialised as the reference, under `seed`.
fn wrn(dev: &Device, seed: u64) -> Result<(VarMap, Wrn)> {
    let varmap = VarMap::new();
    let cfg = WrnConfig { num_classes: 100, ..Default::default() }; // depth 40, width 4
    let model = Wrn::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, dev))?;
    zoo::init::init_varmap(&varmap, seed, Wrn::init_rule)?;
    Ok((varmap, model))
}

/// ALI-G as the paper's CIFAR-100 runs: max_lr 0.1, momentum 0.9, the l2 ball of radius 100.
fn alig(varmap: &VarMap) -> Result<Alig> {
    let params = ParamSet::trainable(&varmap.data().lock().unwrap())?; // BatchNorm buffers left out
    Alig::new(params, AligConfig { max_lr: Some(0.1), momentum: 0.9, max_norm: Some(100.0), ..Default::default() })
}

/// Top-1 accuracy on the validation split (evaluation mode: running statistics).
fn accuracy(model: &Wrn, data: &ImageData, dev: &Device) -> Result<f32> {
    let cfg = LoaderConfig { batch_size: 100, shuffle: false, ..Default::default() };
    let (mut right, mut seen) = (0f32, 0usize);
    for batch in Loader::new(data.splits.val.clone(), cfg, data.normalize.clone(), dev.clone())?.epoch(0) {
        let (x, y) = batch?;
        let hits = model.forward_t(&x, false)?.argmax(D::Minus1)?.eq(&y)?;
        right += hits.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        seen += y.dim(0)?;
    }
    Ok(right / seen as f32)
}

/// `steps` steps of batch `batch` from `data_dir`; the checkpoint goes to `out`. Returns the
/// validation accuracy.
fn run(data_dir: &Path, steps: usize, batch: usize, out: &Path) -> Result<f32> {
    let dev = Device::cuda_if_available(0)?;
    let (train, test) = cifar::load(data_dir, Cifar::C100)?;
    let data = paper::cifar(train, test, Cifar::C100, &Options::default())?; // 45,000 / 5,000 / test
    let cfg = LoaderConfig { batch_size: batch, augment: data.augment, seed: 0, ..Default::default() };
    let loader = Loader::new(data.splits.train.clone(), cfg, data.normalize.clone(), dev.clone())?;

    let (varmap, model) = wrn(&dev, 0)?;
    let mut opt = alig(&varmap)?;
    let (mut epoch, mut done) = (0, 0);
    while done < steps {
        for batch in loader.epoch(epoch).take(steps - done) {
            let (x, y) = batch?;
            let l = loss::cross_entropy(&model.forward_t(&x, true)?, &y)?;
            let report = opt.backward_step(&l)?;
            let gamma = report.step_size.map(|s| s.to_f64()).transpose()?.unwrap_or(0.0);
            println!("step {done:4}  loss {:.4}  step size {gamma:.4}", l.to_scalar::<f32>()?);
            done += 1;
        }
        epoch += 1;
    }
    let acc = accuracy(&model, &data, &dev)?;

    // The checkpoint: PyTorch state-dict names for the weights, named tensors for ALI-G's state.
    std::fs::create_dir_all(out)?;
    zoo::checkpoint::save(&varmap, out.join("model.safetensors"))?;
    let state: HashMap<String, Tensor> = opt.state()?.into_iter().collect();
    candle_core::safetensors::save(&state, out.join("optimizer.safetensors"))?;

    let (restored, model2) = wrn(&dev, 1)?; // other weights, until loaded
    zoo::checkpoint::load(&restored, out.join("model.safetensors"))?;
    let mut opt2 = alig(&restored)?;
    opt2.load_state(&candle_core::safetensors::load(out.join("optimizer.safetensors"), &dev)?)?;
    if accuracy(&model2, &data, &dev)? != acc {
        return Err(Error::Msg("the loaded checkpoint evaluates differently".into()));
    }
    Ok(acc)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        return Err(Error::Msg("usage: wrn_cifar100 DATA_DIR [STEPS]".into()));
    };
    let steps = match args.next() {
        Some(s) => s.parse().map_err(|e| Error::Msg(format!("STEPS {s:?}: {e}")))?,
        None => 100,
    };
    let out = std::env::temp_dir().join("wrn_cifar100");
    let acc = run(&dir, steps, 128, &out)?;
    println!("validation accuracy {:.2}% after {steps} steps; checkpoint in {}", 100.0 * acc, out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    /// CI runs the chain on a tiny CIFAR-100 (`train.bin` of 60 records, `test.bin` of 20): two
    /// steps of WRN-40-4, the evaluation, and the checkpoint round trip.
    #[test]
    fn the_chain_runs_on_a_tiny_cifar100() {
        let dir = std::env::temp_dir().join(format!("wrn-cifar100-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = |i: usize| {
            let mut r = vec![(i % 20) as u8, (i % 100) as u8]; // coarse, fine label
            r.extend((0..3 * 32 * 32).map(|p| ((7 * i + 13 * p) % 256) as u8));
            r
        };
        std::fs::write(dir.join("train.bin"), (0..60).flat_map(record).collect::<Vec<u8>>()).unwrap();
        std::fs::write(dir.join("test.bin"), (60..80).flat_map(record).collect::<Vec<u8>>()).unwrap();
        let acc = super::run(&dir, 2, 4, &dir.join("checkpoint")).unwrap();
        assert!((0.0..=1.0).contains(&acc));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
