//! Learning-rate policies over epochs: the `alig` crate's schedules (constant, step decay) and
//! InferSent's SNLI policy for SGD (x0.99 at every epoch after the first, /5 whenever the
//! validation accuracy did not improve).

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

impl FromStr for LrPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "infersent" {
            return Ok(LrPolicy::Infersent { decay: 0.99, shrink: 5.0 });
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
    }
}
