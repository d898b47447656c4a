//! `train sweep`: a grid of runs (optimizers x learning rates x seeds) over one model and dataset,
//! each its own run directory under `--out`, then a summary of the final training objective, the
//! best validation score and divergence per run, and charts ([`report`]).
//!
//! Resumable: a run whose `summary.json` exists is skipped; a run with a `config.json` but no summary
//! continues where it stopped. A diverging run is recorded as such and the sweep goes on. Several
//! sweeps may share a folder (different optimizers, grids): the summary covers every run in it.
//!
//! ```text
//! train sweep --opts alig,sgd,adam --lrs 1e-3:1e1 --seeds 0,1 --out runs/sweep -- --data repeat-copy
//! ```
//!
//! Under `mpirun`/`srun` every run of the sweep is data-parallel over the job's processes, one
//! after the other (`--jobs 1`); rank 0 writes the summary.

mod execute;
pub mod grid;
pub mod report;

use std::fs;

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::cli::{SweepArgs, TrainArgs};
use crate::dist::Communicator;
use report::Outcome;

/// `train sweep ...`, each run on the processes of `comm`.
pub fn run(args: &SweepArgs, comm: Arc<dyn Communicator>) -> Result<()> {
    if args.jobs == 0 {
        bail!("--jobs must be positive")
    }
    if args.jobs > 1 && comm.world() > 1 {
        bail!(
            "--jobs {} runs several runs at once; under mpirun/srun each run takes all {} processes: use --jobs 1",
            args.jobs,
            comm.world()
        )
    }
    let flags = TrainArgs::from_flags(&args.run_flags).context("the training flags after --")?;
    let owned = [flags.opt.is_some(), flags.lr.is_some(), flags.fraction.is_some(), flags.seed.is_some()];
    if owned.into_iter().any(|given| given) || flags.out.is_some() || flags.resume.is_some() {
        bail!("the flags after -- may not set --opt, --lr, --fraction, --seed, --out or --resume: the sweep sets them")
    }
    if args.fractions.iter().any(|f| !(*f > 0.0 && *f < 1.0)) {
        bail!("--fractions must lie in (0, 1)")
    }
    let points = grid::grid(args)?;
    if !comm.is_root() {
        execute::run_all(&flags, &args.out, &points, 1, &comm);
        return Ok(());
    }
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    eprintln!("sweep: {} runs into {}", points.len(), args.out.display());
    let errors = execute::run_all(&flags, &args.out, &points, args.jobs, &comm);
    let mut outcomes: Vec<Outcome> =
        points.iter().zip(&errors).map(|(p, e)| Outcome::read(&args.out, p, e.as_ref())).collect();
    // The summary covers every run in the folder, earlier sweeps' too.
    outcomes.extend(grid::other_runs(&args.out, &points).iter().map(|p| Outcome::read(&args.out, p, None)));
    for o in &outcomes {
        eprintln!("{}", o.line());
    }
    report::write_summary(&args.out, &outcomes)?;
    report::plot_sweep(&args.out, &outcomes)?;
    eprintln!("sweep: {} and {}", args.out.join("summary.csv").display(), args.out.join("summary.md").display());
    Ok(())
}
