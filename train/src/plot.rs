//! Line charts through `plotters`, drawn once and rendered twice: SVG and PNG carry the same title,
//! axis names, tick labels and legend (the PNG's text rasterised with DejaVu Sans, embedded by the
//! `dejavu` crate: no system fonts). A series may carry a shaded band (the spread across seeds).
//!
//! `train plot RUN_DIR... --out DIR` draws any set of runs: training objective and accuracy
//! against epochs, and the step size (ALI-G's clipped and unclipped, log scale). Runs that differ
//! only by their seed are drawn as one line, their mean, with a band of one standard deviation
//! either side ([`group_by_seed`]); `train sweep` adds the final objective against the learning
//! rate.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::PlotArgs;
use crate::metrics::{EpochMetrics, MetricsLog};

/// The pictures' size in pixels.
pub const SIZE: (u32, u32) = (900, 540);
const FONT: &str = "sans-serif";
const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
];

/// One line of a chart.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// A shaded band `(x, low, high)` around the line (empty: none).
    pub band: Vec<(f64, f64, f64)>,
}

/// A chart: its text and its series.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Registers the embedded font once: the PNG's text and both renderings' text layout need it.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans parses: a failure here would be a broken `dejavu` crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// A value on an axis: log axes are drawn on `log10` of the values, with ticks labelled as powers.
fn axis_value(v: f64, log: bool) -> Option<f64> {
    match log {
        true if v > 0.0 && v.is_finite() => Some(v.log10()),
        false if v.is_finite() => Some(v),
        _ => None,
    }
}

fn tick_label(v: f64, log: bool) -> String {
    if log {
        return match v.fract().abs() < 1e-9 {
            true => format!("1e{}", v.round() as i64),
            false => format!("{:.1e}", 10f64.powf(v)),
        };
    }
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-3) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The axis range around `values` (in axis space), padded a little.
fn span(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log {
        return (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5_f64.max(lo.abs() * 0.1) };
    (lo - pad, hi + pad)
}

impl Chart {
    /// The series' points in axis space (points a log axis cannot show left out).
    fn mapped(&self, s: &Series) -> Vec<(f64, f64)> {
        let map = |(x, y): (f64, f64)| Some((axis_value(x, self.log_x)?, axis_value(y, self.log_y)?));
        s.points.iter().copied().filter_map(map).collect()
    }

    fn mapped_band(&self, s: &Series) -> Vec<(f64, f64, f64)> {
        let map = |(x, lo, hi): (f64, f64, f64)| {
            Some((axis_value(x, self.log_x)?, axis_value(lo, self.log_y)?, axis_value(hi, self.log_y)?))
        };
        s.band.iter().copied().filter_map(map).collect()
    }

    /// The axis ranges over every point and band.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let (mut xs, mut ys) = (vec![], vec![]);
        for s in &self.series {
            for (x, y) in self.mapped(s) {
                xs.push(x);
                ys.push(y);
            }
            for (x, lo, hi) in self.mapped_band(s) {
                xs.push(x);
                ys.extend([lo, hi]);
            }
        }
        (span(xs.into_iter(), self.log_x), span(ys.into_iter(), self.log_y))
    }

    /// Draws the chart on any plotters backend: the one drawing path of both renderings.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        register_font();
        root.fill(&WHITE).map_err(plot_error)?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        let (log_x, log_y) = (self.log_x, self.log_y);
        let (x_labels, y_labels) = self.tick_counts((x0, x1), (y0, y1));
        chart
            .configure_mesh()
            .x_labels(x_labels)
            .y_labels(y_labels)
            .max_light_lines(4)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_label_formatter(&|v| tick_label(*v, log_x))
            .y_label_formatter(&|v| tick_label(*v, log_y))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(plot_error)?;
        for (k, s) in self.series.iter().enumerate() {
            let (r, g, b) = PALETTE[k % PALETTE.len()];
            let color = RGBColor(r, g, b);
            let band = self.mapped_band(s);
            if band.len() > 1 {
                let outline = band.iter().map(|p| (p.0, p.2)).chain(band.iter().rev().map(|p| (p.0, p.1)));
                let shade = Polygon::new(outline.collect::<Vec<_>>(), color.mix(0.2).filled());
                chart.draw_series(std::iter::once(shade)).map_err(plot_error)?;
            }
            let style = color.stroke_width(2);
            let points = self.mapped(s);
            let drawn = match s.dashed {
                true => chart.draw_series(DashedLineSeries::new(points, 8, 5, style)),
                false => chart.draw_series(LineSeries::new(points, style)),
            };
            drawn
                .map_err(plot_error)?
                .label(&s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3)));
        }
        if self.series.iter().any(|s| !s.label.is_empty()) {
            chart
                .configure_series_labels()
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(self.legend_corner((x0, x1), (y0, y1)))
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)
    }

    /// How many ticks each axis gets: a log axis one per decade (up to ten), whole-number x values
    /// (epochs) whole-number ticks when there are few of them, else plotters' choice of about ten.
    fn tick_counts(&self, x: (f64, f64), y: (f64, f64)) -> (usize, usize) {
        let labels = |log: bool, (lo, hi): (f64, f64)| match log {
            true if hi - lo <= 10.0 => (hi - lo) as usize + 1,
            _ => 10,
        };
        let whole = self.series.iter().flat_map(|s| self.mapped(s)).all(|(x, _)| x.fract() == 0.0);
        let x_labels = match (self.log_x, whole, x.1 - x.0) {
            (false, true, w) if w <= 12.0 => w.ceil() as usize + 1,
            _ => labels(self.log_x, x),
        };
        (x_labels, labels(self.log_y, y))
    }

    /// Where the legend hides the fewest points: the upper or the lower right corner.
    fn legend_corner(&self, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
        let right = |p: &(f64, f64)| p.0 > x.0 + 0.5 * (x.1 - x.0);
        let points: Vec<(f64, f64)> = self.series.iter().flat_map(|s| self.mapped(s)).filter(right).collect();
        let upper = points.iter().filter(|p| p.1 > y.0 + 0.6 * (y.1 - y.0)).count();
        let lower = points.iter().filter(|p| p.1 < y.0 + 0.4 * (y.1 - y.0)).count();
        match upper > lower {
            true => SeriesLabelPosition::LowerRight,
            false => SeriesLabelPosition::UpperRight,
        }
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String> {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(text)
    }

    /// The chart's pixels, RGB, row by row.
    pub fn pixels(&self) -> Result<image::RgbImage> {
        let mut buffer = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
            self.draw(&root)?;
        }
        image::RgbImage::from_raw(SIZE.0, SIZE.1, buffer).context("a bitmap of the chart's size")
    }

    /// The chart as a PNG file's bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(vec![]);
        self.pixels()?.write_to(&mut out, image::ImageFormat::Png).context("encoding a PNG")?;
        Ok(out.into_inner())
    }

    /// Writes `dir/name.svg` and `dir/name.png`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
        let (svg, png) = (dir.join(format!("{name}.svg")), dir.join(format!("{name}.png")));
        fs::write(&svg, self.svg()?).with_context(|| format!("writing {}", svg.display()))?;
        fs::write(&png, self.png()?).with_context(|| format!("writing {}", png.display()))?;
        Ok(vec![svg, png])
    }
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// Mean, standard deviation (of the sample, `n - 1`; 0 for one value), min, max and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Spread {
    /// The spread of `values` (`None` for none).
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        Some(Self { mean, std: var.sqrt(), min, max, count: n })
    }
}

/// Series that differ only by seed merged into one: at each x the mean of the values, with a
/// band of one standard deviation either side. `label` names the merged line.
pub fn mean_series(label: String, members: &[Series], dashed: bool) -> Series {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in members {
        for (x, y) in &s.points {
            at.entry(x.to_bits()).or_default().push(*y);
        }
    }
    let mut xs: Vec<(f64, Spread)> =
        at.into_iter().filter_map(|(x, ys)| Some((f64::from_bits(x), Spread::of(&ys)?))).collect();
    xs.sort_by(|a, b| a.0.total_cmp(&b.0));
    Series {
        label,
        points: xs.iter().map(|(x, s)| (*x, s.mean)).collect(),
        dashed,
        band: match members.len() {
            0 | 1 => vec![],
            _ => xs.iter().map(|(x, s)| (*x, s.mean - s.std, s.mean + s.std)).collect(),
        },
    }
}

/// A run directory's name.
fn run_name(run: &Path) -> String {
    run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().to_string())
}

/// The runs to draw: each one alone, or several that differ only by seed (their `config.json`
/// equal once the seed and the run folder are left out) as one group, named after the first
/// without its `-sN` suffix.
pub fn group_by_seed(runs: &[PathBuf]) -> Vec<(String, Vec<PathBuf>)> {
    let key = |run: &Path| -> Option<String> {
        let mut cfg = crate::config::RunConfig::read(run).ok()?;
        (cfg.run.seed, cfg.run.out) = (0, PathBuf::new());
        serde_json::to_string(&cfg).ok()
    };
    let mut groups: Vec<(Option<String>, String, Vec<PathBuf>)> = vec![];
    for run in runs {
        let k = key(run);
        match groups.iter_mut().find(|g| g.0.is_some() && g.0 == k) {
            Some(g) => g.2.push(run.clone()),
            None => groups.push((k, run_name(run), vec![run.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|(_, name, members)| match members.len() {
            1 => (name, members),
            n => {
                let base = name.rsplit_once("-s").filter(|(_, s)| s.parse::<u64>().is_ok()).map_or(&*name, |(b, _)| b);
                (format!("{base} (mean ± std of {n} seeds)"), members)
            }
        })
        .collect()
}

/// The charts of a set of runs, written into `out`: objective, accuracy, and step size (when any
/// run reports one); runs that differ only by seed as their mean with a band. Returns the files.
pub fn plot_runs(runs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut groups = vec![];
    for (name, members) in group_by_seed(runs) {
        let mut logs = vec![];
        for r in &members {
            let rows = MetricsLog::new(r).read()?;
            if rows.is_empty() {
                bail!("{}: no metrics.jsonl rows to plot", r.display())
            }
            logs.push(rows);
        }
        groups.push((name, logs));
    }
    let series = |pick: &dyn Fn(&EpochMetrics) -> Option<f64>, suffix: &str, dashed: bool| -> Vec<Series> {
        groups
            .iter()
            .map(|(name, logs)| {
                let members: Vec<Series> = logs
                    .iter()
                    .map(|rows| Series {
                        points: rows.iter().filter_map(|m| pick(m).map(|v| (m.epoch as f64, v))).collect(),
                        ..Series::default()
                    })
                    .collect();
                mean_series(format!("{name}{suffix}"), &members, dashed)
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let chart = |title: &str, y_label: &str, log_y: bool, series: Vec<Series>| Chart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        log_x: false,
        log_y,
        series,
    };
    let mut files = vec![];
    files.extend(
        chart("Training objective", "train loss", true, series(&|m| Some(m.train_loss), "", false))
            .save(out, "objective")?,
    );
    let mut acc = series(&|m| Some(100.0 * m.train_acc), " train", false);
    acc.extend(series(&|m| Some(100.0 * m.val_acc), " val", true));
    files.extend(chart("Accuracy", "accuracy (%)", false, acc).save(out, "accuracy")?);
    let mut steps = series(&|m| m.step_size, " step", false);
    steps.extend(series(&|m| m.step_size_unclipped, " unclipped", true));
    if !steps.is_empty() {
        files.extend(chart("Step size (mean per epoch)", "step size", true, steps).save(out, "step_size")?);
    }
    Ok(files)
}

/// `train plot RUN_DIR... --out DIR`.
pub fn run(args: &PlotArgs) -> Result<()> {
    for f in plot_runs(&args.runs, &args.out)? {
        eprintln!("plot: {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(title: &str) -> Chart {
        let line = |label: &str, k: f64| Series {
            label: label.into(),
            points: (1..=10).map(|e| (e as f64, k / e as f64)).collect(),
            ..Series::default()
        };
        Chart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: "train loss".into(),
            log_x: false,
            log_y: true,
            series: vec![line("alig", 1.0), Series { dashed: true, ..line("sgd", 3.0) }],
        }
    }

    /// Dark pixels in the rows `rows` of the image's middle third (where the title is centred).
    fn dark_in(img: &image::RgbImage, rows: std::ops::Range<u32>) -> usize {
        let w = img.width();
        rows.flat_map(|y| (w / 3..2 * w / 3).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|c| *c < 100))
            .count()
    }

    /// The PNG has the SVG's text: a title rasterised in the title band, the same words in the
    /// SVG, and a different title draws different pixels there.
    #[test]
    fn the_png_has_the_text_of_the_svg() {
        let with_title = chart("Training objective").pixels().unwrap();
        let without = chart("").pixels().unwrap();
        let band = 0..36;
        assert!(dark_in(&with_title, band.clone()) > 150, "no title pixels: {}", dark_in(&with_title, band.clone()));
        assert_eq!(dark_in(&without, band), 0);
        let svg = chart("Training objective").svg().unwrap();
        for text in ["Training objective", "epoch", "train loss", "alig", "sgd", "1e0"] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
        // The legend and the axis names are drawn too: the rest of the picture differs from an
        // unlabelled one.
        let mut bare = chart("Training objective");
        (bare.x_label, bare.y_label) = (String::new(), String::new());
        for s in &mut bare.series {
            s.label.clear();
        }
        assert_ne!(dark_in(&bare.pixels().unwrap(), 36..SIZE.1), dark_in(&with_title, 36..SIZE.1));
    }

    #[test]
    fn seeds_merge_into_a_mean_with_a_band() {
        let s = |ys: [f64; 3]| Series {
            points: ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
            ..Series::default()
        };
        let merged = mean_series("a".into(), &[s([1.0, 2.0, 3.0]), s([3.0, 2.0, 5.0]), s([2.0, 2.0, 4.0])], false);
        assert_eq!(merged.points, [(0.0, 2.0), (1.0, 2.0), (2.0, 4.0)]);
        assert_eq!(merged.band[0], (0.0, 1.0, 3.0));
        assert_eq!(merged.band[1], (1.0, 2.0, 2.0));
        let spread = Spread::of(&[1.0, 3.0, 2.0]).unwrap();
        assert_eq!((spread.mean, spread.std, spread.min, spread.max, spread.count), (2.0, 1.0, 1.0, 3.0, 3));
        assert!(mean_series("b".into(), &[s([1.0, 2.0, 3.0])], false).band.is_empty());
        let banded = Chart { series: vec![merged], ..chart("Band") };
        assert!(banded.svg().unwrap().contains("polygon"), "the band is not drawn");
    }
}
