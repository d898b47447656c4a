//! ReLU for training on the CPU. candle 0.11.1's backward of `relu` makes four passes over the
//! activation (zeros, a comparison, a dtype conversion, a product); this op's backward makes one,
//! reading the output it kept: `dx = dy` where `y > 0`, else 0 (PyTorch's rule, which also sends
//! no gradient through an input of exactly 0).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_slice, custom_ops, with_host_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)`; on the CPU in f32 (with the custom ops on) the one-pass op, elsewhere candle's.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && custom_ops() {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "zoo-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s, l, "relu")?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x.max(0.0);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        with_host_f32([y, dy], "relu", |[yv, g]| {
            let mut dx = vec![0f32; yv.len()];
            dx.par_chunks_mut(CHUNK).zip(yv.par_chunks(CHUNK).zip(g.par_chunks(CHUNK))).for_each(|(dx, (y, g))| {
                for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                    *d = if y > 0.0 { g } else { 0.0 };
                }
            });
            Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
        })
    }
}
