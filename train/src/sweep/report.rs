//! What a sweep reports: the outcome of every run in its folder, `summary.csv` and `summary.md`
//! (one row per run), `summary_grid.md` (the final objective per optimizer and learning rate or
//! fraction), and the final objective against the learning rate (and L4's fraction) as charts.

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::execute::{is_divergence, DIVERGED};
use super::grid::Point;
use crate::metrics::MetricsLog;
use crate::plot::{Chart, Series};

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// It wrote its summary.
    Done,
    /// It stopped on a non-finite value.
    Diverged,
    /// It stopped on another error (its first line).
    Failed(String),
    /// It has not finished (interrupted, or still to run).
    Incomplete,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Done => f.write_str("done"),
            Status::Diverged => f.write_str("diverged"),
            Status::Failed(why) => write!(f, "failed: {why}"),
            Status::Incomplete => f.write_str("incomplete"),
        }
    }
}

/// What became of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub point: Point,
    pub status: Status,
    pub final_train_loss: Option<f64>,
    pub best_val_acc: Option<f64>,
    pub test_acc: Option<f64>,
    pub epochs: usize,
}

impl Outcome {
    /// The outcome of point `p` in `out`, given the error its run ended with in this call.
    pub fn read(out: &Path, p: &Point, error: Option<&anyhow::Error>) -> Self {
        let dir = out.join(p.dir_name());
        let rows = MetricsLog::new(&dir).read().unwrap_or_default();
        let summary: Option<serde_json::Value> =
            fs::read_to_string(dir.join("summary.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
        let status = match (&summary, error) {
            (Some(_), _) => Status::Done,
            _ if dir.join(DIVERGED).is_file() => Status::Diverged,
            (None, Some(e)) if is_divergence(e) => Status::Diverged,
            (None, Some(e)) => Status::Failed(format!("{e:#}").lines().next().unwrap_or_default().to_string()),
            (None, None) => Status::Incomplete,
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

    /// The line `train sweep` prints for it.
    pub fn line(&self) -> String {
        let what = match self.status {
            Status::Done => format!("done, final loss {:.4}", self.final_train_loss.unwrap_or(f64::NAN)),
            _ => self.status.to_string(),
        };
        format!("  {:<30} {what}", self.point.dir_name())
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `summary.csv`, `summary.md` and `summary_grid.md` in `out`.
pub fn write_summary(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut csv = String::from("opt,lr,seed,status,epochs,final_train_loss,best_val_acc,test_acc\n");
    let mut md = String::from(
        "| optimizer | lr | seed | status | epochs | final training objective | best val acc | test acc |\n|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        // L4's column holds its fraction.
        let p = &o.point;
        let lr = p.lr.clone().or_else(|| p.fraction.map(|f| format!("fraction {f}"))).unwrap_or_else(|| "-".into());
        let cells = [
            p.opt.clone(),
            lr,
            p.seed.to_string(),
            o.status.to_string(),
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
    let mut grid = String::from(
        "# Final training objective\n\nThe last epoch's mean training loss of each run; `diverged`: stopped on a non-finite value.\n",
    );
    grid += &grid_table(outcomes, "learning rate", |p| {
        let lr = p.lr.as_deref()?;
        let heading = if lr == "none" { "none (no max lr)".into() } else { lr.into() };
        Some((lr.parse::<f64>().unwrap_or(f64::INFINITY), heading))
    });
    grid += &grid_table(outcomes, "fraction", |p| Some((p.fraction?, p.fraction?.to_string())));
    write(&out.join("summary_grid.md"), &grid)?;
    write(&out.join("summary.csv"), &csv)?;
    write(&out.join("summary.md"), &md)
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
    let headings: Vec<&str> = cols.iter().map(|c| c.1.as_str()).collect();
    let mut md = format!("\n| optimizer \\ {name} | {} |\n|---|{}\n", headings.join(" | "), "---|".repeat(cols.len()));
    for row in rows {
        let cell = |heading: &String| {
            let hit = outcomes
                .iter()
                .find(|o| o.point.series_label() == row && column(&o.point).is_some_and(|c| &c.1 == heading));
            match hit.map(|o| (&o.status, o.final_train_loss)) {
                Some((Status::Done, loss)) => loss.map_or("?".into(), |v| format!("{v:.2e}")),
                Some((status, _)) => status.to_string().split(':').next().unwrap_or_default().to_string(),
                None => String::new(),
            }
        };
        let cells: Vec<String> = cols.iter().map(|(_, heading)| cell(heading)).collect();
        md += &format!("| {row} | {} |\n", cells.join(" | "));
    }
    md
}

/// Adds `point` to the series labelled `label`, creating it.
fn add(series: &mut Vec<Series>, label: String, point: (f64, f64)) {
    match series.iter_mut().find(|s| s.label == label) {
        Some(s) => s.points.push(point),
        None => series.push(Series { label, points: vec![point], dashed: false }),
    }
}

/// The final training objective against the learning rate, one line per optimizer (and seed), as in
/// the paper's sweeps; ALI-G without a maximal learning rate (`none`) is a dashed horizontal line
/// across the grid. L4's runs (a fraction instead of a learning rate) get their own chart against
/// the fraction. Diverged runs are left out of their line (the summary table lists them).
pub fn plot_sweep(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let (mut by_lr, mut by_fraction, mut unclipped) = (vec![], vec![], vec![]);
    let done = outcomes.iter().filter(|o| o.status == Status::Done);
    for (o, loss) in done.filter_map(|o| Some((o, o.final_train_loss?))) {
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
            by_lr.push(Series { label, points: vec![(lo, loss), (hi, loss)], dashed: true });
        }
    }
    for s in by_lr.iter_mut().chain(&mut by_fraction) {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let chart = |title: &str, x_label: &str, log_x, series| Chart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "final train loss".into(),
        log_x,
        log_y: true,
        series,
    };
    if !by_fraction.is_empty() {
        chart(
            "Final training objective against L4's fraction",
            "fraction of the predicted decrease",
            false,
            by_fraction,
        )
        .save(out, "final_objective_vs_fraction")?;
    }
    if !by_lr.is_empty() {
        let x = "learning rate (ALI-G: maximal learning rate)";
        chart("Final training objective against the learning rate", x, true, by_lr)
            .save(out, "final_objective_vs_lr")?;
    }
    Ok(())
}
