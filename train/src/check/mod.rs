//! `train check`: a self-test for a new machine or device. Every model of the zoo (tiny
//! configurations) and every optimizer of the registry take a few training steps on the device
//! under test and on the CPU from the same initial state and batch; the logits, the loss, every
//! gradient, the BatchNorm statistics, the weights and the optimizer state after the steps must
//! agree within stated tolerances. Then the zoo's golden cases (from the PyTorch reference) run
//! on the device, and a checkpoint written on each side is loaded on the other, bit for bit.
//!
//! On the CPU, the device under test is the CPU through candle's own ops and alig's tensor-op
//! kernels (`ZOO_CUSTOM_OPS=0`, `Kernels::Tensor`): the code path CUDA and Metal execute.

pub(crate) mod cases;
mod compare;
mod golden;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::device::{self, DeviceSpec};
use cases::Case;
use compare::{initial_state, worst, Side};

/// What `train check` runs.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The device under test.
    pub device: DeviceSpec,
    /// The folder holding `zoo/` of the golden cases (`None`: skip them).
    pub golden: Option<PathBuf>,
    /// Optimizer steps per comparison.
    pub steps: usize,
    pub seed: u64,
}

/// How far the device may be from the CPU, relative to each tensor's largest magnitude.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Tolerances {
    /// Logits, loss and BatchNorm statistics after one forward.
    pub forward: f64,
    /// The gradients of the first backward.
    pub gradients: f64,
    /// Weights and optimizer state after the steps.
    pub steps: f64,
    /// The smallest magnitude a tensor's differences are measured against.
    pub floor: f64,
}

/// f32 on both sides: summation orders differ (cuDNN's algorithms, candle's reductions), so the
/// forward agrees to about 1e-6 and a few steps to about 1e-4; the bounds leave a margin.
pub const F32: Tolerances = Tolerances { forward: 1e-4, gradients: 1e-3, steps: 2e-3, floor: 1e-4 };

/// One line of the report: the worst relative difference of one quantity of one case.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// `model`, `optimizer`, `golden` or `checkpoint`.
    pub group: &'static str,
    pub case: String,
    pub quantity: String,
    pub error: f64,
    /// Where the worst difference is (a tensor name).
    pub at: String,
    pub tolerance: f64,
    pub ok: bool,
}

impl Line {
    fn new(group: &'static str, case: &str, quantity: &str, (error, at): (f64, String), tolerance: f64) -> Self {
        let ok = error <= tolerance;
        Self { group, case: case.into(), quantity: quantity.into(), error, at, tolerance, ok }
    }
}

/// Every line, and the device they ran on.
#[derive(Debug, Serialize)]
pub struct Report {
    pub device: String,
    pub reference: String,
    pub lines: Vec<Line>,
}

impl Report {
    /// True when every line is within its tolerance.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.ok)
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let mut s = format!("train check: {} against {}\n", self.device, self.reference);
        s += &format!(
            "{:<10} {:<22} {:<24} {:>10} {:>9}  {:<6} worst at\n",
            "group", "case", "quantity", "error", "tolerance", "result"
        );
        for l in &self.lines {
            let result = if l.ok { "ok" } else { "FAIL" };
            s += &format!(
                "{:<10} {:<22} {:<24} {:>10.2e} {:>9.0e}  {:<6} {}\n",
                l.group, l.case, l.quantity, l.error, l.tolerance, result, l.at
            );
        }
        let failed = self.lines.iter().filter(|l| !l.ok).count();
        s += &format!("{} checks, {failed} failed\n", self.lines.len());
        s
    }
}

/// The optimizer the model cases step with, and its hyper-parameters.
fn optimizer(name: &str) -> Result<(&'static alig::OptimizerSpec, alig::Hyper)> {
    let spec = alig::registry::find(name)?;
    let mut hyper = (spec.experiment_defaults)();
    // A small step, so that a few steps stay in the regime where both sides agree closely.
    hyper.lr = Some(hyper.lr.map_or(0.01, |lr| lr.min(0.01)));
    Ok((spec, hyper))
}

fn model_lines(opts: &CheckOptions, dut: &Side, cases: &[Case]) -> Result<Vec<Line>> {
    let (spec, hyper) = optimizer("alig")?;
    let mut out = vec![];
    for case in cases {
        let init = initial_state(case, opts.seed)?;
        // One step per model: over several, BatchNorm on these tiny batches amplifies differences
        // of summation order beyond any useful tolerance (ResNet-18 most); the optimizer lines
        // take `steps` steps on WRN-10-1, which stays well-conditioned.
        let a = compare::train(case, &init, (spec, &hyper), 1, &Side::reference())?.trace;
        let b = compare::train(case, &init, (spec, &hyper), 1, dut)?.trace;
        out.extend(compare::lines("model", &case.name, &a, &b, &F32));
    }
    Ok(out)
}

fn optimizer_lines(opts: &CheckOptions, dut: &Side, case: &Case) -> Result<Vec<Line>> {
    let init = initial_state(case, opts.seed)?;
    let mut out = vec![];
    for spec in alig::OPTIMIZERS {
        let (spec, hyper) = optimizer(spec.name)?;
        let a = compare::train(case, &init, (spec, &hyper), opts.steps, &Side::reference())?.trace;
        let b = compare::train(case, &init, (spec, &hyper), opts.steps, dut)?.trace;
        let label = format!("{} ({})", spec.name, case.name);
        let lines = compare::lines("optimizer", &label, &a, &b, &F32);
        out.extend(lines.into_iter().filter(|l| l.quantity.contains("after") || l.quantity.contains("optimizer")));
    }
    Ok(out)
}

/// A model and optimizer state written on `from`, read on `to`: the same values, bit for bit.
fn crossing(case: &Case, init: &HashMap<String, Tensor>, from: &Side, to: &Side, dir: &Path) -> Result<Line> {
    let (spec, hyper) = optimizer("adam")?;
    let written = compare::train(case, init, (spec, &hyper), 1, from)?;
    let (model_file, opt_file) = (dir.join("model.safetensors"), dir.join("optimizer.safetensors"));
    zoo::checkpoint::save(&written.varmap, &model_file)?;
    let state: HashMap<String, Tensor> = written.optimizer.state()?.into_iter().collect();
    candle_core::safetensors::save(&state, &opt_file)?;
    let read = to.with(|| {
        let (varmap, _) = compare::build(case, &candle_core::safetensors::load(&model_file, &to.device)?, &to.device)?;
        let params = alig::ParamSet::trainable(&varmap.data().lock().expect("varmap lock"))?;
        let mut opt = spec.build(params, &hyper)?;
        opt.load_state(&candle_core::safetensors::load(&opt_file, &to.device)?)?;
        let mut read = compare::named(zoo::checkpoint::state_dict(&varmap)?)?;
        read.extend(compare::named(opt.state()?)?);
        Ok(read)
    })?;
    let mut wrote = written.trace.weights;
    wrote.extend(written.trace.optimizer);
    let label = format!("{} -> {}", location(from), location(to));
    Ok(Line::new("checkpoint", &label, "model and optimizer", worst(&wrote, &read, 1e-30), 0.0))
}

fn location(side: &Side) -> String {
    match (&side.device, side.custom_ops) {
        (Device::Cpu, true) => "cpu (custom ops)".into(),
        (Device::Cpu, false) => "cpu (candle's ops)".into(),
        (other, _) => device::describe(other),
    }
}

/// Runs every check of `opts` and returns the report (see the module docs).
pub fn run(opts: &CheckOptions) -> Result<Report> {
    let dev = device::open(opts.device)?;
    let dut = Side::under_test(dev.clone());
    let cases = Case::all()?;
    let mut lines = model_lines(opts, &dut, &cases)?;
    lines.extend(optimizer_lines(opts, &dut, &cases[0])?);
    if let Some(root) = &opts.golden {
        lines.extend(golden::run(root, &dut)?);
    }
    let dir = std::env::temp_dir().join(format!("train-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let init = initial_state(&cases[0], opts.seed)?;
    let reference = Side::reference();
    let crossed =
        [crossing(&cases[0], &init, &dut, &reference, &dir), crossing(&cases[0], &init, &reference, &dut, &dir)];
    std::fs::remove_dir_all(&dir).ok();
    for line in crossed {
        lines.push(line?);
    }
    Ok(Report { device: location(&dut), reference: "cpu (custom ops, fused kernels)".into(), lines })
}
