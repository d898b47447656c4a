//! candle 0.11.1 asks for its thread count on every matmul, convolution and parallel elementwise
//! op, and without `RAYON_NUM_THREADS` in the environment each ask counts the physical cores again
//! by parsing `/proc/cpuinfo` (`num_cpus::get_physical`). For models made of many small ops (the
//! DNC, the composed LSTM) that parsing was most of the step. [`cache_thread_count`] computes the
//! count once and puts it in the environment.
//!
//! Call it at the very start of a program, before other threads exist (the `train` binary does).

/// See the module docs. Leaves an existing `RAYON_NUM_THREADS` alone; returns the count in use.
pub fn cache_thread_count() -> usize {
    if let Some(n) = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0) {
        return n;
    }
    let n = candle_core::utils::get_num_threads();
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    n
}
