//! Line charts as SVG (axes, ticks, labels, legend) and PNG (the same picture rasterised, tick
//! values in a small built-in pixel font; titles and legend names are in the SVG), without system
//! fonts or a plotting dependency. `train plot RUN_DIR... --out DIR` draws any set of runs:
//! training objective and accuracy against epochs, and the step size (ALI-G's clipped and
//! unclipped, log scale); `train sweep` adds the final objective against the learning rate.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::PlotArgs;
use crate::metrics::MetricsLog;

const W: u32 = 800;
const H: u32 = 500;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
    log_y: bool,
}

impl Frame {
    fn tr(v: f64, log: bool) -> f64 {
        if log {
            v.log10()
        } else {
            v
        }
    }
    fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let fx = (Self::tr(x, self.log_x) - self.x.0) / (self.x.1 - self.x.0);
        let fy = (Self::tr(y, self.log_y) - self.y.0) / (self.y.1 - self.y.0);
        (LEFT + fx * (W as f64 - LEFT - RIGHT), H as f64 - BOTTOM - fy * (H as f64 - TOP - BOTTOM))
    }
}

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values.filter(|v| v.is_finite() && (!log || *v > 0.0)).map(|v| Frame::tr(v, log)).collect();
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log {
        return (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5_f64.max(lo.abs() * 0.1) };
    (lo - pad, hi + pad)
}

/// `t` with the characters XML reserves escaped.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Tick positions in the transformed space.
fn ticks(r: (f64, f64), log: bool) -> Vec<f64> {
    if log {
        let step = ((r.1 - r.0) / 8.0).ceil().max(1.0);
        let mut t = r.0;
        let mut out = vec![];
        while t <= r.1 + 1e-9 {
            out.push(t);
            t += step;
        }
        return out;
    }
    let raw = (r.1 - r.0) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut t = (r.0 / step).ceil() * step;
    let mut out = vec![];
    while t <= r.1 + 1e-12 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn label(t: f64, log: bool) -> String {
    if log {
        return format!("1e{}", t.round() as i64);
    }
    if t != 0.0 && (t.abs() >= 1e4 || t.abs() < 1e-3) {
        return format!("{t:.0e}");
    }
    let s = format!("{t:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Chart {
    fn frame(&self) -> Frame {
        let xs = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        Frame { x: range(xs, self.log_x), y: range(ys, self.log_y), log_x: self.log_x, log_y: self.log_y }
    }

    fn visible(&self, s: &Series) -> Vec<(f64, f64)> {
        s.points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0) && (!self.log_y || *y > 0.0))
            .copied()
            .collect()
    }

    /// The chart as an SVG document: frame, grid and tick labels, title and axis names, lines and
    /// legend.
    pub fn svg(&self) -> String {
        let f = self.frame();
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        self.svg_axes(&f, &mut s);
        self.svg_labels(&mut s);
        self.svg_series(&f, &mut s);
        s + "</svg>\n"
    }

    /// The frame, the grid lines and the tick values.
    fn svg_axes(&self, f: &Frame, s: &mut String) {
        let (x0, y0, x1, y1) = (LEFT, H as f64 - BOTTOM, W as f64 - RIGHT, TOP);
        let _ = writeln!(
            s,
            "<rect x=\"{x0}\" y=\"{y1}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
            x1 - x0,
            y0 - y1
        );
        let at = |t: f64, log: bool| if log { 10f64.powf(t) } else { t };
        for t in ticks(f.x, f.log_x) {
            let (px, _) = f.px(at(t, f.log_x), at(f.y.0, f.log_y));
            let _ = writeln!(s, "<line x1=\"{px:.1}\" y1=\"{y0}\" x2=\"{px:.1}\" y2=\"{y1}\" stroke=\"#ddd\"/>");
            let tick = label(t, f.log_x);
            let _ = writeln!(s, "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>", y0 + 16.0);
        }
        for t in ticks(f.y, f.log_y) {
            let (_, py) = f.px(at(f.x.0, f.log_x), at(t, f.log_y));
            let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{py:.1}\" x2=\"{x1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>");
            let tick = label(t, f.log_y);
            let _ = writeln!(s, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text>", x0 - 6.0, py + 4.0);
        }
    }

    /// The title and the axis names.
    fn svg_labels(&self, s: &mut String) {
        let (x0, y0, x1, y1) = (LEFT, H as f64 - BOTTOM, W as f64 - RIGHT, TOP);
        let mid = (x0 + x1) / 2.0;
        let (title, x_label, y_label) = (esc(&self.title), esc(&self.x_label), esc(&self.y_label));
        let _ = writeln!(s, "<text x=\"{mid}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{title}</text>");
        let _ = writeln!(s, "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>", H as f64 - 18.0);
        let _ = writeln!(
            s,
            "<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">{y_label}</text>",
            (y0 + y1) / 2.0
        );
    }

    /// One polyline per series, and its legend entry.
    fn svg_series(&self, f: &Frame, s: &mut String) {
        let (x1, y1) = (W as f64 - RIGHT, TOP);
        for (k, series) in self.series.iter().enumerate() {
            let [r, g, b] = COLORS[k % COLORS.len()];
            let pts: Vec<String> = self
                .visible(series)
                .iter()
                .map(|&(x, y)| {
                    let (px, py) = f.px(x, y);
                    format!("{px:.1},{py:.1}")
                })
                .collect();
            let dash = if series.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"2\"{dash}/>",
                pts.join(" ")
            );
            let ly = y1 + 10.0 + 18.0 * k as f64;
            let _ = writeln!(s, "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"3\"{dash}/>", x1 + 10.0, x1 + 30.0);
            let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{}</text>", x1 + 36.0, ly + 4.0, esc(&series.label));
        }
    }

    pub fn png(&self) -> Result<Vec<u8>> {
        let f = self.frame();
        let mut img = image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255]));
        let (x0, y0, x1, y1) = (LEFT, H as f64 - BOTTOM, W as f64 - RIGHT, TOP);
        for t in ticks(f.x, f.log_x) {
            let (px, _) =
                f.px(if f.log_x { 10f64.powf(t) } else { t }, if f.log_y { 10f64.powf(f.y.0) } else { f.y.0 });
            line(&mut img, (px, y0), (px, y1), [221, 221, 221], 1);
            let text = label(t, f.log_x);
            draw_text(&mut img, px - 4.0 * text.len() as f64, y0 + 8.0, &text);
        }
        for t in ticks(f.y, f.log_y) {
            let (_, py) =
                f.px(if f.log_x { 10f64.powf(f.x.0) } else { f.x.0 }, if f.log_y { 10f64.powf(t) } else { t });
            line(&mut img, (x0, py), (x1, py), [221, 221, 221], 1);
            let text = label(t, f.log_y);
            draw_text(&mut img, x0 - 8.0 - 8.0 * text.len() as f64, py - 5.0, &text);
        }
        for (a, b) in [((x0, y0), (x1, y0)), ((x0, y1), (x1, y1)), ((x0, y0), (x0, y1)), ((x1, y0), (x1, y1))] {
            line(&mut img, a, b, [0, 0, 0], 1);
        }
        for (k, series) in self.series.iter().enumerate() {
            let c = COLORS[k % COLORS.len()];
            let pts: Vec<(f64, f64)> = self.visible(series).iter().map(|&(x, y)| f.px(x, y)).collect();
            for w in pts.windows(2) {
                line(&mut img, w[0], w[1], c, 2);
            }
            let ly = y1 + 10.0 + 18.0 * k as f64;
            line(&mut img, (x1 + 10.0, ly), (x1 + 30.0, ly), c, 3);
        }
        let mut out = std::io::Cursor::new(vec![]);
        img.write_to(&mut out, image::ImageFormat::Png).context("encoding a PNG")?;
        Ok(out.into_inner())
    }

    /// Writes `dir/name.svg` and `dir/name.png`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
        let (svg, png) = (dir.join(format!("{name}.svg")), dir.join(format!("{name}.png")));
        fs::write(&svg, self.svg()).with_context(|| format!("writing {}", svg.display()))?;
        fs::write(&png, self.png()?).with_context(|| format!("writing {}", png.display()))?;
        Ok(vec![svg, png])
    }
}

/// A line of `width` pixels (a square pen, simple DDA).
fn line(img: &mut image::RgbImage, a: (f64, f64), b: (f64, f64), c: [u8; 3], width: i64) {
    let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = ((a.0 + t * (b.0 - a.0)).round() as i64, (a.1 + t * (b.1 - a.1)).round() as i64);
        for dx in 0..width {
            for dy in 0..width {
                let (px, py) = (x + dx - width / 2, y + dy - width / 2);
                if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                    img.put_pixel(px as u32, py as u32, image::Rgb(c));
                }
            }
        }
    }
}

/// 3x5 glyphs (rows top to bottom, 3 bits each) for tick values.
fn glyph(ch: char) -> [u8; 5] {
    match ch {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        _ => [0; 5],
    }
}

/// Text at 2x scale (8 pixels per character).
fn draw_text(img: &mut image::RgbImage, x: f64, y: f64, text: &str) {
    for (i, ch) in text.chars().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let px = x as i64 + 8 * i as i64 + 2 * col + dx;
                        let py = y as i64 + 2 * row as i64 + dy;
                        if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                            img.put_pixel(px as u32, py as u32, image::Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
}

fn run_name(run: &Path) -> String {
    run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().to_string())
}

/// The charts of a set of runs, written into `out`: objective, accuracy, and step size (when any
/// run reports one). Returns the files written.
pub fn plot_runs(runs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut logs = vec![];
    for r in runs {
        let rows = MetricsLog::new(r).read()?;
        if rows.is_empty() {
            anyhow::bail!("{}: no metrics.jsonl rows to plot", r.display())
        }
        logs.push((run_name(r), rows));
    }
    let series =
        |pick: &dyn Fn(&crate::metrics::EpochMetrics) -> Option<f64>, suffix: &str, dashed: bool| -> Vec<Series> {
            logs.iter()
                .map(|(name, rows)| Series {
                    label: format!("{name}{suffix}"),
                    points: rows.iter().filter_map(|m| pick(m).map(|v| (m.epoch as f64, v))).collect(),
                    dashed,
                })
                .filter(|s| !s.points.is_empty())
                .collect()
        };
    let mut files = vec![];
    let objective = Chart {
        title: "Training objective".into(),
        x_label: "epoch".into(),
        y_label: "train loss".into(),
        log_x: false,
        log_y: true,
        series: series(&|m| Some(m.train_loss), "", false),
    };
    files.extend(objective.save(out, "objective")?);
    let mut acc = series(&|m| Some(100.0 * m.train_acc), " train", false);
    acc.extend(series(&|m| Some(100.0 * m.val_acc), " val", true));
    let accuracy = Chart {
        title: "Accuracy".into(),
        x_label: "epoch".into(),
        y_label: "accuracy (%)".into(),
        log_x: false,
        log_y: false,
        series: acc,
    };
    files.extend(accuracy.save(out, "accuracy")?);
    let mut steps = series(&|m| m.step_size, " step", false);
    steps.extend(series(&|m| m.step_size_unclipped, " unclipped", true));
    if !steps.is_empty() {
        let chart = Chart {
            title: "Step size (mean per epoch)".into(),
            x_label: "epoch".into(),
            y_label: "step size".into(),
            log_x: false,
            log_y: true,
            series: steps,
        };
        files.extend(chart.save(out, "step_size")?);
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
