//! Every Rust snippet of README.md is compiled: each is an excerpt of an example that `cargo test`
//! builds (and, for `wrn_cifar100`, runs). A snippet's lines stand, in order and next to each
//! other, in one example; a `// ...` line stands for lines left out.

use std::path::Path;

const EXAMPLES: &[&str] = &["alig/examples/digits.rs", "alig/examples/quickstart.rs", "zoo/examples/wrn_cifar100.rs"];

/// The ```rust blocks of `markdown`, with the line each starts at.
fn rust_blocks(markdown: &str) -> Vec<(usize, Vec<&str>)> {
    let (mut blocks, mut open): (Vec<(usize, Vec<&str>)>, bool) = (vec![], false);
    for (n, line) in markdown.lines().enumerate() {
        match (open, line.trim()) {
            (false, "```rust") => {
                blocks.push((n + 1, vec![]));
                open = true;
            }
            (true, "```") => open = false,
            (true, _) => blocks.last_mut().unwrap().1.push(line),
            _ => {}
        }
    }
    blocks
}

/// True when the runs of `snippet` between `// ...` lines stand in `source` in order, each run's
/// lines consecutive (compared without indentation; blank lines ignored).
fn is_excerpt(snippet: &[&str], source: &str) -> bool {
    let src: Vec<&str> = source.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let lines: Vec<&str> = snippet.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    let mut from = 0;
    for run in lines.split(|l| *l == "// ...") {
        if run.is_empty() {
            continue;
        }
        match (from..=src.len().saturating_sub(run.len())).find(|&i| src[i..i + run.len()] == *run) {
            Some(i) => from = i + run.len(),
            None => return false,
        }
    }
    true
}

#[test]
fn every_rust_snippet_of_the_readme_is_an_excerpt_of_a_compiled_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let sources: Vec<String> = EXAMPLES.iter().map(|e| std::fs::read_to_string(root.join(e)).unwrap()).collect();
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 3, "README.md: expected the alig, zoo and data snippets, found {}", blocks.len());
    for (line, block) in &blocks {
        assert!(
            sources.iter().any(|s| is_excerpt(block, s)),
            "README.md:{line}: this Rust snippet is not an excerpt of {EXAMPLES:?}:\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn an_edited_snippet_is_no_excerpt() {
    let source = "fn main() {\n    let a = 1;\n    let b = 2;\n    let c = 3;\n}\n";
    assert!(is_excerpt(&["let a = 1;", "let b = 2;"], source));
    assert!(is_excerpt(&["let a = 1;", "// ...", "let c = 3;"], source));
    assert!(!is_excerpt(&["let a = 1;", "let c = 3;"], source), "lines left out need `// ...`");
    assert!(!is_excerpt(&["let b = 2;", "// ...", "let a = 1;"], source), "out of order");
    assert!(!is_excerpt(&["let a = 2;"], source));
}
