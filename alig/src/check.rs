//! Range checks of hyper-parameters, shared by every optimizer's constructor.

use candle_core::Result;

/// [`non_negative`] or [`positive`] of configuration fields, each named by its field:
/// `fields!(non_negative, "sgd", cfg.lr, cfg.momentum)` checks `("lr", cfg.lr), ("momentum", cfg.momentum)`.
macro_rules! fields {
    ($check:ident, $who:expr, $($base:ident . $field:ident),+ $(,)?) => {
        $crate::check::$check($who, &[$((stringify!($field), $base.$field)),+])
    };
}
pub(crate) use fields;

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
