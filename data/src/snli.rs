//! SNLI 1.0 (`snli_1.0_{train,dev,test}.jsonl`) as the paper's InferSent pipeline prepares it:
//! pairs without a gold label (`-`) dropped; labels entailment 0, neutral 1, contradiction 2;
//! sentences PTB-tokenised ([`crate::tokenize`]); words without a GloVe vector dropped from the
//! sentence (not mapped to an unknown token); each sentence wrapped in `<s>` ... `</s>`.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;

use candle_core::{bail, Result};
use serde::Deserialize;

use crate::tokenize::ptb_tokenize;

/// The label names, by id.
pub const LABELS: [&str; 3] = ["entailment", "neutral", "contradiction"];
/// Sentence markers, which must have vectors.
pub const BOS: &str = "<s>";
/// The end-of-sentence marker.
pub const EOS: &str = "</s>";

/// Tokenised sentence pairs with labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawPairs {
    /// The premises' tokens.
    pub premises: Vec<Vec<String>>,
    /// The hypotheses' tokens.
    pub hypotheses: Vec<Vec<String>>,
    /// Labels as indices into [`LABELS`].
    pub labels: Vec<u32>,
    /// Lines skipped for the `-` gold label.
    pub dropped: usize,
}

#[derive(Deserialize)]
struct Line {
    gold_label: String,
    sentence1: String,
    sentence2: String,
}

/// Reads one SNLI jsonl file.
pub fn read_jsonl(path: &Path) -> Result<RawPairs> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        candle_core::Error::Msg(format!("{what}: {e}; get snli_1.0.zip from https://nlp.stanford.edu/projects/snli/ or let the hub feature fetch stanfordnlp/snli"))
    })?;
    let mut out = RawPairs::default();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| candle_core::Error::Msg(format!("{what}:{}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line)
            .map_err(|e| candle_core::Error::Msg(format!("{what}:{}: not an SNLI record ({e})", n + 1)))?;
        if l.gold_label == "-" {
            out.dropped += 1;
            continue;
        }
        let Some(label) = LABELS.iter().position(|x| *x == l.gold_label) else {
            bail!("{what}:{}: unknown gold_label {:?} (expected one of {LABELS:?} or \"-\")", n + 1, l.gold_label)
        };
        out.premises.push(ptb_tokenize(&l.sentence1));
        out.hypotheses.push(ptb_tokenize(&l.sentence2));
        out.labels.push(label as u32);
    }
    if out.labels.is_empty() {
        bail!("{what}: no labelled pairs")
    }
    Ok(out)
}

/// Every token of the given pairs plus the sentence markers (the reference's word set).
pub fn word_set<'a>(splits: impl IntoIterator<Item = &'a RawPairs>) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = [BOS, EOS, "<p>"].iter().map(|s| s.to_string()).collect();
    for s in splits {
        for sent in s.premises.iter().chain(&s.hypotheses) {
            set.extend(sent.iter().cloned());
        }
    }
    set
}

/// Pairs as ids into a vocabulary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NliPairs {
    /// The premises' word ids.
    pub premises: Vec<Vec<u32>>,
    /// The hypotheses' word ids.
    pub hypotheses: Vec<Vec<u32>>,
    /// Labels as indices into [`LABELS`].
    pub labels: Vec<u32>,
}

impl NliPairs {
    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for no pairs.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` pairs.
    pub fn truncate(mut self, n: usize) -> Self {
        self.premises.truncate(n);
        self.hypotheses.truncate(n);
        self.labels.truncate(n);
        self
    }
}

/// Maps tokens to ids of `index`, dropping those without an entry and wrapping each sentence in
/// `<s>` ... `</s>`. Fails if the markers have no entry.
pub fn to_ids(raw: &RawPairs, index: &HashMap<String, u32>) -> Result<NliPairs> {
    let (Some(&bos), Some(&eos)) = (index.get(BOS), index.get(EOS)) else {
        bail!("the word vectors have no {BOS} / {EOS} (GloVe 840B has them; the reference pipeline needs them)")
    };
    let map = |s: &Vec<String>| {
        let mut v = vec![bos];
        v.extend(s.iter().filter_map(|w| index.get(w).copied()));
        v.push(eos);
        v
    };
    Ok(NliPairs {
        premises: raw.premises.iter().map(map).collect(),
        hypotheses: raw.hypotheses.iter().map(map).collect(),
        labels: raw.labels.clone(),
    })
}
