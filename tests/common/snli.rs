//! The tests' SNLI fixture, shared by `tests/train` and `tests/distributed` (`#[path]` modules).

use std::path::{Path, PathBuf};

/// A tiny SNLI folder (jsonl splits of `sizes` train/dev/test pairs and 300-d GloVe text with
/// every word) for the NLI model.
pub fn tiny_snli(dir: &Path, sizes: [usize; 3]) -> PathBuf {
    let d = dir.join("snli");
    std::fs::create_dir_all(&d).unwrap();
    let labels = ["entailment", "neutral", "contradiction"];
    let words = ["a", "dog", "cat", "runs", "sleeps", "the", "man", "eats", "."];
    for (name, n) in ["train", "dev", "test"].into_iter().zip(sizes) {
        let mut text = String::new();
        for i in 0..n {
            let s1 = format!("{} {} {} .", words[i % 2 + 5], words[1 + i % 3], words[3 + i % 2]);
            let s2 = format!("{} {} .", words[1 + (i + 1) % 3], words[3 + (i / 2) % 2]);
            let l = labels[i % 3];
            text += &serde_json::json!({"gold_label": l, "sentence1": s1, "sentence2": s2}).to_string();
            text.push('\n');
        }
        std::fs::write(d.join(format!("snli_1.0_{name}.jsonl")), text).unwrap();
    }
    let mut glove = String::new();
    for (w, word) in words.iter().chain(["<s>", "</s>"].iter()).enumerate() {
        let v: Vec<String> =
            (0..300).map(|k| format!("{:.3}", (((w * 31 + k * 7) % 19) as f32 - 9.0) / 10.0)).collect();
        glove += &format!("{word} {}\n", v.join(" "));
    }
    std::fs::write(d.join("glove.840B.300d.txt"), glove).unwrap();
    d
}
