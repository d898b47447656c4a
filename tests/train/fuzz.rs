//! Bounded fuzzing of what the trainer reads back: a checkpoint folder (model weights, optimizer
//! state, trainer state) mutated at random must load into the model and optimizer or fail with an
//! error, never panic; and the hub id parser on random strings. `FUZZ_ITERS` as in the data crate.

#[path = "../../data/tests/fuzz_mutate.rs"]
mod fuzz_mutate;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use data::rng::Rng;
use fuzz_mutate::mutate;

use crate::tiny_run;

/// Loads the checkpoint in `dir` the way `--resume` does: model tensors strictly, then the
/// optimizer state. True when everything loaded.
fn load_like_resume(dir: &Path) -> bool {
    let Ok(ckpt) = train::checkpoint::load(dir) else { return false };
    let varmap = VarMap::new();
    let args = zoo::ModelArgs { depth: Some(10), width: Some(1), input: Some(1), ..zoo::ModelArgs::classes(10) };
    zoo::registry::find("wrn").unwrap().build_seeded(&args, &varmap, DType::F32, &Device::Cpu, 0).unwrap();
    if zoo::checkpoint::load_tensors(&varmap, ckpt.model.into_iter().collect()).is_err() {
        return false;
    }
    let params = alig::ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let hyper = alig::Hyper { lr: Some(1.0), momentum: 0.9, ..alig::Hyper::default() };
    let mut opt = alig::registry::build("alig", params, &hyper).unwrap();
    opt.load_state(&ckpt.optimizer.into_iter().collect()).is_ok()
}

#[test]
fn mutated_checkpoints_load_or_fail_cleanly() {
    let (root, run) = tiny_run("fuzz-ckpt");
    let good = run.join("checkpoints/last");
    assert!(load_like_resume(&good));
    let iters: usize = std::env::var("FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut rng = Rng::new(1, 0xc4e);
    let dir = root.join("mutant");
    let mut rejected = 0;
    for k in 0..iters {
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["model.safetensors", "optimizer.safetensors", "trainer.json"] {
            std::fs::copy(good.join(f), dir.join(f)).unwrap();
        }
        let target = ["model.safetensors", "optimizer.safetensors", "trainer.json"][k % 3];
        let bytes = mutate(&std::fs::read(good.join(target)).unwrap(), &mut rng);
        std::fs::write(dir.join(target), &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| load_like_resume(&dir))) {
            Ok(ok) => rejected += usize::from(!ok),
            Err(_) => {
                let kept = root.join(format!("crash-{k}-{target}"));
                std::fs::write(&kept, &bytes).unwrap();
                panic!("loading a mutated {target} panicked; input kept at {}", kept.display());
            }
        }
    }
    assert!(rejected > 0 || iters == 0);
}

#[test]
fn hub_ids_parse_or_fail_cleanly() {
    let mut rng = Rng::new(2, 0x4b);
    let alphabet = b"ab/@.-_ 09/..@/";
    for _ in 0..5000 {
        let len = rng.below(24) as usize;
        let s: String = (0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char).collect();
        if let Ok((repo, _, file)) = train::checkpoint::parse_hub_id(&s) {
            let parts_ok = file.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
            assert!(repo.contains('/') && parts_ok, "{s:?} gave {repo:?} / {file:?}");
        }
    }
}
