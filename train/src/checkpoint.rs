//! Checkpoints: `checkpoints/{last,best}/` with `model.safetensors` (PyTorch key names; the model,
//! its shape flags and the dataset in the metadata, so a checkpoint rebuilds its model without
//! flags), `optimizer.safetensors` (the optimizer's full state), `trainer.json`, and with `--ema`
//! `ema.safetensors` (the moving average of the weights, under the model's key names).
//!
//! A checkpoint folder is written whole into `NAME.tmp/` (each file synced), then swapped in:
//! `NAME` -> `NAME.prev`, `NAME.tmp` -> `NAME`, `NAME.prev` removed. A process killed at any moment
//! leaves either `NAME` or `NAME.prev` complete; reading takes `NAME`, else `NAME.prev`.
//!
//! `--init` reads weights from a safetensors file, a checkpoint or export folder
//! (`model.safetensors` inside), or the hub: `hf:owner/repo[@revision][/file]` (file
//! `model.safetensors` by default), through the hub cache.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const TRAINER_FILE: &str = "trainer.json";
pub const EMA_FILE: &str = "ema.safetensors";
const FORMAT: &str = "alig-toolkit-checkpoint-1";

/// Where the trainer is: everything beyond weights and optimizer state that resuming needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed optimizer steps.
    pub step: u64,
    /// The learning rate of the last completed epoch (schedules that depend on the past).
    pub lr: Option<f64>,
    /// The best validation accuracy so far (`None` before the first validation).
    pub best_val_acc: Option<f64>,
    /// The epoch that scored it (its weights are the `best` checkpoint).
    pub best_epoch: Option<usize>,
    /// Whether the last completed epoch set a new best validation score.
    pub improved: bool,
    /// Data order, augmentation and dropout are counter-based draws from the run's seed, the epoch,
    /// the sample and the step: nothing else to store.
    pub rng: String,
    /// f16: the dynamic loss scale and its count of good steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::mixed::LossScaler>,
    /// `--keep N`: the epochs whose checkpoints are kept as `epoch-NNNN`, with their validation
    /// scores, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<(usize, f64)>,
    /// `--patience`: the run stopped after this epoch, its patience spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<usize>,
}

impl TrainerState {
    /// The state of a run before its first step.
    pub fn new(rng: String) -> Self {
        Self {
            epoch: 0,
            step: 0,
            lr: None,
            best_val_acc: None,
            best_epoch: None,
            improved: false,
            rng,
            loss_scaler: None,
            kept: vec![],
            stopped_early: None,
        }
    }
}

/// The model's identity, stored in `model.safetensors`' metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    pub model: String,
    pub data: Option<String>,
    /// Shape flags (`--depth 16 --width 2`, ...) that rebuild the same tensors.
    pub flags: Vec<String>,
}

impl ModelMeta {
    fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("model".to_string(), self.model.clone()),
            ("model_flags".to_string(), self.flags.join(" ")),
        ]);
        if let Some(d) = &self.data {
            m.insert("data".into(), d.clone());
        }
        m
    }

    fn from_map(m: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            model: m.get("model")?.clone(),
            data: m.get("data").cloned(),
            flags: m.get("model_flags").map(|f| f.split_whitespace().map(String::from).collect()).unwrap_or_default(),
        })
    }
}

/// Named tensors, sorted by name.
pub type Named = Vec<(String, Tensor)>;

/// One checkpoint in memory.
pub struct Checkpoint {
    pub model: Vec<(String, Tensor)>,
    pub meta: ModelMeta,
    pub optimizer: Vec<(String, Tensor)>,
    pub trainer: TrainerState,
    /// `--ema`: the moving average of the weights.
    pub ema: Option<Named>,
}

fn safetensors_bytes(tensors: &[(String, Tensor)], meta: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    // Host copies: safetensors serialises from CPU memory.
    let host: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
    Ok(safetensors::tensor::serialize(host.iter().map(|(k, t)| (k.as_str(), t)), meta)?)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes the renames durable; not every platform allows opening a directory.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `ckpt` as `dir/NAME/` for each of `names` in order (serialised once), each atomically
/// (see the module docs): a caller that lists `last` at the end knows that every other folder
/// of this checkpoint is complete once `last` is.
pub fn save(dir: &Path, names: &[&str], ckpt: &Checkpoint) -> Result<()> {
    let mut files = vec![
        (MODEL_FILE, safetensors_bytes(&ckpt.model, Some(ckpt.meta.to_map()))?),
        (OPTIMIZER_FILE, safetensors_bytes(&ckpt.optimizer, None)?),
        (TRAINER_FILE, serde_json::to_string_pretty(&ckpt.trainer)?.into_bytes()),
    ];
    if let Some(ema) = &ckpt.ema {
        files.push((EMA_FILE, safetensors_bytes(ema, Some(ckpt.meta.to_map()))?));
    }
    names.iter().try_for_each(|name| save_folder(dir, name, &files))
}

fn save_folder(dir: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (target, tmp, prev) = (dir.join(name), dir.join(format!("{name}.tmp")), dir.join(format!("{name}.prev")));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (file, bytes) in files {
        write_synced(&tmp.join(file), bytes)?;
    }
    sync_dir(&tmp);
    fault_pause();
    if target.exists() {
        if prev.exists() {
            fs::remove_dir_all(&prev).with_context(|| format!("removing {}", prev.display()))?;
        }
        fs::rename(&target, &prev).with_context(|| format!("moving {} aside", target.display()))?;
    }
    fs::rename(&tmp, &target).with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    sync_dir(dir);
    if prev.exists() {
        fs::remove_dir_all(&prev).with_context(|| format!("removing {}", prev.display()))?;
    }
    Ok(())
}

/// Fault injection for the kill tests: `TRAIN_FAULT_PAUSE_MS` holds a checkpoint write between
/// its files and its rename, so that a test can kill the process mid-write.
fn fault_pause() {
    if let Some(ms) = std::env::var("TRAIN_FAULT_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The complete checkpoint folder `dir/name` (or the previous one a killed write left).
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.prev"))]
        .into_iter()
        .find(|d| [MODEL_FILE, OPTIMIZER_FILE, TRAINER_FILE].iter().all(|f| d.join(f).is_file()))
}

/// Reads the checkpoint folder `dir`.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let (model, meta) = read_model(&dir.join(MODEL_FILE))?;
    let meta = meta.with_context(|| format!("{}: no model name in its metadata", dir.join(MODEL_FILE).display()))?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let optimizer = read_tensors(&opt_path)?;
    let trainer_path = dir.join(TRAINER_FILE);
    let text = fs::read_to_string(&trainer_path).with_context(|| format!("reading {}", trainer_path.display()))?;
    let trainer = serde_json::from_str(&text).with_context(|| format!("parsing {}", trainer_path.display()))?;
    let ema_path = dir.join(EMA_FILE);
    let ema = ema_path.is_file().then(|| read_tensors(&ema_path)).transpose()?;
    Ok(Checkpoint { model, meta, optimizer, trainer, ema })
}

/// Every tensor of a safetensors file, sorted by name, checked finite.
fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("reading {} (not a complete safetensors file?)", path.display()))?;
    let mut v: Vec<(String, Tensor)> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, t) in &v {
        if t.dtype().is_float() {
            // x * 0 is NaN exactly for NaN and infinite x, in any float dtype: no f64 copy needed.
            let zeroed = (t * 0.0)?;
            if zeroed.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_nan() {
                bail!("{}: tensor {k:?} holds NaN or infinite values", path.display())
            }
        }
    }
    Ok(v)
}

/// A model file's tensors and its metadata, if this toolkit wrote it.
pub fn read_model(path: &Path) -> Result<(Named, Option<ModelMeta>)> {
    Ok((read_tensors(path)?, read_meta(path)?))
}

/// The model identity in a safetensors file's metadata, if this toolkit wrote it.
pub fn read_meta(path: &Path) -> Result<Option<ModelMeta>> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // The header: 8 bytes of length, then JSON.
    let mut len = [0u8; 8];
    std::io::Read::read_exact(&mut f, &mut len)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        bail!("{}: not a safetensors file (header of {n} bytes)", path.display())
    }
    let mut header = vec![0u8; n as usize];
    std::io::Read::read_exact(&mut f, &mut header).with_context(|| format!("{}: truncated header", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).with_context(|| format!("{}: bad safetensors header", path.display()))?;
    let meta: Option<HashMap<String, String>> =
        json.get("__metadata__").and_then(|m| serde_json::from_value(m.clone()).ok());
    Ok(meta.as_ref().and_then(ModelMeta::from_map))
}

/// Where `--init` points, as a local file (downloading from the hub when needed).
pub fn resolve_init(init: &str, hub_cache: Option<&Path>, offline: bool) -> Result<PathBuf> {
    if let Some(spec) = init.strip_prefix("hf:") {
        let (repo, revision, file) = parse_hub_id(spec)?;
        return from_hub(&repo, revision.as_deref(), &file, hub_cache, offline);
    }
    let p = PathBuf::from(init);
    if p.is_dir() {
        let f = p.join(MODEL_FILE);
        if !f.is_file() {
            bail!("--init {init}: the folder has no {MODEL_FILE}")
        }
        return Ok(f);
    }
    if !p.is_file() {
        bail!("--init {init}: no such file or folder (hub checkpoints are written hf:owner/repo)")
    }
    Ok(p)
}

/// `owner/repo[@revision][/path/to/file]` -> (repo, revision, file).
pub fn parse_hub_id(spec: &str) -> Result<(String, Option<String>, String)> {
    let usage = "expected hf:owner/repo[@revision][/file]";
    let (owner, rest) = spec.split_once('/').with_context(|| format!("hf:{spec}: {usage}"))?;
    let name_end = rest.find(['@', '/']).unwrap_or(rest.len());
    let name = &rest[..name_end];
    let mut rest = &rest[name_end..];
    let mut revision = None;
    if let Some(r) = rest.strip_prefix('@') {
        let end = r.find('/').unwrap_or(r.len());
        revision = Some(r[..end].to_string());
        rest = &r[end..];
    }
    let file = rest.strip_prefix('/').unwrap_or(rest);
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok(owner) || !ok(name) || revision.as_deref().is_some_and(|r| r.is_empty()) {
        bail!("hf:{spec}: {usage}")
    }
    if !file.is_empty() && file.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        bail!("hf:{spec}: the file path may not have empty, `.` or `..` parts")
    }
    let file = if file.is_empty() { MODEL_FILE.to_string() } else { file.to_string() };
    Ok((format!("{owner}/{name}"), revision, file))
}

#[cfg(feature = "hub")]
fn from_hub(repo: &str, revision: Option<&str>, file: &str, cache: Option<&Path>, offline: bool) -> Result<PathBuf> {
    let hub = data::hub::Hub::new(cache, offline)?;
    Ok(hub.file(data::hub::RepoKind::Model, repo, revision, file)?)
}

#[cfg(not(feature = "hub"))]
fn from_hub(repo: &str, _: Option<&str>, _: &str, _: Option<&Path>, _: bool) -> Result<PathBuf> {
    bail!("--init hf:{repo}: this build has no hub support; rebuild with the `hub` feature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        let p = |s| parse_hub_id(s).unwrap();
        assert_eq!(p("me/wrn"), ("me/wrn".into(), None, MODEL_FILE.into()));
        assert_eq!(p("me/wrn@v1"), ("me/wrn".into(), Some("v1".into()), MODEL_FILE.into()));
        assert_eq!(
            p("me/wrn@abc/sub/w.safetensors"),
            ("me/wrn".into(), Some("abc".into()), "sub/w.safetensors".into())
        );
        assert_eq!(p("me/wrn/w.safetensors"), ("me/wrn".into(), None, "w.safetensors".into()));
        for bad in ["wrn", "/wrn", "me/", "me/wrn@", "me/wrn/../x", "me/w rn", "me/wrn//x", "me/wrn/x/"] {
            assert!(parse_hub_id(bad).is_err(), "{bad}");
        }
    }
}
