//! ResNet-18 (He et al., CVPR 2016) in torchvision's layout and key names, which timm shares: the
//! ALI-G paper's ImageNet model.
//!
//! `conv1` 7x7/2 pad 3 (3 -> 64), `bn1`, ReLU, max-pool 3x3/2 pad 1 (`-inf` padding, see
//! [`crate::ops::max_pool2d`]), `layer1..4` of two basic blocks each (64, 128, 256, 512 channels;
//! stride 2 in the first block of layers 2-4), global average pooling, `fc` (512 -> classes).
//!
//! ```text
//! block: out = relu(bn2(conv2(relu(bn1(conv1_s(x))))) + shortcut(x))
//!        shortcut = downsample (conv 1x1/s + BN) when the shape changes, identity otherwise
//! ```
//!
//! Input `[N, 3, H, W]`: 224x224 for ImageNet; any size from 32x32 up works (CIFAR-size inputs
//! reach layer4 at 1x1). Output logits `[N, classes]`.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{linear, Conv2dConfig, Linear, VarBuilder};

use crate::ops::{conv2d_no_bias, relu, Conv2d};

use crate::bn::BatchNorm2d;
use crate::chain::Step::{Bn, BnRelu, Conv};
use crate::init::Init;
use crate::ops::max_pool2d;

/// ResNet-18 hyper-parameters. `Default` is torchvision's ImageNet model (1000 classes).
#[derive(Clone, Debug, PartialEq)]
pub struct ResnetConfig {
    /// Classes of the logits.
    pub num_classes: usize,
    /// Channels of the input images (3 in the paper).
    pub in_channels: usize,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        Self { num_classes: 1000, in_channels: 3 }
    }
}

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d_no_bias(c_in, c_out, k, Conv2dConfig { padding: k / 2, stride, ..Default::default() }, vb)
}

struct Block {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    fn new(c_in: usize, c_out: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if stride != 1 || c_in != c_out {
            Some((
                conv(c_in, c_out, 1, stride, vb.pp("downsample.0"))?,
                BatchNorm2d::new(c_out, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: conv(c_in, c_out, 3, stride, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(c_out, vb.pp("bn1"))?,
            conv2: conv(c_out, c_out, 3, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(c_out, vb.pp("bn2"))?,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.downsample.is_none() {
            // The whole block as one chain (one op on the CPU, see `crate::chain`).
            let steps = [Conv(&self.conv1), BnRelu(&self.bn1), Conv(&self.conv2), Bn(&self.bn2)];
            return crate::chain::forward(x, &steps, true, true, train);
        }
        let h = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let h = self.bn2.forward_t(&self.conv2.forward(&h)?, train)?;
        let shortcut = match &self.downsample {
            Some((c, bn)) => bn.forward_t(&c.forward(x)?, train)?,
            None => x.clone(),
        };
        relu(&(h + shortcut)?)
    }
}

/// ResNet-18 (He et al., CVPR 2016), as torchvision's `resnet18` with its state-dict names:
/// images `[B, C, H, W]` (224x224 on ImageNet) to logits `[B, num_classes]`.
pub struct Resnet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<Block>,
    fc: Linear,
}

impl Resnet {
    /// ResNet-18.
    pub fn new(cfg: &ResnetConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_classes == 0 || cfg.in_channels == 0 {
            bail!("resnet18: num_classes and in_channels must be positive")
        }
        let conv1 = conv2d_no_bias(
            cfg.in_channels,
            64,
            7,
            Conv2dConfig { padding: 3, stride: 2, ..Default::default() },
            vb.pp("conv1"),
        )?;
        let bn1 = BatchNorm2d::new(64, vb.pp("bn1"))?;
        let mut blocks = vec![];
        let mut c_in = 64;
        for (l, c_out) in [64, 128, 256, 512].into_iter().enumerate() {
            for b in 0..2 {
                let stride = if l > 0 && b == 0 { 2 } else { 1 };
                blocks.push(Block::new(c_in, c_out, stride, vb.pp(format!("layer{}.{b}", l + 1)))?);
                c_in = c_out;
            }
        }
        let fc = linear(512, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { conv1, bn1, blocks, fc })
    }

    /// Logits `[N, classes]` of images `[N, 3, H, W]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = crate::chain::forward(x, &[Conv(&self.conv1), BnRelu(&self.bn1)], false, false, train)?;
        let mut h = max_pool2d(&h, 3, 2, 1)?;
        for b in &self.blocks {
            h = b.forward_t(&h, train)?;
        }
        self.fc.forward(&h.mean((2, 3))?)
    }

    /// torchvision's initialisation: convolutions `N(0, 2 / fan_out)`, BatchNorm 1 and 0, `fc`
    /// weight and bias PyTorch's default `U(+-1/sqrt(512))`.
    pub fn init_rule(name: &str, shape: &[usize]) -> Option<Init> {
        match (name, shape.len()) {
            ("fc.weight", _) | ("fc.bias", _) => Some(Init::TorchLinear { fan_in: 512 }),
            _ => crate::wrn::init_rule(name, shape),
        }
    }
}
