//! Mixed precision (`--precision bf16|f16`), PyTorch's AMP recipe with explicit master weights:
//!
//! - the model's variables are bf16/f16 and its forward and backward passes run in that type,
//!   except BatchNorm, which keeps its weights and statistics in f32 and normalises in f32
//!   ([`zoo::bn`]), and the loss, which is reduced in f32 ([`crate::loss`]);
//! - the optimizer steps f32 master copies of the trainable weights ([`Master`]) and keeps its
//!   state in f32; after each step the master weights are rounded into the model's variables;
//! - checkpoints hold the master weights (an f32 state dict, as an f32 run's), so a checkpoint
//!   loads into an f32 model and a resumed run continues from the exact weights;
//! - f16 (largest value 65504, smallest normal 6.1e-5) loses small gradients, so its runs scale the
//!   loss before the backward pass and divide the gradients by the scale after it ([`LossScaler`],
//!   PyTorch's `GradScaler` rule and defaults; its state is in the checkpoint). bf16 has f32's
//!   range and is not scaled.
//!
//! The optimizer sees the unscaled loss and gradients, so ALI-G's step size
//! `min(loss / (|g|^2 + eps), max_lr)` is computed as in an f32 run.

use std::collections::HashMap;

use alig::ParamSet;
use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use zoo::registry::ModelKind;
use zoo::{Model, ModelArgs, ModelSpec};

/// `--precision`: the floating-point type a run trains in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision (the default; the CPU's fused ops run in it).
    #[default]
    F32,
    /// Double precision: candle's ops throughout (slower), for reference runs and exact comparisons.
    F64,
    /// Mixed precision: forward and backward in bfloat16, f32 master weights and optimizer state
    /// (see the module's text). On CUDA; on the CPU for models without convolutions, and for the
    /// image models in a build with the feature `onednn`, whose convolutions then compute in bf16
    /// through oneDNN around an f32 model ([`Precision::compute_on`]).
    Bf16,
    /// Mixed precision in IEEE half, with dynamic loss scaling (see the module's text).
    F16,
}

impl Precision {
    /// Every precision, as the flag spells it.
    pub const NAMES: &'static str = "f32, f64, bf16 or f16";

    /// The dtype of the forward and backward passes (the model's variables and its inputs).
    pub fn compute(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::F64 => candle_core::DType::F64,
            Precision::Bf16 => candle_core::DType::BF16,
            Precision::F16 => candle_core::DType::F16,
        }
    }

    /// The dtype of the weights the optimizer steps, of its state and of checkpoints.
    pub fn weights(self) -> candle_core::DType {
        match self {
            Precision::F64 => candle_core::DType::F64,
            _ => candle_core::DType::F32,
        }
    }

    /// The dtype of the model's variables and inputs for a model of `kind` on `dev`: [`Self::compute`],
    /// except bf16 for an image model on the CPU, where candle 0.11 has no bf16 convolution: there
    /// the model stays f32 and its convolutions compute in bf16 through oneDNN (feature `onednn`,
    /// `zoo::ops::onednn::set_bf16`; inputs rounded to bf16 in the reorders they go through,
    /// outputs f32), as PyTorch's CPU autocast casts a convolution's inputs.
    pub fn compute_on(self, dev: &Device, kind: ModelKind) -> DType {
        if self.bf16_convolutions_only(dev, kind) {
            DType::F32
        } else {
            self.compute()
        }
    }

    fn bf16_convolutions_only(self, dev: &Device, kind: ModelKind) -> bool {
        self == Precision::Bf16 && dev.is_cpu() && kind == ModelKind::Images
    }

    /// Whether the model computes in a narrower type than the weights are kept in.
    pub fn is_mixed(self) -> bool {
        self.compute() != self.weights()
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            "bf16" => Ok(Precision::Bf16),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("unknown precision {s:?}; expected {}", Self::NAMES)),
        }
    }
}

/// The f32 weights the optimizer steps in mixed precision, beside the model's half-precision
/// variables of the same names.
pub struct Master {
    /// The trainable weights in f32, sorted by name (as [`ParamSet::trainable`]).
    params: ParamSet,
    /// The model's variables in the same order. A variable the model already keeps in f32
    /// (BatchNorm's) is its own master: the same `Var` in both lists.
    model: Vec<Var>,
}

fn lock(varmap: &VarMap) -> Result<HashMap<String, Var>> {
    Ok(varmap.data().lock().map_err(|_| anyhow::anyhow!("varmap lock poisoned"))?.clone())
}

impl Master {
    /// Master weights for the trainable variables of `model`, taken from `full`: the same model
    /// built in f32 from the same seed, so that a mixed-precision run starts from the f32 run's
    /// weights. The model's variables are then set from them.
    pub fn new(model: &VarMap, full: &VarMap) -> Result<Self> {
        let (model, full) = (lock(model)?, lock(full)?);
        let mut pairs: Vec<(String, Var, Var)> = vec![];
        for (name, var) in model.iter().filter(|(n, _)| !alig::is_buffer_name(n)) {
            let master = match var.dtype() {
                DType::F32 => var.clone(),
                _ => full.get(name).cloned().with_context(|| format!("the f32 model has no {name}"))?,
            };
            if master.dtype() != DType::F32 || master.shape() != var.shape() {
                bail!(
                    "master weight {name}: {:?} {:?} for a {:?} variable",
                    master.dtype(),
                    master.shape(),
                    var.shape()
                )
            }
            pairs.push((name.clone(), var.clone(), master));
        }
        // The order of the optimizer's parameter set: by name.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let model = pairs.iter().map(|p| p.1.clone()).collect();
        let m = Self { params: ParamSet::new(pairs.into_iter().map(|(n, _, w)| (n, w)))?, model };
        m.write_back()?;
        Ok(m)
    }

    /// The f32 weights, for the optimizer.
    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// The gradients of the model's variables in `store`, in f32 and multiplied by `unscale`, in
    /// the order of [`Master::params`].
    pub fn grads(&self, store: &GradStore, unscale: f64) -> Result<Vec<Option<Tensor>>> {
        let one = |g: &Tensor| -> Result<Tensor> {
            let g = g.to_dtype(DType::F32)?;
            Ok(if unscale == 1.0 { g } else { g.affine(unscale, 0.0)? })
        };
        self.model.iter().map(|v| store.get(v.as_tensor()).map(one).transpose()).collect()
    }

    /// Rounds the master weights into the model's variables (after a step or a load).
    pub fn write_back(&self) -> Result<()> {
        for (model, master) in self.model.iter().zip(self.params.vars()) {
            if model.dtype() != master.dtype() {
                model.set(&master.as_tensor().to_dtype(model.dtype())?)?;
            }
        }
        Ok(())
    }

    /// The model's state dict with the master weights in place of their half-precision copies:
    /// what a checkpoint holds.
    pub fn state_dict(&self, model: &VarMap) -> Result<Vec<(String, Tensor)>> {
        let master: HashMap<&str, &Var> = self.params.iter().collect();
        let tensors = zoo::checkpoint::state_dict(model)?;
        Ok(tensors
            .into_iter()
            .map(|(k, t)| match master.get(k.as_str()) {
                Some(v) => (k, v.as_detached_tensor()),
                None => (k, t),
            })
            .collect())
    }

    /// Sets the master weights from `tensors` (a checkpoint's, already loaded into the model,
    /// which checked every name and shape), then the model's variables from them.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.params.iter() {
            let t = tensors.get(name).with_context(|| format!("no tensor {name} for the master weights"))?;
            var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
        }
        self.write_back()
    }
}

/// The model `spec` for a run in `precision`: built from `seed` in the compute dtype into a new
/// [`VarMap`], and, in mixed precision, its [`Master`] weights (the model built once more in f32).
/// With the feature `onednn` it also sets the process's bf16 convolution switch
/// (`zoo::ops::onednn::set_bf16`): on for bf16 image models on the CPU ([`Precision::compute_on`]),
/// off otherwise.
pub fn build_model(
    spec: &ModelSpec,
    args: &ModelArgs,
    precision: Precision,
    dev: &Device,
    seed: u64,
) -> Result<(Model, VarMap, Option<Master>)> {
    #[cfg(feature = "onednn")]
    zoo::ops::onednn::set_bf16(false);
    if precision.bf16_convolutions_only(dev, spec.kind) {
        #[cfg(feature = "onednn")]
        if zoo::ops::onednn::onednn() {
            zoo::ops::onednn::set_bf16(true);
            let varmap = VarMap::new();
            let model = spec.build_seeded(args, &varmap, DType::F32, dev, seed)?;
            return Ok((model, varmap, None));
        }
        bail!(
            "--precision bf16: candle 0.11's CPU backend has no bf16 convolution, so {} cannot run in it \
             on the CPU without oneDNN's (a build with --features onednn, the library found at run time); \
             use --precision f16 (or f32) on the CPU, bf16 on CUDA",
            spec.name
        )
    }
    let varmap = VarMap::new();
    let model = spec.build_seeded(args, &varmap, precision.compute(), dev, seed)?;
    if !precision.is_mixed() {
        return Ok((model, varmap, None));
    }
    let full = VarMap::new();
    spec.build_seeded(args, &full, precision.weights(), dev, seed)?;
    let master = Master::new(&varmap, &full)?;
    Ok((model, varmap, Some(master)))
}

/// Dynamic loss scaling for f16, as PyTorch's `torch.amp.GradScaler`: the loss is multiplied by
/// `scale` before the backward pass and the gradients divided by it after; a step whose gradients
/// are not finite is skipped and halves the scale; [`GROWTH_INTERVAL`] finite steps in a row
/// double it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the loss is multiplied by before the backward pass.
    pub scale: f64,
    /// Finite steps since the scale last changed.
    pub good_steps: u64,
}

/// GradScaler's `init_scale`.
pub const INITIAL_SCALE: f64 = 65536.0;
/// GradScaler's `growth_interval`: finite steps in a row before the scale doubles.
pub const GROWTH_INTERVAL: u64 = 2000;
/// Below this scale an overflow is not the scale's fault: the step is treated as non-finite
/// (`--on-nonfinite`).
pub const MIN_SCALE: f64 = 1.0 / (1u64 << 24) as f64;

impl LossScaler {
    /// A scaler starting at `scale` (default [`INITIAL_SCALE`]).
    pub fn new(scale: Option<f64>) -> Self {
        Self { scale: scale.unwrap_or(INITIAL_SCALE), good_steps: 0 }
    }

    /// A step with finite gradients was taken.
    pub fn good(&mut self) {
        self.good_steps += 1;
        if self.good_steps == GROWTH_INTERVAL {
            (self.scale, self.good_steps) = (self.scale * 2.0, 0);
        }
    }

    /// The scaled gradients overflowed: `true` if the scale is halved and the step is to be
    /// skipped, `false` if the scale is already at [`MIN_SCALE`] (a non-finite step).
    pub fn overflow(&mut self) -> bool {
        if self.scale * 0.5 < MIN_SCALE {
            return false;
        }
        (self.scale, self.good_steps) = (self.scale * 0.5, 0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--precision bf16` on the CPU with oneDNN: an f32 model without master weights whose
    /// convolutions compute in bf16 (within bf16's precision of the f32 run, and not equal to it).
    #[cfg(feature = "onednn")]
    #[test]
    fn bf16_on_the_cpu_is_an_f32_model_with_bf16_convolutions() {
        if !zoo::ops::onednn::onednn() {
            eprintln!("oneDNN could not be opened: nothing to test");
            return;
        }
        let spec = zoo::registry::find("wrn").unwrap();
        let args = ModelArgs { depth: Some(10), width: Some(1), ..ModelArgs::classes(10) };
        let x = Tensor::randn(0f32, 1.0, (4, 3, 16, 16), &Device::Cpu).unwrap();
        let logits = |precision| {
            let (model, varmap, master) = build_model(spec, &args, precision, &Device::Cpu, 3).unwrap();
            let dtypes: Vec<DType> = lock(&varmap).unwrap().values().map(|v| v.dtype()).collect();
            let on = zoo::ops::onednn::bf16();
            let y = model.into_image().unwrap().forward_t(&x, false).unwrap();
            (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), master.is_none(), dtypes, on)
        };
        let (full, _, _, off) = logits(Precision::F32);
        let (half, no_master, dtypes, on) = logits(Precision::Bf16);
        zoo::ops::onednn::set_bf16(false);
        assert!(!off && on, "bf16 convolutions: f32 run {off}, bf16 run {on}");
        assert!(no_master && dtypes.iter().all(|d| *d != DType::BF16), "{dtypes:?}");
        let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = full.iter().zip(&half).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff > 0.0 && diff < 0.05 * scale, "bf16 against f32: {diff} at scale {scale}");
    }

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_the_growth_interval() {
        let mut s = LossScaler::new(None);
        assert_eq!(s.scale, 65536.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.good();
        }
        assert_eq!((s.scale, s.good_steps), (65536.0, GROWTH_INTERVAL - 1));
        assert!(s.overflow());
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
        for _ in 0..GROWTH_INTERVAL {
            s.good();
        }
        assert_eq!((s.scale, s.good_steps), (65536.0, 0));
        let mut tiny = LossScaler::new(Some(MIN_SCALE));
        assert!(!tiny.overflow());
        assert_eq!(tiny.scale, MIN_SCALE);
    }

    #[test]
    fn master_weights_round_into_the_model_and_unscale_its_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (model, full) = (VarMap::new(), VarMap::new());
        let w16 = model.get((2,), "fc.weight", candle_nn::Init::Const(0.0), DType::F16, &dev)?;
        let bn = model.get((2,), "bn.weight", candle_nn::Init::Const(1.0), DType::F32, &dev)?;
        full.get((2,), "fc.weight", candle_nn::Init::Const(0.0), DType::F32, &dev)?;
        let w32 = &full.data().lock().unwrap()["fc.weight"].clone();
        w32.set(&Tensor::new(&[1.0f32 + 1e-4, -3.0], &dev)?)?;
        let master = Master::new(&model, &full)?;
        assert_eq!(master.params().names(), ["bn.weight", "fc.weight"]);
        // f16 has 10 mantissa bits: 1 + 1e-4 rounds to 1 in the model, not in the master.
        assert_eq!(w16.to_dtype(DType::F32)?.to_vec1::<f32>()?, [1.0, -3.0]);
        assert_eq!(master.params().vars()[1].to_vec1::<f32>()?, [1.0 + 1e-4, -3.0]);
        let loss = ((w16.to_dtype(DType::F32)?.sum_all()? + bn.sum_all()?)? * 1024.0)?;
        let grads = master.grads(&loss.backward()?, 1.0 / 1024.0)?;
        for g in &grads {
            let g = g.as_ref().expect("a gradient");
            assert_eq!((g.dtype(), g.to_vec1::<f32>()?), (DType::F32, vec![1.0, 1.0]));
        }
        let state: HashMap<String, Tensor> = master.state_dict(&model)?.into_iter().collect();
        assert_eq!(state["fc.weight"].dtype(), DType::F32);
        assert_eq!(state["fc.weight"].to_vec1::<f32>()?, [1.0 + 1e-4, -3.0]);
        Ok(())
    }
}
