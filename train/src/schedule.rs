//! Learning-rate policies over epochs: the `alig` crate's schedules (constant, step decay, cosine,
//! each after an optional linear warmup) and InferSent's SNLI policy for SGD (x0.99 at every epoch
//! after the first, /5 whenever the validation accuracy did not improve).

use std::fmt;
use std::str::FromStr;

use alig::Schedule;

#[derive(Clone, Debug, PartialEq)]
pub enum LrPolicy {
    Fixed(Schedule),
    Infersent { decay: f64, shrink: f64 },
}

impl LrPolicy {
    /// True when the policy never changes the learning rate.
    pub fn is_constant(&self) -> bool {
        matches!(self, LrPolicy::Fixed(Schedule::Constant))
    }

    /// The learning rate of `epoch` (from 0), given the base rate, the previous epoch's rate and
    /// whether the previous epoch improved the best validation score.
    pub fn lr(&self, base: f64, epoch: usize, previous: f64, improved: bool) -> f64 {
        match self {
            LrPolicy::Fixed(s) => s.lr_at(base, epoch),
            LrPolicy::Infersent { .. } if epoch == 0 => base,
            LrPolicy::Infersent { decay, shrink } => previous * decay / if improved { 1.0 } else { *shrink },
        }
    }
}

impl LrPolicy {
    /// The policy `text` names for a run of `epochs` epochs: as [`FromStr`], where a cosine
    /// without its length (`cosine`, `cosine:warmup=5`) anneals over the run's epochs after the
    /// warmup, and its length is written out (`cosine:195:warmup=5`) so that `config.json` keeps
    /// it when `--resume --epochs` extends the run.
    pub fn for_run(text: &str, epochs: usize) -> Result<Self, String> {
        let (inner, warmup) = match text.rsplit_once(":warmup=") {
            Some((inner, w)) => (inner, w.parse::<usize>().map_err(|_| format!("bad warmup {w:?} in {text:?}"))?),
            None => (text, 0),
        };
        if inner != "cosine" {
            return text.parse();
        }
        if warmup >= epochs {
            return Err(format!("a warmup of {warmup} epochs leaves none of the run's {epochs} for the cosine"));
        }
        Ok(LrPolicy::Fixed(Schedule::Cosine { epochs: epochs - warmup }.with_warmup(warmup)))
    }
}

impl FromStr for LrPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "infersent" {
            return Ok(LrPolicy::Infersent { decay: 0.99, shrink: 5.0 });
        }
        if s.starts_with("infersent") {
            return Err(format!("bad schedule {s:?}: infersent takes no warmup"));
        }
        s.parse::<Schedule>().map(LrPolicy::Fixed).map_err(|e| format!("{e}; or `infersent`"))
    }
}

impl fmt::Display for LrPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LrPolicy::Fixed(s) => write!(f, "{s}"),
            LrPolicy::Infersent { .. } => write!(f, "infersent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let step: LrPolicy = "step:2,4:0.1".parse().unwrap();
        assert_eq!(step.lr(1.0, 1, 1.0, true), 1.0);
        assert!((step.lr(1.0, 4, 1.0, true) - 0.01).abs() < 1e-15);
        let inf: LrPolicy = "infersent".parse().unwrap();
        assert_eq!(inf.lr(1.0, 0, 7.0, false), 1.0);
        assert!((inf.lr(1.0, 1, 1.0, true) - 0.99).abs() < 1e-15);
        assert!((inf.lr(1.0, 2, 0.99, false) - 0.99 * 0.99 / 5.0).abs() < 1e-15);
        assert!("sometimes".parse::<LrPolicy>().is_err());
        assert!("infersent:warmup=2".parse::<LrPolicy>().is_err());
    }

    /// PyTorch's `CosineAnnealingLR(T_max=8)` with base rate 0.1, stepped once per epoch: the
    /// rates of epochs 0..=8 as PyTorch 2.15 printed them (its recursive form); with
    /// `SequentialLR([LinearLR(start_factor=1/3, total_iters=2), CosineAnnealingLR(T_max=8)],
    /// milestones=[2])` it printed 0.03333333333333333 and 0.06666666666666667, then the same.
    #[test]
    fn cosine_and_warmup_follow_torch() {
        let cosine = [
            0.1,
            0.09619397662556434,
            0.08535533905932738,
            0.0691341716182545,
            0.05,
            0.030865828381745515,
            0.014644660940672627,
            0.0038060233744356634,
            0.0,
            0.0,
        ];
        let policy = LrPolicy::for_run("cosine", 8).unwrap();
        assert_eq!(policy.to_string(), "cosine:8");
        for (e, want) in cosine.iter().enumerate() {
            let got = policy.lr(0.1, e, 0.0, true);
            assert!((got - want).abs() < 1e-15, "cosine epoch {e}: {got} against {want}");
        }
        let warm = LrPolicy::for_run("cosine:warmup=2", 10).unwrap();
        assert_eq!(warm.to_string(), "cosine:8:warmup=2");
        assert_eq!(warm.to_string().parse::<LrPolicy>().unwrap(), warm);
        let linear = [0.03333333333333333, 0.06666666666666667];
        for e in 0..12 {
            let want = if e < 2 { linear[e] } else { cosine[(e - 2).min(9)] };
            let got = warm.lr(0.1, e, 0.0, true);
            assert!((got - want).abs() < 1e-15, "warmup+cosine epoch {e}: {got} against {want}");
        }
        // A warmup before step decay shifts the milestones, as SequentialLR restarts MultiStepLR
        // (PyTorch: [0.5, 1.0, 1.0, 1.0, 0.1] for LinearLR(1/2, 1) then MultiStepLR([3], 0.1)).
        let step: LrPolicy = "step:3:0.1:warmup=1".parse().unwrap();
        let got: Vec<f64> = (0..5).map(|e| step.lr(1.0, e, 0.0, true)).collect();
        assert_eq!(got, [0.5, 1.0, 1.0, 1.0, 0.1f64.powi(1)]);
        assert!(LrPolicy::for_run("cosine:warmup=10", 10).is_err());
        assert_eq!(LrPolicy::for_run("step:2:0.5", 10).unwrap(), "step:2:0.5".parse().unwrap());
    }
}
