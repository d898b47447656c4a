//! The same training steps on two sides, from the same initial state and batch: the reference
//! (the CPU with the zoo's custom ops and alig's fused kernels) and the device under test (on
//! the CPU: candle's own ops and alig's tensor-op kernels, which is what CUDA and Metal run).

use std::collections::HashMap;

use alig::{Hyper, Kernels, Optimizer, OptimizerSpec, ParamSet};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::cases::{host, Case};
use super::{Line, Tolerances};

/// Where a trace runs.
#[derive(Clone)]
pub struct Side {
    pub device: Device,
    /// The zoo's CPU custom ops on (see `zoo::ops::set_custom_ops`), or candle's own ops.
    pub custom_ops: bool,
    pub kernels: Kernels,
}

impl Side {
    /// The reference: the CPU's fast path.
    pub fn reference() -> Self {
        Self { device: Device::Cpu, custom_ops: true, kernels: Kernels::Auto }
    }

    /// The device under test; on the CPU, the path CUDA and Metal take.
    pub fn under_test(device: Device) -> Self {
        Self { device, custom_ops: false, kernels: Kernels::Tensor }
    }

    /// Runs `f` with this side's ops selected.
    pub fn with<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let before = zoo::ops::custom_ops();
        zoo::ops::set_custom_ops(self.custom_ops);
        let out = f();
        zoo::ops::set_custom_ops(before);
        out
    }
}

/// Named host copies of what a trace saw, in order.
pub type Values = Vec<(String, Vec<f64>)>;

/// What one side computed: the first forward and backward, then the state after the steps.
pub struct Trace {
    pub forward: Values,
    pub grads: Values,
    /// BatchNorm statistics after the first training-mode forward.
    pub statistics: Values,
    pub weights: Values,
    pub optimizer: Values,
}

/// The model of `case` on `device` with the initial state `init`.
pub fn build(case: &Case, init: &HashMap<String, Tensor>, device: &Device) -> Result<(VarMap, zoo::Model)> {
    let varmap = VarMap::new();
    let model = case.spec.build(&case.args, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let on_device = init.iter().map(|(k, t)| Ok((k.clone(), t.to_device(device)?))).collect::<Result<_>>()?;
    zoo::checkpoint::load_tensors(&varmap, on_device)?;
    Ok((varmap, model))
}

/// The seeded initial state of `case` (on the host).
pub fn initial_state(case: &Case, seed: u64) -> Result<HashMap<String, Tensor>> {
    let varmap = VarMap::new();
    case.spec.build_seeded(&case.args, &varmap, DType::F32, &Device::Cpu, seed)?;
    Ok(zoo::checkpoint::state_dict(&varmap)?.into_iter().collect())
}

/// Host copies of named tensors.
pub fn named(items: impl IntoIterator<Item = (String, Tensor)>) -> Result<Values> {
    items.into_iter().map(|(k, t)| Ok((k, host(&t)?))).collect()
}

fn is_statistic(name: &str) -> bool {
    name.ends_with(alig::params::RUNNING_MEAN) || name.ends_with(alig::params::RUNNING_VAR)
}

/// A model after its steps, with its optimizer and what the steps saw.
pub struct Trained {
    pub varmap: VarMap,
    pub optimizer: Box<dyn Optimizer>,
    pub trace: Trace,
}

/// `steps` steps of `opt` (built over the model's parameters from `hyper`) on `case`, on `side`:
/// the trained model, its optimizer and what the steps saw.
pub fn train(
    case: &Case,
    init: &HashMap<String, Tensor>,
    opt: (&OptimizerSpec, &Hyper),
    steps: usize,
    side: &Side,
) -> Result<Trained> {
    side.with(|| {
        let (varmap, model) = build(case, init, &side.device)?;
        let params = ParamSet::trainable(&varmap.data().lock().expect("varmap lock"))?.with_kernels(side.kernels);
        let mut optimizer = opt.0.build(params.clone(), opt.1)?;
        let (logits, loss) = case.forward(&model, &side.device)?;
        let forward = vec![("logits".into(), host(&logits)?), ("loss".into(), host(&loss)?)];
        let mut grads = params.grads(&loss.backward()?);
        // A parameter without a gradient is an empty entry (and a mismatch if the other side has one).
        let first = params
            .names()
            .iter()
            .zip(&grads)
            .map(|(k, g)| Ok((k.clone(), g.as_ref().map(host).transpose()?.unwrap_or_default())))
            .collect::<Result<Values>>()?;
        let state = zoo::checkpoint::state_dict(&varmap)?;
        let statistics = named(state.into_iter().filter(|(k, _)| is_statistic(k)))?;
        let mut loss = loss;
        for step in 0..steps {
            if step > 0 {
                loss = case.forward(&model, &side.device)?.1;
                grads = params.grads(&loss.backward()?);
            }
            optimizer.step_with(&loss, &grads)?;
        }
        let weights = named(zoo::checkpoint::state_dict(&varmap)?)?;
        // ALI-G's `last_step_clipped` is the fused CPU path's guess for its next step, which the
        // tensor-op path neither needs nor keeps: not a number to compare.
        let state = named(optimizer.state()?.into_iter().filter(|(k, _)| !k.ends_with("last_step_clipped")))?;
        Ok(Trained { varmap, optimizer, trace: Trace { forward, grads: first, statistics, weights, optimizer: state } })
    })
    .with_context(|| format!("{} with {} on {:?}", case.name, opt.0.name, side.device.location()))
}

fn largest(v: &[f64], floor: f64) -> f64 {
    v.iter().fold(floor, |m, x| m.max(x.abs()))
}

/// The largest difference of two sets of named values, relative to each reference tensor's
/// largest magnitude (at least `floor`), and the name it was found at.
pub fn worst(reference: &Values, other: &Values, floor: f64) -> (f64, String) {
    worst_scaled(reference, other, |_, a| largest(a, floor))
}

/// The kind of an optimizer-state tensor: its name up to the parameter's (`adamw.exp_avg` of
/// `adamw.exp_avg.block1.layer.0.bn2.bias`).
fn kind(name: &str) -> &str {
    name.match_indices('.').nth(1).map_or(name, |(i, _)| &name[..i])
}

/// As [`worst`], each tensor measured against the largest magnitude of its [`kind`] over the whole
/// model: Adam's moment of a bias whose gradient is almost zero is compared at the scale of that
/// moment, not at its own (where summation order alone made 7e-3 on an AVX-512 machine).
pub fn worst_by_kind(reference: &Values, other: &Values, floor: f64) -> (f64, String) {
    let mut scales: HashMap<&str, f64> = HashMap::new();
    for (name, a) in reference {
        let s = scales.entry(kind(name)).or_insert(floor);
        *s = largest(a, *s);
    }
    worst_scaled(reference, other, |name, _| scales[kind(name)])
}

fn worst_scaled(reference: &Values, other: &Values, scale_of: impl Fn(&str, &[f64]) -> f64) -> (f64, String) {
    let theirs: HashMap<&str, &Vec<f64>> = other.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = (0.0, String::new());
    for (name, a) in reference {
        let err = match theirs.get(name.as_str()) {
            Some(b) if b.len() == a.len() => {
                let scale = scale_of(name, a);
                let diff =
                    a.iter()
                        .zip(b.iter())
                        .fold(0.0f64, |m, (x, y)| if (x - y).is_nan() { f64::NAN } else { m.max((x - y).abs()) });
                diff / scale
            }
            _ => f64::INFINITY,
        };
        if err.is_nan() || err > out.0 || out.1.is_empty() {
            out = (if err.is_nan() { f64::INFINITY } else { err }, name.clone());
        }
    }
    if reference.len() != other.len() {
        out = (f64::INFINITY, format!("{} values against {}", reference.len(), other.len()));
    }
    out
}

/// The report lines of two traces of `case` under `label`.
pub fn lines(group: &'static str, label: &str, a: &Trace, b: &Trace, tol: &Tolerances) -> Vec<Line> {
    let parts: [(&str, &Values, &Values, f64); 5] = [
        ("logits, loss", &a.forward, &b.forward, tol.forward),
        ("gradients", &a.grads, &b.grads, tol.gradients),
        ("BatchNorm statistics", &a.statistics, &b.statistics, tol.forward),
        ("weights after the steps", &a.weights, &b.weights, tol.steps),
        ("optimizer state", &a.optimizer, &b.optimizer, tol.steps),
    ];
    parts
        .into_iter()
        .filter(|(_, x, _, _)| !x.is_empty())
        .map(|(what, x, y, t)| {
            let error = match what {
                "optimizer state" => worst_by_kind(x, y, tol.floor),
                _ => worst(x, y, tol.floor),
            };
            Line::new(group, label, what, error, t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[(&str, &[f64])]) -> Values {
        v.iter().map(|(k, x)| (k.to_string(), x.to_vec())).collect()
    }

    #[test]
    fn optimizer_state_is_measured_at_the_scale_of_its_kind() {
        let a = values(&[("adam.exp_avg.w", &[1e-2, 0.0]), ("adam.exp_avg.b", &[1e-5]), ("adam.step", &[3.0])]);
        let b = values(&[("adam.exp_avg.w", &[1e-2, 0.0]), ("adam.exp_avg.b", &[2e-5]), ("adam.step", &[3.0])]);
        assert_eq!(kind("adam.exp_avg.block1.bn.bias"), "adam.exp_avg");
        let (err, at) = worst_by_kind(&a, &b, 1e-4);
        assert!((err - 1e-3).abs() < 1e-12 && at == "adam.exp_avg.b", "{err} at {at}");
        assert_eq!(worst(&a, &b, 1e-4).0, 0.1, "against the floor alone");
    }

    #[test]
    fn worst_is_relative_to_each_tensors_scale_and_names_where() {
        let a = values(&[("w", &[10.0, -20.0]), ("b", &[1e-9, 0.0])]);
        assert_eq!(worst(&a, &a, 1e-4), (0.0, "w".into()));
        let b = values(&[("w", &[10.0, -19.0]), ("b", &[1e-9, 0.0])]);
        assert_eq!(worst(&a, &b, 1e-4), (0.05, "w".into()));
        // Tiny tensors are measured against the floor, not against their own magnitude.
        let c = values(&[("w", &[10.0, -20.0]), ("b", &[2e-9, 0.0])]);
        let (err, at) = worst(&a, &c, 1e-4);
        assert!((err - 1e-5).abs() < 1e-12 && at == "b", "{err} at {at}");
    }

    #[test]
    fn nan_missing_and_misshapen_values_are_infinitely_wrong() {
        let a = values(&[("w", &[1.0, 2.0])]);
        assert_eq!(worst(&a, &values(&[("w", &[1.0, f64::NAN])]), 1e-4).0, f64::INFINITY);
        assert_eq!(worst(&a, &values(&[("v", &[1.0, 2.0])]), 1e-4).0, f64::INFINITY);
        assert_eq!(worst(&a, &values(&[("w", &[1.0])]), 1e-4).0, f64::INFINITY);
        let extra = values(&[("w", &[1.0, 2.0]), ("x", &[0.0])]);
        assert_eq!(worst(&a, &extra, 1e-4).0, f64::INFINITY);
    }

    #[test]
    fn a_line_out_of_tolerance_fails_the_report() {
        let line = |e| Line::new("model", "wrn", "gradients", (e, "w".into()), 1e-3);
        let mut report =
            super::super::Report { device: "cpu".into(), reference: "cpu".into(), lines: vec![line(1e-4)] };
        assert!(report.passed());
        report.lines.push(line(2e-3));
        assert!(!report.passed());
        assert!(report.table().contains("FAIL") && report.table().contains("2 checks, 1 failed"));
    }
}
