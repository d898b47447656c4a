//! The batch loader: seeded per-epoch shuffle, augmentation on `u8` images in worker threads,
//! batches converted to f32 and normalised on the device, prefetched so the model does not wait.
//!
//! Determinism: the order of epoch `e` is the permutation of stream `e` of the seed, and the
//! augmentation of the `k`-th sample of epoch `e` draws from its own stream, so batches do not
//! depend on the number of workers or on their timing, and a resumed run (same seed, same epoch,
//! same first batch) sees exactly the same batches. With a [`Shard`] (data-parallel training) a
//! process takes its slice of each global batch, its samples augmented by their global positions.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{DType, Device, Result, Tensor};

use crate::images::ImageSet;
use crate::rng::Rng;
use crate::shard::Shard;
use crate::transforms::{Augment, Normalize};

/// Images a [`Loader`] can batch: in memory ([`ImageSet`]) or decoded on demand
/// ([`crate::folder::ImageFolder`]).
pub trait ImageSource: Send + Sync {
    /// The number of samples.
    fn len(&self) -> usize;
    /// True for a source without samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[C, H, W]` of every sample the source writes.
    fn shape(&self) -> [usize; 3];
    /// The label of sample `i`.
    fn label(&self, i: usize) -> u32;
    /// Writes sample `i`, transformed with `augment` drawing from `rng`, into `out` (`u8`, CHW).
    fn fill(&self, i: usize, augment: Augment, rng: &mut Rng, out: &mut [u8]) -> Result<()>;
}

impl ImageSource for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn shape(&self) -> [usize; 3] {
        self.shape
    }
    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }
    fn fill(&self, i: usize, augment: Augment, rng: &mut Rng, out: &mut [u8]) -> Result<()> {
        augment.apply(self.image(i), self.shape, rng, out);
        Ok(())
    }
}

/// How a [`Loader`] batches a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch (the global batch of a data-parallel run: each process takes its shard).
    pub batch_size: usize,
    /// Reshuffle every epoch (training); in order otherwise (evaluation).
    pub shuffle: bool,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    /// The augmentation of every sample (training: the paper's; evaluation: none).
    pub augment: Augment,
    /// Seeds the order and the augmentation, with the epoch and the sample.
    pub seed: u64,
    /// Worker threads preparing batches (at least 1).
    pub workers: usize,
    /// Batches each worker may prepare ahead.
    pub prefetch: usize,
    /// This process's slice of every batch (data-parallel training; the whole batch by default).
    pub shard: Shard,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 128,
            shuffle: true,
            drop_last: false,
            augment: Augment::None,
            seed: 0,
            workers: 2,
            prefetch: 2,
            shard: Shard::WHOLE,
        }
    }
}

/// Batches of an [`ImageSource`].
pub struct Loader {
    set: Arc<dyn ImageSource>,
    cfg: LoaderConfig,
    normalize: Normalize,
    device: Device,
}

/// A batch prepared on the host: `u8` images (moved to the device, converted and normalised
/// there) or, for a CPU device, images already normalised by the worker.
struct HostBatch {
    pixels: Pixels,
    labels: Vec<u32>,
}

enum Pixels {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

const AUGMENT_STREAM: u64 = 0x5eed_a55e;

impl Loader {
    /// A loader of `set` with `cfg`, normalising each batch with `normalize` on `device`; fails on an
    /// empty set, a zero batch size, a normalisation for another number of channels, or a shard that
    /// would leave a process without samples.
    pub fn new(set: Arc<dyn ImageSource>, cfg: LoaderConfig, normalize: Normalize, device: Device) -> Result<Self> {
        if cfg.batch_size == 0 {
            candle_core::bail!("loader: batch size must be positive")
        }
        if set.is_empty() {
            candle_core::bail!("loader: the data set is empty")
        }
        if cfg.drop_last && cfg.batch_size > set.len() {
            candle_core::bail!(
                "loader: batch size {} is larger than the data set ({} images) and incomplete batches are dropped",
                cfg.batch_size,
                set.len()
            )
        }
        if normalize.mean.len() != set.shape()[0] {
            candle_core::bail!(
                "loader: normalisation for {} channels, images have {}",
                normalize.mean.len(),
                set.shape()[0]
            )
        }
        if !cfg.shard.is_whole() {
            let len = if cfg.drop_last { set.len() / cfg.batch_size * cfg.batch_size } else { set.len() };
            cfg.shard.check(len, cfg.batch_size, "loader")?;
        }
        Ok(Self { set, cfg, normalize, device })
    }

    /// The number of samples of the set.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True for an empty set (the constructor refuses one).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        if self.cfg.drop_last {
            self.set.len() / self.cfg.batch_size
        } else {
            self.set.len().div_ceil(self.cfg.batch_size)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        if self.cfg.shuffle {
            Rng::new(self.cfg.seed, epoch as u64).permutation(self.set.len())
        } else {
            (0..self.set.len()).collect()
        }
    }

    /// The batches of `epoch`, starting at batch `first` (0 for a whole epoch).
    pub fn epoch_from(&self, epoch: usize, first: usize) -> Batches {
        let order = Arc::new(self.order(epoch));
        let total = self.batches();
        let workers = self.cfg.workers.max(1);
        let mut receivers = vec![];
        let mut handles = vec![];
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Result<HostBatch>>(self.cfg.prefetch.max(1));
            let (set, order, cfg) = (self.set.clone(), order.clone(), self.cfg.clone());
            // On the CPU the device is this host: the workers normalise, in parallel.
            let normalize = self.device.is_cpu().then(|| self.normalize.clone());
            handles.push(std::thread::spawn(move || {
                let per: usize = set.shape().iter().product();
                for b in (first..total).filter(|b| b % workers == w) {
                    let global = &order[b * cfg.batch_size..((b + 1) * cfg.batch_size).min(order.len())];
                    let mine = cfg.shard.range(global.len());
                    let start = b * cfg.batch_size + mine.start;
                    let idx = &global[mine];
                    let mut pixels = vec![0u8; idx.len() * per];
                    let mut filled = Ok(());
                    for (k, (&i, out)) in idx.iter().zip(pixels.chunks_exact_mut(per)).enumerate() {
                        // The sample's global position: the same draws on any number of processes.
                        let position = (epoch as u64) << 32 | (start + k) as u64;
                        let mut rng = Rng::new(cfg.seed ^ AUGMENT_STREAM, position);
                        filled = set.fill(i, cfg.augment, &mut rng, out);
                        if filled.is_err() {
                            break;
                        }
                    }
                    let labels = idx.iter().map(|&i| set.label(i)).collect();
                    let pixels = match &normalize {
                        Some(n) => Pixels::F32(n.apply_host(&pixels, set.shape()[1] * set.shape()[2])),
                        None => Pixels::U8(pixels),
                    };
                    if tx.send(filled.map(|_| HostBatch { pixels, labels })).is_err() {
                        return; // the consumer stopped early
                    }
                }
            }));
            receivers.push(rx);
        }
        Batches {
            receivers,
            handles,
            next: first,
            total,
            shape: self.set.shape(),
            normalize: self.normalize.clone(),
            device: self.device.clone(),
        }
    }

    /// All batches of `epoch`.
    pub fn epoch(&self, epoch: usize) -> Batches {
        self.epoch_from(epoch, 0)
    }
}

/// The batches of one epoch, in order: `(images [B, C, H, W] f32 normalised, labels [B] u32)` on
/// the loader's device.
pub struct Batches {
    receivers: Vec<Receiver<Result<HostBatch>>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    total: usize,
    shape: [usize; 3],
    normalize: Normalize,
    device: Device,
}

impl Iterator for Batches {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        match self.receivers[w].recv() {
            Ok(Ok(batch)) => Some(self.to_device(batch)),
            Ok(Err(e)) => Some(Err(e)),
            Err(_) => Some(Err(candle_core::Error::Msg("loader: a worker thread stopped".into()))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl Batches {
    fn to_device(&self, b: HostBatch) -> Result<(Tensor, Tensor)> {
        let [c, h, w] = self.shape;
        let n = b.labels.len();
        let x = match b.pixels {
            Pixels::F32(v) => Tensor::from_vec(v, (n, c, h, w), &self.device)?,
            Pixels::U8(v) => {
                self.normalize.apply(&Tensor::from_vec(v, (n, c, h, w), &self.device)?.to_dtype(DType::F32)?)?
            }
        };
        let y = Tensor::from_vec(b.labels, n, &self.device)?;
        Ok((x, y))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channels ends the workers.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
