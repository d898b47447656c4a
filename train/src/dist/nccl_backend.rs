//! The NCCL engine (cargo feature `nccl`): one process per GPU, started by an MPI launcher.
//! Tensors in GPU memory are summed by NCCL on the GPU, without a copy to the host; everything
//! else (host buffers, broadcast, barrier, abort, sync-bn's statistics) goes through MPI, which
//! also carries NCCL's unique id from rank 0 to the others.
//!
//! The NCCL communicator is made at the first all-reduce of a GPU tensor, on that tensor's
//! stream: every rank reaches it at the same step, and it is a collective (rank 0 makes the id,
//! MPI broadcasts it, `ncclCommInitRank` returns when every rank has joined).

use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Context, Result};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::cuda_backend::cudarc::nccl::NcclType;
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, CudaStorageSlice};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::Communicator;

/// NCCL for GPU tensors over an MPI job (`host`) for the rest.
pub struct Nccl {
    host: Arc<dyn Communicator>,
    nccl: OnceLock<Mutex<DeviceComm>>,
}

/// An NCCL communicator, which cudarc does not mark as shareable.
struct DeviceComm(Comm);

// SAFETY: an NCCL communicator may be used from any thread, one call at a time; every use goes
// through the `Mutex` in `Nccl`.
unsafe impl Send for DeviceComm {}

impl Nccl {
    /// NCCL over the processes of `host` (an MPI communicator).
    pub fn over(host: Arc<dyn Communicator>) -> Self {
        Self { host, nccl: OnceLock::new() }
    }

    /// The NCCL communicator, made on `device`'s stream at the first call (a collective).
    fn device_comm(&self, device: &CudaDevice) -> candle_core::Result<&Mutex<DeviceComm>> {
        if let Some(comm) = self.nccl.get() {
            return Ok(comm);
        }
        let comm = self.connect(device).map_err(|e| candle_core::Error::Msg(format!("nccl: {e:#}")))?;
        Ok(self.nccl.get_or_init(|| Mutex::new(DeviceComm(comm))))
    }

    fn connect(&self, device: &CudaDevice) -> Result<Comm> {
        let id =
            if self.host.is_root() { Some(Id::new().map_err(|e| anyhow!("ncclGetUniqueId: {e:?}"))?) } else { None };
        let mut bytes = [0u8; 128];
        if let Some(id) = &id {
            bytes.iter_mut().zip(id.internal()).for_each(|(b, &c)| *b = c as u8);
        }
        self.host.broadcast(&mut bytes, 0).context("broadcasting NCCL's unique id over MPI")?;
        let id = Id::uninit(bytes.map(|b| b as core::ffi::c_char));
        Comm::from_rank(device.cuda_stream(), self.host.rank(), self.host.world(), id)
            .map_err(|e| anyhow!("ncclCommInitRank (rank {} of {}): {e:?}", self.host.rank(), self.host.world()))
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn world(&self) -> usize {
        self.host.world()
    }
    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }
    fn name(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.host.all_reduce_f32(buf)
    }
    fn all_reduce_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.host.all_reduce_f64(buf)
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.host.broadcast(buf, root)
    }
    fn barrier(&self) -> Result<()> {
        self.host.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        self.host.abort(code)
    }

    /// GPU tensors are summed by NCCL in device memory; others through MPI on the host.
    fn all_reduce(&self, t: &Tensor) -> Result<Tensor> {
        if self.world() == 1 || !t.device().is_cuda() {
            return super::all_reduce_on_host(self, t);
        }
        Ok(t.contiguous()?.apply_op1_no_bwd(&SumOverRanks(self))?)
    }
}

/// The NCCL sum of a GPU tensor, as a candle op (the op is where candle hands out the storage).
struct SumOverRanks<'a>(&'a Nccl);

impl SumOverRanks<'_> {
    fn sum<T: NcclType + CudaDType + DeviceRepr>(
        &self,
        src: &CudaSlice<T>,
        layout: &Layout,
        device: &CudaDevice,
    ) -> candle_core::Result<CudaStorage> {
        let n = layout.shape().elem_count();
        let start = layout.start_offset();
        let src = src.slice(start..start + n);
        // SAFETY: NCCL writes every element of `dst` before anything reads it.
        let mut dst = unsafe { device.alloc::<T>(n)? };
        let comm = self.0.device_comm(device)?.lock().unwrap_or_else(|p| p.into_inner());
        comm.0
            .all_reduce(&src, &mut dst, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("ncclAllReduce of {n} values: {e:?}")))?;
        Ok(CudaStorage::wrap_cuda_slice(dst, device.clone()))
    }
}

impl CustomOp1 for SumOverRanks<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("nccl-all-reduce runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        if !layout.is_contiguous() {
            candle_core::bail!("nccl-all-reduce needs a contiguous tensor")
        }
        let device = storage.device();
        let out = match &storage.slice {
            CudaStorageSlice::F32(s) => self.sum(s, layout, device)?,
            CudaStorageSlice::F64(s) => self.sum(s, layout, device)?,
            CudaStorageSlice::BF16(s) => self.sum(s, layout, device)?,
            CudaStorageSlice::F16(s) => self.sum(s, layout, device)?,
            _ => candle_core::bail!("nccl-all-reduce sums floating-point tensors, not {:?}", storage.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }
}
