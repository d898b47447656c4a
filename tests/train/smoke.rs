//! Every model x every optimizer for a few steps on tiny configurations, each producing a complete
//! run directory. The registries decide what runs: a new model or optimizer is tested here without
//! editing this file.

use crate::{read_json, temp_dir, tiny_snli, train};

/// Data and tiny shape flags for a model, by what it consumes.
fn tiny(model: &zoo::ModelSpec, snli: &std::path::Path) -> Vec<String> {
    let flags = match model.kind {
        zoo::registry::ModelKind::Images => {
            let shape = match model.name {
                "wrn" => "--depth 10 --width 1",
                "densenet" => "--depth 10 --growth 4",
                _ => "",
            };
            format!("--data digits --train-size 16 --val-size 8 --test-size 8 --batch-size 8 {shape}")
        }
        zoo::registry::ModelKind::Pairs => {
            format!("--data snli --data-dir {} --hidden 4 --batch-size 6", snli.display())
        }
        zoo::registry::ModelKind::Sequences => {
            "--data repeat-copy --steps-per-epoch 2 --batch-size 2 --hidden 8".into()
        }
    };
    flags.split_whitespace().map(String::from).collect()
}

#[test]
fn every_model_with_every_optimizer_writes_a_complete_run() {
    let root = temp_dir("smoke");
    let snli = tiny_snli(&root);
    for model in zoo::MODELS {
        for opt in alig::OPTIMIZERS {
            let out = root.join(format!("{}-{}", model.name, opt.name));
            let mut args = vec!["--model".to_string(), model.name.into(), "--opt".into(), opt.name.into()];
            args.extend(tiny(model, &snli));
            args.extend(["--epochs", "1", "--quiet", "--out"].map(String::from));
            args.push(out.display().to_string());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            train(&refs).unwrap_or_else(|e| panic!("{} x {}: {e:#}", model.name, opt.name));
            for f in [
                "config.json",
                "metrics.jsonl",
                "metrics.csv",
                "summary.json",
                "checkpoints/last/model.safetensors",
                "checkpoints/last/optimizer.safetensors",
                "checkpoints/last/trainer.json",
                "checkpoints/best/model.safetensors",
            ] {
                assert!(out.join(f).is_file(), "{} x {}: no {f}", model.name, opt.name);
            }
            let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
            let row: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
            for key in ["epoch", "train_loss", "train_acc", "val_acc", "step_size", "lr", "weight_norm", "seconds"] {
                assert!(row.get(key).is_some(), "{} x {}: metrics lack {key}", model.name, opt.name);
            }
            assert!(row["train_loss"].as_f64().unwrap().is_finite());
            if opt.name == "alig" {
                assert!(row["step_size"].as_f64().unwrap() > 0.0, "ALI-G reports its step size");
            }
            // ResNet-18's checkpoints are ~100 MB each: keep the disk free as we go.
            std::fs::remove_dir_all(&out).ok();
        }
    }
}

#[test]
fn the_no_argument_run_is_digits_wrn_alig_and_reaches_95_percent() {
    let parsed = train::config::parse(&train::cli::TrainArgs::default()).unwrap();
    let train::config::Request::Train(cfg, _) = parsed else { panic!("expected a training run") };
    assert_eq!(
        (cfg.data.name.as_str(), cfg.model.name.as_str(), cfg.optimizer.name.as_str()),
        ("digits", "wrn", "alig")
    );
    // The same run, into a temporary folder.
    let out = temp_dir("default-run");
    train(&["--quiet", "--out", out.to_str().unwrap()]).unwrap();
    let acc = read_json(&out.join("summary.json"))["test_acc"].as_f64().unwrap();
    assert!(acc >= 0.95, "test accuracy {acc}");
    std::fs::remove_dir_all(&out).ok();
}
