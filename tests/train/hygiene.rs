//! Run hygiene around the optimizers: gradient accumulation, the cosine schedule with warmup,
//! label smoothing, the moving average of the weights, checkpoint retention, early stopping and
//! TensorBoard events; each resumed bit for bit.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::{
    assert_refused, assert_same_runs, assert_same_tensors, metrics_without_time, read_json, temp_dir, tensors,
    tiny_snli, train, TINY,
};

fn strings(flags: &str, out: &Path) -> Vec<String> {
    let mut v: Vec<String> = flags.split_whitespace().map(String::from).collect();
    v.extend(["--quiet".into(), "--out".into(), out.display().to_string()]);
    v
}

fn run(args: &[String]) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    train(&refs).unwrap_or_else(|e| panic!("train {}: {e:#}", args.join(" ")));
}

/// The largest difference between the two files' tensors, relative to the largest magnitude of
/// each tensor.
fn worst_relative(a: &Path, b: &Path) -> (f64, String) {
    let (ta, tb) = (tensors(a), tensors(b));
    let flat =
        |t: &Tensor| t.to_dtype(candle_core::DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let mut worst = (0.0, String::new());
    for (k, x) in &ta {
        let (x, y) = (flat(x), flat(&tb[k]));
        let scale = x.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        let d = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max) / scale;
        if d > worst.0 {
            worst = (d, k.clone());
        }
    }
    worst
}

/// `--accumulate 4` on models without BatchNorm (the DNC, the Bi-LSTM): the step of four
/// micro-batches is the step of the whole batch, for ALI-G (which sees the mean loss) and SGD:
/// to 1e-9 after six steps in f64, and to 1e-6 after one step in f32 (further f32 steps amplify
/// the different rounding of the sums, as any change of summation order would).
#[test]
fn an_accumulated_step_equals_the_step_of_the_whole_batch() {
    let root = temp_dir("accumulate");
    let snli = tiny_snli(&root);
    let models = [
        "--data repeat-copy --batch-size 8 --hidden 8 --epochs 2 --steps-per-epoch".to_string(),
        format!("--data snli --data-dir {} --hidden 4 --batch-size 6 --epochs 2 --train-size", snli.display()),
    ];
    let cases = [
        ("alig --lr 1", "f64", 1e-9, [3, 12]),
        ("sgd --lr 0.1", "f64", 1e-9, [3, 12]),
        ("alig --lr 1", "f32", 1e-6, [1, 6]),
    ];
    for (m, model) in models.iter().enumerate() {
        for (opt, precision, tol, sizes) in cases {
            // DNC: three steps an epoch; SNLI: two (12 pairs in batches of 6); one step in all in f32.
            let epochs = if sizes[0] == 1 { " --epochs 1" } else { "" };
            let flags = format!("{model} {} --opt {opt} --precision {precision}{epochs}", sizes[m]);
            let (whole, parts) =
                (root.join(format!("{m}-{opt}-{precision}-1")), root.join(format!("{m}-{opt}-{precision}-4")));
            run(&strings(&flags, &whole));
            run(&strings(&format!("{flags} --accumulate 4"), &parts));
            let last = |d: &PathBuf| d.join("checkpoints/last/model.safetensors");
            let (worst, name) = worst_relative(&last(&whole), &last(&parts));
            assert!(worst < tol, "{flags}: {name} differs by {worst:.2e} (tolerance {tol:.0e})");
            let loss = |d: &PathBuf| read_json(&d.join("summary.json"))["final_train_loss"].as_f64().unwrap();
            let (a, b) = (loss(&whole), loss(&parts));
            assert!((a - b).abs() <= tol * a.abs().max(1e-12), "{flags}: final loss {a} against {b}");
        }
    }
    // Images with BatchNorm accumulate too (BatchNorm sees each micro-batch), and resume exactly.
    let flags = [&TINY[..], &["--accumulate", "2", "--epochs", "2"]].concat().join(" ");
    let (straight, split) = (root.join("wrn-straight"), root.join("wrn-split"));
    run(&strings(&flags, &straight));
    run(&strings(&flags.replace("--epochs 2", "--epochs 1"), &split));
    train(&["--resume", split.to_str().unwrap(), "--epochs", "2", "--quiet"]).unwrap();
    assert_same_runs(&straight, &split);
    assert_refused(&[&TINY[..], &["--accumulate", "17"]].concat(), "--accumulate");
}

/// Everything of this file at once in a three-epoch run, stopped after one epoch and resumed: the
/// cosine schedule after a warmup, label smoothing, the moving average, `--keep`, `--patience`
/// (which three epochs cannot spend), TensorBoard.
fn hygiene_flags(out: &Path, epochs: usize) -> Vec<String> {
    let flags = [
        &TINY[..],
        &["--opt", "sgd", "--lr", "0.1", "--schedule", "cosine:warmup=1", "--label-smoothing", "0.1"],
        &["--ema", "0.9", "--keep", "2", "--patience", "3", "--train-size", "64"],
    ]
    .concat()
    .join(" ");
    strings(&flags.replace("--epochs 1", &format!("--epochs {epochs}")), out)
}

#[test]
fn schedules_smoothing_ema_and_retention_resume_bit_for_bit() {
    let root = temp_dir("hygiene");
    let (straight, split) = (root.join("straight"), root.join("split"));
    run(&hygiene_flags(&straight, 3));
    // A cosine without its length anneals over the run's epochs after the warmup, and
    // config.json writes the length out: the split run gives it, as its config would.
    let args = hygiene_flags(&split, 3);
    let cfg = train::config::resolve(&train::cli::TrainArgs::from_flags(&args).unwrap()).unwrap();
    assert_eq!(cfg.schedule.to_string(), "cosine:2:warmup=1");
    let mut first = hygiene_flags(&split, 1);
    let at = first.iter().position(|x| x == "cosine:warmup=1").unwrap();
    first[at] = "cosine:2:warmup=1".into();
    run(&first);
    train(&["--resume", split.to_str().unwrap(), "--epochs", "3", "--quiet"]).unwrap();
    assert_same_runs(&straight, &split);
    assert_same_tensors(
        &straight.join("checkpoints/last/ema.safetensors"),
        &split.join("checkpoints/last/ema.safetensors"),
    );
    // The learning rates: LinearLR's 1/2 during the warmup epoch, then the cosine over 2 epochs.
    let rows = metrics_without_time(&straight);
    let lrs: Vec<f64> = rows.iter().map(|r| r["lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs.len(), 3);
    for (got, want) in lrs.iter().zip([0.05, 0.1, 0.05]) {
        assert!((got - want).abs() < 1e-15, "{lrs:?}");
    }
    // The moving average: its own validation score each epoch, its tensors under the model's names.
    assert!(rows.iter().all(|r| r["val_acc_ema"].is_number()), "{rows:?}");
    let model = tensors(&straight.join("checkpoints/last/model.safetensors"));
    let ema = tensors(&straight.join("checkpoints/last/ema.safetensors"));
    let mut names: (Vec<_>, Vec<_>) = (model.keys().collect(), ema.keys().collect());
    names.0.sort();
    names.1.sort();
    assert_eq!(names.0, names.1);
    assert!(read_json(&straight.join("summary.json"))["test_acc_ema"].is_number());
    // --keep 2: the two best epochs' folders, as trainer.json lists them.
    let kept = read_json(&straight.join("checkpoints/last/trainer.json"))["kept"].clone();
    let kept: Vec<u64> = kept.as_array().unwrap().iter().map(|k| k[0].as_u64().unwrap()).collect();
    assert_eq!(kept.len(), 2);
    let mut folders: Vec<String> = std::fs::read_dir(straight.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    folders.sort();
    let mut want: Vec<String> = kept.iter().map(|e| format!("epoch-{e:04}")).collect();
    want.sort();
    assert_eq!(folders, want);
    let best_scores: Vec<f64> = kept.iter().map(|e| rows[*e as usize - 1]["val_acc"].as_f64().unwrap()).collect();
    let dropped = (1..=3u64).filter(|e| !kept.contains(e)).map(|e| rows[e as usize - 1]["val_acc"].as_f64().unwrap());
    for d in dropped {
        assert!(best_scores.iter().all(|b| *b >= d), "kept {kept:?} ({best_scores:?}), dropped a score of {d}");
    }
    // Label smoothing is a cross-entropy option only.
    assert_refused(&[&TINY[..], &["--loss", "svm", "--label-smoothing", "0.1"]].concat(), "--label-smoothing");
}

/// `--patience 1`: the run stops after the first epoch that does not beat the best score, and a
/// resumed run that stopped stays stopped.
#[test]
fn patience_stops_a_run_that_no_longer_improves() {
    let root = temp_dir("patience");
    let out = root.join("run");
    run(&strings(
        &[&TINY[..], &["--opt", "sgd", "--lr", "1e-9", "--epochs", "6", "--patience", "1"]].concat().join(" "),
        &out,
    ));
    let rows = metrics_without_time(&out);
    let accs: Vec<f64> = rows.iter().map(|r| r["val_acc"].as_f64().unwrap()).collect();
    // The rule, replayed on the scores: stop at the first epoch that is not a new best.
    let expected = (1..accs.len() + 1)
        .find(|&e| e > 1 && accs[e - 1] <= accs[..e - 1].iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .unwrap_or(6);
    assert_eq!(rows.len(), expected, "{accs:?}");
    assert!(expected < 6, "a learning rate of 1e-9 kept improving: {accs:?}");
    assert_eq!(read_json(&out.join("summary.json"))["stopped_early"].as_u64(), Some(expected as u64));
    train(&["--resume", out.to_str().unwrap(), "--epochs", "8", "--quiet"]).unwrap();
    assert_eq!(metrics_without_time(&out).len(), expected);
}

/// TensorBoard: every scalar of every step and epoch is in the event file, a resumed run's file
/// has each step once and equals the uninterrupted run's, and TensorBoard's own reader loads it
/// (with `ALIG_TENSORBOARD_PYTHON` naming a Python that has the `tensorboard` package; CI sets it).
#[test]
fn tensorboard_events_hold_every_scalar_and_resume_without_duplicates() {
    use train::tensorboard::{read_events, Value};
    let root = temp_dir("tensorboard");
    let (straight, split) = (root.join("straight"), root.join("split"));
    let flags = |epochs: &str| [&TINY[..], &["--epochs", epochs, "--train-size", "48"]].concat().join(" ");
    run(&strings(&flags("3"), &straight));
    run(&strings(&flags("1"), &split));
    train(&["--resume", split.to_str().unwrap(), "--epochs", "3", "--quiet"]).unwrap();
    let events = |run: &Path| {
        let files: Vec<PathBuf> = std::fs::read_dir(run.join("tb")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
        (files[0].clone(), read_events(&files[0]).unwrap())
    };
    let (file, all) = events(&straight);
    assert_eq!(all[0].file_version.as_deref(), Some("brain.Event:2"));
    let tagged = |tag: &str| -> Vec<(i64, f32)> {
        let values = all.iter().flat_map(|e| e.values.iter().map(move |(t, v)| (e.step, t, v)));
        values
            .filter(|(_, t, _)| *t == tag)
            .map(|(s, _, v)| (s, if let Value::Scalar(x) = v { *x } else { f32::NAN }))
            .collect()
    };
    // 48 samples in batches of 16: 3 steps an epoch, each with its loss, step sizes and rate.
    let losses = tagged("train/loss");
    assert_eq!(losses.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=9).collect::<Vec<i64>>());
    assert!(losses.iter().all(|l| l.1.is_finite() && l.1 > 0.0), "{losses:?}");
    for tag in ["train/step_size", "train/step_size_unclipped", "train/lr"] {
        assert_eq!(tagged(tag).len(), 9, "{tag}");
    }
    // The epochs' metrics at each epoch's last step, equal to metrics.jsonl's.
    let rows = metrics_without_time(&straight);
    for key in ["train_loss", "train_acc", "val_acc", "step_size", "step_size_unclipped", "lr", "weight_norm"] {
        let got = tagged(&format!("epoch/{key}"));
        let want: Vec<(i64, f32)> =
            rows.iter().enumerate().map(|(i, r)| (3 * (i as i64 + 1), r[key].as_f64().unwrap() as f32)).collect();
        assert_eq!(got, want, "epoch/{key}");
    }
    let text = all.iter().flat_map(|e| &e.values).find(|(t, _)| t == "config").map(|(_, v)| v.clone());
    assert!(matches!(&text, Some(Value::Text(t)) if t.contains("| optimizer.name | alig |")), "{text:?}");
    // The resumed run: steps once each, and the same values as the straight run's.
    let (_, resumed) = events(&split);
    let without_time = |es: &[train::tensorboard::Event]| -> Vec<(i64, Vec<(String, Value)>)> {
        // The configuration's text at step 0 names each run's own folder and epochs.
        let trained = es.iter().filter(|e| e.step > 0);
        trained.map(|e| (e.step, e.values.iter().filter(|(t, _)| t != "epoch/seconds").cloned().collect())).collect()
    };
    assert_eq!(without_time(&resumed), without_time(&all));
    if let Ok(python) = std::env::var("ALIG_TENSORBOARD_PYTHON") {
        let script =
            "import sys\nfrom tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
                      ea = EventAccumulator(sys.argv[1]); ea.Reload()\n\
                      loss = ea.Scalars('train/loss'); val = ea.Scalars('epoch/val_acc')\n\
                      print(len(loss), len(val), loss[0].step, '%.6f' % val[-1].value, len(ea.Tensors('config')))";
        let out = std::process::Command::new(&python).args(["-c", script, file.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{python}: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let last_val = rows[2]["val_acc"].as_f64().unwrap() as f32 as f64;
        assert_eq!(printed, format!("9 3 1 {last_val:.6} 1"), "TensorBoard's EventAccumulator read: {printed}");
    } else {
        eprintln!("ALIG_TENSORBOARD_PYTHON is not set: TensorBoard's own reader was not run");
    }
    // --no-tensorboard writes none.
    let quiet = root.join("no-tb");
    run(&strings(&[&TINY[..], &["--no-tensorboard"]].concat().join(" "), &quiet));
    assert!(!quiet.join("tb").exists());
}

/// `--keep 1` in a run whose later epochs do not beat the first: those epochs are not kept, and
/// the run goes on (it used to fail removing a folder it never wrote).
#[test]
fn keep_skips_epochs_that_are_not_among_the_best() {
    let root = temp_dir("keep-one");
    let out = root.join("run");
    let flags = [&TINY[..], &["--opt", "sgd", "--lr", "1e-9", "--epochs", "4", "--keep", "1", "--train-size", "64"]];
    run(&strings(&flags.concat().join(" "), &out));
    let folders: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert_eq!(metrics_without_time(&out).len(), 4);
}
