//! Mixed precision (`--precision f16|bf16`): an f16 run tracks the f32 run from the same seed,
//! keeps f32 master weights in its checkpoints, and its dynamic loss scale recovers from an
//! overflow. (Resuming an f16 run exactly is in `resume.rs`; the scaler's rule is a unit test of
//! `train::mixed`.)

use std::path::Path;

use candle_core::DType;

use crate::{assert_refused, read_json, temp_dir, tensors, train};

/// WRN-10-1 on 256 digits with ALI-G (maximal step 0.02, where this small run is not chaotic: the
/// f32 run matches the f64 run to 5 digits), three epochs, in `precision`.
fn digits(out: &Path, precision: &str, extra: &[&str]) -> Vec<String> {
    let flags = format!(
        "--data digits --model wrn --depth 10 --width 1 --train-size 256 --val-size 64 --test-size 64 \
         --batch-size 32 --opt alig --lr 0.02 --epochs 3 --quiet --precision {precision} --out {}",
        out.display()
    );
    flags.split_whitespace().map(String::from).chain(extra.iter().map(|s| s.to_string())).collect()
}

fn run(args: &[String]) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    train(&refs).unwrap();
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn field(m: &serde_json::Value, key: &str) -> f64 {
    m[key].as_f64().unwrap_or_else(|| panic!("metrics row without {key}: {m}"))
}

/// Per epoch: the f16 run's training loss within 1% of the f32 run's and ALI-G's mean unclipped
/// step size `loss / |g|^2` within 5% (from the scaled loss or gradients it would be off by a
/// factor of 65536); the validation accuracy within 0.1. Measured: 0.1-0.15% on the loss, 0.05-1.8%
/// on the step size, 1 validation sample of 64.
#[test]
fn an_f16_run_tracks_the_f32_run_on_the_digits() {
    let root = temp_dir("mixed-f16");
    let (full, half) = (root.join("f32"), root.join("f16"));
    run(&digits(&full, "f32", &[]));
    run(&digits(&half, "f16", &[]));
    let (a, b) = (metrics(&full), metrics(&half));
    assert_eq!(a.len(), 3);
    for (ea, eb) in a.iter().zip(&b) {
        for (key, tolerance) in [("train_loss", 0.01), ("step_size_unclipped", 0.05)] {
            let (x, y) = (field(ea, key), field(eb, key));
            assert!((x - y).abs() <= tolerance * x.abs(), "epoch {}: {key} f32 {x} f16 {y}", ea["epoch"]);
        }
        assert_eq!(field(eb, "loss_scale"), 65536.0, "no overflow at GradScaler's initial scale");
        assert!(ea.get("loss_scale").is_none(), "an f32 run has no loss scale");
    }
    let (acc_a, acc_b) = (field(&a[2], "val_acc"), field(&b[2], "val_acc"));
    assert!((acc_a - acc_b).abs() <= 0.1, "validation accuracy f32 {acc_a} f16 {acc_b}");
    assert!(field(&a[2], "train_loss") < 0.7 * field(&a[0], "train_loss"), "the runs learn");
    // The checkpoint holds the f32 master weights (not values rounded to f16) and f32 state.
    let ckpt = half.join("checkpoints/last");
    let weights = tensors(&ckpt.join("model.safetensors"));
    let conv = &weights["conv1.weight"];
    assert_eq!(conv.dtype(), DType::F32);
    let rounded = conv.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap();
    let differ = conv.ne(&rounded).unwrap().to_dtype(DType::F32).unwrap().sum_all().unwrap();
    assert!(differ.to_scalar::<f32>().unwrap() > 0.0, "the checkpoint's weights are f16 values");
    assert!(tensors(&ckpt.join("optimizer.safetensors")).values().all(|t| t.dtype() != DType::F16));
    assert_eq!(read_json(&ckpt.join("trainer.json"))["loss_scaler"]["scale"], 65536.0);
    // An f32 run starts from it.
    let from = root.join("from-f16");
    let init = ckpt.to_str().unwrap();
    run(&[digits(&from, "f32", &["--init", init]), vec!["--epochs".into(), "1".into()]].concat());
}

/// A loss scale of 2^20 makes the first steps' f16 gradients overflow (measured: 3 of them, up to
/// 2^17): each is skipped and halves the scale until the gradients fit, and the run then learns.
#[test]
fn the_loss_scale_recovers_from_an_overflow() {
    let root = temp_dir("mixed-overflow");
    let out = root.join("run");
    let start = (1u64 << 20) as f64;
    run(&digits(&out, "f16", &["--loss-scale", &start.to_string()]));
    let m = metrics(&out);
    let overflows = m[0]["overflow_steps"].as_u64().unwrap_or(0);
    assert!(overflows >= 1, "no overflow at scale 2^20: {}", m[0]);
    assert_eq!(field(&m[0], "loss_scale"), start / 2f64.powi(overflows as i32), "{}", m[0]);
    assert_eq!(m[0]["skipped_steps"], 0, "an overflow is not a non-finite step");
    for row in &m[1..] {
        assert!(row.get("overflow_steps").is_none(), "the scale overflowed again: {row}");
    }
    assert!(field(&m[2], "train_loss") < 0.7 * field(&m[0], "train_loss"), "{m:?}");
}

/// bf16 on the CPU: candle 0.11 has no bf16 convolution there, so without oneDNN (this build) a CNN
/// is refused by name.
#[test]
fn bf16_convolutions_on_the_cpu_are_refused_with_the_reason() {
    let root = temp_dir("mixed-bf16");
    let err =
        train(&digits(&root.join("run"), "bf16", &[]).iter().map(String::as_str).collect::<Vec<_>>()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("--precision bf16") && msg.contains("no bf16 convolution"), "{msg}");
    assert!(!root.join("run/config.json").exists(), "a refused run leaves no directory behind");
    let scaled = digits(&root.join("scaled"), "bf16", &["--loss-scale", "1024"]);
    assert_refused(&scaled.iter().map(String::as_str).collect::<Vec<_>>(), "--loss-scale is for --precision f16");
}
