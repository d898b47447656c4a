//! The step loop reads the device once per step: the loss, the gradient norm (for the finiteness
//! check) and the running meters in one combined read, plus one read of the meters at the end of
//! the epoch; an evaluation reads once in all. Counted through `train::trainer::host`, the one
//! helper every read of the trainer goes through.

use train::cli::TrainArgs;
use train::run::build;
use train::task::Split;
use train::trainer::{evaluate, host, train_one_epoch, OnNonFinite, StepOptions};

use crate::{temp_dir, tiny_snli, TINY};

fn reads_of_one_epoch(flags: &[&str]) -> (u64, u64, u64) {
    let cfg = train::config::resolve(&TrainArgs::from_flags(flags).unwrap()).unwrap();
    let mut built = build::model(&cfg, false, true).unwrap();
    let mut learner = build::learner(&cfg, &mut built).unwrap();
    let task = build::task(&cfg, built.model, &built.device, true, data::Shard::WHOLE).unwrap();
    let how = StepOptions {
        clip_grad_norm: cfg.optimizer.clip_grad_norm,
        seed: 0,
        quiet: true,
        on_nonfinite: OnNonFinite::Stop,
        accumulate: cfg.data.accumulate,
        comm: std::sync::Arc::new(train::dist::Single),
    };
    let (before, mut step) = (host::reads(), 0);
    let r = train_one_epoch(task.as_ref(), &mut learner, 0, &mut step, &how).unwrap();
    assert_eq!(r.steps, step);
    let during = host::reads() - before;
    let before = host::reads();
    evaluate(task.as_ref(), Split::Val, true, &train::dist::Single).unwrap();
    (step, during, host::reads() - before)
}

#[test]
fn a_training_step_reads_the_device_once() {
    let root = temp_dir("host-reads");
    let snli = tiny_snli(&root);
    let snli = snli.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        [&TINY[..], &["--opt", "alig"]].concat(),
        [&TINY[..], &["--opt", "alig", "--precision", "f16"]].concat(),
        [&TINY[..], &["--opt", "alig", "--accumulate", "4", "--ema", "0.99"]].concat(),
        [&TINY[..], &["--opt", "sgd", "--lr", "0.1", "--clip-grad-norm", "1"]].concat(),
        [&TINY[..], &["--opt", "l4adam", "--model", "densenet", "--depth", "10", "--growth", "4"]].concat(),
        vec!["--data", "snli", "--data-dir", snli, "--hidden", "4", "--batch-size", "4", "--opt", "adam"],
        vec!["--data", "repeat-copy", "--steps-per-epoch", "3", "--batch-size", "2", "--hidden", "8", "--opt", "alig"],
    ];
    for flags in cases {
        let (steps, train_reads, eval_reads) = reads_of_one_epoch(&flags);
        assert!(steps >= 2, "{flags:?}: {steps} steps");
        assert_eq!(train_reads, steps + 1, "{flags:?}: {train_reads} reads for {steps} steps");
        assert_eq!(eval_reads, 1, "{flags:?}: an evaluation read {eval_reads} times");
    }
}

/// The count above sees only reads made through `host`: the step loop's code (trainer, tasks,
/// losses) must make no other (`to_scalar`, `to_vec*`, a copy to the CPU).
#[test]
fn every_read_of_the_step_loop_goes_through_the_helper() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("train/src");
    let mut files = vec![src.join("loss.rs"), src.join("mixed.rs")];
    for dir in ["trainer", "task"] {
        for e in std::fs::read_dir(src.join(dir)).unwrap().flatten() {
            files.push(e.path());
        }
    }
    for f in files.iter().filter(|f| !f.ends_with("trainer/host.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for needle in ["to_scalar", "to_vec0", "to_vec1", "to_vec2", "to_vec3", "Device::Cpu)"] {
            assert!(!code.contains(needle), "{} reads the device with {needle} outside trainer/host.rs", f.display());
        }
    }
}
