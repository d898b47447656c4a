//! The `train` binary of the ALI-G toolkit as a library: any model of the `zoo` on any dataset of
//! `data` with any optimizer of `alig`, the paper's hyper-parameters as presets, a run directory
//! with metrics and atomic checkpoints, exact resume, and `--init` from files or the hub.
//!
//! ```text
//! cli -> config (preset, checks) -> run: model, data, optimizer -> trainer (train_one_epoch,
//! evaluate) -> metrics, checkpoint
//! ```

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod export;
pub mod loss;
pub mod metrics;
pub mod plot;
pub mod presets;
pub mod run;
pub mod schedule;
pub mod sweep;
pub mod task;
pub mod trainer;

pub use run::run;

/// The text of `--list`: every model, dataset, optimizer and preset.
pub fn list() -> String {
    let mut s = String::from("models (--model):\n");
    for m in zoo::MODELS {
        s += &format!("  {:<10} {}\n", m.name, m.summary);
    }
    s += "\ndatasets (--data; files go in --data-dir):\n";
    for d in data::DATASETS {
        s += &format!("  {:<12} {}\n", d.name, d.summary);
        if !d.files.is_empty() {
            s += &format!("  {:<12} files: {}; from {}\n", "", d.files.join(", "), d.source);
        }
    }
    s += "\noptimizers (--opt):\n";
    for o in alig::OPTIMIZERS {
        s += &format!("  {:<8} {} [uses: {}]\n", o.name, o.summary, o.uses.join(", "));
    }
    s += "\npresets (the paper's hyper-parameters; your flags override them):\n";
    for b in presets::BASE {
        s += &format!("  {} / {}: {}  ({})\n", b.data.join("|"), b.model, b.flags, b.source);
    }
    for p in presets::OPT {
        s += &format!("  {} / {} / {}: {}\n", p.data.join("|"), p.model, p.opt, p.flags);
    }
    s
}

/// The binary's whole behaviour: runs `args` (program name first), prints the error chain on one
/// line, and returns the exit code (0, or 1 on error; clap exits by itself for `--help` and bad
/// flags).
pub fn main_with_args(args: &[String]) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(c) = e.downcast_ref::<clap::Error>() {
                c.exit()
            }
            // candle puts its context on separate lines and, with RUST_BACKTRACE set, an indented
            // backtrace after them: one line of the unindented parts.
            let text = format!("{e:#}");
            let text: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).collect();
            eprintln!("error: {}", text.join(": "));
            1
        }
    }
}
