//! `train sweep`: a tiny grid writes every run and the summary; an interrupted sweep skips the
//! runs that finished.

use crate::{temp_dir, train};

#[test]
fn a_tiny_sweep_writes_every_run_and_resumes_without_redoing_them() {
    let root = temp_dir("sweep");
    let out = root.join("sweep");
    let args = |opts: &str| -> Vec<String> {
        format!(
            "sweep --opts {opts} --lrs 1e-2,1e-1 --out {} -- --data digits --depth 10 --width 1 --train-size 32 \
             --val-size 16 --test-size 16 --batch-size 16 --epochs 1",
            out.display()
        )
        .split_whitespace()
        .map(String::from)
        .collect()
    };
    let run = |opts: &str| {
        let a = args(opts);
        train(&a.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
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
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",done,")), "{csv}");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.starts_with("| optimizer | lr |") && md.contains("| adam | 1e-1 | 0 | done |"), "{md}");
    // The flags the sweep owns cannot be passed to its runs.
    let err = train(&["sweep", "--opts", "alig", "--out", out.to_str().unwrap(), "--", "--lr", "1"]).unwrap_err();
    assert!(format!("{err:#}").contains("--lr"), "{err:#}");
    std::fs::remove_dir_all(&root).ok();
}
