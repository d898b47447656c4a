//! The MPI engine (cargo feature `mpi`): rsmpi over the system's Open MPI or MPICH, on the host.
//! Started by `mpirun`/`mpiexec`/`srun`; MPI is initialised at the `Serialized` threading level
//! and every call goes through one lock, so that any thread may call, one at a time.

use std::sync::Mutex;

use ::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use ::mpi::environment::Threading;
pub use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator as _, SimpleCommunicator};
use anyhow::{bail, Result};

use super::Communicator;

/// The world communicator of an MPI job.
pub struct Mpi {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    local_rank: usize,
}

// SAFETY: an MPI communicator is a handle valid in every thread of the process; MPI is
// initialised at the `Serialized` level (or the program is effectively single-threaded in its
// MPI calls) and every call takes the lock, so no two threads call MPI at the same time.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

/// Initialises MPI: the universe (MPI_Finalize when dropped) and the world.
pub fn open() -> Result<(Universe, Mpi)> {
    let Some((universe, _provided)) = ::mpi::initialize_with_threading(Threading::Serialized) else {
        bail!("MPI was initialised already in this process")
    };
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    // The processes that share this machine's memory: the rank among them picks the GPU.
    let local_rank = world.split_shared(world.rank()).rank() as usize;
    Ok((universe, Mpi { world: Mutex::new(world), rank, size, local_rank }))
}

impl Mpi {
    fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
        // A poisoned lock only means another thread panicked; the handle is still valid.
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        f(&world)
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn name(&self) -> &'static str {
        "mpi"
    }
    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()> {
        let send = buf.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], buf, SystemOperation::sum()));
        Ok(())
    }
    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()> {
        let send = buf.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], buf, SystemOperation::sum()));
        Ok(())
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.with(|w| w.process_at_rank(root as i32).broadcast_into(buf));
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.with(|w| w.barrier());
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        // Not through the lock: the thread holding it may be the one that failed.
        SimpleCommunicator::world().abort(code)
    }
}
