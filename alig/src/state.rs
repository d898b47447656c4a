//! Export and strict import of optimizer state as named tensors.
//!
//! Names: `<opt>.<buffer>.<param name>` for per-parameter tensors and counters,
//! `<opt>.<scalar>` for the rest. Counters are 0-d `i64` tensors; buffers keep the parameter dtype.
//! Exported tensors are copies, and imported ones are copied too: the fused kernels update state
//! buffers in place, and must never write into a tensor the caller still holds.

use std::collections::{HashMap, HashSet};

use candle_core::{bail, DType, Result, Tensor};

use crate::optimizer::NamedTensors;
use crate::params::ParamSet;

pub(crate) struct StateWriter<'a> {
    opt: &'static str,
    params: &'a ParamSet,
    pub(crate) out: NamedTensors,
}

impl<'a> StateWriter<'a> {
    pub(crate) fn new(opt: &'static str, params: &'a ParamSet) -> Self {
        Self { opt, params, out: Vec::new() }
    }

    /// One tensor per parameter, `<opt>.<key>.<param>`.
    pub(crate) fn buffers(&mut self, key: &str, bufs: &[Tensor]) -> Result<()> {
        for (name, b) in self.params.names().iter().zip(bufs) {
            self.out.push((format!("{}.{key}.{name}", self.opt), b.copy()?));
        }
        Ok(())
    }

    /// One step counter per parameter, `<opt>.<key>.<param>` (0-d i64).
    pub(crate) fn counters(&mut self, key: &str, counts: &[u64]) -> Result<()> {
        for (name, c) in self.params.names().iter().zip(counts) {
            self.out.push((format!("{}.{key}.{name}", self.opt), Tensor::new(*c as i64, self.params.device())?));
        }
        Ok(())
    }

    /// A scalar `<opt>.<key>`: a counter (0-d i64).
    pub(crate) fn count(&mut self, key: &str, v: u64) -> Result<()> {
        self.out.push((format!("{}.{key}", self.opt), Tensor::new(v as i64, self.params.device())?));
        Ok(())
    }

    /// A scalar `<opt>.<key>`: a 0-d tensor.
    pub(crate) fn scalar(&mut self, key: &str, t: &Tensor) -> Result<()> {
        self.out.push((format!("{}.{key}", self.opt), t.copy()?));
        Ok(())
    }

    pub(crate) fn finish(self) -> NamedTensors {
        self.out
    }
}

pub(crate) struct StateReader<'a> {
    opt: &'static str,
    params: &'a ParamSet,
    map: &'a HashMap<String, Tensor>,
    used: HashSet<String>,
}

impl<'a> StateReader<'a> {
    pub(crate) fn new(opt: &'static str, params: &'a ParamSet, map: &'a HashMap<String, Tensor>) -> Self {
        Self { opt, params, map, used: HashSet::new() }
    }

    fn take(&mut self, name: String) -> Result<&'a Tensor> {
        let Some(t) = self.map.get(&name) else { bail!("optimizer state: missing entry {name:?}") };
        self.used.insert(name);
        Ok(t)
    }

    /// One tensor per parameter, of the parameter's shape, converted to its dtype and device.
    pub(crate) fn buffers(&mut self, key: &str) -> Result<Vec<Tensor>> {
        let (opt, params) = (self.opt, self.params);
        let mut out = Vec::with_capacity(params.len());
        for (name, var) in params.iter() {
            let full = format!("{opt}.{key}.{name}");
            let t = self.take(full.clone())?;
            if t.shape() != var.shape() {
                bail!("optimizer state: {full:?} has shape {:?}, the parameter has {:?}", t.shape(), var.shape())
            }
            out.push(t.to_device(var.device())?.to_dtype(var.dtype())?.copy()?);
        }
        Ok(out)
    }

    pub(crate) fn counters(&mut self, key: &str) -> Result<Vec<u64>> {
        let (opt, params) = (self.opt, self.params);
        params.names().iter().map(|name| self.count_named(format!("{opt}.{key}.{name}"))).collect()
    }

    pub(crate) fn count(&mut self, key: &str) -> Result<u64> {
        self.count_named(format!("{}.{key}", self.opt))
    }

    fn count_named(&mut self, full: String) -> Result<u64> {
        let t = self.take(full.clone())?;
        if t.rank() != 0 || t.dtype().is_float() {
            bail!("optimizer state: {full:?} must be a 0-d integer counter, got {:?} {:?}", t.dtype(), t.shape())
        }
        let v = t.to_dtype(DType::I64)?.to_scalar::<i64>()?;
        u64::try_from(v).map_err(|_| candle_core::Error::Msg(format!("optimizer state: {full:?} is negative ({v})")))
    }

    /// A 0-d tensor `<opt>.<key>`, in the parameters' dtype and on their device.
    pub(crate) fn scalar(&mut self, key: &str) -> Result<Tensor> {
        let full = format!("{}.{key}", self.opt);
        let t = self.take(full.clone())?;
        if t.rank() != 0 {
            bail!("optimizer state: {full:?} must be 0-d, got shape {:?}", t.shape())
        }
        t.to_device(self.params.device())?.to_dtype(self.params.dtype())?.copy()
    }

    /// Fails on any `<opt>.` entry that was not read.
    pub(crate) fn finish(self) -> Result<()> {
        let prefix = format!("{}.", self.opt);
        let mut extra: Vec<&String> =
            self.map.keys().filter(|k| k.starts_with(&prefix) && !self.used.contains(*k)).collect();
        extra.sort();
        if let Some(first) = extra.first() {
            bail!("optimizer state: unexpected entry {first:?} ({} unexpected in all)", extra.len())
        }
        Ok(())
    }
}
