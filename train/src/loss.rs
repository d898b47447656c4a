//! Training losses by name: cross-entropy, the multi-class hinge (DFW's, hard and smooth; in the
//! `alig` crate), the top-k truncated entropy of the paper's ImageNet runs, and the DNC's masked
//! sigmoid cross-entropy (in the `zoo` crate).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Result, Tensor, D};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    CrossEntropy,
    Svm,
    SmoothSvm,
    TopK,
    SigmoidCe,
}

impl LossKind {
    pub const ALL: [LossKind; 5] =
        [LossKind::CrossEntropy, LossKind::Svm, LossKind::SmoothSvm, LossKind::TopK, LossKind::SigmoidCe];

    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "ce",
            LossKind::Svm => "svm",
            LossKind::SmoothSvm => "smooth-svm",
            LossKind::TopK => "topk",
            LossKind::SigmoidCe => "sigmoid-ce",
        }
    }

    /// The mean loss of class scores `[N, C]` against labels `[N]` (u32), reduced in f32 at least
    /// (half-precision scores are widened first, see [`widened`]).
    pub fn classification(self, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let scores = &widened(scores)?;
        match self {
            LossKind::CrossEntropy => candle_nn::loss::cross_entropy(scores, labels),
            LossKind::Svm => alig::multiclass_hinge(scores, labels, false),
            LossKind::SmoothSvm => alig::multiclass_hinge(scores, labels, true),
            LossKind::TopK => topk_truncated_entropy(scores, labels, 5, 1.0),
            LossKind::SigmoidCe => candle_core::bail!("sigmoid-ce is the DNC's loss, not a classification loss"),
        }
    }
}

/// A classification loss with its options, as a task computes it from class scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Criterion {
    pub kind: LossKind,
    /// Cross-entropy only: the share of the target spread uniformly over the classes (0: off).
    pub label_smoothing: f64,
}

impl Criterion {
    /// The mean loss of class scores `[N, C]` against labels `[N]`.
    pub fn classification(&self, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        match (self.kind, self.label_smoothing) {
            (_, 0.0) => self.kind.classification(scores, labels),
            (LossKind::CrossEntropy, e) => smoothed_cross_entropy(&widened(scores)?, labels, e),
            (kind, _) => candle_core::bail!("label smoothing is for cross-entropy, not {kind}"),
        }
    }
}

/// Cross-entropy against smoothed targets, as PyTorch's `CrossEntropyLoss(label_smoothing=eps)`:
/// with `q = (1 - eps) onehot(y) + eps / C`, the batch mean of `-sum_k q_k log softmax(s)_k`.
pub fn smoothed_cross_entropy(scores: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(scores, D::Minus1)?;
    let nll = log_p.gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let uniform = log_p.mean(D::Minus1)?.neg()?;
    (nll.affine(1.0 - eps, 0.0)? + uniform.affine(eps, 0.0)?)?.mean_all()
}

/// `t` in f32 if it is bf16 or f16, else itself: mixed-precision runs reduce their losses in f32
/// (their sums of thousands of terms lose digits in 8 or 11 bits, and f16 overflows at 65504).
pub fn widened(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::BF16 | DType::F16 => t.to_dtype(DType::F32),
        _ => Ok(t.clone()),
    }
}

impl FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        LossKind::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| {
            let names: Vec<&str> = LossKind::ALL.iter().map(|l| l.name()).collect();
            format!("unknown loss {s:?}; expected one of: {}", names.join(", "))
        })
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The top-k truncated entropy (the paper's ImageNet loss, from smooth-topk): with `x = s / tau`,
/// for each row keep the classes ranked after the first `k` (the true class left out), and
/// `loss = log(1 + sum_j exp(min(x_j - x_y, 80)))`, averaged over the batch.
pub fn topk_truncated_entropy(scores: &Tensor, labels: &Tensor, k: usize, tau: f64) -> Result<Tensor> {
    let (n, c) = scores.dims2()?;
    if k >= c {
        candle_core::bail!("top-{k} entropy needs more than {k} classes, got {c}")
    }
    let x = (scores / tau)?;
    // Which classes enter each row's sum: those ranked after the first `k`, the true class left
    // out. The rank of class j is its position in the descending order (the inverse permutation
    // of the sort), computed on the device: no host read.
    let order = x.detach().arg_sort_last_dim(false)?;
    let rank = order.arg_sort_last_dim(true)?.to_dtype(DType::F32)?;
    let classes = Tensor::arange(0u32, c as u32, scores.device())?.unsqueeze(0)?;
    let not_label = classes.broadcast_ne(&labels.to_dtype(DType::U32)?.reshape((n, 1))?)?;
    let mask =
        (rank.ge(k as f64)?.to_dtype(DType::F32)? * not_label.to_dtype(DType::F32)?)?.to_dtype(scores.dtype())?;
    let x_y = x.gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?;
    let terms = (x.broadcast_sub(&x_y)?.minimum(80.0)?.exp()? * mask)?;
    (terms.sum(D::Minus1)? + 1.0)?.log()?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn topk_entropy_matches_its_definition() {
        let s = [[3.0f32, 1.0, 0.5, -1.0, 2.0, 0.0, -2.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]];
        let scores = Tensor::new(&s, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[5u32, 0], &Device::Cpu).unwrap();
        let got = topk_truncated_entropy(&scores, &labels, 2, 1.0).unwrap().to_scalar::<f32>().unwrap();
        // Row 0 ranks 0, 4 first; the rest minus the label 5: classes 1, 2, 3, 6 against x_y = 0.
        let r0 = (1.0f64 + [1.0f64, 0.5, -1.0, -2.0].iter().map(|v| v.exp()).sum::<f64>()).ln();
        // Row 1 ranks 6, 5 first; label 0 is excluded: classes 1..=4 against x_y = 0.1.
        let r1 = (1.0f64 + [0.2f64, 0.3, 0.4, 0.5].iter().map(|v| (v - 0.1).exp()).sum::<f64>()).ln();
        assert!((got as f64 - (r0 + r1) / 2.0).abs() < 1e-5, "{got} vs {}", (r0 + r1) / 2.0);
        assert!(topk_truncated_entropy(&scores, &labels, 7, 1.0).is_err());
    }

    #[test]
    fn label_smoothing_follows_its_definition() {
        let s = [[2.0f64, -1.0, 0.5, 0.0], [0.3, 0.1, -0.4, 1.2]];
        let scores = Tensor::new(&s, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let eps = 0.1;
        // -sum_k q_k log p_k with q = (1 - eps) onehot + eps / C, averaged over the rows.
        let want: f64 = s
            .iter()
            .zip([0usize, 2])
            .map(|(row, y)| {
                let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                let q = |k: usize| if k == y { 1.0 - eps + eps / 4.0 } else { eps / 4.0 };
                (0..4).map(|k| -q(k) * (row[k] - lse)).sum::<f64>()
            })
            .sum::<f64>()
            / 2.0;
        let smoothed = Criterion { kind: LossKind::CrossEntropy, label_smoothing: eps };
        let got = smoothed.classification(&scores, &labels).unwrap().to_scalar::<f64>().unwrap();
        assert!((got - want).abs() < 1e-14, "{got} against {want}");
        // PyTorch 2.15: F.cross_entropy(scores, labels, label_smoothing=0.1) in float64.
        assert!((got - 1.3491133140086051).abs() < 1e-14, "{got}");
        let plain = Criterion { kind: LossKind::CrossEntropy, label_smoothing: 0.0 };
        let ce = candle_nn::loss::cross_entropy(&scores, &labels).unwrap().to_scalar::<f64>().unwrap();
        assert_eq!(plain.classification(&scores, &labels).unwrap().to_scalar::<f64>().unwrap(), ce);
        let zero = smoothed_cross_entropy(&scores, &labels, 0.0).unwrap().to_scalar::<f64>().unwrap();
        assert!((zero - ce).abs() < 1e-14);
        assert!(Criterion { kind: LossKind::Svm, label_smoothing: eps }.classification(&scores, &labels).is_err());
    }

    #[test]
    fn names_round_trip() {
        for l in LossKind::ALL {
            assert_eq!(l.name().parse::<LossKind>().unwrap(), l);
        }
        assert!("hinge".parse::<LossKind>().unwrap_err().contains("smooth-svm"));
    }
}
