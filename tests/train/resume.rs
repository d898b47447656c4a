//! Resume equivalence: a run stopped after an epoch (or killed during a checkpoint write) and
//! resumed ends with the metrics, weights and optimizer state of the run that was never stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{assert_same_runs, metrics_without_time, read_json, temp_dir, train, train_command};

/// A small run with everything that carries state across epochs: momentum buffers, a schedule,
/// dropout masks, a shuffled data order.
fn args(opt: &str, out: &Path, epochs: usize) -> Vec<String> {
    let extra = match opt {
        "sgd" => "--lr 0.05 --schedule step:1:0.5",
        _ => "--lr 1 --max-norm 30",
    };
    format!(
        "--data digits --model wrn --depth 10 --width 1 --dropout 0.3 --train-size 96 --val-size 32 \
         --test-size 32 --batch-size 16 --opt {opt} --momentum 0.9 {extra} --quiet --epochs {epochs} --out {}",
        out.display()
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn run(args: &[String]) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    train(&refs).unwrap();
}

#[test]
fn two_epochs_straight_equal_one_epoch_resume_one_epoch() {
    let root = temp_dir("resume");
    for opt in ["alig", "sgd"] {
        let (straight, split) = (root.join(format!("{opt}-straight")), root.join(format!("{opt}-split")));
        run(&args(opt, &straight, 2));
        run(&args(opt, &split, 1));
        assert_eq!(metrics_without_time(&split).len(), 1);
        train(&["--resume", split.to_str().unwrap(), "--epochs", "2", "--quiet"]).unwrap();
        assert_same_runs(&straight, &split);
    }
}

/// f16 with a loss scale that overflows in the first epoch: the resumed run must continue from
/// the scale the checkpoint holds (not the initial one) and from the f32 master weights.
#[test]
fn an_f16_run_resumes_with_its_master_weights_and_loss_scale() {
    let root = temp_dir("resume-f16");
    let f16 = |out: &Path, epochs| {
        let extra = ["--precision", "f16", "--loss-scale", "1048576"].map(String::from);
        [args("alig", out, epochs), extra.to_vec()].concat()
    };
    let (straight, split) = (root.join("straight"), root.join("split"));
    run(&f16(&straight, 2));
    run(&f16(&split, 1));
    let scaler = read_json(&split.join("checkpoints/last/trainer.json"))["loss_scaler"].clone();
    assert!(scaler["scale"].as_f64().unwrap() < 1048576.0, "no overflow in the first epoch: {scaler}");
    train(&["--resume", split.to_str().unwrap(), "--epochs", "2", "--quiet"]).unwrap();
    assert_same_runs(&straight, &split);
}

#[test]
fn a_run_killed_during_a_checkpoint_write_resumes_from_the_last_complete_one() {
    let root = temp_dir("kill");
    let (straight, killed) = (root.join("straight"), root.join("killed"));
    run(&args("alig", &straight, 3));
    // The child holds each checkpoint write open for a while between its files and its rename.
    let mut child = train_command(&args("alig", &killed, 3).iter().map(String::as_str).collect::<Vec<_>>())
        .env("TRAIN_FAULT_PAUSE_MS", "3000")
        .spawn()
        .unwrap();
    let ckpt = killed.join("checkpoints");
    let deadline = Instant::now() + Duration::from_secs(300);
    // Wait for the second write of `last`: a complete `last` and a `last.tmp` being written.
    while !(ckpt.join("last/trainer.json").is_file() && ckpt.join("last.tmp/trainer.json").is_file()) {
        assert!(Instant::now() < deadline, "the child never reached its second checkpoint");
        assert!(child.try_wait().unwrap().is_none(), "the child ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let epoch = |d: &Path| read_json(&d.join("trainer.json"))["epoch"].as_u64().unwrap();
    assert_eq!(epoch(&ckpt.join("last")), 1, "the complete checkpoint is the first epoch's");
    train(&["--resume", killed.to_str().unwrap(), "--quiet"]).unwrap();
    assert!(!ckpt.join("last.tmp").exists() || epoch(&ckpt.join("last")) == 3);
    assert_same_runs(&straight, &killed);
}

/// SIGKILL at random moments of the run (with and without checkpoint writes held open), then `--resume`
/// (or a fresh start when the run had not written its configuration yet): every trial ends with
/// the uninterrupted run's metrics, weights and optimizer state.
#[test]
fn twenty_random_kills_then_resume_equal_the_uninterrupted_run() {
    let root = temp_dir("kills");
    let small = |out: &Path| -> Vec<String> {
        format!(
            "--data digits --depth 10 --width 1 --dropout 0.2 --train-size 48 --val-size 16 --test-size 16 \
             --batch-size 16 --opt alig --lr 1 --momentum 0.9 --quiet --epochs 3 --out {}",
            out.display()
        )
        .split_whitespace()
        .map(String::from)
        .collect()
    };
    let straight = root.join("straight");
    run(&small(&straight));
    // How long a whole child run takes, with and without held checkpoint writes: the kills land
    // at random moments within it, whatever the machine's speed.
    let child_ms = |dir: &Path, pause: &str| {
        let start = Instant::now();
        let args = small(dir);
        let status = train_command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("TRAIN_FAULT_PAUSE_MS", pause)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_dir_all(dir).ok();
        start.elapsed().as_millis() as u64
    };
    let lengths = [child_ms(&root.join("timing-150"), "150"), child_ms(&root.join("timing-0"), "0")];
    let mut rng = data::rng::Rng::new(7, 0x4b11);
    let mut killed_mid_run = 0;
    for trial in 0..20 {
        let dir = root.join(format!("trial-{trial}"));
        let args = small(&dir);
        let (pause, length) = if trial % 2 == 0 { ("150", lengths[0]) } else { ("0", lengths[1]) };
        let mut child = train_command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("TRAIN_FAULT_PAUSE_MS", pause)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.below(length * 9 / 10)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok();
        child.wait().unwrap();
        if dir.join("config.json").exists() {
            train(&["--resume", dir.to_str().unwrap(), "--quiet"]).unwrap_or_else(|e| panic!("trial {trial}: {e:#}"));
        } else {
            run(&args);
        }
        assert_same_runs(&straight, &dir);
        std::fs::remove_dir_all(&dir).ok();
    }
    assert!(killed_mid_run >= 10, "only {killed_mid_run} of 20 kills hit a running process");
}
