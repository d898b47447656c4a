//! ReLU for training on the CPU. candle 0.11.1's backward of `relu` makes four passes over the
//! activation (zeros, a comparison, a dtype conversion, a product); this op's backward makes one,
//! reading the output it kept: `dx = dy` where `y > 0`, else 0 (PyTorch's rule, which also sends
//! no gradient through an input of exactly 0).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

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

/// `dy` where `y > 0`, else 0: the gradient through a ReLU of output `y` (equal lengths).
pub(crate) fn backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "relu backward: output and gradient lengths");
    // SAFETY: each piece of dx is written whole, from the pieces of y and dy at the same place.
    unsafe {
        super::par_filled(y.len(), CHUNK, |k, dx| {
            let (y, dy) = (&y[k * CHUNK..], &dy[k * CHUNK..]);
            for ((d, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                d.write(if y > 0.0 { g } else { 0.0 });
            }
        })
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "zoo-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s, l, "relu")?;
        // SAFETY: each piece of y is written whole, from the piece of x at the same place.
        let y = unsafe {
            super::par_filled(x.len(), CHUNK, |k, y| {
                for (y, &x) in y.iter_mut().zip(&x[k * CHUNK..]) {
                    y.write(x.max(0.0));
                }
            })
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        with_host_f32([y, dy], "relu", |[yv, g]| Ok(Some(Tensor::from_vec(backward(yv, g), y.shape(), y.device())?)))
    }
}
