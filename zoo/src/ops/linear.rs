//! `y = x W^T + b` over the last dimension, as one op whose backward skips the input's gradient
//! when nothing upstream needs it (frozen word vectors, raw data). candle's own matmul backward
//! always computes both operand gradients; for the Bi-LSTM's input projection the unused one is
//! about a sixth of the step's arithmetic. (The Bi-LSTM's CPU op now makes that projection itself,
//! skipping that gradient the same way; the model's composed recurrence, which runs off the
//! CPU's f32 path, still calls this function, which there composes candle's ops.)
//!
//! On the CPU in f32 this is the op; elsewhere (CUDA, Metal, f64) it composes candle's ops, whose
//! result is the same.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

use super::gemm::{matmul, matmul_into, View};
use super::{contiguous_slices, with_host_f32};

/// `x [.., K] W^T + b` with `w [N, K]` and `b [N]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let k = x.dim(D::Minus1)?;
    let (n, k2) = w.dims2()?;
    if k != k2 || b.dims() != [n] {
        bail!("linear: input {:?}, weight {:?} and bias {:?} do not fit", x.dims(), w.dims(), b.dims())
    }
    let fused = super::custom_ops()
        && x.device().is_cpu()
        && [x.dtype(), w.dtype(), b.dtype()].iter().all(|&d| d == candle_core::DType::F32);
    if !fused {
        let rows = x.elem_count() / k;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("x has a last dimension") = n;
        return x.reshape((rows, k))?.matmul(&w.t()?)?.broadcast_add(b)?.reshape(dims);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear-frozen-aware"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, w, b] = contiguous_slices::<f32, 3>("linear", [(xs, xl), (ws, wl), (bs, bl)])?;
        let (n, k) = wl.shape().dims2()?;
        let rows = x.len() / k;
        // Start from the bias in every row, then add the product.
        let mut y = vec![0f32; rows * n];
        y.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(b));
        matmul_into(View::new(x, rows, k), View::new(w, n, k).t(), &mut y, true);
        let mut dims = xl.shape().dims().to_vec();
        *dims.last_mut().expect("x has a last dimension") = n;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let rows = x.elem_count() / k;
        with_host_f32([grad, x, w], "linear", |[g, xv, wv]| {
            let (gv, xv_) = (View::new(g, rows, n), View::new(xv, rows, k));
            let dw = Tensor::from_vec(matmul(gv.t(), xv_), (n, k), x.device())?;
            let mut db = vec![0f32; n];
            for row in g.chunks_exact(n) {
                for (d, v) in db.iter_mut().zip(row) {
                    *d += v;
                }
            }
            let db = Tensor::from_vec(db, n, x.device())?;
            let dx = if x.track_op() {
                Some(Tensor::from_vec(matmul(gv, View::new(wv, n, k)), x.shape(), x.device())?)
            } else {
                None
            };
            Ok((dx, Some(dw), Some(db)))
        })
    }
}
