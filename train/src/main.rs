//! `train`: see `train --help` and the README.

#![warn(clippy::too_many_lines)]

fn main() {
    // Reuse freed buffers instead of mapping fresh pages for every large tensor (see zoo::ops::malloc).
    zoo::ops::keep_freed_memory();
    // Count the cores once, not on every op (see zoo::ops::threads).
    zoo::ops::cache_thread_count();
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(train::main_with_args(&args));
}
