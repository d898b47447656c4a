//! `train check --device cpu`: the CPU's custom ops against candle's own ops (the path CUDA and
//! Metal take) for every model of the zoo and every optimizer of the registry, the golden cases on
//! candle's ops, and checkpoints crossing between the two. Run as a child process: the check
//! switches the zoo's custom ops, which other tests of this binary read.

use crate::{golden, read_json, temp_dir, train_output};

#[test]
fn train_check_on_the_cpu_passes_every_model_optimizer_golden_case_and_checkpoint() {
    let dir = temp_dir("check");
    let json = dir.join("check.json");
    let out = train_output(&[
        "check",
        "--device",
        "cpu",
        "--golden",
        golden().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "train check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("0 failed"), "{stdout}");
    let report = read_json(&json);
    let lines = report["lines"].as_array().unwrap();
    let cases_of = |group: &str| -> Vec<String> {
        let mut v: Vec<String> =
            lines.iter().filter(|l| l["group"] == group).map(|l| l["case"].as_str().unwrap().to_string()).collect();
        v.dedup();
        v
    };
    assert_eq!(cases_of("model"), ["wrn-10-1", "densenet-bc-16-8", "resnet18", "nli-tiny", "dnc-tiny"]);
    let optimizers = cases_of("optimizer");
    for spec in alig::OPTIMIZERS {
        assert!(
            optimizers.iter().any(|c| c.starts_with(&format!("{} (", spec.name))),
            "{} not checked: {optimizers:?}",
            spec.name
        );
    }
    assert_eq!(cases_of("golden"), ["wrn-16-2", "densenet-bc-16-8", "bilstm-nli-tiny", "dnc-tiny"]);
    assert_eq!(cases_of("checkpoint").len(), 2);
    for l in lines {
        assert_eq!(l["ok"], true, "{l}");
        let (error, tolerance) = (l["error"].as_f64().unwrap(), l["tolerance"].as_f64().unwrap());
        assert!(error <= tolerance, "{l}");
    }
    // The two sides really are two code paths: the convolution models' numbers differ in
    // summation order somewhere, while a checkpoint crossing is exact.
    let conv_gradients = lines.iter().find(|l| l["case"] == "wrn-10-1" && l["quantity"] == "gradients").unwrap();
    assert!(
        conv_gradients["error"].as_f64().unwrap() > 0.0,
        "custom ops and candle's ops agree bit for bit: {conv_gradients}"
    );
    for l in lines.iter().filter(|l| l["group"] == "checkpoint") {
        assert_eq!(l["error"].as_f64().unwrap(), 0.0, "{l}");
    }
    // Every quantity was seen for the image models: forward, gradients, statistics, steps, state.
    let wrn: Vec<&str> =
        lines.iter().filter(|l| l["case"] == "wrn-10-1").map(|l| l["quantity"].as_str().unwrap()).collect();
    assert_eq!(
        wrn,
        ["logits, loss", "gradients", "BatchNorm statistics", "weights after the steps", "optimizer state"]
    );
    assert!(stdout.contains("train check: cpu (candle's ops) against cpu (custom ops"), "{stdout}");
}

#[test]
fn train_check_names_a_golden_folder_without_cases() {
    let dir = temp_dir("check-no-golden");
    let out = train_output(&["check", "--golden", dir.to_str().unwrap(), "--steps", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--golden") && stderr.contains(dir.to_str().unwrap()), "{stderr}");
}

#[test]
fn train_bench_times_the_paper_models_and_names_bad_flags() {
    let dir = temp_dir("bench");
    let json = dir.join("bench.json");
    let j = json.to_str().unwrap();
    crate::train(&[
        "bench",
        "--model",
        "wrn-40-4,dnc",
        "--batch-size",
        "2",
        "--warmup",
        "1",
        "--steps",
        "3",
        "--json",
        j,
    ])
    .unwrap();
    let report = read_json(&json);
    assert_eq!(report["device"], "cpu");
    assert_eq!(report["optimizer"], "sgd");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["model"].as_str().unwrap()).collect::<Vec<_>>(), ["wrn-40-4", "dnc"]);
    for r in rows {
        let (median, fastest) = (r["median_ms"].as_f64().unwrap(), r["min_ms"].as_f64().unwrap());
        assert!(fastest > 0.0 && fastest <= median, "{r}");
        assert_eq!(r["batch"], 2, "{r}");
        let rate = r["samples_per_s"].as_f64().unwrap();
        assert!((rate - 2.0 / (median / 1e3)).abs() < 1e-6 * rate, "{r}");
        assert!(r["memory_mib"].as_f64().unwrap() > 1.0, "{r}");
    }
    for (flags, needle) in [
        (&["bench", "--model", "vgg"][..], "--model vgg"),
        (&["bench", "--precision", "bf16"], "--precision bf16"),
        (&["bench", "--precision", "tf32"], "--precision tf32"),
    ] {
        crate::assert_refused(flags, needle);
    }
}
