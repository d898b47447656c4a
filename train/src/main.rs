//! The `train` binary of the ALI-G toolkit. The training loop arrives with issue #6; until then it
//! lists the optimizers of the `alig` crate.

fn main() {
    println!("optimizers of the alig crate:");
    for spec in alig::OPTIMIZERS {
        println!("  {:<8} {}", spec.name, spec.summary);
    }
    eprintln!("train: the training loop is not implemented yet (issue #6)");
    std::process::exit(2);
}
