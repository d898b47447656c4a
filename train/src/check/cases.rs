//! The tiny models `train check` runs: one configuration of every model of the zoo, with a
//! seeded input batch, and how each kind is called and scored.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use zoo::{masked_sigmoid_cross_entropy, Model, ModelArgs, ModelSpec};

/// A model configuration and its input batch (on the host).
pub struct Case {
    /// `wrn-10-1`, `dnc`, ...
    pub name: String,
    pub spec: &'static ModelSpec,
    pub args: ModelArgs,
    input: Input,
}

/// One batch of a model kind.
#[derive(Clone)]
enum Input {
    Images { x: Tensor, y: Tensor },
    Pairs { s1: Tensor, l1: Vec<usize>, s2: Tensor, l2: Vec<usize>, y: Tensor },
    Sequences { obs: Tensor, target: Tensor, mask: Tensor },
}

/// Uniform values in `[-1, 1)` of `shape`, from `seed` (the same on every machine).
fn uniform(shape: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| ((zoo::init::splitmix64(seed.wrapping_add(i)) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn labels(v: &[u32]) -> Result<Tensor> {
    Ok(Tensor::new(v, &Device::Cpu)?)
}

impl Case {
    /// An image model on a batch of `batch` images of `side` x `side` pixels.
    pub fn image(name: &str, model: &str, args: ModelArgs, batch: usize, side: usize) -> Result<Self> {
        let x = uniform(&[batch, args.input.unwrap_or(3), side, side], 11)?;
        let y: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 3) % args.num_classes as u32).collect();
        let input = Input::Images { x, y: labels(&y)? };
        Ok(Self { name: name.into(), spec: zoo::registry::find(model)?, args, input })
    }

    /// The NLI model on `batch` sentence pairs of at most `len` words (of `args.input` values).
    pub fn pairs(name: &str, args: ModelArgs, batch: usize, len: usize) -> Result<Self> {
        let dim = args.input.unwrap_or(zoo::NliConfig::default().word_dim);
        let lengths = |shift: usize| (0..batch).map(|i| 1 + (i * 3 + shift) % len).collect::<Vec<_>>();
        let (l1, l2) = (lengths(len - 1), lengths(len / 2));
        let input = Input::Pairs {
            s1: uniform(&[*l1.iter().max().unwrap_or(&1), batch, dim], 21)?,
            l1,
            s2: uniform(&[*l2.iter().max().unwrap_or(&1), batch, dim], 22)?,
            l2,
            y: labels(&(0..batch as u32).map(|i| (i * 2 + 1) % args.num_classes as u32).collect::<Vec<_>>())?,
        };
        Ok(Self { name: name.into(), spec: zoo::registry::find("nli")?, args, input })
    }

    /// The DNC on one repeat-copy batch of `task` (the model's input and output sizes from it).
    pub fn sequences(name: &str, hidden: usize, task: &data::RepeatCopyConfig) -> Result<Self> {
        let b = task.batch(5, 0, &Device::Cpu)?;
        let args =
            ModelArgs { hidden: Some(hidden), input: Some(task.num_bits + 2), ..ModelArgs::classes(task.num_bits + 1) };
        let input = Input::Sequences { obs: b.obs, target: b.target, mask: b.mask };
        Ok(Self { name: name.into(), spec: zoo::registry::find("dnc")?, args, input })
    }

    /// The same case with its batch already on `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let on = |t: &Tensor| t.to_device(device);
        let input = match &self.input {
            Input::Images { x, y } => Input::Images { x: on(x)?, y: on(y)? },
            Input::Pairs { s1, l1, s2, l2, y } => {
                Input::Pairs { s1: on(s1)?, l1: l1.clone(), s2: on(s2)?, l2: l2.clone(), y: on(y)? }
            }
            Input::Sequences { obs, target, mask } => {
                Input::Sequences { obs: on(obs)?, target: on(target)?, mask: on(mask)? }
            }
        };
        Ok(Self { name: self.name.clone(), spec: self.spec, args: self.args.clone(), input })
    }

    /// The case with its inputs (images, word vectors, observations) in `dtype`, for a model that
    /// computes in it; labels, targets and masks stay as they are.
    pub fn with_inputs_in(&self, dtype: DType) -> Result<Self> {
        let to = |t: &Tensor| t.to_dtype(dtype);
        let input = match &self.input {
            Input::Images { x, y } => Input::Images { x: to(x)?, y: y.clone() },
            Input::Pairs { s1, l1, s2, l2, y } => {
                Input::Pairs { s1: to(s1)?, l1: l1.clone(), s2: to(s2)?, l2: l2.clone(), y: y.clone() }
            }
            Input::Sequences { obs, target, mask } => {
                Input::Sequences { obs: to(obs)?, target: target.clone(), mask: mask.clone() }
            }
        };
        Ok(Self { name: self.name.clone(), spec: self.spec, args: self.args.clone(), input })
    }

    /// Samples in the batch (sentence pairs, sequences or images).
    pub fn batch_size(&self) -> usize {
        match &self.input {
            Input::Images { x, .. } => x.dim(0).unwrap_or(0),
            Input::Pairs { l1, .. } => l1.len(),
            Input::Sequences { obs, .. } => obs.dim(1).unwrap_or(0),
        }
    }

    /// Every model of the zoo, small: WRN-10-1, DenseNet-BC-16 (growth 8), ResNet-18 at 64x64 (at
    /// 32x32 its last BatchNorm normalises 1 value per image, ill-conditioned beyond any tolerance),
    /// the Bi-LSTM (word vectors 8, 6 per direction) and the DNC (controller 10), dropout off.
    pub fn all() -> Result<Vec<Case>> {
        let no_dropout = |a: ModelArgs| ModelArgs { dropout: Some(0.0), ..a };
        let wrn = no_dropout(ModelArgs { depth: Some(10), width: Some(1), ..ModelArgs::classes(10) });
        let densenet = no_dropout(ModelArgs { depth: Some(16), growth: Some(8), ..ModelArgs::classes(10) });
        let nli = ModelArgs { hidden: Some(6), input: Some(8), ..ModelArgs::classes(3) };
        let task = data::RepeatCopyConfig { batch_size: 2, ..Default::default() };
        Ok(vec![
            Case::image("wrn-10-1", "wrn", wrn, 4, 32)?,
            Case::image("densenet-bc-16-8", "densenet", densenet, 4, 32)?,
            Case::image("resnet18", "resnet18", no_dropout(ModelArgs::classes(10)), 4, 64)?,
            Case::pairs("nli-tiny", nli, 3, 5)?,
            Case::sequences("dnc-tiny", 10, &task)?,
        ])
    }

    /// Logits and mean loss of `model` on this case's batch, moved to `device`, in training mode.
    pub fn forward(&self, model: &Model, device: &Device) -> Result<(Tensor, Tensor)> {
        let on = |t: &Tensor| t.to_device(device);
        let widened = crate::loss::widened;
        Ok(match (model, &self.input) {
            (Model::Images(m), Input::Images { x, y }) => {
                let logits = widened(&m.forward_t(&on(x)?, true)?)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &on(y)?)?;
                (logits, loss)
            }
            (Model::Pairs(m), Input::Pairs { s1, l1, s2, l2, y }) => {
                let logits = widened(&m.forward(&on(s1)?, l1, &on(s2)?, l2)?)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &on(y)?)?;
                (logits, loss)
            }
            (Model::Sequences(m), Input::Sequences { obs, target, mask }) => {
                let logits = widened(&m.forward(&on(obs)?)?)?;
                let loss = masked_sigmoid_cross_entropy(&logits, &on(target)?, &on(mask)?)?;
                (logits, loss)
            }
            _ => bail!("{}: the model does not take this case's input", self.name),
        })
    }
}

/// `t` on the host as f64 values.
pub fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}
