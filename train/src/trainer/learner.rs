//! The optimizer and what stands between the model's gradients and it: in mixed precision the
//! f32 master weights it steps and, for f16, the loss scaler (see [`crate::mixed`]); and after it,
//! the moving average of the weights (`--ema`, [`Ema`]).

use alig::{Optimizer, ParamSet};
use anyhow::Result;
use candle_core::Tensor;
use candle_nn::VarMap;

use super::ema::Ema;
use crate::mixed::{LossScaler, Master, Precision};

/// What a training step updates.
pub struct Learner {
    pub opt: Box<dyn Optimizer>,
    /// Mixed precision: the f32 weights `opt` steps (`None`: it steps the model's own variables).
    pub master: Option<Master>,
    /// f16: dynamic loss scaling.
    pub scaler: Option<LossScaler>,
    /// `--ema`: the moving average of the weights, updated after every step.
    pub ema: Option<Ema>,
    /// The model's variables and buffers.
    varmap: VarMap,
}

impl Learner {
    /// The learner of a model built for `precision` (`varmap` and, in mixed precision, its
    /// `master` weights): `make` builds the optimizer over the parameters it steps, and an f16 run
    /// gets a loss scaler starting at `loss_scale`.
    pub fn new(
        varmap: &VarMap,
        master: Option<Master>,
        precision: Precision,
        loss_scale: Option<f64>,
        make: impl FnOnce(ParamSet) -> Result<Box<dyn Optimizer>>,
    ) -> Result<Self> {
        let params = match &master {
            Some(m) => m.params().clone(),
            None => {
                let map = varmap.data().lock().map_err(|_| anyhow::anyhow!("varmap lock poisoned"))?.clone();
                ParamSet::trainable(&map)?
            }
        };
        let scaler = (precision == Precision::F16).then(|| LossScaler::new(loss_scale));
        Ok(Self { opt: make(params)?, master, scaler, ema: None, varmap: varmap.clone() })
    }

    /// Starts a moving average of the weights with `decay`, from the weights now.
    pub fn with_ema(mut self, decay: Option<f64>) -> Result<Self> {
        self.ema = decay.map(|d| Ema::new(d, &self.state_dict()?)).transpose()?;
        Ok(self)
    }

    /// The gradients of the optimizer's parameters from the mini-batch `loss`, in their order:
    /// the backward pass of the scaled loss, divided by the scale again, in the weights' dtype.
    pub fn backward(&self, loss: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let scale = self.scaler.as_ref().map_or(1.0, |s| s.scale);
        let store = if scale == 1.0 { loss.backward()? } else { loss.affine(scale, 0.0)?.backward()? };
        match &self.master {
            Some(m) => m.grads(&store, 1.0 / scale),
            None => Ok(self.opt.params().grads(&store)),
        }
    }

    /// After the optimizer's step: the master weights go into the model, and the scaler counts a
    /// finite step.
    pub fn stepped(&mut self) -> Result<()> {
        if let Some(m) = &self.master {
            m.write_back()?;
        }
        if let Some(s) = &mut self.scaler {
            s.good();
        }
        if self.ema.is_some() {
            let state = self.state_dict()?;
            self.ema.as_mut().map_or(Ok(()), |e| e.update(&state))?;
        }
        Ok(())
    }

    /// The gradients were not finite while the loss was: `true` if the loss scaler takes the
    /// blame (the step is skipped and the scale halved), `false` for a non-finite step.
    pub fn overflowed(&mut self) -> bool {
        self.scaler.as_mut().is_some_and(LossScaler::overflow)
    }

    /// The loss scale now (f16 runs).
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(|s| s.scale)
    }

    /// The model's weights and buffers as a checkpoint holds them (the master weights in mixed
    /// precision).
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        match &self.master {
            Some(m) => m.state_dict(&self.varmap),
            None => Ok(zoo::checkpoint::state_dict(&self.varmap)?),
        }
    }

    /// Runs `f` with the moving average's weights in the model, then puts the weights back (`None`
    /// without `--ema`).
    pub fn with_averaged<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        let Some(ema) = &self.ema else { return Ok(None) };
        let current: Vec<(String, Tensor)> =
            self.state_dict()?.into_iter().map(|(k, t)| Ok((k, t.copy()?))).collect::<Result<_>>()?;
        zoo::checkpoint::load_tensors(&self.varmap, ema.tensors().iter().cloned().collect())?;
        let out = f();
        zoo::checkpoint::load_tensors(&self.varmap, current.into_iter().collect())?;
        out.map(Some)
    }
}
