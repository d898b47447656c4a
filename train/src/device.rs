//! `--device auto|cpu|cuda[:N]|metal[:N]`. Asking for a device this build lacks names the cargo
//! feature to enable.

use anyhow::{bail, Result};
use candle_core::Device;

/// A parsed device request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    Cuda(usize),
    Metal(usize),
}

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
pub fn open(s: &str) -> Result<Device> {
    match parse(s)? {
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
        if !cfg!(feature = "cuda") {
            assert!(open("cuda").unwrap_err().to_string().contains("--features cuda"));
        }
        assert!(matches!(open("auto").unwrap(), Device::Cpu) || cfg!(any(feature = "cuda", feature = "metal")));
    }
}
