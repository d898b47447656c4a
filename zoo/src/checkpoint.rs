//! Strict loading of PyTorch-named safetensors checkpoints into a `VarMap`, and saving.
//!
//! Loading reports every missing key, unexpected key and shape mismatch in one error. Handled
//! explicitly, and said so in the returned report: a DataParallel `module.` prefix is stripped;
//! `num_batches_tracked` may be absent (PyTorch's `load_state_dict` accepts that too; the counter is
//! then left as it is); tensors are converted to the variable's dtype.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{bail, Context, Result, Tensor};
use candle_nn::VarMap;

/// What a load did besides copying tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors copied into the model.
    pub loaded: usize,
    /// The file's keys carried a DataParallel `module.` prefix, which was stripped.
    pub stripped_module_prefix: bool,
    /// Counters absent from the file, left unchanged.
    pub missing_num_batches_tracked: usize,
    /// Tensors converted to the model's dtype.
    pub converted_dtype: usize,
}

/// Loads `path` into `varmap`, strictly (see the module docs).
pub fn load(varmap: &VarMap, path: impl AsRef<Path>) -> Result<LoadReport> {
    let path = path.as_ref();
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .with_context(|| format!("reading checkpoint {}", path.display()))?;
    load_tensors(varmap, tensors).with_context(|| format!("loading checkpoint {}", path.display()))
}

/// Loads named tensors into `varmap`, strictly (see the module docs).
pub fn load_tensors(varmap: &VarMap, mut tensors: HashMap<String, Tensor>) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with("module.")) {
        tensors = tensors.into_iter().map(|(k, v)| (k["module.".len()..].to_string(), v)).collect();
        report.stripped_module_prefix = true;
    }
    let data = varmap.data().lock().map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
    let mut problems = vec![];
    let mut missing: Vec<&String> = data.keys().filter(|k| !tensors.contains_key(*k)).collect();
    missing.sort();
    for k in missing {
        if k.ends_with(alig::params::NUM_BATCHES_TRACKED) {
            report.missing_num_batches_tracked += 1;
        } else {
            problems.push(format!("missing key {k:?}"));
        }
    }
    let mut unexpected: Vec<&String> = tensors.keys().filter(|k| !data.contains_key(*k)).collect();
    unexpected.sort();
    problems.extend(unexpected.iter().map(|k| format!("unexpected key {k:?}")));
    let mut shared: Vec<(&String, &Tensor)> = tensors.iter().filter(|(k, _)| data.contains_key(*k)).collect();
    shared.sort_by(|a, b| a.0.cmp(b.0));
    for (k, t) in &shared {
        let var = &data[*k];
        if t.dims() != var.dims() {
            problems.push(format!("shape mismatch for {k:?}: checkpoint {:?}, model {:?}", t.dims(), var.dims()));
        }
    }
    if !problems.is_empty() {
        const SHOWN: usize = 8;
        let more = problems.len().saturating_sub(SHOWN);
        let mut listed = problems[..problems.len().min(SHOWN)].join("; ");
        if more > 0 {
            listed += &format!("; and {more} more");
        }
        bail!("checkpoint does not match the model ({} problems): {listed}", problems.len())
    }
    for (k, t) in shared {
        let var = &data[k];
        if t.dtype() != var.dtype() {
            report.converted_dtype += 1;
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        report.loaded += 1;
    }
    Ok(report)
}

/// Every variable of `varmap` (weights and buffers, PyTorch names), sorted by name.
pub fn state_dict(varmap: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
    let mut out: Vec<(String, Tensor)> = data.iter().map(|(k, v)| (k.clone(), v.as_detached_tensor())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `varmap` as a safetensors file with PyTorch key names.
pub fn save(varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    let tensors: HashMap<String, Tensor> = state_dict(varmap)?.into_iter().collect();
    candle_core::safetensors::save(&tensors, path)
}
