//! Workspace-level checks of the optimizer registry that the CLI and the presets read.

#[test]
fn registry_names_are_unique_and_unknown_names_list_the_choices() {
    let names: Vec<&str> = alig::OPTIMIZERS.iter().map(|s| s.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate optimizer names in {names:?}");
    for expected in ["alig", "sgd", "adam", "amsgrad", "adagrad", "adamw", "yogi", "dfw", "bpgrad", "l4adam", "l4mom"] {
        assert!(names.contains(&expected), "{expected} missing from the registry");
    }
    let err = alig::registry::find("adamax").err().expect("unknown name must fail").to_string();
    assert!(err.contains("adamax") && err.contains("alig") && err.contains("l4mom"), "{err}");
}
