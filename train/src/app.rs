//! The binary's behaviour: parse the command line, do what it asks, print errors on one line.

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{self, Request};

/// Runs the command line `args` (program name first).
pub fn run(args: &[String]) -> Result<()> {
    let cli = Cli::try_parse_from(args)?;
    match &cli.command {
        Some(Command::Sweep(a)) => crate::sweep::run(a),
        Some(Command::Plot(a)) => crate::plot::run(a),
        Some(Command::Export(a)) => crate::export::run(a),
        Some(Command::List) => {
            print!("{}", list());
            Ok(())
        }
        None => match config::parse(&cli.train)? {
            Request::List => {
                print!("{}", list());
                Ok(())
            }
            Request::Train(cfg, opts) => crate::run::train(*cfg, opts),
            Request::Resume(dir, opts) => crate::run::resume(&dir, opts),
        },
    }
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
