//! `train sweep`: a tiny grid writes every run and the summary; an interrupted sweep skips the
//! runs that finished.

use crate::{read_json, temp_dir, train, train_tiny, TINY};

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
    assert_eq!(png_size(&out.join("final_objective_vs_lr.png")), (800, 500));
    check_svg(&out.join("final_objective_vs_lr.svg"), 2);
    // ALI-G without a maximal learning rate: a dashed line across the grid.
    train(&[&["sweep", "--opts", "alig", "--lrs", "none", "--out", out.to_str().unwrap(), "--"], &TINY[..]].concat())
        .unwrap();
    check_svg(&out.join("final_objective_vs_lr.svg"), 3);
    let svg = std::fs::read_to_string(out.join("final_objective_vs_lr.svg")).unwrap();
    assert!(svg.contains("alig s0 (no max lr)") && svg.contains("stroke-dasharray"), "{svg}");
    // L4 has no learning rate: it sweeps its fraction.
    let l4 = root.join("l4");
    let l4_sweep = ["sweep", "--opts", "l4mom", "--fractions", "0.1,0.5", "--out", l4.to_str().unwrap(), "--"];
    train(&[&l4_sweep[..], &TINY[..]].concat()).unwrap();
    for dir in ["l4mom-f0.1-s0", "l4mom-f0.5-s0"] {
        let cfg = std::fs::read_to_string(l4.join(dir).join("config.json")).unwrap();
        assert!(cfg.contains(&format!("\"fraction\": {}", &dir[7..10])), "{dir}: {cfg}");
    }
    assert_eq!(png_size(&l4.join("final_objective_vs_fraction.png")), (800, 500));
    check_svg(&l4.join("final_objective_vs_fraction.svg"), 1);
    assert!(!l4.join("final_objective_vs_lr.svg").exists(), "a learning-rate chart without learning rates");
    // The flags the sweep owns cannot be passed to its runs.
    let err = train(&["sweep", "--opts", "alig", "--out", out.to_str().unwrap(), "--", "--lr", "1"]).unwrap_err();
    assert!(format!("{err:#}").contains("--lr"), "{err:#}");
    std::fs::remove_dir_all(&root).ok();
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

fn check_svg(path: &std::path::Path, lines: usize) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(s.contains("width=\"800\" height=\"500\""));
    assert_eq!(s.matches("<polyline").count(), lines, "{}", path.display());
}

#[test]
fn plots_and_an_export_that_round_trips_through_init() {
    let root = temp_dir("plot-export");
    let runs: Vec<_> = ["a", "b"].iter().map(|n| root.join(n)).collect();
    for (k, r) in runs.iter().enumerate() {
        let seed = k.to_string();
        train_tiny(&["--epochs", "2", "--seed", &seed, "--out", r.to_str().unwrap()]).unwrap();
    }
    let plots = root.join("plots");
    train(&["plot", runs[0].to_str().unwrap(), runs[1].to_str().unwrap(), "--out", plots.to_str().unwrap()]).unwrap();
    for name in ["objective", "accuracy", "step_size"] {
        assert_eq!(png_size(&plots.join(format!("{name}.png"))), (800, 500));
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
    let eval = root.join("eval");
    train(&[
        "--init",
        export.to_str().unwrap(),
        "--eval-only",
        "--val-size",
        "16",
        "--test-size",
        "16",
        "--quiet",
        "--out",
        eval.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(read_json(&eval.join("eval.json"))["test_acc"], read_json(&runs[0].join("summary.json"))["test_acc"]);
    // An export never overwrites weights already there.
    assert!(train(&["export", runs[1].to_str().unwrap(), "--to", export.to_str().unwrap()]).is_err());
    std::fs::remove_dir_all(&root).ok();
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
    std::fs::remove_dir_all(&root).ok();
}
