//! Table-driven tests over the optimizer registry, and closed-form checks.

mod common;

use std::collections::HashMap;

use alig::{Hyper, Kernels, Optimizer, ParamSet, Schedule, OPTIMIZERS};
use candle_core::{DType, Device, Tensor};
use common::{flat, Problem};

/// Hyper-parameters that train the test problem, per optimizer (registry defaults otherwise).
fn hyper(name: &str) -> Hyper {
    let base = (alig::registry::find(name).unwrap().defaults)();
    match name {
        "alig" => Hyper { lr: Some(0.5), momentum: 0.9, ..base },
        "sgd" => Hyper { lr: Some(0.1), momentum: 0.9, weight_decay: 1e-4, ..base },
        "adam" | "amsgrad" | "adamw" | "yogi" => Hyper { lr: Some(0.02), weight_decay: 1e-4, ..base },
        "adagrad" => Hyper { lr: Some(0.1), ..base },
        "dfw" => Hyper { lr: Some(0.5), momentum: 0.9, weight_decay: 1e-4, ..base },
        "bpgrad" => Hyper { lr: Some(0.5), momentum: 0.9, ..base },
        "rmsprop" => Hyper { lr: Some(0.03), ..base },
        "momentum" => Hyper { lr: Some(0.05), momentum: 0.9, ..base },
        _ => Hyper { weight_decay: 1e-4, ..base },
    }
}

fn build(name: &str, p: &Problem, kernels: Kernels) -> Box<dyn Optimizer> {
    let params = ParamSet::trainable(&p.vars).unwrap().with_kernels(kernels);
    alig::registry::build(name, params, &hyper(name)).unwrap()
}

fn step(opt: &mut dyn Optimizer, p: &Problem) -> f64 {
    let loss = p.loss(opt.name());
    let value = loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
    opt.step(&loss, &loss.backward().unwrap()).unwrap();
    value
}

#[test]
fn every_optimizer_decreases_the_loss_keeps_the_dtype_and_leaves_buffers_alone() {
    for dtype in [DType::F32, DType::F64] {
        for spec in OPTIMIZERS {
            for kernels in [Kernels::Auto, Kernels::Tensor] {
                let p = Problem::new(7, dtype);
                let buffer = flat(p.vars["bn.running_mean"].as_tensor()).unwrap();
                let mut opt = build(spec.name, &p, kernels);
                assert_eq!(opt.name(), spec.name);
                assert!(!opt.params().names().iter().any(|n| n.contains("running")), "buffer handed to {}", spec.name);
                let first = step(opt.as_mut(), &p);
                let mut last = first;
                for _ in 0..60 {
                    last = step(opt.as_mut(), &p);
                }
                let what = format!("{} {dtype:?} {kernels:?}", spec.name);
                assert!(last.is_finite() && last < 0.5 * first, "{what}: loss {first} -> {last}");
                for (name, v) in &p.vars {
                    assert_eq!(v.dtype(), dtype, "{what}: {name} changed dtype");
                }
                for (name, t) in opt.state().unwrap() {
                    if t.dtype().is_float() {
                        assert_eq!(t.dtype(), dtype, "{what}: state {name} is {:?}", t.dtype());
                    }
                }
                assert_eq!(flat(p.vars["bn.running_mean"].as_tensor()).unwrap(), buffer, "{what} touched a buffer");
            }
        }
    }
}

#[test]
fn state_round_trips_and_the_next_step_is_identical() {
    for spec in OPTIMIZERS {
        for kernels in [Kernels::Auto, Kernels::Tensor] {
            let a = Problem::new(11, DType::F32);
            let mut opt_a = build(spec.name, &a, kernels);
            for _ in 0..5 {
                step(opt_a.as_mut(), &a);
            }
            let exported: HashMap<String, Tensor> = opt_a.state().unwrap().into_iter().collect();
            // A fresh optimizer over a copy of the current weights, with the exported state.
            let b = Problem::new(11, DType::F32);
            for (name, v) in &b.vars {
                v.set(a.vars[name].as_tensor()).unwrap();
            }
            let mut opt_b = build(spec.name, &b, kernels);
            for (name, v) in &b.vars {
                v.set(a.vars[name].as_tensor()).unwrap(); // undo a constructor projection of the copy
            }
            opt_b.load_state(&exported).unwrap();
            step(opt_a.as_mut(), &a);
            step(opt_b.as_mut(), &b);
            assert_eq!(a.snapshot(), b.snapshot(), "{} {kernels:?}: weights differ after the resumed step", spec.name);
            let (sa, sb) = (opt_a.state().unwrap(), opt_b.state().unwrap());
            assert_eq!(sa.len(), sb.len());
            for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
                assert_eq!(na, nb);
                assert_eq!(flat(ta).unwrap(), flat(tb).unwrap(), "{}: state {na} differs", spec.name);
            }
            // The exported tensors are copies: later steps do not change them.
            let again: HashMap<String, Tensor> = opt_b.state().unwrap().into_iter().collect();
            if let Some((k, t)) = exported.iter().find(|(k, _)| !k.contains("step")) {
                assert_ne!(
                    flat(t).unwrap(),
                    flat(&again[k]).unwrap(),
                    "{}: {k} did not move or was aliased",
                    spec.name
                );
            }
        }
    }
}

#[test]
fn state_import_is_strict_and_names_the_entry() {
    for spec in OPTIMIZERS {
        let p = Problem::new(3, DType::F32);
        let mut opt = build(spec.name, &p, Kernels::Auto);
        step(opt.as_mut(), &p);
        let good: HashMap<String, Tensor> = opt.state().unwrap().into_iter().collect();
        let before: Vec<(String, Vec<f64>)> =
            opt.state().unwrap().iter().map(|(k, t)| (k.clone(), flat(t).unwrap())).collect();
        let unexpected = format!("{}.bogus.fc1.weight", spec.name);
        let mut extra = good.clone();
        extra.insert(unexpected.clone(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
        let err = opt.load_state(&extra).unwrap_err().to_string();
        assert!(err.contains(&unexpected), "{}: {err}", spec.name);
        if let Some(key) = good.keys().find(|k| !k.contains("step")).cloned() {
            let mut missing = good.clone();
            missing.remove(&key);
            let err = opt.load_state(&missing).unwrap_err().to_string();
            assert!(err.contains(&key), "{}: {err}", spec.name);
            let mut misshapen = good.clone();
            misshapen.insert(key.clone(), Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap());
            let err = opt.load_state(&misshapen).unwrap_err().to_string();
            assert!(err.contains(&key) && err.contains("shape"), "{}: {err}", spec.name);
        }
        let after: Vec<(String, Vec<f64>)> =
            opt.state().unwrap().iter().map(|(k, t)| (k.clone(), flat(t).unwrap())).collect();
        assert_eq!(before, after, "{}: a failed import changed the state", spec.name);
    }
}

#[test]
fn a_parameter_without_gradient_is_not_updated() {
    for spec in OPTIMIZERS {
        let p = Problem::new(5, DType::F64);
        let mut opt = build(spec.name, &p, Kernels::Auto);
        let frozen = opt.params().names().iter().position(|n| n == "fc2.bias").unwrap();
        let before = flat(p.vars["fc2.bias"].as_tensor()).unwrap();
        for _ in 0..3 {
            let loss = p.loss(spec.name);
            let mut grads = opt.params().grads(&loss.backward().unwrap());
            grads[frozen] = None;
            opt.step_with(&loss, &grads).unwrap();
        }
        assert_eq!(
            flat(p.vars["fc2.bias"].as_tensor()).unwrap(),
            before,
            "{} moved a parameter without gradient",
            spec.name
        );
    }
}

#[test]
fn bad_hyper_parameters_fail_with_their_name() {
    let p = Problem::new(1, DType::F32);
    let cases = [
        ("alig", Hyper { lr: Some(-1.0), ..Hyper::default() }, "max_lr"),
        ("alig", Hyper { max_norm: Some(0.0), ..Hyper::default() }, "max_norm"),
        ("sgd", Hyper { lr: Some(f64::NAN), ..Hyper::default() }, "lr"),
        ("sgd", Hyper { lr: Some(0.1), nesterov: Some(true), ..Hyper::default() }, "Nesterov"),
        ("adam", Hyper { betas: Some((0.9, 1.0)), ..Hyper::default() }, "betas"),
        ("dfw", Hyper { lr: Some(0.0), ..Hyper::default() }, "eta"),
        ("l4mom", Hyper { weight_decay: -1.0, ..Hyper::default() }, "weight_decay"),
    ];
    for (name, h, word) in cases {
        let params = ParamSet::trainable(&p.vars).unwrap();
        let err = alig::registry::build(name, params, &h).err().expect("must fail").to_string();
        assert!(err.contains(word) && err.contains(name), "{name}: {err}");
    }
}

/// With the cap active at every step and no momentum, ALI-G is SGD with lr = max_lr.
#[test]
fn alig_with_the_cap_always_active_is_sgd_with_lr_max_lr() {
    let max_lr = 1e-3;
    let (a, b) = (Problem::new(9, DType::F64), Problem::new(9, DType::F64));
    let mut alig = alig::registry::build(
        "alig",
        ParamSet::trainable(&a.vars).unwrap(),
        &Hyper { lr: Some(max_lr), ..Hyper::default() },
    )
    .unwrap();
    let mut sgd = alig::registry::build(
        "sgd",
        ParamSet::trainable(&b.vars).unwrap(),
        &Hyper { lr: Some(max_lr), ..Hyper::default() },
    )
    .unwrap();
    for t in 0..20 {
        let loss = a.loss("alig");
        let report = alig.step(&loss, &loss.backward().unwrap()).unwrap();
        let unclipped = report.step_size_unclipped.unwrap().to_f64().unwrap();
        assert!(unclipped > max_lr, "step {t}: the cap must bind ({unclipped})");
        assert_eq!(report.step_size.unwrap().to_f64().unwrap(), max_lr);
        step(sgd.as_mut(), &b);
        for (name, v) in &a.vars {
            let (x, y) = (flat(v.as_tensor()).unwrap(), flat(b.vars[name].as_tensor()).unwrap());
            for (x, y) in x.iter().zip(&y) {
                assert!((x - y).abs() <= 1e-14 * (1.0 + y.abs()), "step {t} {name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn the_projection_keeps_the_norm_at_most_max_norm() {
    for kernels in [Kernels::Auto, Kernels::Tensor] {
        let p = Problem::new(13, DType::F32);
        let params = ParamSet::trainable(&p.vars).unwrap().with_kernels(kernels);
        let norm0 = params.sq_norm().unwrap().to_scalar::<f32>().unwrap().sqrt();
        let max_norm = 0.5 * norm0 as f64;
        let h = Hyper { lr: Some(1.0), momentum: 0.9, max_norm: Some(max_norm), ..Hyper::default() };
        let mut opt = alig::registry::build("alig", params.clone(), &h).unwrap();
        let buffer = flat(p.vars["bn.running_mean"].as_tensor()).unwrap();
        let norm = |ps: &ParamSet| ps.sq_norm().unwrap().to_scalar::<f32>().unwrap().sqrt() as f64;
        assert!((norm(&params) - max_norm).abs() <= 1e-6 * max_norm, "constructor projection: {}", norm(&params));
        for _ in 0..20 {
            let loss = p.loss("alig");
            let report = opt.step(&loss, &loss.backward().unwrap()).unwrap();
            assert!(report.get("norm_before_projection").is_some());
            assert!(norm(&params) <= max_norm * (1.0 + 1e-6), "{kernels:?}: norm {} > {max_norm}", norm(&params));
        }
        assert_eq!(flat(p.vars["bn.running_mean"].as_tensor()).unwrap(), buffer, "the projection touched a buffer");
    }
}

#[test]
fn grad_clipping_matches_torch() {
    let p = Problem::new(2, DType::F64);
    let params = ParamSet::trainable(&p.vars).unwrap();
    let loss = p.loss("sgd");
    let mut grads = params.grads(&loss.backward().unwrap());
    let norm = alig::grad_sq_norm(&grads, Kernels::Tensor).unwrap().unwrap().to_scalar::<f64>().unwrap().sqrt();
    let original: Vec<Vec<f64>> = grads.iter().map(|g| flat(g.as_ref().unwrap()).unwrap()).collect();
    let max_norm = 0.25 * norm;
    let reported = alig::clip_grad_norm(&mut grads, max_norm).unwrap().unwrap().to_scalar::<f64>().unwrap();
    assert!((reported - norm).abs() <= 1e-12 * norm);
    let coef = max_norm / (norm + 1e-6);
    for (g, o) in grads.iter().zip(&original) {
        for (x, y) in flat(g.as_ref().unwrap()).unwrap().iter().zip(o) {
            assert!((x - coef * y).abs() <= 1e-15 + 1e-12 * y.abs());
        }
    }
    // Under the threshold nothing changes.
    let before: Vec<Vec<f64>> = grads.iter().map(|g| flat(g.as_ref().unwrap()).unwrap()).collect();
    alig::clip_grad_norm(&mut grads, 10.0 * norm).unwrap();
    let after: Vec<Vec<f64>> = grads.iter().map(|g| flat(g.as_ref().unwrap()).unwrap()).collect();
    assert_eq!(before, after);
}

#[test]
fn schedules_follow_multistep_lr() {
    let s = Schedule::wrn_sgd();
    assert_eq!(s.lr_at(0.1, 0), 0.1);
    assert_eq!(s.lr_at(0.1, 59), 0.1);
    assert!((s.lr_at(0.1, 60) - 0.02).abs() < 1e-15);
    assert!((s.lr_at(0.1, 160) - 0.1 * 0.2f64.powi(3)).abs() < 1e-15);
    assert_eq!("step:150,225:0.1".parse::<Schedule>().unwrap(), Schedule::densenet_sgd());
    assert_eq!(Schedule::densenet_sgd().to_string().parse::<Schedule>().unwrap(), Schedule::densenet_sgd());
    assert_eq!("constant".parse::<Schedule>().unwrap().factor_at(1000), 1.0);
    for bad in ["step:60,x:0.2", "step:60:-1", "linear", "step:60"] {
        let err = bad.parse::<Schedule>().unwrap_err();
        assert!(err.contains("schedule") || err.contains("milestone"), "{bad}: {err}");
    }
}

#[test]
fn parameter_sets_are_sorted_and_exclude_buffers() {
    let p = Problem::new(4, DType::F32);
    let params = ParamSet::trainable(&p.vars).unwrap();
    assert_eq!(params.names(), ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert_eq!(params.elem_count(), 16 + 96 + 3 + 48);
    assert!(alig::is_buffer_name("layer1.0.bn1.running_var") && alig::is_buffer_name("bn.num_batches_tracked"));
    assert!(!alig::is_buffer_name("bn.weight") && !alig::is_buffer_name("running_meaning"));
    let err = ParamSet::trainable_by(&p.vars, |_| false).err().unwrap().to_string();
    assert!(err.contains("no trainable parameters"), "{err}");
}

/// Optimizer state and reports must be detached from autograd: a state tensor that tracked its
/// inputs would chain every step's graph to the next (a leak that grows with every step).
#[test]
fn state_and_reports_never_hold_an_autograd_graph() {
    for spec in OPTIMIZERS {
        for kernels in [Kernels::Auto, Kernels::Tensor] {
            let p = Problem::new(6, DType::F32);
            let h = Hyper { weight_decay: 1e-3, max_norm: Some(100.0), ..hyper(spec.name) };
            let params = ParamSet::trainable(&p.vars).unwrap().with_kernels(kernels);
            let mut opt = alig::registry::build(spec.name, params, &h).unwrap();
            for _ in 0..2 {
                let loss = p.loss(spec.name);
                assert!(loss.track_op());
                let report = opt.step(&loss, &loss.backward().unwrap()).unwrap();
                let scalars = [report.step_size.clone(), report.step_size_unclipped.clone()];
                for s in scalars.iter().flatten().chain(report.extra.iter().map(|(_, s)| s)) {
                    if let alig::Scalar::Device(t) = s {
                        assert!(!t.track_op(), "{} {kernels:?}: a reported scalar tracks the graph", spec.name);
                    }
                }
            }
            for (name, t) in opt.state().unwrap() {
                assert!(!t.track_op(), "{} {kernels:?}: state {name} tracks the graph", spec.name);
            }
        }
    }
}

/// ALI-G's fused CPU step speculates that a step is clipped when the previous one was, and corrects
/// it otherwise: over a run that crosses the cap both ways, it must equal the tensor-op step.
#[test]
fn alig_speculative_fused_step_equals_tensor_ops() {
    for (momentum, adjusted, cap) in [(0.0, false, 5.0), (0.9, false, 2.0), (0.9, true, 2.0)] {
        let (a, b) = (Problem::new(21, DType::F64), Problem::new(21, DType::F64));
        let h = Hyper { lr: Some(cap), momentum, adjusted_momentum: adjusted, ..Hyper::default() };
        let mut fused = alig::registry::build("alig", ParamSet::trainable(&a.vars).unwrap(), &h).unwrap();
        let params_b = ParamSet::trainable(&b.vars).unwrap().with_kernels(Kernels::Tensor);
        let mut plain = alig::registry::build("alig", params_b, &h).unwrap();
        let (mut clipped, mut unclipped, mut switches, mut last) = (0, 0, 0, None);
        for t in 0..20 {
            let loss = a.loss("alig");
            let report = fused.step(&loss, &loss.backward().unwrap()).unwrap();
            let is_clipped = report.step_size_unclipped.unwrap().to_f64().unwrap() >= cap;
            if is_clipped {
                clipped += 1
            } else {
                unclipped += 1
            }
            switches += (last.is_some() && last != Some(is_clipped)) as usize;
            last = Some(is_clipped);
            step(plain.as_mut(), &b);
            for (name, v) in &a.vars {
                let (x, y) = (flat(v.as_tensor()).unwrap(), flat(b.vars[name].as_tensor()).unwrap());
                for (x, y) in x.iter().zip(&y) {
                    // Both paths round differently (sum order, the correction), and large steps
                    // amplify that; a wrong correction would be off by about delta * g, far more.
                    assert!(
                        (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                        "mu {momentum} adjusted {adjusted} step {t} {name}: {x} vs {y}"
                    );
                }
            }
        }
        assert!(
            switches > 0 && clipped > 0 && unclipped > 0,
            "the run must cross the cap: {clipped} clipped, {unclipped} not"
        );
    }
}

/// Per-group caps: each parameter is stepped with its group's `min(gamma_u, max_lr)`, and the
/// reported step size is the mean over the groups (as the reference).
#[test]
fn alig_groups_have_their_own_max_lr() {
    for kernels in [Kernels::Auto, Kernels::Tensor] {
        let p = Problem::new(8, DType::F64);
        let before = p.snapshot();
        let cfg = alig::AligConfig {
            max_lr: None,
            groups: vec![alig::GroupMaxLr { prefix: "fc1.".into(), max_lr: Some(1e-4) }],
            ..Default::default()
        };
        let params = ParamSet::trainable(&p.vars).unwrap().with_kernels(kernels);
        let mut opt = alig::Alig::new(params.clone(), cfg).unwrap();
        let loss = p.loss("alig");
        let grads = params.grads(&loss.backward().unwrap());
        let report = opt.step_with(&loss, &grads).unwrap();
        let unclipped = report.step_size_unclipped.unwrap().to_f64().unwrap();
        assert!(unclipped > 1e-4);
        let mean = report.step_size.unwrap().to_f64().unwrap();
        assert!((mean - 0.5 * (unclipped + 1e-4)).abs() < 1e-12 * unclipped, "{mean} vs {unclipped}");
        for (name, g) in params.names().iter().zip(&grads) {
            let gamma = if name.starts_with("fc1.") { 1e-4 } else { unclipped };
            let g = flat(g.as_ref().unwrap()).unwrap();
            let now = flat(p.vars[name].as_tensor()).unwrap();
            for ((w0, g), w1) in before[name].iter().zip(&g).zip(&now) {
                assert!((w0 - gamma * g - w1).abs() <= 1e-14, "{kernels:?} {name}: {w1} vs {}", w0 - gamma * g);
            }
        }
    }
}

/// The fused kernels reduce in parallel; the result must not depend on thread scheduling, or a
/// resumed run would drift from an uninterrupted one.
#[test]
fn fused_reductions_are_deterministic() {
    let make = || {
        let mut rng = common::Rng::new(31);
        let w = candle_core::Var::from_tensor(&rng.tensor(&[600_000], 0.1, DType::F32)).unwrap();
        let g = rng.tensor(&[600_000], 1e-3, DType::F32);
        (w, g)
    };
    let mut first: Option<Vec<f64>> = None;
    for _ in 0..8 {
        let (w, g) = make();
        let params = ParamSet::new([("w".to_string(), w.clone())]).unwrap();
        let h = Hyper { lr: Some(0.1), momentum: 0.9, max_norm: Some(50.0), ..Hyper::default() };
        let mut opt = alig::registry::build("alig", params, &h).unwrap();
        let loss = Tensor::new(2.0f32, &Device::Cpu).unwrap();
        let mut seen = vec![];
        for _ in 0..3 {
            let r = opt.step_with(&loss, &[Some(g.clone())]).unwrap();
            seen.push(r.step_size_unclipped.unwrap().to_f64().unwrap());
        }
        seen.extend(flat(w.as_tensor()).unwrap().iter().step_by(997));
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(f, &seen, "a repeated run differs"),
        }
    }
}

/// `step_with_sq_norm`: ALI-G given `sum ||g||^2` (as the trainer computes it for its finiteness
/// check) steps as when it sums the gradients itself, on both kernel paths, across the cap, and
/// reports the norm it used. Every other optimizer ignores the given norm.
#[test]
fn a_given_squared_norm_steps_like_the_computed_one() {
    for spec in OPTIMIZERS {
        for kernels in [Kernels::Auto, Kernels::Tensor] {
            let (a, b) = (Problem::new(23, DType::F64), Problem::new(23, DType::F64));
            let h = if spec.name == "alig" { Hyper { lr: Some(2.0), ..hyper("alig") } } else { hyper(spec.name) };
            let build = |p: &Problem| {
                let params = ParamSet::trainable(&p.vars).unwrap().with_kernels(kernels);
                alig::registry::build(spec.name, params, &h).unwrap()
            };
            let (mut own, mut given) = (build(&a), build(&b));
            let mut caps_crossed = (false, false);
            for t in 0..12 {
                let loss = a.loss(spec.name);
                let report = own.step(&loss, &loss.backward().unwrap()).unwrap();
                let loss_b = b.loss(spec.name);
                let grads = given.params().grads(&loss_b.backward().unwrap());
                let sq = alig::grad_sq_norm(&grads, kernels).unwrap().unwrap();
                let report_b = given.step_with_sq_norm(&loss_b, &grads, &sq).unwrap();
                if spec.name == "alig" {
                    let used = report_b.grad_sq_norm.as_ref().unwrap().to_f64().unwrap();
                    assert_eq!(used, sq.to_scalar::<f64>().unwrap(), "{kernels:?} step {t}: the norm it used");
                    let own_sq = report.grad_sq_norm.as_ref().unwrap().to_f64().unwrap();
                    assert!((own_sq - used).abs() <= 1e-12 * used, "{kernels:?} step {t}: {own_sq} vs {used}");
                    let clipped = report.step_size_unclipped.unwrap().to_f64().unwrap() >= 2.0;
                    caps_crossed = (caps_crossed.0 || clipped, caps_crossed.1 || !clipped);
                }
                for (name, v) in &a.vars {
                    let (x, y) = (flat(v.as_tensor()).unwrap(), flat(b.vars[name].as_tensor()).unwrap());
                    for (x, y) in x.iter().zip(&y) {
                        assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{} {kernels:?} step {t} {name}", spec.name);
                    }
                }
            }
            if spec.name == "alig" {
                assert_eq!(caps_crossed, (true, true), "{kernels:?}: the run must be clipped and unclipped");
            }
        }
    }
}

/// `backward_step(&loss)` is `step(&loss, &loss.backward())`: bit for bit, for every optimizer.
#[test]
fn backward_step_is_backward_then_step() {
    for spec in OPTIMIZERS {
        let (a, b) = (Problem::new(4, DType::F32), Problem::new(4, DType::F32));
        let (mut oa, mut ob) = (build(spec.name, &a, Kernels::Auto), build(spec.name, &b, Kernels::Auto));
        for _ in 0..3 {
            step(oa.as_mut(), &a);
            ob.backward_step(&b.loss(spec.name)).unwrap();
        }
        assert_eq!(a.snapshot(), b.snapshot(), "{}", spec.name);
    }
}

/// Each default is written once, in the configuration's `Default`: the registry's rows and
/// `from_hyper` read it, so a configuration survives the trip through [`Hyper`].
#[test]
fn every_configuration_round_trips_through_the_registry_hyper_parameters() {
    use ::alig::{
        registry, AdagradConfig, AdamConfig, AdamwConfig, AligConfig, BpgradConfig, DfwConfig, L4Config, L4Direction,
        MomentumConfig, RmspropConfig, SgdConfig, YogiConfig,
    };
    let sgd = SgdConfig { lr: 0.3, momentum: 0.5, weight_decay: 1e-3, nesterov: false, ..Default::default() };
    let nesterov = SgdConfig { momentum: 0.9, nesterov: true, ..Default::default() };
    for c in [SgdConfig::default(), sgd, nesterov] {
        assert_eq!(SgdConfig::from_hyper(&c.to_hyper()), c);
    }
    let alig_cfg =
        AligConfig { max_lr: Some(0.1), momentum: 0.9, eps: 0.0, max_norm: Some(50.0), ..Default::default() };
    for c in [AligConfig::default(), alig_cfg] {
        assert_eq!(AligConfig::from_hyper(&c.to_hyper()), c);
    }
    for amsgrad in [false, true] {
        let c = AdamConfig { lr: 0.2, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 1e-4, amsgrad };
        assert_eq!(AdamConfig::from_hyper(&c.to_hyper(), amsgrad), c);
        let d = AdamConfig { amsgrad, ..Default::default() };
        assert_eq!(AdamConfig::from_hyper(&d.to_hyper(), amsgrad), d);
    }
    let adamw =
        AdamwConfig(AdamConfig { lr: 0.2, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.0, amsgrad: false });
    for c in [AdamwConfig::default(), adamw] {
        assert_eq!(AdamwConfig::from_hyper(&c.to_hyper()), c);
    }
    for c in [YogiConfig::default(), YogiConfig { lr: 0.5, beta1: 0.5, weight_decay: 1e-2, ..Default::default() }] {
        assert_eq!(YogiConfig::from_hyper(&c.to_hyper()), c);
    }
    let adagrad = AdagradConfig { lr: 0.5, initial_accumulator_value: 0.1, eps: 1e-7, ..Default::default() };
    for c in [AdagradConfig::default(), adagrad] {
        assert_eq!(AdagradConfig::from_hyper(&c.to_hyper()), c);
    }
    for c in [DfwConfig::default(), DfwConfig { eta: 1.0, momentum: 0.9, weight_decay: 1e-4, eps: 1e-3 }] {
        assert_eq!(DfwConfig::from_hyper(&c.to_hyper()), c);
    }
    for c in [BpgradConfig::default(), BpgradConfig { eta: 1.0, momentum: 0.9, weight_decay: 1e-4, eps: 1e-3 }] {
        assert_eq!(BpgradConfig::from_hyper(&c.to_hyper()), c);
    }
    for direction in [L4Direction::Adam, L4Direction::Momentum] {
        let c = L4Config { direction, fraction: 0.25, weight_decay: 1e-4, ..Default::default() };
        assert_eq!(L4Config::from_hyper(&c.to_hyper(), direction), c);
    }
    for c in [RmspropConfig::default(), RmspropConfig { lr: 0.1, momentum: 0.9, eps: 1e-6, ..Default::default() }] {
        assert_eq!(RmspropConfig::from_hyper(&c.to_hyper()), c);
    }
    for c in [MomentumConfig::default(), MomentumConfig { lr: 0.1, momentum: 0.5 }] {
        assert_eq!(MomentumConfig::from_hyper(&c.to_hyper()), c);
    }
    // The registry rows' defaults are the configurations' own.
    assert_eq!(SgdConfig::from_hyper(&(registry::find("sgd").unwrap().defaults)()), SgdConfig::default());
    assert_eq!(AdamwConfig::from_hyper(&(registry::find("adamw").unwrap().defaults)()), AdamwConfig::default());
    assert_eq!(
        MomentumConfig::from_hyper(&(registry::find("momentum").unwrap().defaults)()),
        MomentumConfig::default()
    );
}
