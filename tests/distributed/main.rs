//! Data-parallel training under a real MPI launcher (`mpirun`, Open MPI or MPICH; cargo feature
//! `mpi`): `mpirun -np 2 train ...` against `train ...` with the same global batch, resuming
//! across world sizes, and a job whose rank is killed or fails. The processes are this test binary
//! re-executed into [`child_process_entry`] (the binary's `main`, with the `mpi` feature).
//!
//! Tolerances: two processes sum the gradients of their halves in another order than one process
//! sums the whole batch, so numbers agree to rounding, not bit for bit: after 20 steps, within
//! 1e-9 relative in f64 and 1e-4 in f32 (`close`; a checkpoint's tensors relative to their
//! largest value, or to 1e-2 for tensors of smaller values).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use scratch::Scratch;

#[path = "../common/scratch.rs"]
mod scratch;
#[path = "../common/snli.rs"]
mod snli_fixture;

const CHILD_ENV: &str = "TRAIN_TEST_CHILD_ARGS";

/// In a child process: runs its arguments as the `train` binary would, and exits.
#[test]
fn child_process_entry() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = serde_json::from_str(&args).unwrap();
        std::process::exit(train::main_with_args(&args));
    }
}

/// `train ARGS...` as `np` MPI processes (or one plain process for `np == 0`).
fn command(np: usize, args: &[String]) -> Command {
    let mut full = vec!["train".to_string()];
    full.extend(args.iter().cloned());
    let exe = std::env::current_exe().unwrap();
    let child = ["child_process_entry", "--exact", "--nocapture", "--test-threads", "1", "--quiet"];
    let mut c = if np == 0 {
        Command::new(&exe)
    } else {
        let mut c = Command::new("mpirun");
        // Shared memory between local processes; no pinning (each process runs its own threads).
        c.args(["--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "--mca", "btl", "self,vader"])
            .args(["-np", &np.to_string(), "-x", CHILD_ENV, "-x", "RAYON_NUM_THREADS"])
            .arg(&exe);
        c
    };
    c.args(child).env(CHILD_ENV, serde_json::to_string(&full).unwrap()).env("RAYON_NUM_THREADS", "1");
    c
}

fn run(np: usize, args: &[String]) -> Output {
    let out = command(np, args).output().unwrap();
    assert!(out.status.success(), "{np} processes: train {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// The test's scratch folder (removed when it passes).
fn temp_dir(name: &str) -> Scratch {
    Scratch::new("train-dist", name)
}

/// ALI-G with momentum, BatchNorm synchronised and f64 throughout: runs on one process and on
/// several agree to 1e-9.
const SYNCED_ALIG: &str = "--opt alig --lr 0.1 --momentum 0.9 --sync-bn --precision f64";

/// `train FLAGS` in one process into `root/straight`, the run the others are compared against.
fn straight_run(root: &Path, flags: &str) -> PathBuf {
    let straight = root.join("straight");
    run(0, &words(&format!("{flags} --out {}", straight.display())));
    straight
}

/// 160 training digits in global batches of 16: 10 steps an epoch, 20 in two epochs.
const DIGITS: &str = "--data digits --model wrn --depth 10 --width 1 --train-size 160 --val-size 32 \
                      --test-size 48 --batch-size 16 --quiet";

fn close(a: f64, b: f64, tol: f64, what: &str) {
    let scale = a.abs().max(b.abs()).max(1e-3);
    assert!((a - b).abs() <= tol * scale, "{what}: {a} against {b}");
}

/// Every number of `metrics.jsonl` (but the wall clock) and `summary.json`'s test accuracy.
fn assert_close_metrics(a: &Path, b: &Path, tol: f64) {
    let rows = |d: &Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (ra, rb) = (rows(a), rows(b));
    assert_eq!(ra.len(), rb.len(), "epochs logged");
    for (x, y) in ra.iter().zip(&rb) {
        for (k, v) in x.as_object().unwrap() {
            if k == "seconds" {
                continue;
            }
            match (v.as_f64(), y[k].as_f64()) {
                (Some(p), Some(q)) => close(p, q, tol, &format!("{} epoch {} {k}", a.display(), x["epoch"])),
                _ => assert_eq!(v, &y[k], "{k}"),
            }
        }
    }
}

/// Every tensor of the last checkpoint (weights, BatchNorm statistics, optimizer state), within
/// `tol` of the largest magnitude of its tensor (or of 1e-2, for tensors of smaller values).
fn assert_close_checkpoints(a: &Path, b: &Path, tol: f64) {
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let load = |d: &Path| candle_core::safetensors::load(d.join("checkpoints/last").join(f), &Device::Cpu).unwrap();
        let (ta, tb) = (load(a), load(b));
        assert_eq!(ta.len(), tb.len(), "{f}");
        for (name, x) in &ta {
            let values = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            let (x, y) = (values(x), values(&tb[name]));
            // Biases that stay near their zero start are held to 1e-2 times the tolerance.
            let scale = x.iter().fold(1e-2f64, |m, v| m.max(v.abs()));
            let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            assert!(worst <= tol * scale, "{f} {name}: differs by {worst:e} (largest value {scale:e})");
        }
    }
}

/// One process and two, the same global batch, 20 steps: the same run, within 1e-9 in f64 and
/// 1e-4 in f32.
fn equivalent(name: &str, flags: &str, precision: &str) {
    let tol = if precision == "f64" { 1e-9 } else { 1e-4 };
    let root = temp_dir(&format!("{name}-{precision}"));
    let one = root.join("one");
    let two = root.join("two");
    run(0, &words(&format!("{flags} --precision {precision} --out {}", one.display())));
    run(2, &words(&format!("{flags} --precision {precision} --out {}", two.display())));
    assert_close_metrics(&one, &two, tol);
    assert_close_checkpoints(&one, &two, tol);
    let summary = std::fs::read_to_string(two.join("summary.json")).unwrap();
    assert!(summary.contains("\"processes\": 2"), "{summary}");
}

#[test]
fn two_processes_with_synchronised_batch_norm_train_as_one_alig() {
    let flags = format!("{DIGITS} --opt alig --lr 0.1 --momentum 0.9 --sync-bn --epochs 2");
    equivalent("alig", &flags, "f64");
    equivalent("alig", &flags, "f32");
}

#[test]
fn two_processes_train_as_one_sgd_with_a_schedule() {
    // In f64 only: SGD with momentum on BatchNorm over 8-image slices magnifies rounding, and in
    // f32 a BatchNorm bias drifted to 1.8e-2 of its size in 20 steps on an AVX-512 EPYC
    // (2026-12-02), one process against one process with candle's ops as much as against two. The
    // f32 equivalence is checked with ALI-G above.
    let flags = format!("{DIGITS} --opt sgd --lr 0.05 --momentum 0.9 --schedule step:1:0.5 --sync-bn --epochs 2");
    equivalent("sgd", &flags, "f64");
}

#[test]
fn two_processes_train_as_one_dnc_l4_and_alig() {
    // No BatchNorm. L4's step `fraction (loss - l_min) / <g, d>` magnifies rounding: in f32 one
    // small bias drifts to 1.2e-4 of its size after 20 steps, so f32 is checked with ALI-G.
    let dnc = "--data repeat-copy --steps-per-epoch 10 --batch-size 8 --hidden 16 --epochs 2 --quiet";
    equivalent("dnc-l4", &format!("{dnc} --opt l4adam"), "f64");
    equivalent("dnc-alig", &format!("{dnc} --opt alig"), "f32");
}

#[test]
fn two_processes_train_as_one_bilstm_adam() {
    let root = temp_dir("snli-fixture");
    let snli = snli_fixture::tiny_snli(&root, [16, 8, 8]);
    let flags = format!(
        "--data snli --data-dir {} --hidden 8 --batch-size 4 --opt adam --lr 0.01 --epochs 5 --quiet",
        snli.display()
    );
    equivalent("bilstm", &flags, "f64");
    equivalent("bilstm", &flags, "f32");
}

#[test]
fn per_process_batch_norm_is_not_the_single_process_run() {
    // Without --sync-bn each process normalises by its own half batch (PyTorch DDP's default):
    // a different run, which shows that the synchronised one above is not equal by accident.
    let root = temp_dir("per-process-bn");
    let flags = format!("{DIGITS} --opt alig --lr 0.5 --epochs 1");
    run(0, &words(&format!("{flags} --out {}", root.join("one").display())));
    run(2, &words(&format!("{flags} --out {}", root.join("two").display())));
    let loss = |d: &str| {
        let text = std::fs::read_to_string(root.join(d).join("metrics.jsonl")).unwrap();
        serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()["train_loss"].as_f64().unwrap()
    };
    assert!((loss("one") - loss("two")).abs() > 1e-6 * loss("one"), "{} {}", loss("one"), loss("two"));
}

#[test]
fn a_checkpoint_resumes_on_another_number_of_processes() {
    let root = temp_dir("resume-world");
    let flags = format!("{DIGITS} {SYNCED_ALIG}");
    let straight = straight_run(&root, &format!("{flags} --epochs 2"));
    for (first, then, name) in [(2, 0, "two-then-one"), (0, 2, "one-then-two")] {
        let dir = root.join(name);
        run(first, &words(&format!("{flags} --epochs 1 --out {}", dir.display())));
        run(then, &words(&format!("--resume {} --epochs 2 --quiet", dir.display())));
        assert_close_metrics(&straight, &dir, 1e-9);
        assert_close_checkpoints(&straight, &dir, 1e-9);
    }
}

#[test]
fn a_world_size_that_does_not_divide_the_batch_is_refused() {
    let out =
        command(2, &words(&format!("{DIGITS} --batch-size 15 --opt alig --out /nonexistent/x"))).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("error (rank 0 of 2)") && err.contains("--batch-size 15") && err.contains("2 processes"),
        "{err}"
    );
}

#[test]
fn a_diverging_job_ends_every_process_with_the_error() {
    let root = temp_dir("diverge");
    let flags = format!("{DIGITS} --opt sgd --lr 1e30 --epochs 3 --out {}", root.join("run").display());
    let start = Instant::now();
    let out = command(2, &words(&flags)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(err.contains("error (rank 0 of 2): ") && err.contains("non-finite gradient"), "{err}");
    assert!(!err.contains("rank 1 of 2"), "one line for an error every process sees: {err}");
}

#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes() {
    let root = temp_dir("kill-rank");
    let flags = format!("{DIGITS} {SYNCED_ALIG} --epochs 4");
    let straight = straight_run(&root, &flags);
    let killed = root.join("killed");
    let mut job = command(2, &words(&format!("{flags} --out {}", killed.display())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first checkpoint is on disk, SIGKILL one of the two ranks in the middle of epoch 2.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !killed.join("checkpoints/last/trainer.json").exists() {
        assert!(Instant::now() < deadline, "no checkpoint in 120 s");
        assert!(job.try_wait().unwrap().is_none(), "the job ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = children(job.id());
    assert_eq!(ranks.len(), 2, "the ranks of mpirun {}: {ranks:?}", job.id());
    let killed_at = Instant::now();
    Command::new("kill").args(["-KILL", &ranks[1].to_string()]).status().unwrap();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(60), "the job outlived its killed rank by 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("signal 9") || err.contains("Killed"), "{err}");
    // The last checkpoint is intact: resuming (on one process) finishes the uninterrupted run.
    run(0, &words(&format!("--resume {} --quiet", killed.display())));
    assert_close_metrics(&straight, &killed, 1e-9);
    assert_close_checkpoints(&straight, &killed, 1e-9);
}

/// The process ids whose parent is `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: the command may hold spaces, so read after its ')'.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out.sort();
    out
}

#[test]
fn a_sweep_under_mpirun_runs_each_point_on_every_process() {
    let root = temp_dir("sweep");
    let out = root.join("sweep");
    let flags = format!(
        "sweep --opts alig,sgd --lrs 0.1 --out {} -- --data digits --depth 10 --width 1 --train-size 64 \
         --val-size 32 --test-size 32 --batch-size 16 --epochs 1 --sync-bn --precision f64",
        out.display()
    );
    run(2, &words(&flags));
    let one = root.join("one");
    run(
        0,
        &words(&format!(
            "{DIGITS} --train-size 64 --epochs 1 --sync-bn --precision f64 --opt sgd --lr 0.1 --out {}",
            one.display()
        )),
    );
    for point in ["alig-lr0.1-s0", "sgd-lr0.1-s0"] {
        let summary = std::fs::read_to_string(out.join(point).join("summary.json")).unwrap();
        assert!(summary.contains("\"processes\": 2"), "{point}: {summary}");
    }
    assert!(out.join("summary.md").is_file());
    // The sweep's SGD point is the single-process run of the same flags.
    assert_close_metrics(&one, &out.join("sgd-lr0.1-s0"), 1e-9);
}

/// A class-folder dataset (`--data imagenet`) of 6 training images in 2 classes, one of which
/// (`train/b/broken.ppm`) is not an image, and 2 validation images.
fn folder_with_a_broken_image(root: &Path) -> PathBuf {
    let dir = root.join("images");
    let ppm = |seed: u8| {
        let mut bytes = b"P6\n8 8\n255\n".to_vec();
        bytes.extend((0..8 * 8 * 3).map(|i: usize| (i as u8).wrapping_mul(seed)));
        bytes
    };
    for (split, class, name, bytes) in [
        ("train", "a", "0.ppm", ppm(3)),
        ("train", "a", "1.ppm", ppm(5)),
        ("train", "a", "2.ppm", ppm(7)),
        ("train", "b", "0.ppm", ppm(11)),
        ("train", "b", "1.ppm", ppm(13)),
        ("train", "b", "broken.ppm", b"P6\n8 8\n255\nnot the pixels".to_vec()),
        ("val", "a", "0.ppm", ppm(17)),
        ("val", "b", "0.ppm", ppm(19)),
    ] {
        std::fs::create_dir_all(dir.join(split).join(class)).unwrap();
        std::fs::write(dir.join(split).join(class).join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn a_rank_that_reads_a_broken_file_ends_the_job_naming_it() {
    let root = temp_dir("broken-image");
    let data = folder_with_a_broken_image(&root);
    // The whole training set is the first global batch: one of the two ranks decodes the broken
    // file while the other waits for it in the gradients' all-reduce.
    let flags = format!(
        "--data imagenet --data-dir {} --batch-size 6 --epochs 1 --opt alig \
         --quiet --out {}",
        data.display(),
        root.join("run").display()
    );
    let start = Instant::now();
    let out = command(2, &words(&flags)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
    let line = err.lines().find(|l| l.starts_with("error (rank ")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("of 2): ") && line.contains("broken.ppm") && line.contains("cannot decode"), "{line}");
}

#[test]
fn a_rank_that_panics_ends_the_job_and_the_last_checkpoint_stays() {
    let root = temp_dir("panic");
    let run_dir = root.join("run");
    // 10 steps an epoch: rank 1 panics in the second, after the first epoch's checkpoint (mpirun
    // hands its environment to the processes it starts on this machine).
    let flags = format!("{DIGITS} --opt alig --epochs 3 --out {}", run_dir.display());
    let start = Instant::now();
    let out = command(2, &words(&flags)).env("TRAIN_FAULT", "panic@1:15").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
    let line = err
        .lines()
        .find(|l| l.starts_with("error (rank 1 of 2): panicked"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("injected panic of rank 1 at step 15"), "{line}");
    // The first epoch's checkpoint is whole: the run resumes from it, on one process, to the end.
    run(0, &words(&format!("--resume {} --quiet", run_dir.display())));
    let summary = std::fs::read_to_string(run_dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"test_acc\""), "{summary}");
}
