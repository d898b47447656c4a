//! What a sweep reports: the outcome of every run in its folder, `summary.csv` and `summary.md`
//! (one row per run), `summary_seeds.csv` and a table in `summary.md` across seeds (mean,
//! standard deviation, min, max and count of each point's runs), `summary_grid.md` (the final
//! objective per optimizer and learning rate or fraction: mean ± std when there are several
//! seeds), and the final objective against the learning rate (and L4's fraction) as charts, a
//! line per optimizer with a band of one standard deviation across seeds.

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::execute::{is_divergence, DIVERGED};
use super::grid::Point;
use crate::metrics::MetricsLog;
use crate::plot::{mean_series, Chart, Series, Spread};

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
    /// The grid point the run trained.
    pub point: Point,
    /// How it ended.
    pub status: Status,
    /// The training loss of its last logged epoch (`None` before the first).
    pub final_train_loss: Option<f64>,
    /// The best validation accuracy over its logged epochs.
    pub best_val_acc: Option<f64>,
    /// The test accuracy of its `summary.json`, when it finished and had a test split.
    pub test_acc: Option<f64>,
    /// Epochs in its metrics log.
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

/// Whether the outcomes hold more than one seed.
fn several_seeds(outcomes: &[Outcome]) -> bool {
    outcomes.first().is_some_and(|first| outcomes.iter().any(|o| o.point.seed != first.point.seed))
}

/// The row (or line) of a point: its optimizer, and its seed when the sweep has one seed.
fn row_label(p: &Point, seeds: bool) -> String {
    if seeds {
        p.opt.clone()
    } else {
        p.series_label()
    }
}

/// The points' grid positions with the outcomes of their seeds, in the order they first appear.
fn by_point(outcomes: &[Outcome]) -> Vec<(Point, Vec<&Outcome>)> {
    let mut groups: Vec<(Point, Vec<&Outcome>)> = vec![];
    for o in outcomes {
        let p = Point { seed: 0, ..o.point.clone() };
        match groups.iter_mut().find(|g| g.0 == p) {
            Some(g) => g.1.push(o),
            None => groups.push((p, vec![o])),
        }
    }
    groups
}

/// `mean ± std` (3 significant digits), or the single value.
fn mean_std(s: &Spread) -> String {
    match s.count {
        1 => format!("{:.4}", s.mean),
        _ => format!("{:.4} ± {:.4}", s.mean, s.std),
    }
}

/// The table across seeds (Markdown) and `summary_seeds.csv`'s text.
fn seed_tables(outcomes: &[Outcome]) -> (String, String) {
    let mut csv = String::from("opt,lr,runs,done");
    for m in ["final_train_loss", "best_val_acc", "test_acc"] {
        csv += &format!(",{m}_mean,{m}_std,{m}_min,{m}_max,{m}_count");
    }
    csv.push('\n');
    let mut md = String::from(
        "\n## Across seeds\n\nMean ± standard deviation (of the sample) over each point's finished runs, [min, max].\n\n\
         | optimizer | lr | runs | done | final training objective | best val acc | test acc |\n|---|---|---|---|---|---|---|\n",
    );
    for (p, runs) in by_point(outcomes) {
        let done: Vec<&&Outcome> = runs.iter().filter(|o| o.status == Status::Done).collect();
        let spread =
            |pick: fn(&Outcome) -> Option<f64>| Spread::of(&done.iter().filter_map(|o| pick(o)).collect::<Vec<_>>());
        let spreads = [spread(|o| o.final_train_loss), spread(|o| o.best_val_acc), spread(|o| o.test_acc)];
        let lr = column_text(&p);
        csv += &format!("{},{},{},{}", p.opt, lr.replace(',', ";"), runs.len(), done.len());
        let mut cells = vec![];
        for s in &spreads {
            match s {
                Some(s) => {
                    csv += &format!(",{},{},{},{},{}", s.mean, s.std, s.min, s.max, s.count);
                    cells.push(format!("{} [{:.4}, {:.4}]", mean_std(s), s.min, s.max));
                }
                None => {
                    csv += ",,,,,0";
                    cells.push("-".into());
                }
            }
        }
        csv.push('\n');
        md += &format!(
            "| {} | {} | {} | {} | {} |
",
            p.opt,
            lr.replace('|', "/"),
            runs.len(),
            done.len(),
            cells.join(" | ")
        );
    }
    (md, csv)
}

/// The learning rate column of a point (L4's holds its fraction).
fn column_text(p: &Point) -> String {
    p.lr.clone().or_else(|| p.fraction.map(|f| format!("fraction {f}"))).unwrap_or_else(|| "-".into())
}

/// `summary.csv`, `summary.md`, `summary_seeds.csv` and `summary_grid.md` in `out`.
pub fn write_summary(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut csv = String::from("opt,lr,seed,status,epochs,final_train_loss,best_val_acc,test_acc\n");
    let mut md = String::from(
        "| optimizer | lr | seed | status | epochs | final training objective | best val acc | test acc |\n|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let p = &o.point;
        let lr = column_text(p);
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
    let (seeds_md, seeds_csv) = seed_tables(outcomes);
    write(&out.join("summary_seeds.csv"), &seeds_csv)?;
    write(&out.join("summary.md"), &(md + &seeds_md))
}

/// A Markdown table of the final training objective: a row per optimizer (and seed, when the
/// sweep has one), a column per value of the swept quantity (`column` gives its sort key and
/// heading, `None` leaves the run out). Across several seeds a cell holds the finished runs'
/// mean ± std, and how many of its runs did not finish.
fn grid_table(outcomes: &[Outcome], name: &str, column: impl Fn(&Point) -> Option<(f64, String)>) -> String {
    let mut cols: Vec<(f64, String)> = outcomes.iter().filter_map(|o| column(&o.point)).collect();
    cols.sort_by(|a, b| a.0.total_cmp(&b.0));
    cols.dedup_by(|a, b| a.1 == b.1);
    if cols.is_empty() {
        return String::new();
    }
    let seeds = several_seeds(outcomes);
    let mut rows: Vec<String> = vec![];
    for o in outcomes.iter().filter(|o| column(&o.point).is_some()) {
        let row = row_label(&o.point, seeds);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let headings: Vec<&str> = cols.iter().map(|c| c.1.as_str()).collect();
    let mut md = format!("\n| optimizer \\ {name} | {} |\n|---|{}\n", headings.join(" | "), "---|".repeat(cols.len()));
    for row in rows {
        let cell = |heading: &String| {
            let hits: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| row_label(&o.point, seeds) == row && column(&o.point).is_some_and(|c| &c.1 == heading))
                .collect();
            grid_cell(&hits)
        };
        let cells: Vec<String> = cols.iter().map(|(_, heading)| cell(heading)).collect();
        md += &format!("| {row} | {} |\n", cells.join(" | "));
    }
    md
}

/// One cell of the grid: the final objective of one run, or the mean ± std over seeds.
fn grid_cell(hits: &[&Outcome]) -> String {
    let status_word = |s: &Status| s.to_string().split(':').next().unwrap_or_default().to_string();
    match hits {
        [] => String::new(),
        [o] => match (&o.status, o.final_train_loss) {
            (Status::Done, loss) => loss.map_or("?".into(), |v| format!("{v:.2e}")),
            (status, _) => status_word(status),
        },
        _ => {
            let done: Vec<f64> =
                hits.iter().filter(|o| o.status == Status::Done).filter_map(|o| o.final_train_loss).collect();
            let not_done = hits.len() - done.len();
            let value = Spread::of(&done).map_or_else(
                || status_word(&hits[0].status),
                |s| format!("{:.2e} ± {:.1e} ({})", s.mean, s.std, s.count),
            );
            match (not_done, done.is_empty()) {
                (0, _) | (_, true) => value,
                (n, false) => format!("{value}, {n} not done"),
            }
        }
    }
}

/// Adds `point` of seed `seed` to the line labelled `label`, creating it: a line holds one
/// series per seed, merged into their mean later.
fn add(lines: &mut Vec<(String, Vec<(u64, Series)>)>, label: String, seed: u64, point: (f64, f64)) {
    let i = match lines.iter().position(|l| l.0 == label) {
        Some(i) => i,
        None => {
            lines.push((label, vec![]));
            lines.len() - 1
        }
    };
    let seeds = &mut lines[i].1;
    match seeds.iter_mut().find(|s| s.0 == seed) {
        Some(s) => s.1.points.push(point),
        None => seeds.push((seed, Series { points: vec![point], ..Series::default() })),
    }
}

/// Each line's seeds merged: their mean, with a band of one standard deviation.
fn merged(lines: Vec<(String, Vec<(u64, Series)>)>) -> Vec<Series> {
    lines
        .into_iter()
        .map(|(label, seeds)| {
            let members: Vec<Series> = seeds.into_iter().map(|(_, s)| s).collect();
            let label = match members.len() {
                1 => label,
                n => format!("{label} (mean ± std, {n} seeds)"),
            };
            mean_series(label, &members, false)
        })
        .collect()
}

/// The final training objective against the learning rate, one line per optimizer (and seed), as in
/// the paper's sweeps; ALI-G without a maximal learning rate (`none`) is a dashed horizontal line
/// across the grid. L4's runs (a fraction instead of a learning rate) get their own chart against
/// the fraction. Diverged runs are left out of their line (the summary table lists them).
pub fn plot_sweep(out: &Path, outcomes: &[Outcome]) -> Result<()> {
    let (mut by_lr, mut by_fraction, mut unclipped) = (vec![], vec![], vec![]);
    let seeds = several_seeds(outcomes);
    let done = outcomes.iter().filter(|o| o.status == Status::Done);
    for (o, loss) in done.filter_map(|o| Some((o, o.final_train_loss?))) {
        let (label, seed) = (row_label(&o.point, seeds), o.point.seed);
        match (o.point.lr.as_deref(), o.point.fraction) {
            (Some("none"), _) => add(&mut unclipped, format!("{label} (no max lr)"), seed, (0.0, loss)),
            (Some(lr), _) => {
                if let Ok(lr) = lr.parse::<f64>() {
                    add(&mut by_lr, label, seed, (lr, loss))
                }
            }
            (None, Some(f)) => add(&mut by_fraction, label, seed, (f, loss)),
            (None, None) => {}
        }
    }
    let (mut by_lr, mut by_fraction) = (merged(by_lr), merged(by_fraction));
    let xs = by_lr.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo < hi {
        // The unclipped step has no learning rate: a dashed level (and band) across the grid.
        for s in merged(unclipped) {
            let level = |y: f64| vec![(lo, y), (hi, y)];
            let band = s.band.first().map_or(vec![], |b| vec![(lo, b.1, b.2), (hi, b.1, b.2)]);
            by_lr.push(Series { label: s.label, points: level(s.points[0].1), dashed: true, band });
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
