//! The points of a sweep: optimizers x learning rates (or L4's fractions) x seeds, and the run
//! folder each point gets (`OPT-lrLR-sSEED`, `OPT-fF-sSEED`, `OPT-sSEED`).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::SweepArgs;

/// One point of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub opt: String,
    /// The learning rate as written in the grid (`1e-2`, `none`).
    pub lr: Option<String>,
    /// L4's fraction.
    pub fraction: Option<f64>,
    pub seed: u64,
}

impl Point {
    /// The row of a table and the line of a chart: optimizer and seed.
    pub fn series_label(&self) -> String {
        format!("{} s{}", self.opt, self.seed)
    }

    /// The name of the point's run folder.
    pub fn dir_name(&self) -> String {
        match (&self.lr, self.fraction) {
            (Some(lr), _) => format!("{}-lr{lr}-s{}", self.opt, self.seed),
            (None, Some(f)) => format!("{}-f{f}-s{}", self.opt, self.seed),
            (None, None) => format!("{}-s{}", self.opt, self.seed),
        }
    }

    /// The point a run folder of a sweep stands for.
    pub fn from_dir_name(name: &str) -> Option<Self> {
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
pub fn other_runs(out: &Path, points: &[Point]) -> Vec<Point> {
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
pub fn grid(args: &SweepArgs) -> Result<Vec<Point>> {
    let lrs = parse_lrs(&args.lrs)?;
    let mut points = vec![];
    for opt in &args.opts {
        let spec = alig::registry::find(opt)?;
        let has_lr = spec.uses.iter().any(|u| u.starts_with("lr"));
        let has_fraction = spec.uses.contains(&"fraction");
        for &seed in &args.seeds {
            let point = |lr: Option<&String>, fraction| Point { opt: opt.clone(), lr: lr.cloned(), fraction, seed };
            if has_lr {
                points.extend(lrs.iter().map(|lr| point(Some(lr), None)));
            } else if has_fraction && !args.fractions.is_empty() {
                points.extend(args.fractions.iter().map(|&f| point(None, Some(f))));
            } else {
                points.push(point(None, None));
            }
        }
    }
    Ok(points)
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
