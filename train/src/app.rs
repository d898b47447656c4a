//! The binary's behaviour: parse the command line, do what it asks, print errors on one line.

use std::sync::Arc;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{self, Request};
use crate::dist::Communicator;

/// Runs the command line `args` (program name first).
pub fn run(args: &[String]) -> Result<()> {
    let cli = Cli::try_parse_from(args)?;
    match &cli.command {
        Some(Command::Sweep(a)) => with_engine(|comm| crate::sweep::run(a, comm)),
        Some(Command::Plot(a)) => crate::plot::run(a),
        Some(Command::Export(a)) => crate::export::run(a),
        Some(Command::List) => {
            print!("{}", list());
            Ok(())
        }
        Some(Command::Check(a)) => check(a),
        Some(Command::Bench(a)) => bench(a),
        None => match config::parse(&cli.train)? {
            Request::List => {
                print!("{}", list());
                Ok(())
            }
            request => with_engine(|comm| match request {
                Request::Train(cfg, opts) => crate::run::train(*cfg, opts, comm),
                Request::Resume(dir, opts) => crate::run::resume(&dir, opts, comm),
                Request::List => Ok(()),
            }),
        },
    }
}

/// Runs `work` on this process's engine (one process, or MPI under a launcher). In a job of several processes, a failing process prints its error with
/// its rank and ends the whole job (MPI_Abort), so that none is left waiting in a collective; so
/// does a panic.
fn with_engine(work: impl FnOnce(Arc<dyn Communicator>) -> Result<()>) -> Result<()> {
    let engine = crate::dist::Engine::from_environment()?;
    let comm = engine.comm();
    if comm.world() > 1 {
        let (rank, world, on_panic) = (comm.rank(), comm.world(), comm.clone());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message =
                payload.downcast_ref::<&str>().copied().or(payload.downcast_ref::<String>().map(String::as_str));
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            // One line (the default message puts the text on a line of its own).
            let line = format!("error (rank {rank} of {world}): panicked{at}: {}\n", message.unwrap_or("(no message)"));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            previous(info);
            on_panic.abort(101)
        }));
    }
    let result = work(comm.clone());
    if let (Err(e), true) = (&result, comm.world() > 1) {
        // A non-finite value is seen by every process at once (they hold the same numbers): rank
        // 0 says it. Any other error may be this process's own.
        let shared = e.chain().any(|c| c.downcast_ref::<crate::trainer::NonFinite>().is_some());
        if comm.is_root() || !shared {
            // One write, so that the lines of several processes do not interleave.
            let line = format!("error (rank {} of {}): {}\n", comm.rank(), comm.world(), one_line(e));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
        comm.abort(1)
    }
    crate::dist::sync_batch_norm(None);
    drop(comm);
    drop(engine);
    result
}

/// `train check`: prints the report, and fails when a line is out of its tolerance.
fn check(a: &crate::cli::CheckArgs) -> Result<()> {
    let golden = a.golden.clone().or_else(|| {
        let from_env = std::env::var_os("ALIG_GOLDEN_DIR").map(std::path::PathBuf::from);
        let found = ["../shared/golden", "shared/golden"].map(std::path::PathBuf::from);
        from_env.into_iter().chain(found).find(|d| d.join("zoo").is_dir())
    });
    if let Some(d) = &a.golden {
        if !d.join("zoo").is_dir() {
            anyhow::bail!("--golden {}: no zoo/ folder there", d.display())
        }
    }
    let opts = crate::check::CheckOptions {
        device: crate::device::parse(&a.device)?,
        golden: golden.clone(),
        steps: a.steps,
        seed: 0,
    };
    let report = crate::check::run(&opts)?;
    print!("{}", report.table());
    if golden.is_none() {
        println!("golden cases skipped: no golden folder (--golden DIR)");
    }
    if let Some(path) = &a.json {
        write_json(path, &report)?;
    }
    let failed = report.lines.iter().filter(|l| !l.ok).count();
    if failed > 0 {
        anyhow::bail!("train check: {failed} of {} checks out of tolerance", report.lines.len())
    }
    Ok(())
}

/// `train bench`: one line per model as it finishes, then the table (and JSON on request).
fn bench(a: &crate::cli::BenchArgs) -> Result<()> {
    let report =
        crate::bench::run(a, |r| eprintln!("{}: {:.1} ms per step (batch {})", r.model, r.median_ms, r.batch))?;
    print!("{}", report.table());
    if let Some(path) = &a.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// A report as pretty JSON at `path` (the `--json` of check and bench).
fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(report)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The error chain on one line: candle puts its context on separate lines and, with
/// RUST_BACKTRACE set, an indented backtrace after them; the unindented parts, joined.
fn one_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let text: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).collect();
    text.join(": ")
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
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// The text of `train list`: every model, dataset, optimizer and preset.
pub fn list() -> String {
    let mut s = String::from("models (--model):\n");
    for m in zoo::MODELS {
        s += &format!("  {:<10} {} [{}]\n", m.name, m.summary, m.kind);
    }
    s += "\ndatasets (--data; files go in --data-dir):\n";
    for d in data::DATASETS {
        s += &format!("  {:<12} {} [model {}, loss {}]\n", d.name, d.summary, d.default_model, d.default_loss);
        if !d.files.is_empty() {
            s += &format!("  {:<12} files: {}; from {}\n", "", d.files.join(", "), d.source);
        }
    }
    s += "\noptimizers (--opt):\n";
    for o in alig::OPTIMIZERS {
        s += &format!("  {:<8} {} [uses: {}]\n", o.name, o.summary, o.uses.join(", "));
    }
    s += "\npresets (the paper's hyper-parameters; your flags override them):\n";
    for b in crate::presets::BASE {
        s += &format!("  {} / {}: {}  ({})\n", b.data.join("|"), b.model, b.flags, b.source);
    }
    for p in crate::presets::OPT {
        s += &format!("  {} / {} / {}: {}\n", p.data.join("|"), p.model, p.opt, p.flags);
    }
    s
}
