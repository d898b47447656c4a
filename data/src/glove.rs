//! GloVe word vectors (`glove.840B.300d.txt` and friends): one word per line, `token v1 .. vD`.
//!
//! Lines are split on ASCII spaces only and the last `D` fields are the vector (840B has tokens
//! containing non-breaking and even ASCII spaces); lines with fewer fields are skipped. Only the
//! words of the task are kept, and the filtered matrix is cached as safetensors next to the text
//! file's folder, so the second run starts at once instead of streaming 5.6 GB again.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use candle_core::{bail, Result};

/// The kept vectors, `words[i]` owning row `i` of `vectors` (`len x dim`, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Vectors {
    /// The words, in the order of the rows.
    pub words: Vec<String>,
    /// The vector size (300 for GloVe 840B).
    pub dim: usize,
    /// `words.len() x dim` values, row-major.
    pub vectors: Vec<f32>,
}

impl Vectors {
    /// Word -> row.
    pub fn index(&self) -> HashMap<String, u32> {
        self.words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect()
    }
}

/// Reads the vectors of the words in `keep` from a GloVe text file of dimension `dim` (in file
/// order; a word seen twice keeps its first vector).
pub fn read_text(path: &Path, dim: usize, keep: &BTreeSet<String>) -> Result<Vectors> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        candle_core::Error::Msg(format!("{what}: {e}; get glove.840B.300d.zip from https://nlp.stanford.edu/projects/glove/ (or the stanfordnlp/glove hub repo)"))
    })?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut words, mut vectors) = (vec![], vec![]);
    let mut seen = std::collections::HashSet::new();
    let mut line = Vec::new();
    let mut n = 0usize;
    while {
        line.clear();
        r.read_until(b'\n', &mut line).map_err(|e| candle_core::Error::Msg(format!("{what}: {e}")))? > 0
    } {
        n += 1;
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if fields.len() < dim + 1 {
            continue;
        }
        let token_fields = &fields[..fields.len() - dim];
        let token = String::from_utf8_lossy(&token_fields.join(&b' ')).into_owned();
        if !keep.contains(&token) || seen.contains(&token) {
            continue;
        }
        for f in &fields[fields.len() - dim..] {
            let v = std::str::from_utf8(f).ok().and_then(|s| s.parse::<f32>().ok()).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "{what}:{n}: bad number {:?} in the vector of {token:?}",
                    String::from_utf8_lossy(f)
                ))
            })?;
            vectors.push(v);
        }
        seen.insert(token.clone());
        words.push(token);
    }
    if n == 0 {
        bail!("{what}: empty file")
    }
    Ok(Vectors { words, dim, vectors })
}

/// The cache file for `source` and the word set `keep`.
pub fn cache_path(source: &Path, keep: &BTreeSet<String>) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in keep {
        for b in w.bytes().chain([0xff]) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let stem = source.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    source.with_file_name(format!(".{stem}.{h:016x}.safetensors"))
}

/// [`read_text`] through a safetensors cache keyed by the word set and the source's size.
pub fn load_cached(source: &Path, dim: usize, keep: &BTreeSet<String>) -> Result<Vectors> {
    let cache = cache_path(source, keep);
    let size = std::fs::metadata(source).map(|m| m.len()).ok();
    if let (Ok(bytes), Some(size)) = (std::fs::read(&cache), size) {
        if let Ok(v) = decode_cache(&bytes, size, dim) {
            return Ok(v);
        }
    }
    let v = read_text(source, dim, keep)?;
    if let Some(size) = size {
        // A cache that cannot be written (read-only folder) only costs time.
        let _ = write_cache(&cache, &v, size);
    }
    Ok(v)
}

fn write_cache(path: &Path, v: &Vectors, source_size: u64) -> Result<()> {
    let data: Vec<u8> = v.vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![v.words.len(), v.dim], &data)
        .map_err(|e| candle_core::Error::Msg(format!("glove cache: {e}")))?;
    let meta: HashMap<String, String> = [
        ("words".to_string(), serde_json::to_string(&v.words).map_err(|e| candle_core::Error::Msg(e.to_string()))?),
        ("source_size".to_string(), source_size.to_string()),
    ]
    .into();
    let tmp = path.with_extension("tmp");
    safetensors::serialize_to_file([("vectors", view)], Some(meta), &tmp)
        .map_err(|e| candle_core::Error::Msg(format!("glove cache: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| candle_core::Error::Msg(format!("glove cache: {e}")))
}

fn decode_cache(bytes: &[u8], source_size: u64, dim: usize) -> std::result::Result<Vectors, String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let m = meta.metadata().as_ref().ok_or("no metadata")?;
    if m.get("source_size") != Some(&source_size.to_string()) {
        return Err("stale".into());
    }
    let words: Vec<String> = serde_json::from_str(m.get("words").ok_or("no words")?).map_err(|e| e.to_string())?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let t = st.tensor("vectors").map_err(|e| e.to_string())?;
    if t.shape() != [words.len(), dim] {
        return Err("shape".into());
    }
    let vectors = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Vectors { words, dim, vectors })
}
