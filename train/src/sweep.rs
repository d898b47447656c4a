//! `train sweep`: a grid of runs (optimizers x learning rates x seeds) over one model and dataset,
//! each its own run directory under `--out`, then a summary table of the final training objective,
//! the best validation score and divergence per run (`summary.csv`, `summary.md`).
//!
//! Resumable: a run whose `summary.json` exists is skipped; a run with a `config.json` but no summary
//! continues with `--resume`. A diverging run is recorded as such and the sweep goes on. Several
//! sweeps may share a folder (different optimizers, grids): the summary covers every run in it.
//!
//! ```text
//! train sweep --opts alig,sgd,adam --lrs 1e-3:1e1 --seeds 0,1 --out runs/sweep -- --data repeat-copy
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::metrics::MetricsLog;

#[derive(Parser, Debug, Clone)]
#[command(name = "train sweep", about = "Run a grid of optimizers x learning rates x seeds, then summarise it")]
pub struct SweepCli {
    /// Optimizers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub opts: Vec<String>,
    /// Learning rates: comma-separated values (`none` for ALI-G's unclipped step), or the powers of
    /// ten from A to B as `A:B` (e.g. `1e-4:1e1`). Optimizers without a learning rate (L4) run once.
    #[arg(long, default_value = "1e-3:1e0")]
    pub lrs: String,
    /// L4's fractions (it has no learning rate), comma-separated; the paper's DNC grid is
    /// 0.05,0.1,...,0.95. Without it L4 runs once per seed with its default 0.15.
    #[arg(long, value_delimiter = ',')]
    pub fractions: Vec<f64>,
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// The sweep's folder: one run directory per point, and the summary.
    #[arg(long)]
    pub out: PathBuf,
    /// Runs at the same time (each uses the machine's threads; 1 is usually fastest on a CPU).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Flags for every run (model, data, epochs, ...), after `--`.
    #[arg(last = true)]
    pub run_flags: Vec<String>,
}

/// One point of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub opt: String,
    pub lr: Option<String>,
    /// L4's fraction.
    pub fraction: Option<f64>,
    pub seed: u64,
}

impl Point {
    /// The row of a table and the line of a chart: optimizer and seed.
    fn series_label(&self) -> String {
        format!("{} s{}", self.opt, self.seed)
    }

    fn dir_name(&self) -> String {
        match (&self.lr, self.fraction) {
            (Some(lr), _) => format!("{}-lr{lr}-s{}", self.opt, self.seed),
            (None, Some(f)) => format!("{}-f{f}-s{}", self.opt, self.seed),
            (None, None) => format!("{}-s{}", self.opt, self.seed),
        }
    }
}

impl Point {
    /// The point a run folder of a sweep stands for (`OPT-lrLR-sSEED`, `OPT-fF-sSEED`, `OPT-sSEED`).
    fn from_dir_name(name: &str) -> Option<Self> {
        let (head, seed) = name.rsplit_once("-s")?;
        let seed = seed.parse().ok()?;
        if let Some((opt, lr)) = head.split_once("-lr") {
            return Some(Point { opt: opt.into(), lr: Some(lr.into()), fraction: None, seed });
        }
        if let Some((opt, f)) = head.split_once("-f") {
            return Some(Point { opt: opt.into(), lr: None, fraction: Some(f.parse().ok()?), seed });
        }
        Some(Point { opt: head.into(), lr: None, fraction: None, seed })
    }
}

/// Runs of earlier sweeps into the same folder, not in `points`.
fn other_runs(out: &Path, points: &[Point]) -> Vec<Point> {
    let mut found: Vec<Point> = fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("config.json").is_file())
                .filter_map(|e| Point::from_dir_name(&e.file_name().to_string_lossy()))
                .filter(|p| alig::registry::find(&p.opt).is_ok() && !points.contains(p))
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(Point::dir_name);
    found
}

/// `1e-4:1e1` -> the powers of ten in between; otherwise the comma-separated values as given.
pub fn parse_lrs(s: &str) -> Result<Vec<String>> {
    if let Some((a, b)) = s.split_once(':') {
        let exp = |v: &str| -> Result<i32> {
            let x: f64 = v.parse().with_context(|| format!("--lrs {s}: {v:?} is not a number"))?;
            let e = x.log10().round();
            if x <= 0.0 || (10f64.powf(e) - x).abs() > 1e-9 * x {
                bail!("--lrs {s}: {v} is not a power of ten")
            }
            Ok(e as i32)
        };
        let (lo, hi) = (exp(a)?, exp(b)?);
        if lo > hi {
            bail!("--lrs {s}: the first power is larger than the second")
        }
        return Ok((lo..=hi).map(|e| format!("1e{e}")).collect());
    }
    let values: Vec<String> = s.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    for v in &values {
        if v != "none" && v.parse::<f64>().map_or(true, |x| !x.is_finite() || x < 0.0) {
            bail!("--lrs: {v:?} is not a learning rate")
        }
    }
    if values.is_empty() {
        bail!("--lrs: no value")
    }
    Ok(values)
}

/// The grid in run order.
pub fn grid(cli: &SweepCli) -> Result<Vec<Point>> {
    let lrs = parse_lrs(&cli.lrs)?;
    let mut points = vec![];
    for opt in &cli.opts {
        let spec = alig::registry::find(opt)?;
        let has_lr = spec.uses.iter().any(|u| u.starts_with("lr"));
        let has_fraction = spec.uses.contains(&"fraction");
        for &seed in &cli.seeds {
            if has_lr {
                points.extend(lrs.iter().map(|lr| Point {
                    opt: opt.clone(),
                    lr: Some(lr.clone()),
                    fraction: None,
                    seed,
                }));
            } else if has_fraction && !cli.fractions.is_empty() {
                points.extend(cli.fractions.iter().map(|&f| Point {
                    opt: opt.clone(),
                    lr: None,
                    fraction: Some(f),
                    seed,
                }));
            } else {
                points.push(Point { opt: opt.clone(), lr: None, fraction: None, seed });
            }
        }
    }
    Ok(points)
}

/// What became of one run.
#[derive(Clone, Debug)]
struct Outcome {
    point: Point,
    status: String,
    final_train_loss: Option<f64>,
    best_val_acc: Option<f64>,
    test_acc: Option<f64>,
    epochs: usize,
}

/// Written into a run folder whose run stopped on a non-finite value: the sweep counts it as
/// finished (diverged) and does not run it again.
const DIVERGED: &str = "diverged.txt";

fn run_point(cli: &SweepCli, p: &Point) -> Result<()> {
    let dir = cli.out.join(p.dir_name());
    if dir.join("summary.json").is_file() {
        return Ok(());
    }
    if let Ok(message) = fs::read_to_string(dir.join(DIVERGED)) {
        bail!("{}", message.trim())
    }
    let result = run_args(cli, p, &dir);
    if let Err(e) = &result {
        let message = format!("{e:#}");
        if message.contains("non-finite") {
            fs::write(dir.join(DIVERGED), format!("{message}\n"))
                .with_context(|| format!("writing {}", dir.join(DIVERGED).display()))?;
        }
    }
    result
}

fn run_args(cli: &SweepCli, p: &Point, dir: &Path) -> Result<()> {
    let mut args = vec!["train".to_string()];
    if dir.join("config.json").is_file() {
        args.extend(["--resume".into(), dir.display().to_string(), "--quiet".into()]);
    } else {
        args.extend(cli.run_flags.iter().cloned());
        args.extend(["--opt".into(), p.opt.clone(), "--seed".into(), p.seed.to_string()]);
        if let Some(lr) = &p.lr {
            args.extend(["--lr".into(), lr.clone()]);
        }
        if let Some(f) = p.fraction {
            args.extend(["--fraction".into(), f.to_string()]);
        }
        args.extend(["--quiet".into(), "--out".into(), dir.display().to_string()]);
    }
    crate::run(&args)
}

fn outcome(cli: &SweepCli, p: &Point, result: Option<&anyhow::Error>) -> Outcome {
    let dir = cli.out.join(p.dir_name());
    let rows = MetricsLog::new(&dir).read().unwrap_or_default();
    let summary: Option<serde_json::Value> =
        fs::read_to_string(dir.join("summary.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let diverged = fs::read_to_string(dir.join(DIVERGED)).ok().map(anyhow::Error::msg);
    let status = match (result.or(diverged.as_ref()), &summary) {
        (_, Some(_)) => "done".to_string(),
        (Some(e), None) if format!("{e:#}").contains("non-finite") => "diverged".to_string(),
        (Some(e), None) => format!("failed: {}", format!("{e:#}").lines().next().unwrap_or_default()),
        (None, None) => "incomplete".to_string(),
    };
    Outcome {
        point: p.clone(),
        status,
        final_train_loss: rows.last().map(|m| m.train_loss),
        best_val_acc: rows.iter().map(|m| m.val_acc).reduce(f64::max),
        test_acc: summary.as_ref().and_then(|s| s["test_acc"].as_f64()),
        epochs: rows.len(),
    }
}

fn write_summary(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut csv = String::from("opt,lr,seed,status,epochs,final_train_loss,best_val_acc,test_acc\n");
    let mut md = String::from(
        "| optimizer | lr | seed | status | epochs | final training objective | best val acc | test acc |\n|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        // L4's column holds its fraction.
        let lr = o
            .point
            .lr
            .clone()
            .or_else(|| o.point.fraction.map(|f| format!("fraction {f}")))
            .unwrap_or_else(|| "-".into());
        let cells = [
            o.point.opt.clone(),
            lr,
            o.point.seed.to_string(),
            o.status.clone(),
            o.epochs.to_string(),
            f(o.final_train_loss),
            f(o.best_val_acc),
            f(o.test_acc),
        ];
        let (csv_cells, md_cells): (Vec<String>, Vec<String>) =
            cells.iter().map(|c| (c.replace(',', ";"), c.replace('|', "/"))).unzip();
        csv += &format!("{}\n", csv_cells.join(","));
        md += &format!("| {} |\n", md_cells.join(" | "));
    }
    let mut grid = String::from("# Final training objective\n\nThe last epoch's mean training loss of each run; `diverged`: stopped on a non-finite value.\n");
    grid += &grid_table(outcomes, "learning rate", |p| {
        let lr = p.lr.as_deref()?;
        Some((
            lr.parse::<f64>().unwrap_or(f64::INFINITY),
            if lr == "none" { "none (no max lr)".into() } else { lr.into() },
        ))
    });
    grid += &grid_table(outcomes, "fraction", |p| Some((p.fraction?, p.fraction?.to_string())));
    fs::write(out.join("summary_grid.md"), grid)
        .with_context(|| format!("writing {}", out.join("summary_grid.md").display()))?;
    fs::write(out.join("summary.csv"), csv)
        .with_context(|| format!("writing {}", out.join("summary.csv").display()))?;
    fs::write(out.join("summary.md"), md).with_context(|| format!("writing {}", out.join("summary.md").display()))
}

/// A Markdown table of the final training objective: a row per optimizer (and seed), a column per
/// value of the swept quantity (`column` gives its sort key and heading, `None` leaves the run out).
fn grid_table(outcomes: &[Outcome], name: &str, column: impl Fn(&Point) -> Option<(f64, String)>) -> String {
    let mut cols: Vec<(f64, String)> = outcomes.iter().filter_map(|o| column(&o.point)).collect();
    cols.sort_by(|a, b| a.0.total_cmp(&b.0));
    cols.dedup_by(|a, b| a.1 == b.1);
    if cols.is_empty() {
        return String::new();
    }
    let mut rows: Vec<String> = vec![];
    for o in outcomes.iter().filter(|o| column(&o.point).is_some()) {
        let row = o.point.series_label();
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let mut md = format!(
        "\n| optimizer \\ {name} | {} |\n|---|{}\n",
        cols.iter().map(|c| c.1.as_str()).collect::<Vec<_>>().join(" | "),
        "---|".repeat(cols.len())
    );
    for row in rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|(_, heading)| {
                let hit = outcomes
                    .iter()
                    .find(|o| o.point.series_label() == row && column(&o.point).is_some_and(|c| &c.1 == heading));
                match hit {
                    Some(o) if o.status == "done" => o.final_train_loss.map_or("?".into(), |v| format!("{v:.2e}")),
                    Some(o) if o.status == "diverged" => "diverged".into(),
                    Some(o) => o.status.split(':').next().unwrap_or_default().to_string(),
                    None => String::new(),
                }
            })
            .collect();
        md += &format!("| {row} | {} |\n", cells.join(" | "));
    }
    md
}

/// The final training objective against the learning rate, one line per optimizer (and seed), as in
/// the paper's sweeps; ALI-G without a maximal learning rate (`none`) is a dashed horizontal line
/// across the grid. L4's runs (a fraction instead of a learning rate) get their own chart against
/// the fraction. Diverged runs are left out of their line (the summary table lists them).
fn plot_sweep(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let done = || outcomes.iter().filter(|o| o.status == "done").filter_map(|o| Some((o, o.final_train_loss?)));
    let mut by_lr: Vec<crate::plot::Series> = vec![];
    let mut by_fraction: Vec<crate::plot::Series> = vec![];
    let mut unclipped: Vec<(String, f64)> = vec![];
    let add = |series: &mut Vec<crate::plot::Series>, label: String, point: (f64, f64)| match series
        .iter_mut()
        .find(|s| s.label == label)
    {
        Some(s) => s.points.push(point),
        None => series.push(crate::plot::Series { label, points: vec![point], dashed: false }),
    };
    for (o, loss) in done() {
        let label = o.point.series_label();
        match (o.point.lr.as_deref(), o.point.fraction) {
            (Some("none"), _) => unclipped.push((format!("{label} (no max lr)"), loss)),
            (Some(lr), _) => {
                if let Ok(lr) = lr.parse::<f64>() {
                    add(&mut by_lr, label, (lr, loss))
                }
            }
            (None, Some(f)) => add(&mut by_fraction, label, (f, loss)),
            (None, None) => {}
        }
    }
    let xs = by_lr.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo < hi {
        for (label, loss) in unclipped {
            by_lr.push(crate::plot::Series { label, points: vec![(lo, loss), (hi, loss)], dashed: true });
        }
    }
    for s in by_lr.iter_mut().chain(&mut by_fraction) {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    if !by_fraction.is_empty() {
        crate::plot::Chart {
            title: "Final training objective against L4's fraction".into(),
            x_label: "fraction of the predicted decrease".into(),
            y_label: "final train loss".into(),
            log_x: false,
            log_y: true,
            series: by_fraction,
        }
        .save(out, "final_objective_vs_fraction")?;
    }
    let chart = crate::plot::Chart {
        title: "Final training objective against the learning rate".into(),
        x_label: "learning rate (ALI-G: maximal learning rate)".into(),
        y_label: "final train loss".into(),
        log_x: true,
        log_y: true,
        series: by_lr,
    };
    if !chart.series.is_empty() {
        chart.save(out, "final_objective_vs_lr")?;
    }
    Ok(())
}

/// `train sweep ...` (`args[0]` is `sweep`).
pub fn run(args: &[String]) -> Result<()> {
    let cli = SweepCli::try_parse_from(args)?;
    if cli.jobs == 0 {
        bail!("--jobs must be positive")
    }
    if cli
        .run_flags
        .iter()
        .any(|f| ["--opt", "--lr", "--seed", "--out", "--resume", "--fraction"].contains(&f.as_str()))
    {
        bail!("the flags after -- may not set --opt, --lr, --fraction, --seed, --out or --resume: the sweep sets them")
    }
    if cli.fractions.iter().any(|f| !(*f > 0.0 && *f < 1.0)) {
        bail!("--fractions must lie in (0, 1)")
    }
    let points = grid(&cli)?;
    fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    eprintln!("sweep: {} runs into {}", points.len(), cli.out.display());
    let results: Vec<Option<anyhow::Error>> = if cli.jobs == 1 {
        points.iter().map(|p| run_point(&cli, p).err()).collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<anyhow::Error>>> = points.iter().map(|_| Default::default()).collect();
        std::thread::scope(|s| {
            for _ in 0..cli.jobs.min(points.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = points.get(i) else { break };
                    *slots[i].lock().expect("sweep slot") = run_point(&cli, p).err();
                });
            }
        });
        slots.into_iter().map(|m| m.into_inner().expect("sweep slot")).collect()
    };
    let mut outcomes: Vec<Outcome> = points.iter().zip(&results).map(|(p, r)| outcome(&cli, p, r.as_ref())).collect();
    // The summary covers every run in the folder, earlier sweeps' too.
    outcomes.extend(other_runs(&cli.out, &points).iter().map(|p| outcome(&cli, p, None)));
    for o in &outcomes {
        eprintln!(
            "  {:<30} {}",
            o.point.dir_name(),
            if o.status == "done" {
                format!("done, final loss {:.4}", o.final_train_loss.unwrap_or(f64::NAN))
            } else {
                o.status.clone()
            }
        );
    }
    write_summary(&cli.out, &outcomes)?;
    plot_sweep(&cli.out, &outcomes)?;
    eprintln!("sweep: {} and {}", cli.out.join("summary.csv").display(), cli.out.join("summary.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_name_their_points() {
        let p = |opt: &str, lr: Option<&str>, fraction, seed| Point {
            opt: opt.into(),
            lr: lr.map(Into::into),
            fraction,
            seed,
        };
        for point in [
            p("alig", Some("1e-2"), None, 0),
            p("alig", Some("none"), None, 3),
            p("l4mom", None, Some(0.05), 1),
            p("l4adam", None, None, 2),
        ] {
            assert_eq!(Point::from_dir_name(&point.dir_name()), Some(point.clone()));
        }
        assert_eq!(Point::from_dir_name("summary.csv"), None);
    }

    #[test]
    fn learning_rate_lists() {
        assert_eq!(parse_lrs("1e-2:1e0").unwrap(), ["1e-2", "1e-1", "1e0"]);
        assert_eq!(parse_lrs("0.3,none").unwrap(), ["0.3", "none"]);
        assert!(parse_lrs("3e-2:1e0").is_err());
        assert!(parse_lrs("1e1:1e0").is_err());
        assert!(parse_lrs("-1").is_err());
    }
}
