//! Wide ResNet (Zagoruyko and Komodakis, BMVC 2016), pre-activation, as the ALI-G paper's
//! `experiments/models/wide_resnet.py` (oval-group/ali-g): WRN-40-4 for CIFAR, WRN-16-4 with
//! dropout 0.4 for SVHN.
//!
//! Shapes, for depth `6n + 4` and width `k`: `conv1` 3x3 (in_channels, 3 in the paper, -> 16); three blocks of `n` units with
//! widths `16k`, `32k`, `64k`, the first unit of blocks 2 and 3 with stride 2; `bn1`, ReLU, global
//! average pooling, `fc` (`64k -> classes`). A unit with input `C_in`, output `C_out`, stride `s`:
//!
//! ```text
//! a   = relu(bn1(x))
//! h   = conv2(dropout(relu(bn2(conv1_s(a)))))
//! out = h + (convShortcut_s(a) if C_in != C_out else x)      (the projection takes a, not x)
//! ```
//!
//! Input `[N, 3, H, W]` (32x32 in the paper), output logits `[N, classes]`. Keys are the reference
//! state-dict keys (`block1.layer.0.convShortcut.weight`, ...). The reference pools with a fixed
//! 8x8 window; the global average here equals it at 32x32 and is right for any size.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{linear, Conv2dConfig, Linear, VarBuilder};

use crate::ops::{conv2d_no_bias, Conv2d};

use crate::bn::BatchNorm2d;
use crate::chain::Step::{BnRelu, Conv};
use crate::init::Init;

/// WRN hyper-parameters. `Default` is the paper's CIFAR-10 model, WRN-40-4.
#[derive(Clone, Debug, PartialEq)]
pub struct WrnConfig {
    /// `6n + 4`.
    pub depth: usize,
    /// `k`, the widening factor.
    pub width: usize,
    /// Classes of the logits.
    pub num_classes: usize,
    /// Channels of the input images (3 in the paper).
    pub in_channels: usize,
    /// Dropout between the two convolutions of a unit, training only (0.4 for SVHN).
    pub dropout: f64,
}

impl Default for WrnConfig {
    fn default() -> Self {
        Self { depth: 40, width: 4, num_classes: 10, in_channels: 3, dropout: 0.0 }
    }
}

struct Unit {
    bn1: BatchNorm2d,
    conv1: Conv2d,
    bn2: BatchNorm2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
    dropout: f64,
}

impl Unit {
    fn new(c_in: usize, c_out: usize, stride: usize, dropout: f64, vb: VarBuilder) -> Result<Self> {
        let conv = |s, p| Conv2dConfig { padding: p, stride: s, ..Default::default() };
        Ok(Self {
            bn1: BatchNorm2d::new(c_in, vb.pp("bn1"))?,
            conv1: conv2d_no_bias(c_in, c_out, 3, conv(stride, 1), vb.pp("conv1"))?,
            bn2: BatchNorm2d::new(c_out, vb.pp("bn2"))?,
            conv2: conv2d_no_bias(c_out, c_out, 3, conv(1, 1), vb.pp("conv2"))?,
            shortcut: if c_in != c_out {
                Some(conv2d_no_bias(c_in, c_out, 1, conv(stride, 0), vb.pp("convShortcut"))?)
            } else {
                None
            },
            dropout,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.shortcut.is_none() && !(train && self.dropout > 0.0) {
            // The whole unit as one chain (one op on the CPU, see `crate::chain`).
            let steps = [BnRelu(&self.bn1), Conv(&self.conv1), BnRelu(&self.bn2), Conv(&self.conv2)];
            return crate::chain::forward(x, &steps, true, false, train);
        }
        let a = self.bn1.forward_relu_t(x, train)?;
        let mut h = self.bn2.forward_relu_t(&self.conv1.forward(&a)?, train)?;
        if train && self.dropout > 0.0 {
            h = crate::dropout::dropout(&h, self.dropout)?;
        }
        let h = self.conv2.forward(&h)?;
        match &self.shortcut {
            Some(s) => h + s.forward(&a)?,
            None => h + x,
        }
    }
}

/// A Wide ResNet.
pub struct Wrn {
    conv1: Conv2d,
    units: Vec<Unit>,
    bn1: BatchNorm2d,
    fc: Linear,
}

impl Wrn {
    /// The model of `cfg`, its tensors made (or loaded) under `vb`; fails on a depth that is not
    /// `6n + 4`.
    pub fn new(cfg: &WrnConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.depth < 10 || (cfg.depth - 4) % 6 != 0 {
            bail!("wrn: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {}", cfg.depth)
        }
        if cfg.width == 0 || cfg.num_classes == 0 || cfg.in_channels == 0 {
            bail!("wrn: width, num_classes and in_channels must be positive")
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            bail!("wrn: dropout must be in [0, 1), got {}", cfg.dropout)
        }
        let n = (cfg.depth - 4) / 6;
        let conv1 =
            conv2d_no_bias(cfg.in_channels, 16, 3, Conv2dConfig { padding: 1, ..Default::default() }, vb.pp("conv1"))?;
        let mut units = vec![];
        let mut c_in = 16;
        for (b, c_out) in [16, 32, 64].map(|c| c * cfg.width).into_iter().enumerate() {
            let block = vb.pp(format!("block{}", b + 1)).pp("layer");
            for i in 0..n {
                let stride = if b > 0 && i == 0 { 2 } else { 1 };
                units.push(Unit::new(c_in, c_out, stride, cfg.dropout, block.pp(i.to_string()))?);
                c_in = c_out;
            }
        }
        let bn1 = BatchNorm2d::new(c_in, vb.pp("bn1"))?;
        let fc = linear(c_in, cfg.num_classes, vb.pp("fc"))?;
        Ok(Self { conv1, units, bn1, fc })
    }

    /// Logits `[N, classes]` of images `[N, 3, H, W]`; `train` selects batch statistics (and
    /// updates the running ones) and dropout.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.conv1.forward(x)?;
        for u in &self.units {
            h = u.forward_t(&h, train)?;
        }
        let h = self.bn1.forward_relu_t(&h, train)?.mean((2, 3))?;
        self.fc.forward(&h)
    }

    /// The reference initialisation: convolutions `N(0, 2 / fan_out)`, BatchNorm 1 and 0, `fc`
    /// weight PyTorch's default `U(+-1/sqrt(fan_in))`, `fc` bias 0.
    pub fn init_rule(name: &str, shape: &[usize]) -> Option<Init> {
        init_rule(name, shape)
    }
}

/// Shared by the CIFAR models (WRN, DenseNet-BC).
pub(crate) fn init_rule(name: &str, shape: &[usize]) -> Option<Init> {
    if alig::is_buffer_name(name) {
        return None;
    }
    Some(match (name, shape.len()) {
        (n, 4) if n.ends_with(".weight") => Init::KaimingFanOut,
        ("fc.weight", 2) => Init::TorchLinear { fan_in: shape[1] },
        ("fc.bias", _) => Init::Const(0.0),
        (n, 1) if n.ends_with(".weight") => Init::Const(1.0),
        (n, 1) if n.ends_with(".bias") => Init::Const(0.0),
        _ => return None,
    })
}
