//! The run configuration as a file and as flags. `config.json` files written by version 0.1 (flat,
//! kept in `fixtures/` as that version's binary wrote them) load as the configuration the same
//! flags resolve to today, and a run directory holding one resumes exactly; the command line
//! generated from a configuration (an exported model card's) parses back to that configuration.

use std::path::Path;

use train::cli::TrainArgs;
use train::config::RunConfig;

use crate::{assert_same_tensors, metrics_without_time, temp_dir, train};

/// The flags that wrote `fixtures/config-0.1.0-sgd.json` (with `--out legacy-sgd`).
const SGD: &str = "--data digits --depth 10 --width 1 --dropout 0.3 --train-size 96 --val-size 32 --test-size 32 \
                   --batch-size 16 --opt sgd --lr 0.05 --momentum 0.9 --schedule step:1:0.5 --clip-grad-norm 5 \
                   --on-nonfinite skip --quiet --epochs 1";
/// The flags that wrote `fixtures/config-0.1.0-dnc.json` (with `--out legacy-dnc`).
const DNC: &str = "--data repeat-copy --opt adagrad --steps-per-epoch 2 --batch-size 2 --hidden 8 --epochs 1 --quiet";

fn flags(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn resolve(args: &[String]) -> RunConfig {
    train::config::resolve(&TrainArgs::from_flags(args).unwrap()).unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/train/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_config_written_by_version_0_1_loads_as_the_same_configuration() {
    for (file, args, out) in
        [("config-0.1.0-sgd.json", SGD, "legacy-sgd"), ("config-0.1.0-dnc.json", DNC, "legacy-dnc")]
    {
        let old = RunConfig::from_json(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!(old.version, "0.1.0");
        let now = resolve(&[flags(args), flags(&format!("--out {out}"))].concat());
        assert_eq!(RunConfig { version: now.version.clone(), ..old }, now, "{file}");
        // This version's file is nested by concern and reads back to the same value.
        let text = serde_json::to_string_pretty(&now).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for section in ["model", "data", "optimizer", "run"] {
            assert!(value[section].is_object(), "{file}: no {section} section in {text}");
        }
        assert_eq!(RunConfig::from_json(&text).unwrap(), now);
    }
}

#[test]
fn a_run_directory_with_a_0_1_config_resumes_exactly() {
    let root = temp_dir("legacy-resume");
    let (straight, legacy) = (root.join("straight"), root.join("legacy"));
    let run = |extra: String| {
        let args = [flags(SGD), flags(&extra)].concat();
        train(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    };
    run(format!("--epochs 2 --out {}", straight.display()));
    run(format!("--out {}", legacy.display()));
    // The run's own config.json replaced by the one version 0.1 wrote for the same flags.
    std::fs::write(legacy.join("config.json"), fixture("config-0.1.0-sgd.json")).unwrap();
    train(&["--resume", legacy.to_str().unwrap(), "--epochs", "2", "--quiet"]).unwrap();
    assert_eq!(metrics_without_time(&straight), metrics_without_time(&legacy));
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_same_tensors(&straight.join("checkpoints/last").join(f), &legacy.join("checkpoints/last").join(f));
    }
}

/// Every preset row, and flags that are easy to drop on the way (`none` values, switches, L4's
/// fraction, Adagrad's accumulator, shape and data-size flags).
#[test]
fn generated_command_lines_parse_back_to_their_configuration() {
    let mut cases: Vec<Vec<String>> = vec![];
    for p in train::presets::OPT {
        for data in p.data {
            cases.push(flags(&format!("--data {data} --model {} --opt {}", p.model, p.opt)));
        }
    }
    for extra in [
        "--opt alig --lr none --max-norm none --eps 0 --momentum 0.5",
        "--opt l4mom --fraction 0.3 --weight-decay 1e-4 --no-augment --workers 1",
        "--data repeat-copy --opt adagrad --initial-accumulator 0.2 --steps-per-epoch 7",
        "--opt sgd --schedule step:3,5:0.1 --clip-grad-norm 2.5 --on-nonfinite skip --device cpu",
        "--device cuda:1 --tf32 --sync-bn",
        "--model densenet --depth 16 --growth 8 --dropout 0.2 --train-size 100 --val-size 10 --test-size 20 --seed 3",
        "--data snli --opt dfw --loss smooth-svm --hidden 32 --batch-size 7 --epochs 2",
    ] {
        cases.push(flags(extra));
    }
    for args in cases {
        let cfg = resolve(&args);
        let argv = cfg.to_args(false).to_argv().unwrap();
        let mut back = resolve(&argv);
        back.run.out = cfg.run.out.clone();
        assert_eq!(back, cfg, "{args:?} -> {argv:?}");
        let line = cfg.command_line();
        assert!(line.starts_with(&format!("train --model {} --data {}", cfg.model.name, cfg.data.name)), "{line}");
    }
}
