//! Trains a small MLP on a seeded three-armed spiral with ALI-G and with every baseline of the
//! registry, and prints the final loss and accuracy of each.
//!
//! `cargo run --release -p alig --example quickstart`

use std::time::Instant;

use alig::{Hyper, ParamSet, OPTIMIZERS};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{linear, Linear, Module, VarBuilder, VarMap};

/// xorshift64: the data and the initial weights are the same on every machine.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// 3 classes x 200 points on the arms of a spiral, with noise.
fn spiral(rng: &mut Rng, dev: &Device) -> Result<(Tensor, Tensor)> {
    let (mut xs, mut ys) = (vec![], vec![]);
    for class in 0..3u32 {
        for i in 0..200 {
            let r = i as f32 / 200.0;
            let angle = class as f32 * 2.094 + 4.0 * r + 0.2 * rng.uniform();
            xs.extend([r * angle.sin(), r * angle.cos()]);
            ys.push(class);
        }
    }
    Ok((Tensor::from_vec(xs, (600, 2), dev)?, Tensor::new(ys, dev)?))
}

struct Mlp(Linear, Linear, Linear);

impl Mlp {
    /// PyTorch's `nn.Linear` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a seeded RNG.
    fn new(varmap: &VarMap, seed: u64, dev: &Device) -> Result<Self> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, dev);
        let m = Mlp(linear(2, 64, vb.pp("fc1"))?, linear(64, 64, vb.pp("fc2"))?, linear(64, 3, vb.pp("fc3"))?);
        let mut rng = Rng(seed);
        let mut vars: Vec<_> = varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in vars {
            let fan_in = if name.starts_with("fc1") { 2.0 } else { 64.0f32 };
            let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.uniform() / fan_in.sqrt()).collect();
            var.set(&Tensor::from_vec(values, var.shape(), dev)?)?;
        }
        Ok(m)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.2.forward(&self.1.forward(&self.0.forward(x)?.relu()?)?.relu()?)
    }
}

/// Hyper-parameters for this problem (the registry's defaults are the reference constructors').
fn hyper(name: &str) -> Hyper {
    let base = (alig::registry::find(name).expect("registry row").defaults)();
    match name {
        "alig" => Hyper { lr: Some(1.0), momentum: 0.9, ..base },
        "sgd" => Hyper { lr: Some(0.1), momentum: 0.9, ..base },
        "adagrad" => Hyper { lr: Some(0.1), ..base },
        "adam" | "amsgrad" | "adamw" | "yogi" => Hyper { lr: Some(0.01), ..base },
        "dfw" | "bpgrad" => Hyper { lr: Some(1.0), momentum: 0.9, ..base },
        "rmsprop" => Hyper { lr: Some(0.01), ..base },
        "momentum" => Hyper { lr: Some(0.1), momentum: 0.9, ..base },
        _ => base,
    }
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let (x, y) = spiral(&mut Rng(42), &dev)?;
    let steps = 500;
    println!("{steps} full-batch steps on a 600-point spiral, MLP 2-64-64-3\n");
    println!("| optimizer | loss | train accuracy | ms/step |");
    println!("|---|---|---|---|");
    for spec in OPTIMIZERS {
        let varmap = VarMap::new();
        let model = Mlp::new(&varmap, 7, &dev)?;
        let params = ParamSet::trainable(&varmap.data().lock().unwrap())?;
        let mut opt = spec.build(params, &hyper(spec.name))?;
        let loss_fn = |logits: &Tensor| {
            if spec.name == "dfw" {
                alig::multiclass_hinge(logits, &y, false)
            } else {
                candle_nn::loss::cross_entropy(logits, &y)
            }
        };
        let start = Instant::now();
        for _ in 0..steps {
            let loss = loss_fn(&model.forward(&x)?)?;
            opt.step(&loss, &loss.backward()?)?;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
        let logits = model.forward(&x)?;
        let loss = loss_fn(&logits)?.to_scalar::<f32>()?;
        let correct = logits.argmax(D::Minus1)?.eq(&y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
        println!("| {} | {loss:.4} | {:.1}% | {ms:.2} |", spec.name, 100.0 * correct);
    }
    Ok(())
}
