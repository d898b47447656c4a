//! Keeping freed memory for reuse. candle allocates a fresh buffer for every op's output; glibc
//! serves buffers above 32 MiB with `mmap` and returns them with `munmap` when freed, so a training
//! step of a CNN pays page faults, page zeroing and TLB shootdowns for every large activation and
//! gradient, every step (measured: WRN-16-4 at batch 128 spends over half its step there on this
//! project's machine). [`keep_freed_memory`] tells glibc to serve everything from its heap and
//! never to trim it, so after the first step the same pages are reused.
//!
//! Call it once at the start of a program, before large allocations (the `train` binary and the
//! benchmarks do). Elsewhere than Linux with glibc it does nothing.

/// See the module docs. Returns whether the allocator was tuned.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
        unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
