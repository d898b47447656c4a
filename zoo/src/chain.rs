//! A residual unit (or a stem) as one chain of layers: on the CPU in training mode, one op
//! ([`crate::ops::chain`], which says why), elsewhere the layers one by one. The models list their
//! layers once, as [`Step`]s, and both paths run the same list.

use candle_core::{DType, Module, Result, Tensor};

use crate::bn::{BatchNorm2d, EPS};
use crate::ops::chain::{chain, Layer};
use crate::ops::{chains, relu, Conv2d};

/// One layer of a unit.
#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    /// A convolution.
    Conv(&'a Conv2d),
    /// A BatchNorm.
    Bn(&'a BatchNorm2d),
    /// A BatchNorm followed by a ReLU.
    BnRelu(&'a BatchNorm2d),
}

/// `steps` applied to `x`, then `+ x` with `residual` and a ReLU with `relu`.
pub(crate) fn forward(x: &Tensor, steps: &[Step], residual: bool, relu_after: bool, train: bool) -> Result<Tensor> {
    let fused = x.device().is_cpu()
        && x.dtype() == DType::F32
        && x.rank() == 4
        && chains()
        && steps.iter().all(|s| match s {
            Step::Conv(c) => c.weight().dtype() == DType::F32,
            Step::Bn(bn) | Step::BnRelu(bn) => bn.fusable(x, train),
        });
    if !fused {
        let mut h = x.clone();
        for s in steps {
            h = match s {
                Step::Conv(c) => c.forward(&h)?,
                Step::Bn(bn) => bn.forward_t(&h, train)?,
                Step::BnRelu(bn) => bn.forward_relu_t(&h, train)?,
            };
        }
        if residual {
            h = (h + x)?;
        }
        return if relu_after { relu(&h) } else { Ok(h) };
    }
    // The layers and their parameters, in order.
    let (mut layers, mut params) = (vec![], vec![]);
    for s in steps {
        match *s {
            Step::Conv(c) => {
                let kernel = c.weight().dims4()?;
                layers.push(Layer::Conv { kernel: kernel.into(), stride: c.stride(), padding: c.padding() });
                params.push(c.weight().flatten_all()?);
            }
            Step::Bn(bn) | Step::BnRelu(bn) => {
                let (gamma, beta) = bn.weight_and_bias();
                layers.push(Layer::BatchNorm { channels: bn.channels(), eps: EPS, relu: matches!(s, Step::BnRelu(_)) });
                params.extend([gamma.clone(), beta.clone()]);
            }
        }
    }
    let (y, stats) = chain(x, &Tensor::cat(&params, 0)?, &layers, residual, relu_after)?;
    let bns = steps.iter().filter_map(|s| match s {
        Step::Bn(bn) | Step::BnRelu(bn) => Some(bn),
        Step::Conv(_) => None,
    });
    for (bn, stats) in bns.zip(stats) {
        bn.record(stats)?;
    }
    Ok(y)
}
