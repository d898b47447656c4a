//! One full training step (forward, cross-entropy, backward, SGD step with Nesterov momentum) of a
//! paper model, median of ROUNDS steps after WARMUP, as a JSON line with the process's peak resident
//! memory. Read by `bench/train_step.py`, which runs PyTorch on the same models in the same run.
//!
//! `cargo bench -p zoo --bench train_step -- MODEL [ROUNDS] [WARMUP] [--candle-ops] [--bf16]`,
//! MODEL one of wrn-16-4, wrn-40-4, densenet-bc-40-40, resnet18. `--candle-ops` turns the zoo's
//! CPU convolution op off (candle's own conv2d and its backward); `--glibc-default` leaves glibc's
//! allocator as it is (see `zoo::ops::malloc`); `--bf16` (feature `onednn`) runs the convolutions
//! in bfloat16 (`zoo::ops::onednn::set_bf16`).

use std::time::Instant;

use alig::{Optimizer, ParamSet, Sgd, SgdConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use zoo::ModelArgs;

/// (registry name, arguments, batch, image side)
fn model(name: &str) -> (&'static str, ModelArgs, usize, usize) {
    match name {
        "wrn-16-4" => ("wrn", ModelArgs { depth: Some(16), width: Some(4), ..ModelArgs::classes(10) }, 128, 32),
        "wrn-40-4" => ("wrn", ModelArgs { depth: Some(40), width: Some(4), ..ModelArgs::classes(10) }, 32, 32),
        "densenet-bc-40-40" => {
            ("densenet", ModelArgs { depth: Some(40), growth: Some(40), ..ModelArgs::classes(10) }, 64, 32)
        }
        "resnet18" => ("resnet18", ModelArgs::classes(1000), 16, 224),
        other => panic!("unknown model {other}; expected wrn-16-4, wrn-40-4, densenet-bc-40-40 or resnet18"),
    }
}

#[path = "common.rs"]
mod common;
use common::print_timings;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let name = args.first().map(String::as_str).unwrap_or("wrn-16-4");
    let numbers: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (rounds, warmup) = (numbers.first().copied().unwrap_or(5), numbers.get(1).copied().unwrap_or(2));
    zoo::ops::cache_thread_count();
    if !args.iter().any(|a| a == "--glibc-default") {
        zoo::ops::keep_freed_memory();
    }
    if args.iter().any(|a| a == "--candle-ops") {
        zoo::ops::set_custom_ops(false);
    }
    if args.iter().any(|a| a == "--bf16") {
        #[cfg(feature = "onednn")]
        zoo::ops::onednn::set_bf16(true);
        #[cfg(not(feature = "onednn"))]
        panic!("--bf16 needs the feature onednn");
    }
    let (registry_name, margs, batch, side) = model(name);
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = zoo::registry::find(registry_name)
        .unwrap()
        .build_seeded(&margs, &varmap, DType::F32, &dev, 0)
        .unwrap()
        .into_image()
        .unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let mut opt = Sgd::new(
        params,
        SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 5e-4, nesterov: true, ..SgdConfig::default() },
    )
    .unwrap();
    let x = Tensor::randn(0f32, 1.0, (batch, 3, side, side), &dev).unwrap();
    let y = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), batch, &dev).unwrap();
    let mut times = vec![];
    for r in 0..rounds + warmup {
        let t = Instant::now();
        let loss = candle_nn::loss::cross_entropy(&net.forward_t(&x, true).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&loss, &grads).unwrap();
        loss.to_scalar::<f32>().unwrap();
        if r >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    print_timings("model", name, times);
}
