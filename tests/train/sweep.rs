//! `train sweep`: a tiny grid writes every run and the summary; an interrupted sweep skips the
//! runs that finished.

use crate::{assert_refused, evaluate, read_json, temp_dir, train, train_tiny, TINY};

#[test]
fn a_tiny_sweep_writes_every_run_and_resumes_without_redoing_them() {
    let root = temp_dir("sweep");
    let out = root.join("sweep");
    let run = |opts: &str| {
        train(
            &[&["sweep", "--opts", opts, "--lrs", "1e-2,1e-1", "--out", out.to_str().unwrap(), "--"], &TINY[..]]
                .concat(),
        )
        .unwrap();
    };
    // First only ALI-G (as if the sweep had been interrupted after it), then the whole grid.
    run("alig");
    let alig_summary = out.join("alig-lr1e-2-s0/summary.json");
    let stamp = std::fs::metadata(&alig_summary).unwrap().modified().unwrap();
    run("alig,adam");
    assert_eq!(std::fs::metadata(&alig_summary).unwrap().modified().unwrap(), stamp, "a finished run was redone");
    for dir in ["alig-lr1e-2-s0", "alig-lr1e-1-s0", "adam-lr1e-2-s0", "adam-lr1e-1-s0"] {
        assert!(out.join(dir).join("summary.json").is_file(), "{dir}");
    }
    // A later sweep into the same folder keeps the earlier runs in its summary.
    run("adam");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",done,")), "{csv}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.starts_with("| optimizer | lr |") && md.contains("| adam | 1e-1 | 0 | done |"), "{md}");
    assert_eq!(png_size(&out.join("final_objective_vs_lr.png")), train::plot::SIZE);
    check_svg(&out.join("final_objective_vs_lr.svg"), 2);
    // ALI-G without a maximal learning rate: a dashed line across the grid.
    train(&[&["sweep", "--opts", "alig", "--lrs", "none", "--out", out.to_str().unwrap(), "--"], &TINY[..]].concat())
        .unwrap();
    check_svg(&out.join("final_objective_vs_lr.svg"), 3);
    let svg = std::fs::read_to_string(out.join("final_objective_vs_lr.svg")).unwrap();
    assert!(svg.contains("alig s0 (no max lr)"), "{svg}");
    // L4 has no learning rate: it sweeps its fraction.
    let l4 = root.join("l4");
    let l4_sweep = ["sweep", "--opts", "l4mom", "--fractions", "0.1,0.5", "--out", l4.to_str().unwrap(), "--"];
    train(&[&l4_sweep[..], &TINY[..]].concat()).unwrap();
    for dir in ["l4mom-f0.1-s0", "l4mom-f0.5-s0"] {
        let cfg = std::fs::read_to_string(l4.join(dir).join("config.json")).unwrap();
        assert!(cfg.contains(&format!("\"fraction\": {}", &dir[7..10])), "{dir}: {cfg}");
    }
    assert_eq!(png_size(&l4.join("final_objective_vs_fraction.png")), train::plot::SIZE);
    check_svg(&l4.join("final_objective_vs_fraction.svg"), 1);
    assert!(!l4.join("final_objective_vs_lr.svg").exists(), "a learning-rate chart without learning rates");
    // The flags the sweep owns cannot be passed to its runs.
    assert_refused(&["sweep", "--opts", "alig", "--out", out.to_str().unwrap(), "--", "--lr", "1"], "--lr");
}

/// Three seeds per point: the summary gives each point's mean, spread and count, the grid its
/// mean ± std, and the chart one line per optimizer with a band.
#[test]
fn a_sweep_over_seeds_reports_their_mean_and_spread() {
    let root = temp_dir("sweep-seeds");
    let out = root.join("sweep");
    let grid =
        ["sweep", "--opts", "alig", "--lrs", "1e-2,1e-1", "--seeds", "0,1,2", "--out", out.to_str().unwrap(), "--"];
    train(&[&grid[..], &TINY[..]].concat()).unwrap();
    let csv = std::fs::read_to_string(out.join("summary_seeds.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {csv}"));
    for r in &rows {
        assert_eq!((r[col("runs")], r[col("done")], r[col("final_train_loss_count")]), ("3", "3", "3"), "{csv}");
        let (mean, std) = (
            r[col("final_train_loss_mean")].parse::<f64>().unwrap(),
            r[col("final_train_loss_std")].parse::<f64>().unwrap(),
        );
        let (lo, hi) = (
            r[col("final_train_loss_min")].parse::<f64>().unwrap(),
            r[col("final_train_loss_max")].parse::<f64>().unwrap(),
        );
        assert!(std > 0.0 && lo <= mean && mean <= hi && lo < hi, "{csv}");
    }
    // The mean and the sample standard deviation of the three runs' own final losses.
    let finals: Vec<f64> = (0..3)
        .map(|s| read_json(&out.join(format!("alig-lr1e-1-s{s}/summary.json")))["final_train_loss"].as_f64().unwrap())
        .collect();
    let mean = finals.iter().sum::<f64>() / 3.0;
    let std = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let row = rows.iter().find(|r| r[1] == "1e-1").unwrap();
    assert!((row[col("final_train_loss_mean")].parse::<f64>().unwrap() - mean).abs() < 1e-12 * mean.max(1.0));
    assert!((row[col("final_train_loss_std")].parse::<f64>().unwrap() - std).abs() < 1e-12 * std.max(1.0));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Across seeds") && md.contains("| alig | 1e-1 | 3 | 3 |"), "{md}");
    let grid_md = std::fs::read_to_string(out.join("summary_grid.md")).unwrap();
    assert!(grid_md.lines().any(|l| l.starts_with("| alig |") && l.contains(" ± ") && l.contains("(3)")), "{grid_md}");
    let svg = std::fs::read_to_string(out.join("final_objective_vs_lr.svg")).unwrap();
    assert!(svg.contains("alig (mean ± std, 3 seeds)") && svg.contains("<polygon"), "no band in the chart");
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// An SVG chart of `SIZE` with `lines` series: each has one legend entry, its swatch the only
/// path drawn 3 pixels wide.
fn check_svg(path: &std::path::Path, lines: usize) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{}", path.display());
    let (w, h) = train::plot::SIZE;
    assert!(s.contains(&format!("width=\"{w}\" height=\"{h}\"")), "{}", path.display());
    assert_eq!(s.matches("stroke-width=\"3\"").count(), lines, "{}", path.display());
}

#[test]
fn plots_and_an_export_that_round_trips_through_init() {
    let root = temp_dir("plot-export");
    // a and b differ only by their seed: one line, their mean, with a band; c has its own.
    let runs: Vec<_> = ["a-s0", "a-s1", "c"].iter().map(|n| root.join(n)).collect();
    for (k, r) in runs.iter().enumerate() {
        let (seed, lr) = [("0", "1"), ("1", "1"), ("0", "0.5")][k];
        train_tiny(&["--epochs", "2", "--seed", seed, "--lr", lr, "--out", r.to_str().unwrap()]).unwrap();
    }
    let plots = root.join("plots");
    let mut plot = vec!["plot"];
    plot.extend(runs.iter().map(|r| r.to_str().unwrap()));
    train(&[&plot[..], &["--out", plots.to_str().unwrap()]].concat()).unwrap();
    let svg = std::fs::read_to_string(plots.join("objective.svg")).unwrap();
    assert!(svg.contains("a (mean ± std of 2 seeds)") && svg.contains("<polygon") && svg.contains("\nc\n"), "{svg}");
    for name in ["objective", "accuracy", "step_size"] {
        assert_eq!(png_size(&plots.join(format!("{name}.png"))), train::plot::SIZE);
    }
    check_svg(&plots.join("objective.svg"), 2);
    check_svg(&plots.join("accuracy.svg"), 4); // train and val per run
    check_svg(&plots.join("step_size.svg"), 4); // clipped and unclipped per run (ALI-G)

    let export = root.join("export");
    train(&["export", runs[0].to_str().unwrap(), "--to", export.to_str().unwrap()]).unwrap();
    for f in [
        "model.safetensors",
        "config.json",
        "README.md",
        "metrics.jsonl",
        "summary.json",
        "objective.svg",
        "objective.png",
    ] {
        assert!(export.join(f).is_file(), "export lacks {f}");
    }
    let card = std::fs::read_to_string(export.join("README.md")).unwrap();
    assert!(card.contains("train --model wrn --data digits --opt alig") && card.contains("--depth 10"), "{card}");
    assert_eq!(evaluate(&export, &root.join("eval"))["test_acc"], read_json(&runs[0].join("summary.json"))["test_acc"]);
    // An export never overwrites weights already there.
    assert!(train(&["export", runs[1].to_str().unwrap(), "--to", export.to_str().unwrap()]).is_err());
}

#[test]
fn a_diverged_run_is_reported_and_not_run_again() {
    let root = temp_dir("sweep-diverged");
    let out = root.join("sweep");
    let sweep = |opts: &str| {
        let args = ["sweep", "--opts", opts, "--lrs", "1e-2,1e30", "--out", out.to_str().unwrap(), "--"];
        train(&[&args[..], &TINY[..], &["--momentum", "0"]].concat()).unwrap();
    };
    sweep("sgd");
    let marker = out.join("sgd-lr1e30-s0/diverged.txt");
    assert!(std::fs::read_to_string(&marker).unwrap().contains("non-finite"));
    let stamp = std::fs::metadata(&marker).unwrap().modified().unwrap();
    // A second call (here through another sweep into the folder) neither reruns nor forgets it.
    sweep("sgd");
    assert_eq!(std::fs::metadata(&marker).unwrap().modified().unwrap(), stamp, "the diverged run ran again");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains("sgd,1e30,0,diverged,") && csv.contains("sgd,1e-2,0,done,"), "{csv}");
    let grid = std::fs::read_to_string(out.join("summary_grid.md")).unwrap();
    assert!(grid.contains("| optimizer \\ learning rate | 1e-2 | 1e30 |"), "{grid}");
    assert!(grid.lines().any(|l| l.starts_with("| sgd s0 | ") && l.ends_with(" | diverged |")), "{grid}");
}
