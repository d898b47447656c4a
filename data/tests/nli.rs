//! SNLI and GloVe: the PTB tokeniser against the reference `tokenizer.sed` (expected tokens
//! produced by running that script with GNU sed), the jsonl reader, vocabulary mapping, and the
//! GloVe reader with its cache.

mod common;

use std::collections::BTreeSet;

use common::temp_dir;
use data::{glove, snli, tokenize::ptb_tokenize};

#[test]
fn ptb_tokenisation_matches_the_sed_script() {
    let cases: &[(&str, &[&str])] = &[
        (
            "A person on a horse jumps over a broken down airplane.",
            &["A", "person", "on", "a", "horse", "jumps", "over", "a", "broken", "down", "airplane", "."],
        ),
        ("Children smiling and waving at camera", &["Children", "smiling", "and", "waving", "at", "camera"]),
        (
            "\"I can't go,\" she said; the man's dog didn't bark.",
            &[
                "``", "I", "ca", "n't", "go", ",", "''", "she", "said", ";", "the", "man", "'s", "dog", "did", "n't",
                "bark", ".",
            ],
        ),
        (
            "They're gonna wanna see it (maybe) -- or not?!",
            &["They", "'re", "gon", "na", "wan", "na", "see", "it", "(", "maybe", ")", "--", "or", "not", "?", "!"],
        ),
        (
            "He cannot, won't & shouldn't pay $5... at 3:30 p.m.",
            &[
                "He", "can", "not", ",", "wo", "n't", "&", "should", "n't", "pay", "$", "5", "...", "at", "3", ":",
                "30", "p.m", ".",
            ],
        ),
        (
            "'Tis the season, lemme tell you: the kids' toys [all of them] are \"new\".",
            &[
                "'T", "is", "the", "season", ",", "lem", "me", "tell", "you", ":", "the", "kids", "'", "toys", "[",
                "all", "of", "them", "]", "are", "``", "new", "''", ".",
            ],
        ),
        (
            "A woman's hat isn't red, I'd say; we'll see, you've seen.",
            &[
                "A", "woman", "'s", "hat", "is", "n't", "red", ",", "I", "'d", "say", ";", "we", "'ll", "see", ",",
                "you", "'ve", "seen", ".",
            ],
        ),
    ];
    for (sentence, want) in cases {
        assert_eq!(ptb_tokenize(sentence), *want, "{sentence}");
    }
}

fn snli_line(label: &str, s1: &str, s2: &str) -> String {
    serde_json::json!({
        "annotator_labels": [label], "captionID": "1", "gold_label": label, "pairID": "1r",
        "sentence1": s1, "sentence1_binary_parse": "", "sentence1_parse": "",
        "sentence2": s2, "sentence2_binary_parse": "", "sentence2_parse": ""
    })
    .to_string()
}

#[test]
fn snli_jsonl_drops_unlabelled_pairs_and_maps_words() {
    let dir = temp_dir("snli");
    let lines = [
        snli_line("neutral", "A man plays.", "He isn't sad."),
        snli_line("-", "Unclear.", "Nobody agrees."),
        snli_line("entailment", "Two dogs run.", "Dogs run."),
        snli_line("contradiction", "A cat sleeps.", "The cat runs."),
    ];
    std::fs::write(dir.join("snli_1.0_dev.jsonl"), lines.join("\n") + "\n").unwrap();
    let raw = snli::read_jsonl(&dir.join("snli_1.0_dev.jsonl")).unwrap();
    assert_eq!((raw.labels.clone(), raw.dropped), (vec![1, 0, 2], 1));
    assert_eq!(raw.hypotheses[0], ["He", "is", "n't", "sad", "."]);
    let words = snli::word_set([&raw]);
    assert!(words.contains("<s>") && words.contains("</s>") && words.contains("n't"));
    // Only words with a vector survive; sentences are wrapped in <s> ... </s>.
    let index: std::collections::HashMap<String, u32> =
        ["<s>", "</s>", "A", "man", "plays", "."].iter().enumerate().map(|(i, w)| (w.to_string(), i as u32)).collect();
    let ids = snli::to_ids(&raw, &index).unwrap();
    assert_eq!(ids.premises[0], [0, 2, 3, 4, 5, 1]);
    assert_eq!(ids.hypotheses[0], [0, 5, 1]);
    let no_markers: std::collections::HashMap<String, u32> = [("A".to_string(), 0)].into();
    assert!(snli::to_ids(&raw, &no_markers).unwrap_err().to_string().contains("<s>"));

    std::fs::write(dir.join("bad.jsonl"), format!("{}\n{{not json\n", lines[0])).unwrap();
    let err = snli::read_jsonl(&dir.join("bad.jsonl")).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2"), "{err}");
    std::fs::write(dir.join("label.jsonl"), snli_line("maybe", "a", "b")).unwrap();
    assert!(snli::read_jsonl(&dir.join("label.jsonl")).unwrap_err().to_string().contains("maybe"));
    assert!(snli::read_jsonl(&dir.join("absent.jsonl")).unwrap_err().to_string().contains("absent.jsonl"));
}

#[test]
fn glove_text_with_odd_tokens_and_the_cache() {
    let dir = temp_dir("glove");
    let path = dir.join("glove.test.3d.txt");
    let text =
        "the 0.1 0.2 0.3\r\n.\u{a0}.\u{a0}. 1 2 3\na b 4 5 6\nshort 1\ncat -1.5 2.5e-1 0\nthe 9 9 9\nunused 7 7 7\n";
    std::fs::write(&path, text).unwrap();
    let keep: BTreeSet<String> =
        ["the", ".\u{a0}.\u{a0}.", "a b", "cat", "short", "dog"].iter().map(|s| s.to_string()).collect();
    let v = glove::read_text(&path, 3, &keep).unwrap();
    assert_eq!(v.words, ["the", ".\u{a0}.\u{a0}.", "a b", "cat"]);
    assert_eq!(v.vectors, [0.1, 0.2, 0.3, 1., 2., 3., 4., 5., 6., -1.5, 0.25, 0.]);
    // The cache reproduces the vectors, and is used on the second load.
    let a = glove::load_cached(&path, 3, &keep).unwrap();
    assert!(glove::cache_path(&path, &keep).is_file());
    let b = glove::load_cached(&path, 3, &keep).unwrap();
    assert_eq!(a, v);
    assert_eq!(b, v);
    let err = glove::read_text(&dir.join("absent.txt"), 3, &keep).unwrap_err().to_string();
    assert!(err.contains("absent.txt") && err.contains("glove.840B.300d.zip"), "{err}");
    // A bad number names the file and line.
    std::fs::write(dir.join("bad.txt"), "the 0.1 x 0.3\n").unwrap();
    let err = glove::read_text(&dir.join("bad.txt"), 3, &keep).unwrap_err().to_string();
    assert!(err.contains("bad.txt:1") && err.contains("\"x\""), "{err}");
}

/// The pair loader: seeded shuffles that differ by epoch and repeat for a seed, resume from a
/// batch, zero padding after each sentence in time-major layout, evaluation order, bad ids.
#[test]
fn the_pair_loader_batches_pairs_time_major_and_repeats_by_seed() {
    use std::sync::Arc;

    use candle_core::Device;
    use data::{PairLoader, PairLoaderConfig};

    let dim = 3;
    let vectors = Arc::new(glove::Vectors {
        words: (0..6).map(|i| format!("w{i}")).collect(),
        dim,
        vectors: (0..18).map(|v| v as f32 + 1.0).collect(),
    });
    let n = 7;
    let pairs = snli::NliPairs {
        premises: (0..n).map(|i| (0..1 + i % 3).map(|k| ((i + k) % 6) as u32).collect()).collect(),
        hypotheses: (0..n).map(|i| vec![(i % 6) as u32; 2]).collect(),
        labels: (0..n).map(|i| (i % 3) as u32).collect(),
    };
    let cfg = PairLoaderConfig { batch_size: 3, shuffle: true, seed: 5, shard: data::Shard::WHOLE };
    let loader = PairLoader::new(pairs.clone(), vectors.clone(), cfg, Device::Cpu).unwrap();
    assert_eq!((loader.len(), loader.batches()), (7, 3));
    let (o0, o1) = (loader.order(0), loader.order(1));
    assert_ne!(o0, o1, "epochs are shuffled differently");
    let mut sorted = o0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    let again = PairLoader::new(pairs.clone(), vectors.clone(), cfg, Device::Cpu).unwrap();
    assert_eq!(again.order(0), o0, "a seed repeats its order");
    let batches: Vec<_> = loader.epoch_from(0, 0).map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [3, 3, 1]);
    let first = &batches[0];
    let x = first.premises.to_vec3::<f32>().unwrap(); // [T, B, D]
    for (j, &i) in o0[..3].iter().enumerate() {
        let ids = &pairs.premises[i];
        assert_eq!(first.premise_lengths[j], ids.len());
        for (t, row) in x.iter().enumerate() {
            let want: Vec<f32> = match ids.get(t) {
                Some(&id) => vectors.vectors[id as usize * dim..(id as usize + 1) * dim].to_vec(),
                None => vec![0.0; dim],
            };
            assert_eq!(row[j], want, "pair {i} step {t}");
        }
    }
    assert_eq!(first.labels.to_vec1::<u32>().unwrap(), o0[..3].iter().map(|&i| pairs.labels[i]).collect::<Vec<_>>());
    // Resuming at batch 1 gives the rest of the same epoch.
    let rest: Vec<_> = loader.epoch_from(0, 1).map(Result::unwrap).collect();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].labels.to_vec1::<u32>().unwrap(), batches[1].labels.to_vec1::<u32>().unwrap());
    // Evaluation order is the split's own.
    let eval = PairLoader::new(pairs.clone(), vectors.clone(), PairLoaderConfig { shuffle: false, ..cfg }, Device::Cpu)
        .unwrap();
    assert_eq!(eval.order(3), (0..n).collect::<Vec<_>>());
    // Ids outside the table and empty splits are errors, not panics.
    let mut bad = pairs.clone();
    bad.hypotheses[2][1] = 99;
    let err = PairLoader::new(bad, vectors.clone(), cfg, Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("99") && err.contains("6 word vectors"), "{err}");
    assert!(PairLoader::new(snli::NliPairs::default(), vectors.clone(), cfg, Device::Cpu).is_err());
    // Two processes: each takes its slice of every batch, the slices together are the batch.
    let labels = |l: &PairLoader| -> Vec<Vec<u32>> {
        l.epoch_from(1, 0).map(|b| b.unwrap().labels.to_vec1().unwrap()).collect()
    };
    let cfg = PairLoaderConfig { batch_size: 4, ..cfg };
    let whole = labels(&PairLoader::new(pairs.clone(), vectors.clone(), cfg, Device::Cpu).unwrap());
    let halves: Vec<_> = (0..2)
        .map(|rank| {
            let shard = data::Shard::new(rank, 2).unwrap();
            labels(
                &PairLoader::new(pairs.clone(), vectors.clone(), PairLoaderConfig { shard, ..cfg }, Device::Cpu)
                    .unwrap(),
            )
        })
        .collect();
    for (b, want) in whole.iter().enumerate() {
        assert_eq!(&[halves[0][b].clone(), halves[1][b].clone()].concat(), want, "batch {b}");
    }
    assert_eq!(halves[0].iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    // Four processes cannot share the last batch of three pairs.
    let shard = data::Shard::new(0, 4).unwrap();
    assert!(PairLoader::new(pairs, vectors, PairLoaderConfig { shard, ..cfg }, Device::Cpu).is_err());
}
