//! `train`: see `train --help` and the README.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(train::main_with_args(&args));
}
