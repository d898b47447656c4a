//! Bad requests end with exit code 1 and one line on stderr that names the problem; nothing
//! panics.

use crate::{golden, temp_dir, train_output, train_tiny, TINY};

fn fails_with(args: &[&str], needles: &[&str]) {
    let mut all = args.to_vec();
    all.push("--quiet");
    let out = train_output(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: {n:?} not in {stderr}");
    }
}

#[test]
fn bad_requests_fail_with_one_line() {
    let root = temp_dir("errors");
    let out = root.join("out");
    let out = out.to_str().unwrap();
    fails_with(&["--model", "vgg", "--out", out], &["vgg", "wrn", "densenet"]);
    fails_with(&["--model", "nli", "--data", "digits", "--out", out], &["nli", "digits", "does not fit"]);
    fails_with(&["--opt", "adamax", "--out", out], &["adamax", "alig"]);
    fails_with(&["--opt", "alig", "--weight-decay", "1e-4", "--out", out], &["--weight-decay", "--max-norm"]);
    fails_with(&["--device", "tpu", "--out", out], &["tpu"]);
    fails_with(&["--device", "cpu", "--tf32", "--out", out], &["--tf32", "CUDA", "cpu"]);
    fails_with(&["--loss", "sigmoid-ce", "--out", out], &["sigmoid-ce"]);
    let cache = root.join("hub");
    fails_with(
        &[
            "--data",
            "cifar10",
            "--data-dir",
            "/nonexistent/cifar",
            "--offline",
            "--hub-cache",
            cache.to_str().unwrap(),
            "--out",
            out,
        ],
        &["cifar10", "data_batch_1.bin", "/nonexistent/cifar"],
    );
    assert!(!root.join("out").exists(), "a failed start leaves no run directory behind");
    let bad = root.join("corrupt.safetensors");
    std::fs::write(&bad, b"this is not a checkpoint").unwrap();
    fails_with(&["--init", bad.to_str().unwrap(), "--model", "wrn", "--out", out], &["corrupt.safetensors"]);
    let state = golden().join("zoo/wrn-16-2/state_dict.safetensors");
    let io = golden().join("zoo/wrn-16-2/io.safetensors");
    fails_with(
        &[
            "--init",
            state.to_str().unwrap(),
            "--model",
            "wrn",
            "--depth",
            "16",
            "--width",
            "1",
            "--data",
            "cifar10",
            "--predict",
            io.to_str().unwrap(),
            "--out",
            out,
        ],
        &["shape mismatch", "block1.layer.0.conv1.weight"],
    );
    // A checkpoint holding NaN.
    let nan = root.join("nan.safetensors");
    let mut t = crate::tensors(&state);
    t.insert("fc.bias".into(), candle_core::Tensor::new(&[f32::NAN; 10], &candle_core::Device::Cpu).unwrap());
    candle_core::safetensors::save(&t, &nan).unwrap();
    let predict = [&["--init", nan.to_str().unwrap()][..], crate::WRN_16_2, &["--predict", io.to_str().unwrap()]];
    fails_with(&[&predict.concat()[..], &["--out", out]].concat(), &["nan.safetensors", "fc.bias", "NaN"]);
    // A diverging run stops at the first non-finite loss and says where.
    let diverging = [&TINY[..], &["--opt", "sgd", "--lr", "1e30", "--momentum", "0"]].concat();
    fails_with(
        &[&diverging[..], &["--out", out]].concat(),
        &["non-finite", "epoch 1", "no checkpoint was written yet"],
    );
    // Skipping instead: every step of that run is skipped, and the run says so.
    fails_with(
        &[&diverging[..], &["--on-nonfinite", "skip", "--out", &format!("{out}-skip")]].concat(),
        &["weights became non-finite", "epoch 1"],
    );
    fails_with(&["--on-nonfinite", "ignore", "--out", out], &["--on-nonfinite", "stop or skip"]);
    fails_with(&["--out", "/proc/no-such-run", "--epochs", "1", "--train-size", "16"], &["/proc/no-such-run"]);
    // An optimizer state that does not belong to the run (SGD's state in an ALI-G run), and a
    // checkpoint of another model.
    let (a, b) = (root.join("alig-run"), root.join("sgd-run"));
    train_tiny(&["--opt", "alig", "--out", a.to_str().unwrap()]).unwrap();
    train_tiny(&["--opt", "sgd", "--lr", "0.1", "--out", b.to_str().unwrap()]).unwrap();
    std::fs::copy(b.join("checkpoints/last/optimizer.safetensors"), a.join("checkpoints/last/optimizer.safetensors"))
        .unwrap();
    fails_with(&["--resume", a.to_str().unwrap(), "--epochs", "2"], &["optimizer.safetensors", "alig"]);
    let dn = root.join("densenet-run");
    train_tiny(&["--model", "densenet", "--growth", "4", "--out", dn.to_str().unwrap()]).unwrap();
    let dn_ckpt = dn.join("checkpoints/best/model.safetensors");
    fails_with(
        &["--init", dn_ckpt.to_str().unwrap(), "--model", "wrn", "--depth", "10", "--out", &format!("{out}-x")],
        &["missing key", "model.safetensors"],
    );
    // A full device: the run's metrics file is /dev/full (every write fails with ENOSPC).
    if std::path::Path::new("/dev/full").exists() {
        let full = root.join("full");
        std::fs::create_dir_all(&full).unwrap();
        std::os::unix::fs::symlink("/dev/full", full.join("metrics.jsonl")).unwrap();
        fails_with(
            &[&TINY[..], &["--out", full.to_str().unwrap()]].concat(),
            &["metrics.jsonl", "No space left on device"],
        );
    }
    fails_with(&["--resume", root.join("nothing").to_str().unwrap()], &["--resume", "nothing"]);
    std::fs::remove_dir_all(root.join("out")).ok();
}
