//! Running the points of a sweep: each a typed configuration (the sweep's training flags with the
//! point's optimizer, learning rate or fraction, seed and folder) trained by [`crate::run`]
//! directly, `--jobs` at a time; finished runs are skipped, interrupted ones resumed, and a run
//! that diverged is marked in its folder so that no later call runs it again.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::grid::Point;
use crate::cli::TrainArgs;
use crate::config::{self, Options};
use crate::dist::Communicator;
use crate::trainer::NonFinite;

/// Written into a run folder whose run stopped on a non-finite value: the sweep counts it as
/// finished (diverged) and does not run it again.
pub const DIVERGED: &str = "diverged.txt";

/// True when `e` is a run stopped by a non-finite loss, gradient or weights.
pub fn is_divergence(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<NonFinite>().is_some())
}

/// Runs every point, `jobs` at a time (one at a time on the processes of `comm` when it has
/// several); the error of each point that failed, in order.
pub fn run_all(
    flags: &TrainArgs,
    out: &Path,
    points: &[Point],
    jobs: usize,
    comm: &Arc<dyn Communicator>,
) -> Vec<Option<anyhow::Error>> {
    if jobs <= 1 {
        return points.iter().map(|p| run_point(flags, out, p, comm).err()).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<anyhow::Error>>> = points.iter().map(|_| Mutex::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(points.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = points.get(i) else { break };
                let result = run_point(flags, out, p, comm).err();
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = result;
                }
            });
        }
    });
    slots.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

/// Runs one point into its folder (skipped when done, resumed when interrupted).
fn run_point(flags: &TrainArgs, out: &Path, p: &Point, comm: &Arc<dyn Communicator>) -> Result<()> {
    let dir = out.join(p.dir_name());
    // Every process looks at the folder before rank 0 writes into it.
    comm.barrier()?;
    if dir.join("summary.json").is_file() {
        return Ok(());
    }
    if let Ok(message) = fs::read_to_string(dir.join(DIVERGED)) {
        anyhow::bail!("{}", message.trim())
    }
    let quiet = Options { quiet: true, ..Options::default() };
    let result = if dir.join("config.json").is_file() {
        crate::run::resume(&dir, quiet, comm.clone())
    } else {
        config::resolve(&point_flags(flags, p, &dir)?).and_then(|cfg| crate::run::train(cfg, quiet, comm.clone()))
    };
    if let Err(e) = &result {
        if is_divergence(e) && comm.is_root() {
            let marker = dir.join(DIVERGED);
            fs::write(&marker, format!("{e:#}\n")).with_context(|| format!("writing {}", marker.display()))?;
        }
    }
    result
}

/// The sweep's training flags with the point's own.
fn point_flags(flags: &TrainArgs, p: &Point, dir: &Path) -> Result<TrainArgs> {
    let lr = p.lr.as_deref().map(str::parse).transpose().map_err(anyhow::Error::msg)?;
    Ok(TrainArgs {
        opt: Some(p.opt.clone()),
        seed: Some(p.seed),
        lr,
        fraction: p.fraction,
        out: Some(dir.to_path_buf()),
        quiet: true,
        ..flags.clone()
    })
}
