//! The hub path end to end without network: a hub cache laid out on disk (refs/ and snapshots/,
//! as huggingface_hub writes it) holding parquet mirrors written here, read through hf-hub with
//! `offline`.
#![cfg(feature = "hub")]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{pixel, temp_dir, write_image_parquet};
use data::registry::{self, Data, DataArgs};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A file at `repo_folder/snapshots/<sha>/<file>` with `refs/main` pointing at it.
fn cache_file(cache: &Path, repo_folder: &str, file: &str) -> std::path::PathBuf {
    let repo = cache.join(repo_folder);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), SHA).unwrap();
    let path = repo.join("snapshots").join(SHA).join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

#[test]
fn cifar10_from_a_hub_cache_offline() {
    let cache = temp_dir("hub-cifar");
    let folder = "datasets--uoft-cs--cifar10";
    write_image_parquet(&cache_file(&cache, folder, "plain_text/train-00000-of-00001.parquet"), 20, 0, "label");
    write_image_parquet(&cache_file(&cache, folder, "plain_text/test-00000-of-00001.parquet"), 5, 100, "label");
    let args = DataArgs { offline: true, hub_cache: Some(cache.clone()), split_seed: 1, ..Default::default() };
    let Data::Images(d) = registry::find("cifar10").unwrap().load(&args).unwrap() else {
        panic!("image data expected")
    };
    assert_eq!((d.splits.train.len(), d.splits.val.len(), d.splits.test.len()), (18, 2, 5));
    assert!(d.source.contains("uoft-cs/cifar10"), "{}", d.source);
    // The test set keeps its order: image k is pixel(100 + k), CHW (not transposed).
    let mut out = vec![0u8; 3072];
    let mut rng = data::rng::Rng::new(0, 0);
    d.splits.test.fill(1, data::Augment::None, &mut rng, &mut out).unwrap();
    for (ch, r, c) in [(0, 0, 1), (0, 1, 0), (2, 31, 5)] {
        assert_eq!(out[ch * 1024 + r * 32 + c], pixel(101, ch, r, c), "channel {ch} ({r}, {c})");
    }
    assert_eq!(d.splits.test.label(1), 1);

    // A corrupt mirror file names itself.
    let bad = cache_file(&cache, "datasets--uoft-cs--cifar100", "cifar100/train-00000-of-00001.parquet");
    std::fs::write(&bad, b"PAR1 but not really").unwrap();
    std::fs::write(cache_file(&cache, "datasets--uoft-cs--cifar100", "cifar100/test-00000-of-00001.parquet"), b"x")
        .unwrap();
    let args = DataArgs { offline: true, hub_cache: Some(cache.clone()), ..Default::default() };
    let err = registry::find("cifar100").unwrap().load(&args).err().unwrap().to_string();
    assert!(err.contains("train-00000-of-00001.parquet") && err.contains("parquet"), "{err}");

    // Not in the cache: the error names the repository, the file and --offline.
    let empty = temp_dir("hub-empty");
    let args = DataArgs { offline: true, hub_cache: Some(empty), ..Default::default() };
    let err = registry::find("cifar100").unwrap().load(&args).err().unwrap().to_string();
    assert!(err.contains("uoft-cs/cifar100") && err.contains("offline") && err.contains("train.bin"), "{err}");
}

#[test]
fn snli_from_a_hub_cache_drops_unlabelled_pairs() {
    let cache = temp_dir("hub-snli");
    let folder = "datasets--stanfordnlp--snli";
    let schema = Arc::new(parse_message_type("message schema { optional binary premise (UTF8); optional binary hypothesis (UTF8); optional int64 label; }").unwrap());
    for split in ["train", "validation", "test"] {
        let path = cache_file(&cache, folder, &format!("plain_text/{split}-00000-of-00001.parquet"));
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let columns: [Vec<ByteArray>; 2] = [
            vec!["A dog runs.".into(), "Cats sleep.".into(), "It's late.".into()],
            vec!["An animal moves.".into(), "Dogs bark.".into(), "Nobody knows.".into()],
        ];
        let mut k = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            match k {
                0 | 1 => col.typed::<ByteArrayType>().write_batch(&columns[k], Some(&[1, 1, 1]), None).unwrap(),
                _ => col.typed::<Int64Type>().write_batch(&[0, 2, -1], Some(&[1, 1, 1]), None).unwrap(),
            };
            col.close().unwrap();
            k += 1;
        }
        rg.close().unwrap();
        w.close().unwrap();
    }
    let glove = cache.join("glove.txt");
    let words = ["<s>", "</s>", "A", "dog", "runs", ".", "An", "animal", "moves", "Cats", "sleep", "Dogs", "bark"];
    std::fs::write(
        &glove,
        words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{w} {}\n", vec![format!("{i}.5"); 300].join(" ")))
            .collect::<String>(),
    )
    .unwrap();
    let args = DataArgs { offline: true, hub_cache: Some(cache.clone()), glove: Some(glove), ..Default::default() };
    let Data::Pairs(d) = registry::find("snli").unwrap().load(&args).unwrap() else { panic!("nli data expected") };
    assert_eq!(d.splits.train.labels, [0, 2]);
    assert_eq!(d.vectors.dim, 300);
    let index = d.vectors.index();
    let ids: Vec<u32> = ["<s>", "A", "dog", "runs", ".", "</s>"].iter().map(|w| index[*w]).collect();
    assert_eq!(d.splits.train.premises[0], ids);
}
