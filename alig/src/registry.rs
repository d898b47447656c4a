//! The one table of optimizers: the CLI's choices, `--list`, the presets and the tests all read it.

use candle_core::{bail, Result};

use crate::optimizer::{Hyper, Optimizer};
use crate::params::ParamSet;
use crate::{
    Adagrad, AdagradConfig, Adam, AdamConfig, Adamw, AdamwConfig, Alig, AligConfig, Bpgrad, BpgradConfig, Dfw,
    DfwConfig, L4Config, L4Direction, Momentum, MomentumConfig, Rmsprop, RmspropConfig, Sgd, SgdConfig, Yogi,
    YogiConfig, L4,
};

type Build = fn(ParamSet, &Hyper) -> Result<Box<dyn Optimizer>>;

/// One optimizer of the registry.
pub struct OptimizerSpec {
    /// The name on the command line and in state keys.
    pub name: &'static str,
    /// One line for `train list`: what it is and where the paper uses it.
    pub summary: &'static str,
    /// The [`Hyper`] fields it reads; the others are ignored.
    pub uses: &'static [&'static str],
    /// True when the step size depends on the loss value (the rest ignore it).
    pub uses_loss: bool,
    /// The reference implementation's defaults, as a [`Hyper`].
    pub defaults: fn() -> Hyper,
    /// The defaults of the paper's experiment scripts (the reference command line), where they
    /// differ from [`OptimizerSpec::defaults`]: momentum 0.9 for SGD, ALI-G, DFW and BPGrad, and
    /// ALI-G's `max_lr` 0.1. The `train` binary starts from these.
    pub experiment_defaults: fn() -> Hyper,
    build: Build,
}

impl OptimizerSpec {
    /// Builds the optimizer over `params` from `hyper`, checking its values.
    pub fn build(&self, params: ParamSet, hyper: &Hyper) -> Result<Box<dyn Optimizer>> {
        (self.build)(params, hyper)
    }
}

fn boxed<O: Optimizer + 'static>(o: Result<O>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(o?))
}

const ADAM_USES: &[&str] = &["lr", "weight_decay", "eps", "betas"];
const L4_USES: &[&str] = &["fraction", "weight_decay"];

/// Every optimizer of the paper.
pub static OPTIMIZERS: &[OptimizerSpec] = &[
    OptimizerSpec {
        name: "alig",
        summary: "ALI-G: step min(loss / (|g|^2 + eps), max_lr), Nesterov-style momentum, l2-ball projection",
        uses: &["lr (max_lr)", "momentum", "max_norm", "eps", "adjusted_momentum"],
        uses_loss: true,
        defaults: || AligConfig::default().to_hyper(),
        experiment_defaults: || Hyper { lr: Some(0.1), momentum: 0.9, ..AligConfig::default().to_hyper() },
        build: |p, h| boxed(Alig::new(p, AligConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "sgd",
        summary: "SGD with (Nesterov) momentum and coupled weight decay, as torch.optim.SGD",
        uses: &["lr", "momentum", "weight_decay", "nesterov"],
        uses_loss: false,
        defaults: || SgdConfig::default().to_hyper(),
        experiment_defaults: || SgdConfig { momentum: 0.9, nesterov: true, ..SgdConfig::default() }.to_hyper(),
        build: |p, h| boxed(Sgd::new(p, SgdConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "adam",
        summary: "Adam, as torch.optim.Adam (coupled weight decay)",
        uses: ADAM_USES,
        uses_loss: false,
        defaults: || AdamConfig::default().to_hyper(),
        experiment_defaults: || AdamConfig::default().to_hyper(),
        build: |p, h| boxed(Adam::new(p, AdamConfig::from_hyper(h, false))),
    },
    OptimizerSpec {
        name: "amsgrad",
        summary: "AMSGrad, as torch.optim.Adam(amsgrad=True)",
        uses: ADAM_USES,
        uses_loss: false,
        defaults: || AdamConfig::default().to_hyper(),
        experiment_defaults: || AdamConfig::default().to_hyper(),
        build: |p, h| boxed(Adam::new(p, AdamConfig::from_hyper(h, true))),
    },
    OptimizerSpec {
        name: "adagrad",
        summary: "Adagrad, as torch.optim.Adagrad",
        uses: &["lr", "weight_decay", "eps", "initial_accumulator"],
        uses_loss: false,
        defaults: || AdagradConfig::default().to_hyper(),
        experiment_defaults: || AdagradConfig::default().to_hyper(),
        build: |p, h| boxed(Adagrad::new(p, AdagradConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "adamw",
        summary: "AdamW with decoupled weight decay, as the paper's code (2019 epsilon placement)",
        uses: ADAM_USES,
        uses_loss: false,
        defaults: || AdamwConfig::default().to_hyper(),
        experiment_defaults: || AdamwConfig::default().to_hyper(),
        build: |p, h| boxed(Adamw::new(p, AdamwConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "yogi",
        summary: "Yogi, as the paper's code",
        uses: ADAM_USES,
        uses_loss: false,
        defaults: || YogiConfig::default().to_hyper(),
        experiment_defaults: || YogiConfig::default().to_hyper(),
        build: |p, h| boxed(Yogi::new(p, YogiConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "dfw",
        summary: "Deep Frank-Wolfe (use with the multi-class hinge loss)",
        uses: &["lr (eta)", "momentum", "weight_decay", "eps"],
        uses_loss: true,
        defaults: || DfwConfig::default().to_hyper(),
        experiment_defaults: || DfwConfig { momentum: 0.9, ..DfwConfig::default() }.to_hyper(),
        build: |p, h| boxed(Dfw::new(p, DfwConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "bpgrad",
        summary: "BPGrad (momentum 0 takes a step, unlike the reference)",
        uses: &["lr (eta)", "momentum", "weight_decay", "eps"],
        uses_loss: true,
        defaults: || BpgradConfig::default().to_hyper(),
        experiment_defaults: || BpgradConfig { momentum: 0.9, ..BpgradConfig::default() }.to_hyper(),
        build: |p, h| boxed(Bpgrad::new(p, BpgradConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "l4adam",
        summary: "L4 step-size adaptation of the Adam direction",
        uses: L4_USES,
        uses_loss: true,
        defaults: || L4Config::default().to_hyper(),
        experiment_defaults: || L4Config::default().to_hyper(),
        build: |p, h| boxed(L4::new(p, L4Config::from_hyper(h, L4Direction::Adam))),
    },
    OptimizerSpec {
        name: "l4mom",
        summary: "L4 step-size adaptation of the momentum direction",
        uses: L4_USES,
        uses_loss: true,
        defaults: || L4Config::default().to_hyper(),
        experiment_defaults: || L4Config::default().to_hyper(),
        build: |p, h| boxed(L4::new(p, L4Config::from_hyper(h, L4Direction::Momentum))),
    },
    OptimizerSpec {
        name: "rmsprop",
        summary: "RMSProp as TensorFlow 1 (mean square starts at 1, eps inside the root): the DNC baseline",
        uses: &["lr", "momentum", "eps"],
        uses_loss: false,
        defaults: || RmspropConfig::default().to_hyper(),
        experiment_defaults: || RmspropConfig::default().to_hyper(),
        build: |p, h| boxed(Rmsprop::new(p, RmspropConfig::from_hyper(h))),
    },
    OptimizerSpec {
        name: "momentum",
        summary: "heavy-ball momentum as TensorFlow 1's MomentumOptimizer (the DNC code's \"nag\")",
        uses: &["lr", "momentum"],
        uses_loss: false,
        defaults: || MomentumConfig::default().to_hyper(),
        experiment_defaults: || MomentumConfig::default().to_hyper(),
        build: |p, h| boxed(Momentum::new(p, MomentumConfig::from_hyper(h))),
    },
];

/// The registry row named `name`; the error lists the valid names.
pub fn find(name: &str) -> Result<&'static OptimizerSpec> {
    lookup(OPTIMIZERS, "optimizer", name, |s| s.name)
}

/// The row of `table` whose `name_of` is `name`: the lookup of every registry of the workspace
/// (optimizers here, models in `zoo`, datasets in `data`). The error names the kind of row
/// (`what`) and lists the valid names.
pub fn lookup<'a, T>(table: &'a [T], what: &str, name: &str, name_of: fn(&T) -> &str) -> Result<&'a T> {
    match table.iter().find(|row| name_of(row) == name) {
        Some(row) => Ok(row),
        None => {
            let names: Vec<&str> = table.iter().map(name_of).collect();
            bail!("unknown {what} {name:?}; expected one of: {}", names.join(", "))
        }
    }
}

/// Builds the optimizer `name` over `params` from `hyper`.
pub fn build(name: &str, params: ParamSet, hyper: &Hyper) -> Result<Box<dyn Optimizer>> {
    find(name)?.build(params, hyper)
}
