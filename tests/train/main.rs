//! End-to-end tests of the `train` binary's behaviour (`train::main_with_args`, what `main` runs):
//! every model x optimizer, resume equivalence, kill and resume, checkpoint interop (files and a
//! hub cache on disk), and errors. Processes that must be killed or whose exit code matters are
//! this test binary re-executed into [`child_process_entry`].

mod check;
mod config;
mod errors;
mod fuzz;
mod host_reads;
mod hygiene;
mod interop;
mod mixed;
mod presets;
mod resume;
#[path = "../common/scratch.rs"]
mod scratch;
mod smoke;
#[path = "../common/snli.rs"]
mod snli_fixture;
mod sweep;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use scratch::Scratch;

const CHILD_ENV: &str = "TRAIN_TEST_CHILD_ARGS";

/// The reference's WRN-16-2 for CIFAR-10, the model of the golden `zoo/wrn-16-2` files.
const WRN_16_2: &[&str] = &["--model", "wrn", "--depth", "16", "--width", "2", "--data", "cifar10"];

/// In a child process: runs the arguments it was given exactly as the binary would, and exits.
#[test]
fn child_process_entry() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = serde_json::from_str(&args).unwrap();
        std::process::exit(train::main_with_args(&args));
    }
}

/// `train ARGS...` as a child process.
pub fn train_command(args: &[&str]) -> Command {
    let mut full = vec!["train".to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["child_process_entry", "--exact", "--nocapture", "--test-threads", "1", "--quiet"])
        .env(CHILD_ENV, serde_json::to_string(&full).unwrap());
    c
}

pub fn train_output(args: &[&str]) -> Output {
    train_command(args).output().unwrap()
}

/// `train ARGS...` in this process.
pub fn train(args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["train".to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    train::run(&full)
}

/// `train ARGS...` in this process must fail, with an error (and its causes) that names `needle`.
pub fn assert_refused(args: &[&str], needle: &str) {
    match train(args) {
        Ok(()) => panic!("train {} succeeded", args.join(" ")),
        Err(e) => assert!(format!("{e:#}").contains(needle), "train {}: {e:#}", args.join(" ")),
    }
}

/// The tests' smallest real run: WRN-10-1 on a slice of the digits, one epoch, quiet. Flags given
/// after it win.
pub const TINY: [&str; 17] = [
    "--data",
    "digits",
    "--depth",
    "10",
    "--width",
    "1",
    "--train-size",
    "32",
    "--val-size",
    "16",
    "--test-size",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--quiet",
];

/// A scratch folder `name` holding `run/`, a finished [`TINY`] run.
pub fn tiny_run(name: &str) -> (Scratch, PathBuf) {
    let root = temp_dir(name);
    let run = root.join("run");
    train_tiny(&["--out", run.to_str().unwrap()]).unwrap();
    (root, run)
}

/// `train --init INIT --eval-only` with TINY's validation and test sizes and no model flag (the
/// checkpoint's metadata supplies them) into `out`: its `eval.json`.
pub fn evaluate(init: &Path, out: &Path) -> serde_json::Value {
    let (init, out_s) = (init.to_str().unwrap(), out.to_str().unwrap());
    train(&["--init", init, "--eval-only", "--val-size", "16", "--test-size", "16", "--quiet", "--out", out_s])
        .unwrap();
    read_json(&out.join("eval.json"))
}

/// `train TINY... extra...` in this process.
pub fn train_tiny(extra: &[&str]) -> anyhow::Result<()> {
    train(&[&TINY[..], extra].concat())
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The test's scratch folder (removed when it passes).
pub fn temp_dir(name: &str) -> Scratch {
    Scratch::new("train-test", name)
}

pub fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden")
}

pub fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Bit-identical tensors under the same names.
pub fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    let mut keys: Vec<&String> = ta.keys().collect();
    keys.sort();
    assert_eq!(keys.len(), tb.len(), "{} and {} hold different tensors", a.display(), b.display());
    for k in keys {
        let (x, y) = (&ta[k], &tb[k]);
        assert_eq!(x.dims(), y.dims(), "{k}");
        let bytes = |t: &Tensor| {
            let t = t.flatten_all().unwrap();
            match t.dtype() {
                candle_core::DType::I64 => t.to_vec1::<i64>().unwrap().iter().map(|v| *v as u64).collect::<Vec<u64>>(),
                _ => t
                    .to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits() as u64)
                    .collect(),
            }
        };
        assert!(bytes(x) == bytes(y), "{k} differs between {} and {}", a.display(), b.display());
    }
}

/// Two run directories that ended the same: metrics (but their times), the last checkpoint's
/// weights and optimizer state bit for bit, and its `trainer.json`.
pub fn assert_same_runs(a: &Path, b: &Path) {
    assert_eq!(metrics_without_time(a), metrics_without_time(b));
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_same_tensors(&a.join("checkpoints/last").join(f), &b.join("checkpoints/last").join(f));
    }
    let trainer = |d: &Path| std::fs::read_to_string(d.join("checkpoints/last/trainer.json")).unwrap();
    assert_eq!(trainer(a), trainer(b));
}

/// `metrics.jsonl` rows without their wall-clock field.
pub fn metrics_without_time(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// A tiny SNLI folder (12 / 6 / 6 pairs) for the NLI model.
pub fn tiny_snli(dir: &Path) -> PathBuf {
    snli_fixture::tiny_snli(dir, [12, 6, 6])
}
