//! Shared by the benchmarks (the `train` crate's soak benchmark includes this file too).
#![allow(dead_code)]

/// A memory figure of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in MiB; NaN where `/proc` is
/// absent.
pub fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The process's peak resident memory, in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}
