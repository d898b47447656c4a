//! Seeded host-side initialisation: candle cannot seed its CPU random generator, and a seed must
//! fix the initial weights on every device.
//!
//! Each tensor draws from its own counter-based stream, keyed by the run seed and its name
//! (FNV-1a of the key mixed with splitmix64, the generator of `shared/golden/zoo/README.md`), so
//! the values do not depend on the order in which tensors are created.

use candle_core::{DType, Result, Tensor, Var};

/// How one tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `N(0, 2 / fan_out)`, fan_out = `out * kh * kw` (He, as the reference WRN/DenseNet and
    /// torchvision's `kaiming_normal_(mode="fan_out")`).
    KaimingFanOut,
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default for `nn.Linear` weights and biases.
    TorchLinear {
        /// The layer's inputs (times the kernel's area).
        fan_in: usize,
    },
    /// Every element this value.
    Const(f64),
    /// `N(0, std^2)` redrawn outside two standard deviations (Sonnet's default).
    TruncatedNormal {
        /// The standard deviation before truncation.
        std: f64,
    },
}

/// FNV-1a 64 of a key.
pub fn fnv1a64(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64, the toolkit's one definition ([`alig::seed::splitmix64`]).
pub use alig::seed::splitmix64;

/// The `i`-th draw in [0, 1) of the stream of `key` (53 random bits).
fn uniform(stream: u64, i: u64) -> f64 {
    (splitmix64(stream.wrapping_add(i)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Values of `init` for a tensor of `shape` named `key`, under `seed`.
pub fn values(init: Init, key: &str, shape: &[usize], seed: u64) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let stream = fnv1a64(key) ^ splitmix64(seed);
    match init {
        Init::Const(c) => vec![c; n],
        Init::TorchLinear { fan_in } => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n as u64).map(|i| bound * (2.0 * uniform(stream, i) - 1.0)).collect()
        }
        Init::TruncatedNormal { std } => (0..n as u64)
            .map(|i| {
                // Redraw from fresh pairs of the stream until inside two standard deviations.
                let mut k = 0u64;
                loop {
                    let j = (i << 8) | k;
                    let (u1, u2) = (uniform(stream, 2 * j), uniform(stream, 2 * j + 1));
                    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    if z.abs() <= 2.0 || k == 255 {
                        break std * z.clamp(-2.0, 2.0);
                    }
                    k += 1;
                }
            })
            .collect(),
        Init::KaimingFanOut => {
            let fan_out = shape[0] * shape[2..].iter().product::<usize>();
            let std = (2.0 / fan_out as f64).sqrt();
            // Box-Muller on pairs of draws.
            (0..n as u64)
                .map(|i| {
                    let (u1, u2) = (uniform(stream, 2 * i), uniform(stream, 2 * i + 1));
                    std * (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                })
                .collect()
        }
    }
}

/// Sets `var` (named `key`) to its seeded initial value.
pub fn apply(var: &Var, key: &str, init: Init, seed: u64) -> Result<()> {
    let v = values(init, key, var.dims(), seed);
    let t = Tensor::from_vec(v, var.shape(), var.device())?.to_dtype(var.dtype())?;
    var.set(&t)
}

/// Initialises every variable of `varmap` from `rule(name, shape)` (`None`: left as built, e.g.
/// the BatchNorm running statistics and counters).
pub fn init_varmap(varmap: &candle_nn::VarMap, seed: u64, rule: impl Fn(&str, &[usize]) -> Option<Init>) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
    for (name, var) in data.iter() {
        if var.dtype() == DType::I64 {
            continue;
        }
        if let Some(init) = rule(name, var.dims()) {
            apply(var, name, init, seed)?;
        }
    }
    Ok(())
}
