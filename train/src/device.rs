//! `--device auto|cpu|cuda[:N]|metal[:N]`. Asking for a device this build lacks names the cargo
//! feature to enable.

use anyhow::{bail, Result};
use candle_core::Device;

/// A parsed device request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA, then Metal, when built in and present; else the CPU.
    Auto,
    /// The host, with candle's thread pool.
    Cpu,
    /// CUDA device N (the `cuda` feature).
    Cuda(usize),
    /// Metal device N (the `metal` feature).
    Metal(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        parse(s)
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

/// Parses `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.
pub fn parse(s: &str) -> Result<DeviceSpec> {
    let (kind, ordinal) = match s.split_once(':') {
        Some((k, n)) => match n.parse::<usize>() {
            Ok(n) => (k, Some(n)),
            Err(_) => bail!("bad device ordinal {n:?} in {s:?}"),
        },
        None => (s, None),
    };
    Ok(match (kind, ordinal) {
        ("auto", None) => DeviceSpec::Auto,
        ("cpu", None) => DeviceSpec::Cpu,
        ("cuda", n) => DeviceSpec::Cuda(n.unwrap_or(0)),
        ("metal", n) => DeviceSpec::Metal(n.unwrap_or(0)),
        _ => bail!("unknown device {s:?}; expected auto, cpu, cuda[:N] or metal[:N]"),
    })
}

/// Opens the device: `auto` takes CUDA, then Metal, when built in and present, else the CPU.
pub fn open(spec: DeviceSpec) -> Result<Device> {
    let s = spec.to_string();
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) => {
            if !cfg!(feature = "cuda") {
                bail!("--device {s}: this build has no CUDA support; rebuild with `cargo build --release --features cuda`")
            }
            Ok(Device::new_cuda(n)?)
        }
        DeviceSpec::Metal(n) => {
            if !cfg!(feature = "metal") {
                bail!("--device {s}: this build has no Metal support; rebuild with `cargo build --release --features metal`")
            }
            Ok(Device::new_metal(n)?)
        }
        DeviceSpec::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// fp32 matrix products on CUDA's tensor cores (TF32) from now on, for the whole process; an error
/// naming `flag` on any other device.
pub fn enable_tf32(d: &Device, flag: &str) -> Result<()> {
    if !d.is_cuda() {
        bail!("{flag} is for CUDA devices (fp32 products on tensor cores); this one is {}", describe(d))
    }
    candle_core::cuda::set_gemm_reduced_precision_f32(true);
    Ok(())
}

/// A short name for logs.
pub fn describe(d: &Device) -> String {
    match d {
        Device::Cpu => format!("cpu ({} threads)", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_missing_features() {
        assert_eq!(parse("cuda:1").unwrap(), DeviceSpec::Cuda(1));
        assert_eq!(parse("metal").unwrap(), DeviceSpec::Metal(0));
        assert!(parse("tpu").is_err());
        assert!(parse("cuda:x").is_err());
        assert_eq!(parse("cuda").unwrap().to_string(), "cuda:0");
        for s in ["auto", "cpu", "cuda:1", "metal:0"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
        if !cfg!(feature = "cuda") {
            assert!(open(DeviceSpec::Cuda(0)).unwrap_err().to_string().contains("--features cuda"));
        }
        assert!(
            matches!(open(DeviceSpec::Auto).unwrap(), Device::Cpu) || cfg!(any(feature = "cuda", feature = "metal"))
        );
    }
}
