//! Checkpoints in and out: the reference's WRN-16-2 state dict through `--init` (a file, and the
//! hub through a cache laid out on disk) reproduces the reference's logits; a checkpoint of ours
//! rebuilds its model without any model flag.

use std::path::Path;

use crate::{assert_refused, evaluate, golden, read_json, temp_dir, tensors, tiny_run, train};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn predict_and_compare(init: &str, extra: &[&str], out: &Path) {
    let io = golden().join("zoo/wrn-16-2/io.safetensors");
    let args = [&["--init", init][..], crate::WRN_16_2, &["--predict", io.to_str().unwrap(), "--quiet"]].concat();
    let args = [&args[..], &["--out", out.to_str().unwrap()], extra].concat();
    train(&args).unwrap();
    let got = &tensors(&out.join("predictions.safetensors"))["logits"];
    let want = &tensors(&io)["logits_eval"];
    let (g, w) =
        (got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert_eq!(g.len(), w.len());
    for (a, b) in g.iter().zip(&w) {
        // The golden README's CPU f32 tolerance for logits.
        assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "logit {a} vs reference {b}");
    }
}

#[test]
fn the_reference_state_dict_reproduces_the_reference_logits() {
    let root = temp_dir("interop");
    let state = golden().join("zoo/wrn-16-2/state_dict.safetensors");
    predict_and_compare(state.to_str().unwrap(), &[], &root.join("file"));

    // The same file as a hub model repository in a cache on disk, read offline.
    let cache = root.join("hub");
    let repo = cache.join("models--golden--wrn-16-2");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), SHA).unwrap();
    let snap = repo.join("snapshots").join(SHA);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::copy(&state, snap.join("model.safetensors")).unwrap();
    let hub = ["--offline", "--hub-cache", cache.to_str().unwrap()];
    predict_and_compare("hf:golden/wrn-16-2", &hub, &root.join("hub-main"));
    predict_and_compare(&format!("hf:golden/wrn-16-2@{SHA}/model.safetensors"), &hub, &root.join("hub-sha"));
    assert_refused(
        &["--init", "hf:golden/absent", "--offline", "--hub-cache", cache.to_str().unwrap()],
        "golden/absent",
    );
}

#[test]
fn a_checkpoint_rebuilds_its_model_without_flags() {
    let (root, run) = tiny_run("rebuild");
    let best = run.join("checkpoints/best");
    // No --model, --depth, --width or --data: the checkpoint's metadata supplies them.
    let (summary, report) = (read_json(&run.join("summary.json")), evaluate(&best, &root.join("eval")));
    assert_eq!(report["model"], "wrn");
    assert_eq!(summary["test_acc"], report["test_acc"]);
}
