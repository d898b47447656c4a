//! Data-parallel training: one run spread over processes (and GPUs, and machines) by an existing
//! engine, MPI or NCCL, launched by that engine's own launcher (`mpirun`, `srun`). Every process
//! holds the whole model; each takes its slice of every global batch ([`data::Shard`]); the
//! gradients, the mini-batch loss and the meters are summed across processes once per step
//! ([`reduce`]), so every process takes the same optimizer step.
//!
//! [`Communicator`] is what the trainer needs of an engine. Backends: [`Single`] (one process, the
//! default, no cost), `mpi` (cargo feature `mpi`: rsmpi over Open MPI or MPICH, through host
//! memory) and `nccl` (cargo feature `nccl`: one process per GPU, started by an MPI launcher;
//! GPU tensors are summed by NCCL in device memory, the rest over MPI). Rank, world size and
//! local rank always come from the engine.

#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "nccl")]
mod nccl_backend;
pub mod reduce;

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

/// What data-parallel training needs of an engine. Collectives are called by every process in
/// the same order; each blocks until all have called it.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..world()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn world(&self) -> usize;
    /// The rank among the processes of this machine (which GPU to take).
    fn local_rank(&self) -> usize;
    /// The engine's name, for messages: `single`, `mpi`, `nccl`.
    fn name(&self) -> &'static str;
    /// Sums `buf` over all processes, in place.
    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Sums `buf` over all processes, in place.
    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Copies `buf` of process `root` into every process's `buf` (same length everywhere).
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()>;
    /// Returns when every process has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends every process of the job with `code` (a failed rank must not leave the others waiting
    /// in a collective).
    fn abort(&self, code: i32) -> !;

    /// The sum of `t` over all processes, on `t`'s device. The default goes through the host;
    /// an engine that reduces device memory (NCCL) overrides it.
    fn all_reduce(&self, t: &Tensor) -> Result<Tensor> {
        all_reduce_on_host(self, t)
    }

    /// True for rank 0, the process that writes the run directory and prints.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// This process's slice of every batch.
    fn shard(&self) -> data::Shard {
        data::Shard { rank: self.rank(), world: self.world() }
    }
}

/// The sum of `t` over the processes of `comm`, through host memory (f64 stays f64; other
/// dtypes are summed in f32).
pub fn all_reduce_on_host<C: Communicator + ?Sized>(comm: &C, t: &Tensor) -> Result<Tensor> {
    if comm.world() == 1 {
        return Ok(t.clone());
    }
    let (shape, device) = (t.shape().clone(), t.device().clone());
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F64 => {
            let mut v = flat.to_vec1::<f64>()?;
            comm.all_reduce_f64(&mut v)?;
            Tensor::from_vec(v, shape, &device)?
        }
        dtype => {
            let mut v = flat.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            comm.all_reduce_f32(&mut v)?;
            Tensor::from_vec(v, shape, &device)?.to_dtype(dtype)?
        }
    })
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn name(&self) -> &'static str {
        "single"
    }
    fn all_reduce_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _: &mut [u8], _: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// zoo's synchronised BatchNorm sums its statistics through the run's communicator.
struct BatchNormSums(Arc<dyn Communicator>);

impl zoo::bn::CrossReplicaSum for BatchNormSums {
    fn sum_f64(&self, buf: &mut [f64]) -> candle_core::Result<()> {
        self.0.all_reduce_f64(buf).map_err(|e| candle_core::Error::Msg(format!("sync-bn: {e:#}")))
    }
}

/// Makes every BatchNorm of this process synchronise its batch statistics through `comm`
/// (`--sync-bn`), or stop doing so (`None`).
pub fn sync_batch_norm(comm: Option<Arc<dyn Communicator>>) {
    zoo::bn::set_cross_replica_sum(comm.map(|c| Arc::new(BatchNormSums(c)) as Arc<dyn zoo::bn::CrossReplicaSum>));
}

/// The environment variables by which launchers tell a process that it is one of several:
/// Open MPI's `mpirun`, MPICH/Intel MPI (Hydra) and PMIx/PMI-2 (`srun --mpi=...`), SLURM.
const LAUNCHER_SIZES: [&str; 5] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"];

/// The launcher's variable and world size, when this process was started as one of several.
pub fn launched() -> Option<(&'static str, usize)> {
    LAUNCHER_SIZES.iter().find_map(|&v| std::env::var(v).ok()?.trim().parse::<usize>().ok().map(|n| (v, n)))
}

/// The engine of this process: MPI when a launcher started it, [`Single`] otherwise. Holds the
/// engine open until dropped (MPI_Finalize then).
pub struct Engine {
    comm: Arc<dyn Communicator>,
    #[cfg(feature = "mpi")]
    _mpi: Option<mpi_backend::Universe>,
}

impl Engine {
    /// A single process.
    pub fn single() -> Self {
        Self {
            comm: Arc::new(Single),
            #[cfg(feature = "mpi")]
            _mpi: None,
        }
    }

    /// The engine the launcher asks for (see [`launched`]).
    pub fn from_environment() -> Result<Self> {
        let Some((var, n)) = launched() else { return Ok(Self::single()) };
        Self::open(var, n)
    }

    #[cfg(feature = "mpi")]
    fn open(_var: &str, _n: usize) -> Result<Self> {
        let (universe, world) = mpi_backend::open()?;
        let comm: Arc<dyn Communicator> = Arc::new(world);
        // With NCCL, GPU tensors are summed on the GPUs and the rest over MPI.
        #[cfg(feature = "nccl")]
        let comm: Arc<dyn Communicator> = Arc::new(nccl_backend::Nccl::over(comm));
        Ok(Self { comm, _mpi: Some(universe) })
    }

    #[cfg(not(feature = "mpi"))]
    fn open(var: &str, n: usize) -> Result<Self> {
        if n > 1 {
            bail!(
                "started by a launcher as one of {n} processes ({var}={n}), but this train was built without \
                 data-parallel training: rebuild it with `--features mpi`"
            )
        }
        Ok(Self::single())
    }

    /// The communicator of this process.
    pub fn comm(&self) -> Arc<dyn Communicator> {
        self.comm.clone()
    }
}

/// The device of this process: with several processes, `cuda` (`cuda:0`) means the GPU of the
/// process's local rank, one process per GPU.
pub fn device_of(spec: crate::device::DeviceSpec, comm: &dyn Communicator) -> crate::device::DeviceSpec {
    match spec {
        crate::device::DeviceSpec::Cuda(0) if comm.world() > 1 => crate::device::DeviceSpec::Cuda(comm.local_rank()),
        other => other,
    }
}

/// Fault injection for the tests of a failing process: with `TRAIN_FAULT=panic@RANK:STEP` in the
/// environment, process `RANK` panics before training step `STEP` (counted from 0 over the run).
/// Unset, it costs one read of a `OnceLock` per step.
pub fn fault_point(rank: usize, step: u64) {
    static AT: std::sync::OnceLock<Option<(usize, u64)>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        let v = std::env::var("TRAIN_FAULT").ok()?;
        let (r, s) = v.strip_prefix("panic@")?.split_once(':')?;
        Some((r.parse().ok()?, s.parse().ok()?))
    });
    if *at == Some((rank, step)) {
        panic!("TRAIN_FAULT: the injected panic of rank {rank} at step {step}")
    }
}

/// Fails unless the global `batch_size` splits evenly over `world` processes.
pub fn check_batch(batch_size: usize, world: usize) -> Result<()> {
    if world > 1 && batch_size % world != 0 {
        bail!("--batch-size {batch_size} is the global batch and does not split over {world} processes evenly")
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_reduces_to_itself() {
        let t = Tensor::new(&[1.5f32, -2.0], &candle_core::Device::Cpu).unwrap();
        assert_eq!(Single.all_reduce(&t).unwrap().to_vec1::<f32>().unwrap(), [1.5, -2.0]);
        assert!(Single.is_root() && Single.shard().is_whole());
        assert!(check_batch(128, 4).is_ok() && check_batch(128, 1).is_ok());
        let err = check_batch(100, 8).unwrap_err().to_string();
        assert!(err.contains("100") && err.contains("8 processes"), "{err}");
    }
}
