//! The parts of a run, built from its configuration: the device, the model (seeded, then
//! `--init`), the dataset, the task around them, and the optimizer over the model's trainable
//! parameters.

use std::time::Instant;

use std::collections::HashMap;

use alig::ParamSet;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::checkpoint::{self, ModelMeta};
use crate::config::RunConfig;
use crate::mixed::{self, Master};
use crate::task::{self, Task, TaskSetup};
use crate::trainer::Learner;

/// Prints `line` to stderr unless `quiet`.
pub fn say(quiet: bool, line: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", line.as_ref());
    }
}

/// A run's model, built and initialised.
pub struct Built {
    /// The model's variables, in the run's compute dtype.
    pub varmap: VarMap,
    pub model: zoo::Model,
    /// Mixed precision: the f32 weights the optimizer steps.
    pub master: Option<Master>,
    pub meta: ModelMeta,
    pub device: Device,
}

impl Built {
    /// Loads a checkpoint's (or `--init`'s) `tensors` into the model, and into the master weights
    /// in mixed precision (which then keep the file's f32 values exactly).
    pub fn load(&self, tensors: HashMap<String, Tensor>) -> Result<zoo::checkpoint::LoadReport> {
        let report = zoo::checkpoint::load_tensors(&self.varmap, tensors.clone())?;
        if let Some(m) = &self.master {
            m.load(&tensors)?;
        }
        Ok(report)
    }
}

/// Builds the model of `cfg` on its device from the seeded initialisation, then loads `--init`
/// when `with_init`.
pub fn model(cfg: &RunConfig, with_init: bool, quiet: bool) -> Result<Built> {
    let device = crate::device::open(cfg.run.device)?;
    if cfg.run.tf32 {
        crate::device::enable_tf32(&device, "--tf32")?;
    }
    let data_spec = data::registry::find(&cfg.data.name)?;
    let (classes, input) = task::model_sizes(data_spec.input, data_spec.num_classes);
    let spec = zoo::registry::find(&cfg.model.name)?;
    let (model, varmap, master) =
        mixed::build_model(spec, &cfg.model_args(classes, input), cfg.run.precision, &device, cfg.run.seed)
            .with_context(|| format!("building model {}", cfg.model.name))?;
    let meta = ModelMeta { model: cfg.model.name.clone(), data: Some(cfg.data.name.clone()), flags: cfg.shape_flags() };
    let built = Built { varmap, model, master, meta, device };
    if let (Some(init), true) = (&cfg.run.init, with_init) {
        let path = checkpoint::resolve_init(init, cfg.run.hub_cache.as_deref(), cfg.run.offline)?;
        let (tensors, _) = checkpoint::read_model(&path)?;
        let report = built.load(tensors.into_iter().collect()).with_context(|| format!("--init {}", path.display()))?;
        say(quiet, format!("init: {} tensors from {} ({report:?})", report.loaded, path.display()));
    }
    Ok(built)
}

/// The trainable parameters of `varmap`, sorted by name (BatchNorm buffers left out).
pub fn params(varmap: &VarMap) -> Result<ParamSet> {
    let map = varmap.data().lock().map_err(|_| anyhow::anyhow!("varmap lock poisoned"))?.clone();
    Ok(ParamSet::trainable(&map)?)
}

/// The optimizer of `cfg` over the trainable parameters of `built` (its master weights in mixed
/// precision), with the loss scaler of an f16 run and the moving average of `--ema`.
pub fn learner(cfg: &RunConfig, built: &mut Built) -> Result<Learner> {
    Learner::new(&built.varmap, built.master.take(), cfg.run.precision, cfg.run.loss_scale, |params| {
        Ok(alig::registry::build(&cfg.optimizer.name, params, &cfg.hyper())?)
    })?
    .with_ema(cfg.run.ema)
}

/// The dataset of `cfg` and the task that feeds it to `model`.
/// With a [`data::Shard`] of several processes, this process's slice of every batch.
pub fn task(
    cfg: &RunConfig,
    model: zoo::Model,
    device: &Device,
    quiet: bool,
    shard: data::Shard,
) -> Result<Box<dyn Task>> {
    let spec = data::registry::find(&cfg.data.name)?;
    let t = Instant::now();
    let data = spec.load(&cfg.data_args())?;
    say(quiet, format!("data: {} loaded in {:.1}s", cfg.data.name, t.elapsed().as_secs_f64()));
    let setup = TaskSetup {
        data: cfg.data.name.clone(),
        batch_size: cfg.data.batch_size,
        seed: cfg.run.seed,
        workers: cfg.data.workers,
        steps_per_epoch: cfg.data.steps_per_epoch,
        loss: crate::loss::Criterion { kind: cfg.optimizer.loss, label_smoothing: cfg.optimizer.label_smoothing },
        shard,
        dtype: cfg.run.precision.compute_on(device, zoo::registry::find(&cfg.model.name)?.kind),
    };
    task::build(data, model, &setup, device)
}
