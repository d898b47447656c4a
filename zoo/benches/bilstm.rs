//! One training step (forward, loss, backward) of the Bi-LSTM encoder at the size of
//! `shared/spec/candle-cpu.md`: batch 64, 32 tokens, input 300, hidden 512 per direction, max-pool
//! over time, a linear layer 1024 -> 3 and cross-entropy. Median of ROUNDS steps after 2 warm-up
//! steps, as a JSON line (read by `bench/bilstm.py`, which runs PyTorch's `nn.LSTM` alongside).
//!
//! `cargo bench -p zoo --bench bilstm [-- ROUNDS]`

use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, VarBuilder, VarMap};
use zoo::{Nli, NliConfig};

#[path = "common.rs"]
mod common;

fn main() {
    zoo::ops::keep_freed_memory();
    zoo::ops::cache_thread_count();
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let cfg = NliConfig { word_dim: 300, hidden: 512, ..NliConfig::default() };
    let model = Nli::new(&cfg, vb.clone()).unwrap();
    zoo::init::init_varmap(&varmap, 0, Nli::init_rule(&cfg)).unwrap();
    let head = linear(1024, 3, vb.pp("head")).unwrap();
    let x = Tensor::randn(0f32, 1.0, (32, 64, 300), &dev).unwrap();
    let y = Tensor::from_vec((0..64u32).map(|i| i % 3).collect::<Vec<_>>(), 64, &dev).unwrap();
    let lengths = vec![32; 64];
    let mut times = vec![];
    for r in 0..rounds + 2 {
        let t = Instant::now();
        let u = model.encode(&x, &lengths).unwrap();
        let loss = candle_nn::loss::cross_entropy(&head.forward(&u).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        std::hint::black_box(grads);
        if r >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    common::print_timings("what", "bilstm", times);
}
