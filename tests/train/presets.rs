//! The paper's presets: every row resolves to a valid configuration, the user's flags beat the
//! preset's, and a few rows hold the paper's numbers.

use train::cli::TrainArgs;
use train::config::{parse, Request, RunConfig};

fn resolve(args: &[&str]) -> RunConfig {
    let flags = TrainArgs::from_flags(args).unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    match parse(&flags).unwrap_or_else(|e| panic!("{args:?}: {e:#}")) {
        Request::Train(cfg, _) => *cfg,
        _ => panic!("{args:?}: not a training run"),
    }
}

#[test]
fn every_preset_row_resolves_and_validates() {
    for p in train::presets::OPT {
        for data in p.data {
            let cfg = resolve(&["--data", data, "--model", p.model, "--opt", p.opt]);
            assert!(cfg.preset.is_some(), "{data}/{}/{}", p.model, p.opt);
        }
    }
}

#[test]
fn presets_carry_the_papers_numbers_and_user_flags_win() {
    let c = resolve(&["--data", "cifar100", "--opt", "alig"]);
    assert_eq!((c.model.name.as_str(), c.model.depth, c.model.width, c.run.epochs), ("wrn", Some(40), Some(4), 200));
    assert_eq!(
        (c.data.batch_size, c.optimizer.lr, c.optimizer.momentum, c.optimizer.max_norm, c.optimizer.clip_grad_norm),
        (128, Some(0.1), 0.9, Some(100.0), None)
    );
    let c = resolve(&["--data", "cifar10", "--model", "densenet", "--opt", "sgd"]);
    assert_eq!(
        (c.data.batch_size, c.optimizer.lr, c.optimizer.weight_decay, c.schedule.to_string().as_str()),
        (64, Some(0.1), 1e-4, "step:150,225:0.1")
    );
    let c = resolve(&["--data", "snli", "--opt", "sgd"]);
    assert_eq!(
        (c.model.name.as_str(), c.optimizer.clip_grad_norm, c.schedule.to_string().as_str(), c.optimizer.lr),
        ("nli", Some(5.0), "infersent", Some(1.0))
    );
    // ALI-G and L4 are not clipped; ALI-G projects with radius 5 on SNLI (as the reference code).
    let c = resolve(&["--data", "snli", "--opt", "alig"]);
    assert_eq!((c.optimizer.clip_grad_norm, c.optimizer.max_norm), (None, Some(5.0)));
    assert_eq!(resolve(&["--data", "repeat-copy", "--opt", "l4adam"]).optimizer.clip_grad_norm, None);
    assert_eq!(resolve(&["--data", "repeat-copy", "--opt", "adam"]).optimizer.clip_grad_norm, Some(50.0));
    let c = resolve(&["--data", "svhn-extra", "--opt", "dfw"]);
    assert_eq!(
        (c.model.depth, c.model.width, c.model.dropout, c.optimizer.momentum, c.optimizer.loss.name()),
        (Some(16), Some(4), Some(0.4), 0.0, "svm")
    );
    assert_eq!(resolve(&["--data", "imagenet", "--opt", "alig"]).optimizer.loss.name(), "topk");
    // The user's flags come last and win; `--eta` and `--max-lr` are `--lr`.
    let c = resolve(&["--data", "cifar100", "--opt", "sgd", "--lr", "0.05", "--epochs", "3"]);
    assert_eq!((c.optimizer.lr, c.run.epochs, c.optimizer.weight_decay), (Some(0.05), 3, 5e-4));
    assert_eq!(resolve(&["--data", "cifar100", "--eta", "0.3"]).optimizer.lr, Some(0.3));
    assert_eq!(resolve(&["--data", "cifar100", "--max-lr", "none"]).optimizer.lr, None);
    assert_eq!(resolve(&["--data", "cifar100", "--max-norm", "none"]).optimizer.max_norm, None);
}

#[test]
fn list_names_every_registry_entry() {
    let text = train::list();
    let names = zoo::MODELS.iter().map(|m| m.name).chain(alig::OPTIMIZERS.iter().map(|o| o.name));
    for n in names {
        assert!(text.contains(n), "--list lacks {n}");
    }
    for d in ["digits", "cifar10", "cifar100", "svhn-extra", "snli", "imagenet", "repeat-copy"] {
        assert!(text.contains(d), "--list lacks {d}");
    }
}
