//! The optimizer-step table of the README: one step of each optimizer on the WRN-40-4 parameter set
//! (8,949,210 f32 parameters), the cases interleaved round by round so that machine noise hits
//! them alike; prints the median milliseconds of each as JSON lines (read by `bench/optim_step.py`,
//! which runs PyTorch on the same shapes in the same run).
//!
//! `cargo bench -p alig --bench step_table [-- ROUNDS]`

use std::time::Instant;

use alig::{Hyper, Kernels, Optimizer, ParamSet};
use candle_core::{Device, Tensor, Var};

mod shapes;

struct Case {
    id: &'static str,
    opt: Box<dyn Optimizer>,
    grads: Vec<Option<Tensor>>,
    times: Vec<f64>,
}

fn case(id: &'static str, name: &str, hyper: Hyper, kernels: Kernels, seed: u64) -> Case {
    let dev = Device::Cpu;
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut values = |shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| scale * next()).collect::<Vec<f32>>(), shape, &dev).unwrap()
    };
    let shapes = shapes::wrn_shapes(40, 4, 10);
    let vars: Vec<(String, Var)> =
        shapes.iter().map(|(n, s)| (n.clone(), Var::from_tensor(&values(s, 0.1)).unwrap())).collect();
    let params = ParamSet::new(vars).unwrap().with_kernels(kernels);
    assert_eq!(params.elem_count(), 8_949_210);
    let grads = params.vars().iter().map(|v| Some(values(v.dims(), 2e-3))).collect();
    let opt = alig::registry::build(name, params, &hyper).unwrap();
    Case { id, opt, grads, times: vec![] }
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(21);
    let sgd = Hyper { lr: Some(0.1), momentum: 0.9, weight_decay: 5e-4, ..Hyper::default() };
    let alig = Hyper { lr: Some(0.1), momentum: 0.9, ..Hyper::default() };
    let mut cases = vec![
        case("sgd", "sgd", sgd.clone(), Kernels::Auto, 1),
        case("adam", "adam", Hyper { lr: Some(1e-3), ..Hyper::default() }, Kernels::Auto, 2),
        case("alig", "alig", alig.clone(), Kernels::Auto, 3),
        case("alig-proj", "alig", Hyper { max_norm: Some(50.0), ..alig.clone() }, Kernels::Auto, 4),
        case("sgd-tensor-ops", "sgd", sgd, Kernels::Tensor, 5),
        case("alig-tensor-ops", "alig", alig, Kernels::Tensor, 6),
    ];
    let loss = Tensor::new(2.3f32, &Device::Cpu).unwrap();
    for round in 0..rounds + 3 {
        for c in cases.iter_mut() {
            let start = Instant::now();
            let report = c.opt.step_with(&loss, &c.grads).unwrap();
            std::hint::black_box(report);
            if round >= 3 {
                c.times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    for c in &mut cases {
        c.times.sort_by(f64::total_cmp);
        let median = c.times[c.times.len() / 2];
        println!(
            "{{\"case\": \"{}\", \"median_ms\": {median:.3}, \"min_ms\": {:.3}, \"rounds\": {rounds}}}",
            c.id, c.times[0]
        );
    }
}
