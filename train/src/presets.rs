//! The paper's hyper-parameters, as command-line flags per (data, model) and per (data, model,
//! optimizer); `shared/spec/optimizers.md` section 11 is the source of every number. The user's
//! own flags come after a preset's and win.
//!
//! Where the reference code and the paper's text may differ, the preset follows the code: SNLI's
//! ALI-G runs project onto an l2 ball of radius 5 (the code's `max_norm` default, shared with the
//! gradient clipping of the baselines); L4 always ran with fraction 0.15 (the yaml's `eta` never
//! reached it); SVHN's BPGrad ran with momentum 0 (see the `alig` crate's BPGrad docs for what
//! that does here).

/// Flags for every optimizer on a (data, model) pair.
pub struct BasePreset {
    pub data: &'static [&'static str],
    pub model: &'static str,
    pub flags: &'static str,
    pub source: &'static str,
}

/// Flags for one (data, model, optimizer) triple.
pub struct OptPreset {
    pub data: &'static [&'static str],
    pub model: &'static str,
    pub opt: &'static str,
    pub flags: &'static str,
}

const CIFAR10: &[&str] = &["cifar10"];
const CIFAR100: &[&str] = &["cifar100"];
const SVHN: &[&str] = &["svhn", "svhn-extra"];
const SNLI: &[&str] = &["snli"];
const DNC: &[&str] = &["repeat-copy"];
const DIGITS: &[&str] = &["digits"];

pub static BASE: &[BasePreset] = &[
    BasePreset {
        data: DIGITS,
        model: "wrn",
        flags: "--depth 10 --width 2 --epochs 8 --batch-size 32",
        source: "this toolkit's quick run (not in the paper)",
    },
    BasePreset {
        data: &["cifar10", "cifar100"],
        model: "wrn",
        flags: "--depth 40 --width 4 --epochs 200",
        source: "reproduce/cifar.py",
    },
    BasePreset {
        data: &["cifar10", "cifar100"],
        model: "densenet",
        flags: "--depth 40 --growth 40 --epochs 300",
        source: "reproduce/cifar.py",
    },
    BasePreset {
        data: SVHN,
        model: "wrn",
        flags: "--depth 16 --width 4 --batch-size 128 --momentum 0 --epochs 160 --dropout 0.4",
        source: "reproduce/svhn.py",
    },
    BasePreset {
        data: SNLI,
        model: "nli",
        flags: "--epochs 20 --batch-size 64 --momentum 0 --weight-decay 0 --hidden 2048",
        source: "InferSent ali-g branch, train_nli.py",
    },
    BasePreset {
        data: DNC,
        model: "dnc",
        flags: "--epochs 10 --steps-per-epoch 1000 --batch-size 16 --hidden 64 --loss sigmoid-ce",
        source: "dnc ali-g branch (10,000 iterations of batch 16)",
    },
    BasePreset {
        data: &["imagenet"],
        model: "resnet18",
        flags: "--epochs 90 --loss topk",
        source: "reproduce/imagenet.py",
    },
];

macro_rules! opt_presets {
    ($($data:expr, $model:literal, $opt:literal => $flags:literal;)*) => {
        &[$(OptPreset { data: $data, model: $model, opt: $opt, flags: $flags }),*]
    };
}

pub static OPT: &[OptPreset] = opt_presets![
    DIGITS, "wrn", "alig" => "--lr 1 --momentum 0.9";

    CIFAR10, "wrn", "sgd" => "--batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule step:60,120,160:0.2";
    CIFAR10, "wrn", "alig" => "--batch-size 256 --lr 1 --momentum 0.9 --max-norm 100";
    CIFAR10, "wrn", "dfw" => "--batch-size 512 --lr 1 --momentum 0.9 --weight-decay 1e-4 --loss smooth-svm";
    CIFAR10, "wrn", "amsgrad" => "--batch-size 512 --lr 1e-3 --weight-decay 1e-4";
    CIFAR10, "wrn", "adamw" => "--batch-size 128 --lr 1e-3 --weight-decay 1e-3";
    CIFAR10, "wrn", "yogi" => "--batch-size 128 --lr 1e-3 --weight-decay 1e-4";
    CIFAR10, "wrn", "l4adam" => "--batch-size 128 --weight-decay 1e-4";
    CIFAR10, "wrn", "l4mom" => "--batch-size 128 --weight-decay 1e-4";

    CIFAR10, "densenet", "sgd" => "--batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule step:150,225:0.1";
    CIFAR10, "densenet", "alig" => "--batch-size 64 --lr 0.1 --momentum 0.9 --max-norm 75";
    CIFAR10, "densenet", "dfw" => "--batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --loss smooth-svm";
    CIFAR10, "densenet", "amsgrad" => "--batch-size 128 --lr 1e-3 --weight-decay 1e-4";
    CIFAR10, "densenet", "adamw" => "--batch-size 64 --lr 1e-3 --weight-decay 1e-4";
    CIFAR10, "densenet", "yogi" => "--batch-size 64 --lr 1e-3 --weight-decay 1e-4";
    CIFAR10, "densenet", "l4adam" => "--batch-size 256 --weight-decay 1e-4";
    CIFAR10, "densenet", "l4mom" => "--batch-size 64 --weight-decay 1e-4";

    CIFAR100, "wrn", "sgd" => "--batch-size 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule step:60,120,160:0.2";
    CIFAR100, "wrn", "alig" => "--batch-size 128 --lr 0.1 --momentum 0.9 --max-norm 100";
    CIFAR100, "wrn", "dfw" => "--batch-size 256 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --loss smooth-svm";
    CIFAR100, "wrn", "amsgrad" => "--batch-size 128 --lr 1e-3 --weight-decay 1e-4";
    CIFAR100, "wrn", "adamw" => "--batch-size 128 --lr 1e-3 --weight-decay 5e-4";
    CIFAR100, "wrn", "yogi" => "--batch-size 128 --lr 1e-3 --weight-decay 1e-4";
    CIFAR100, "wrn", "l4adam" => "--batch-size 512 --weight-decay 1e-4";
    CIFAR100, "wrn", "l4mom" => "--batch-size 512 --weight-decay 5e-4";
    // hparams/cifar_train.yaml (training-performance runs: no weight decay, no schedule).
    CIFAR100, "wrn", "adagrad" => "--batch-size 128 --lr 0.1";
    CIFAR100, "wrn", "adam" => "--batch-size 128 --lr 1e-3";

    CIFAR100, "densenet", "sgd" => "--batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule step:150,225:0.1";
    CIFAR100, "densenet", "alig" => "--batch-size 256 --lr 0.1 --momentum 0.9 --max-norm 75";
    CIFAR100, "densenet", "dfw" => "--batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --loss smooth-svm";
    CIFAR100, "densenet", "amsgrad" => "--batch-size 64 --lr 1e-3 --weight-decay 1e-4";
    CIFAR100, "densenet", "adamw" => "--batch-size 64 --lr 1e-3 --weight-decay 1e-2";
    CIFAR100, "densenet", "yogi" => "--batch-size 64 --lr 1e-3 --weight-decay 1e-4";
    CIFAR100, "densenet", "l4adam" => "--batch-size 256 --weight-decay 1e-4";
    CIFAR100, "densenet", "l4mom" => "--batch-size 256 --weight-decay 1e-4";
    CIFAR100, "densenet", "adagrad" => "--batch-size 64 --lr 0.1";
    CIFAR100, "densenet", "adam" => "--batch-size 64 --lr 1e-3";

    SVHN, "wrn", "adagrad" => "--lr 0.01 --weight-decay 5e-4";
    SVHN, "wrn", "adam" => "--lr 1e-5 --weight-decay 5e-4";
    SVHN, "wrn", "amsgrad" => "--lr 1e-4 --weight-decay 5e-4";
    SVHN, "wrn", "bpgrad" => "--lr 0.01 --weight-decay 5e-4";
    SVHN, "wrn", "dfw" => "--lr 0.01 --weight-decay 1e-4 --loss svm";
    SVHN, "wrn", "l4adam" => "--weight-decay 1e-4";
    SVHN, "wrn", "l4mom" => "--weight-decay 5e-4";
    SVHN, "wrn", "alig" => "--lr 0.01 --max-norm 50";

    // SNLI: the cross-entropy runs (DFW: the hinge loss); gradients clipped to norm 5 except for
    // DFW, ALI-G and L4.
    SNLI, "nli", "adagrad" => "--lr 0.01 --clip-grad-norm 5";
    SNLI, "nli", "adam" => "--lr 1e-4 --clip-grad-norm 5";
    SNLI, "nli", "amsgrad" => "--lr 1e-4 --clip-grad-norm 5";
    SNLI, "nli", "bpgrad" => "--lr 1 --clip-grad-norm 5";
    SNLI, "nli", "sgd" => "--lr 1 --clip-grad-norm 5 --schedule infersent";
    SNLI, "nli", "dfw" => "--lr 1 --loss svm";
    SNLI, "nli", "l4adam" => "";
    SNLI, "nli", "l4mom" => "";
    SNLI, "nli", "alig" => "--lr 1 --max-norm 5";

    // DNC: gradients clipped to norm 50 except for ALI-G and L4; the paper sweeps the learning
    // rate (see `train sweep`), these are single points of its grids.
    DNC, "dnc", "alig" => "--lr 1e4 --momentum 0 --eps 0";
    DNC, "dnc", "sgd" => "--lr 1 --momentum 0 --clip-grad-norm 50";
    DNC, "dnc", "adam" => "--lr 1e-3 --clip-grad-norm 50";
    DNC, "dnc", "adagrad" => "--lr 0.1 --initial-accumulator 0.1 --clip-grad-norm 50";
    DNC, "dnc", "rmsprop" => "--lr 1e-3 --clip-grad-norm 50";
    DNC, "dnc", "momentum" => "--lr 0.1 --momentum 0.9 --clip-grad-norm 50";
    DNC, "dnc", "l4adam" => "";
    DNC, "dnc", "l4mom" => "";

    &["imagenet"], "resnet18", "alig" => "--lr 10 --momentum 0 --batch-size 1024 --max-norm 400 --no-augment";
];

/// The preset flags for a triple (base, then optimizer-specific), and where they come from.
pub fn flags(data: &str, model: &str, opt: &str) -> Option<(Vec<String>, String)> {
    let base = BASE.iter().find(|p| p.model == model && p.data.contains(&data));
    let specific = OPT.iter().find(|p| p.model == model && p.opt == opt && p.data.contains(&data));
    if base.is_none() && specific.is_none() {
        return None;
    }
    let text = [base.map(|b| b.flags), specific.map(|s| s.flags)].into_iter().flatten().collect::<Vec<_>>().join(" ");
    let source = base.map_or("the paper's tables", |b| b.source).to_string();
    Some((text.split_whitespace().map(String::from).collect(), source))
}
