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

/// Prints the JSON line of a timed benchmark: `{"<key>": "<name>", "median_ms", "min_ms",
/// "rounds", "peak_rss_mib"}` from the rounds' `times` in milliseconds.
pub fn print_timings(key: &str, name: &str, mut times: Vec<f64>) {
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"{key}\": \"{name}\", \"median_ms\": {:.1}, \"min_ms\": {:.1}, \"rounds\": {}, \"peak_rss_mib\": {:.0}}}",
        times[times.len() / 2],
        times[0],
        times.len(),
        peak_rss_mib()
    );
}
