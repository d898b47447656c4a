//! `train bench`: the median time of one training step (forward, loss, backward, optimizer step,
//! and a wait for the device) of the paper's models at the paper's batch sizes, on any device,
//! after a warm-up; samples per second and the memory it held. The batch is synthetic and already
//! on the device, so the number is the model's and the optimizer's, not the loader's.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Device;
use serde::Serialize;
use zoo::ModelArgs;

use crate::check::cases::Case;
use crate::cli::BenchArgs;
use crate::device;
use crate::mixed::Precision;
use crate::trainer::Learner;

/// The models `train bench` knows, with the paper's configuration and batch size.
pub const MODELS: [&str; 5] = ["wrn-40-4", "densenet-bc-40-40", "resnet18", "bilstm", "dnc"];

/// One model's timing.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub model: String,
    pub batch: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub samples_per_s: f64,
    /// CUDA: the most device memory in use after a step (the driver's count, all processes);
    /// CPU: the process's peak resident memory. MiB.
    pub memory_mib: f64,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub precision: String,
    pub optimizer: String,
    pub warmup: usize,
    pub steps: usize,
    pub rows: Vec<BenchRow>,
}

impl BenchReport {
    /// A markdown table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "train bench: {}, {}, {}, median of {} steps after {} warm-up\n\n",
            self.device, self.precision, self.optimizer, self.steps, self.warmup
        );
        s += "| model | batch | step (ms, median) | fastest (ms) | samples/s | memory (MiB) |\n|---|---|---|---|---|---|\n";
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {:.1} | {:.1} | {:.0} | {:.0} |\n",
                r.model, r.batch, r.median_ms, r.min_ms, r.samples_per_s, r.memory_mib
            );
        }
        s
    }
}

fn not_a_bench_model(name: &str) -> anyhow::Error {
    anyhow::anyhow!("--model {name}: not a bench model (one of {})", MODELS.join(", "))
}

/// The case of a bench model, at the paper's batch size unless `batch` is given.
fn case(name: &str, batch: Option<usize>) -> Result<Case> {
    let images = |model, args, paper, side| Case::image(name, model, args, batch.unwrap_or(paper), side);
    match name {
        "wrn-40-4" => images("wrn", ModelArgs { depth: Some(40), width: Some(4), ..ModelArgs::classes(100) }, 128, 32),
        "densenet-bc-40-40" => {
            images("densenet", ModelArgs { depth: Some(40), growth: Some(40), ..ModelArgs::classes(100) }, 64, 32)
        }
        "resnet18" => images("resnet18", ModelArgs::classes(1000), 256, 224),
        // SNLI: GloVe 300, 2048 per direction, sentences of up to 32 words.
        "bilstm" => Case::pairs(name, ModelArgs::classes(3), batch.unwrap_or(64), 32),
        "dnc" => {
            let task = data::RepeatCopyConfig { batch_size: batch.unwrap_or(16), ..Default::default() };
            Case::sequences(name, 64, &task)
        }
        other => Err(not_a_bench_model(other)),
    }
}

/// Memory in MiB now (CUDA: in use on the device) or at the process's peak (CPU).
fn memory_mib(dev: &Device) -> Result<f64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = dev {
        let (free, total) =
            d.cuda_stream().context().mem_get_info().map_err(|e| anyhow::anyhow!("cuMemGetInfo: {e:?}"))?;
        return Ok((total - free) as f64 / (1 << 20) as f64);
    }
    let _ = dev;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok());
    Ok(kib.map_or(f64::NAN, |k| k / 1024.0))
}

/// The model of `case` in `precision` with the optimizer of `opts` (and the loss scaler of f16).
fn learner(case: &Case, precision: Precision, opts: &BenchArgs, dev: &Device) -> Result<(zoo::Model, Learner)> {
    let (model, varmap, master) = crate::mixed::build_model(case.spec, &case.args, precision, dev, 0)?;
    let spec = alig::registry::find(&opts.opt)?;
    let mut hyper = (spec.experiment_defaults)();
    hyper.lr = hyper.lr.or(Some(0.1));
    let learner = Learner::new(&varmap, master, precision, None, |params| Ok(spec.build(params, &hyper)?))?;
    Ok((model, learner))
}

fn bench_one(name: &str, opts: &BenchArgs, precision: Precision, dev: &Device) -> Result<BenchRow> {
    let case = case(name, opts.batch_size)?.to_device(dev)?;
    let case = case.with_inputs_in(precision.compute_on(dev, case.spec.kind))?;
    let (model, mut learner) = learner(&case, precision, opts, dev)?;
    let (mut times, mut memory) = (vec![], 0.0f64);
    for i in 0..opts.warmup + opts.steps {
        let t = Instant::now();
        let loss = case.forward(&model, dev)?.1;
        let grads = learner.backward(&loss)?;
        learner.opt.step_with(&loss, &grads)?;
        learner.stepped()?;
        dev.synchronize()?;
        if i >= opts.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        memory = memory.max(memory_mib(dev)?);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let batch = case.batch_size();
    Ok(BenchRow {
        model: name.into(),
        batch,
        median_ms: median,
        min_ms: times[0],
        samples_per_s: batch as f64 / (median / 1e3),
        memory_mib: memory,
    })
}

/// Times every model of `opts` (`train bench`'s flags; see the module docs); `progress` hears each row as it is done.
pub fn run(opts: &BenchArgs, mut progress: impl FnMut(&BenchRow)) -> Result<BenchReport> {
    if opts.steps == 0 {
        bail!("--steps must be at least 1")
    }
    if let Some(other) = opts.model.iter().find(|m| !MODELS.contains(&m.as_str())) {
        return Err(not_a_bench_model(other));
    }
    let dev = device::open(device::parse(&opts.device)?)?;
    let precision = match opts.precision.as_str() {
        "tf32" => {
            device::enable_tf32(&dev, "--precision tf32")?;
            Precision::F32
        }
        "f64" => bail!("--precision f64: one of f32, tf32, bf16, f16"),
        other => other.parse().map_err(|_| anyhow::anyhow!("--precision {other}: one of f32, tf32, bf16, f16"))?,
    };
    let mut rows = vec![];
    for name in &opts.model {
        let row = bench_one(name, opts, precision, &dev)?;
        progress(&row);
        rows.push(row);
    }
    let device = if dev.is_cpu() { "cpu".to_string() } else { device::describe(&dev) };
    Ok(BenchReport {
        device,
        precision: opts.precision.clone(),
        optimizer: opts.opt.clone(),
        warmup: opts.warmup,
        steps: opts.steps,
        rows,
    })
}
