//! DenseNet-BC (Huang et al., CVPR 2017), as the ALI-G paper's `experiments/models/densenet.py`
//! (oval-group/ali-g): DenseNet-BC-40-40 for CIFAR.
//!
//! Shapes, for depth `d`, growth `k`, reduction `r` (0.5): `n = (d - 4) / 6` bottleneck units per
//! block (`(d - 4) / 3` basic units without bottleneck); `conv1` 3x3 (3 -> 2k); three dense blocks
//! separated by two transitions; `bn1`, ReLU, global average pooling, `fc` without bias.
//!
//! ```text
//! bottleneck unit (C -> C + k): h = conv2_3x3(relu(bn2(conv1_1x1(relu(bn1(x))))))  (C -> 4k -> k)
//! basic unit      (C -> C + k): h = conv1_3x3(relu(bn1(x)))
//!                               out = concat([x, h], channels)           (old features first)
//! transition      (C -> floor(rC)): avg_pool_2x2(conv1_1x1(relu(bn1(x))))
//! ```
//!
//! Dropout (training only) follows each convolution of the units and transitions. Input
//! `[N, 3, H, W]`, logits `[N, classes]`. Keys are the reference's (`block1.layer.0.conv1.weight`,
//! `trans1.bn1.weight`, `fc.weight`, ...).

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{linear_no_bias, Conv2dConfig, Linear, VarBuilder};

use crate::ops::{conv2d_no_bias, Conv2d};

use crate::bn::BatchNorm2d;
use crate::init::Init;

/// DenseNet-BC hyper-parameters. `Default` is the paper's CIFAR-10 model, DenseNet-BC-40-40.
#[derive(Clone, Debug, PartialEq)]
pub struct DensenetConfig {
    /// `L = 6n + 4` with bottlenecks (`3n + 4` without).
    pub depth: usize,
    /// `k`, channels added by each unit.
    pub growth: usize,
    /// Compression of the transitions (`theta` = 0.5).
    pub reduction: f64,
    /// Bottleneck units (the "B" of BC).
    pub bottleneck: bool,
    /// Classes of the logits.
    pub num_classes: usize,
    /// Channels of the input images (3 in the paper).
    pub in_channels: usize,
    /// Dropout after each convolution, training only (0 in the paper).
    pub dropout: f64,
}

impl Default for DensenetConfig {
    fn default() -> Self {
        Self { depth: 40, growth: 40, reduction: 0.5, bottleneck: true, num_classes: 10, in_channels: 3, dropout: 0.0 }
    }
}

fn conv(c_in: usize, c_out: usize, k: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d_no_bias(c_in, c_out, k, Conv2dConfig { padding: k / 2, ..Default::default() }, vb)
}

fn dropout(x: Tensor, p: f64, train: bool) -> Result<Tensor> {
    if train && p > 0.0 {
        crate::dropout::dropout(&x, p)
    } else {
        Ok(x)
    }
}

/// A unit (bottleneck when `bn2` is present) or a transition (`bn2` absent, then pooled).
struct Layer {
    bn1: BatchNorm2d,
    conv1: Conv2d,
    bottleneck: Option<(BatchNorm2d, Conv2d)>,
}

impl Layer {
    fn forward_t(&self, x: &Tensor, train: bool, p: f64) -> Result<Tensor> {
        let h = dropout(self.conv1.forward(&self.bn1.forward_relu_t(x, train)?)?, p, train)?;
        match &self.bottleneck {
            Some((bn2, conv2)) => dropout(conv2.forward(&bn2.forward_relu_t(&h, train)?)?, p, train),
            None => Ok(h),
        }
    }
}

/// DenseNet-BC (Huang et al., CVPR 2017; the reference's `densenet.py`): images `[B, C, 32, 32]`
/// to logits `[B, num_classes]`, torch state-dict names.
pub struct Densenet {
    conv1: Conv2d,
    blocks: Vec<Vec<Layer>>,
    transitions: Vec<Layer>,
    bn1: BatchNorm2d,
    fc: Linear,
    dropout: f64,
}

impl Densenet {
    /// The model of `cfg`, its tensors made (or loaded) under `vb`; fails on a depth that is not
    /// `6n + 4` (`3n + 4` without bottlenecks).
    pub fn new(cfg: &DensenetConfig, vb: VarBuilder) -> Result<Self> {
        let per_block =
            if cfg.bottleneck { (cfg.depth.saturating_sub(4)) / 6 } else { cfg.depth.saturating_sub(4) / 3 };
        let step = if cfg.bottleneck { 6 } else { 3 };
        if cfg.depth < 4 + step || (cfg.depth - 4) % step != 0 {
            bail!("densenet: depth must be {step}n + 4 with n >= 1 (bottleneck: {}), got {}", cfg.bottleneck, cfg.depth)
        }
        if cfg.growth == 0
            || cfg.num_classes == 0
            || cfg.in_channels == 0
            || !(cfg.reduction > 0.0 && cfg.reduction <= 1.0)
        {
            bail!("densenet: growth, num_classes and in_channels must be positive and reduction in (0, 1]")
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            bail!("densenet: dropout must be in [0, 1), got {}", cfg.dropout)
        }
        let k = cfg.growth;
        let mut c = 2 * k;
        let conv1 = conv(cfg.in_channels, c, 3, vb.pp("conv1"))?;
        let (mut blocks, mut transitions) = (vec![], vec![]);
        for b in 1..=3 {
            let block = vb.pp(format!("block{b}")).pp("layer");
            let mut layers = vec![];
            for i in 0..per_block {
                let v = block.pp(i.to_string());
                layers.push(if cfg.bottleneck {
                    Layer {
                        bn1: BatchNorm2d::new(c, v.pp("bn1"))?,
                        conv1: conv(c, 4 * k, 1, v.pp("conv1"))?,
                        bottleneck: Some((BatchNorm2d::new(4 * k, v.pp("bn2"))?, conv(4 * k, k, 3, v.pp("conv2"))?)),
                    }
                } else {
                    Layer {
                        bn1: BatchNorm2d::new(c, v.pp("bn1"))?,
                        conv1: conv(c, k, 3, v.pp("conv1"))?,
                        bottleneck: None,
                    }
                });
                c += k;
            }
            blocks.push(layers);
            if b < 3 {
                let out = (c as f64 * cfg.reduction).floor() as usize;
                let v = vb.pp(format!("trans{b}"));
                transitions.push(Layer {
                    bn1: BatchNorm2d::new(c, v.pp("bn1"))?,
                    conv1: conv(c, out, 1, v.pp("conv1"))?,
                    bottleneck: None,
                });
                c = out;
            }
        }
        let bn1 = BatchNorm2d::new(c, vb.pp("bn1"))?;
        let fc = linear_no_bias(c, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { conv1, blocks, transitions, bn1, fc, dropout: cfg.dropout })
    }

    /// Logits `[N, classes]` of images `[N, 3, H, W]` (H and W divisible by 4).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.conv1.forward(x)?;
        for (b, block) in self.blocks.iter().enumerate() {
            for layer in block {
                let new = layer.forward_t(&h, train, self.dropout)?;
                h = Tensor::cat(&[&h, &new], 1)?;
            }
            if let Some(t) = self.transitions.get(b) {
                h = t.forward_t(&h, train, self.dropout)?.avg_pool2d(2)?;
            }
        }
        let h = self.bn1.forward_relu_t(&h, train)?.mean((2, 3))?;
        self.fc.forward(&h)
    }

    /// The reference initialisation: convolutions `N(0, 2 / fan_out)`, BatchNorm 1 and 0, `fc`
    /// weight PyTorch's default `U(+-1/sqrt(fan_in))`.
    pub fn init_rule(name: &str, shape: &[usize]) -> Option<Init> {
        crate::wrn::init_rule(name, shape)
    }
}
