//! Files from the Hugging Face hub, through hf-hub into its cache (the layout Python's
//! `huggingface_hub` uses, so caches are shared). With `offline`, only the cache is read.
//!
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, unless a
//! folder is given.

use std::path::{Path, PathBuf};

use candle_core::Result;
use hf_hub::{HFClientBuilder, HFError, HFRepositorySync, HFResult, RepoType};

/// A hub client.
pub struct Hub {
    client: hf_hub::HFClientSync,
    offline: bool,
}

/// Whether a repository holds a dataset or a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    /// A dataset repository (`datasets/owner/name`).
    Dataset,
    /// A model repository (`owner/name`).
    Model,
}

impl Hub {
    /// A client on `cache_dir` (or the default cache). Makes no network request.
    pub fn new(cache_dir: Option<&Path>, offline: bool) -> Result<Self> {
        let mut b = HFClientBuilder::new().retry_max_attempts(2);
        if let Some(d) = cache_dir {
            b = b.cache_dir(d);
        }
        let client = b.build_sync().map_err(|e| candle_core::Error::Msg(format!("hub client: {e}")))?;
        Ok(Self { client, offline })
    }

    /// The local path of `file` in `repo` (`owner/name`) at `revision` (a branch, tag or commit;
    /// `main` when `None`), downloading it into the cache unless offline.
    pub fn file(&self, kind: RepoKind, repo: &str, revision: Option<&str>, file: &str) -> Result<PathBuf> {
        let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
        let sent = match kind {
            RepoKind::Dataset => fetch(self.client.dataset(owner, name), revision, file, self.offline),
            RepoKind::Model => fetch(self.client.model(owner, name), revision, file, self.offline),
        };
        sent.map_err(|e| {
            let rev = revision.unwrap_or("main");
            let why = match e {
                HFError::LocalEntryNotFound { .. } if self.offline => {
                    "not in the hub cache and --offline forbids downloading".to_string()
                }
                HFError::LocalEntryNotFound { .. } => {
                    "not in the hub cache, and the hub could not be reached".to_string()
                }
                other => other.to_string(),
            };
            candle_core::Error::Msg(format!("hub {repo}@{rev}: {file}: {why}"))
        })
    }
}

fn fetch<T: RepoType>(
    repo: HFRepositorySync<T>,
    revision: Option<&str>,
    file: &str,
    offline: bool,
) -> HFResult<PathBuf> {
    let req = repo.download_file().filename(file).local_files_only(offline);
    match revision {
        Some(rev) => req.revision(rev).send(),
        None => req.send(),
    }
}
