//! Range checks of hyper-parameters, shared by every optimizer's constructor.

use candle_core::Result;

/// Fails unless every value is finite and `>= 0`, naming the first one that is not.
pub(crate) fn non_negative(who: &str, values: &[(&str, f64)]) -> Result<()> {
    for (name, v) in values {
        if !v.is_finite() || *v < 0.0 {
            candle_core::bail!("{who}: {name} must be a finite number >= 0, got {v}")
        }
    }
    Ok(())
}

/// Fails unless every value is finite and `> 0`, naming the first one that is not.
pub(crate) fn positive(who: &str, values: &[(&str, f64)]) -> Result<()> {
    for (name, v) in values {
        if !v.is_finite() || *v <= 0.0 {
            candle_core::bail!("{who}: {name} must be a finite number > 0, got {v}")
        }
    }
    Ok(())
}
