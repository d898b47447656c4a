//! A safe f32 matrix product on host slices, through the `gemm` crate candle itself uses (same
//! kernels, same threads), without building a tensor around every operand. With the feature
//! `onednn` on and loaded, they go through oneDNN's sgemm instead (the serial ones on the calling
//! thread alone).

/// A row-major or transposed view of a matrix stored in a slice: element `(r, c)` lives at
/// `r * rs + c * cs`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The slice holding the elements.
    pub data: &'a [f32],
    /// Rows of the matrix.
    pub rows: usize,
    /// Columns of the matrix.
    pub cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "gemm view: {} values for {rows} x {cols}", data.len());
        Self { data, rows, cols, rs: cols, cs: 1 }
    }

    /// A `rows x cols` matrix whose rows start `rs` elements apart (`rs >= cols`): a block of
    /// columns of a wider row-major matrix.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        assert!(rs >= cols, "gemm view: row stride {rs} under {cols} columns");
        let span = if rows == 0 { 0 } else { (rows - 1) * rs + cols };
        assert!(span <= data.len(), "gemm view: {} values for {rows} x {cols} with row stride {rs}", data.len());
        Self { data, rows, cols, rs, cs: 1 }
    }

    /// The view as a BLAS operand: row-major (`'N'`) or a row-major transpose (`'T'`).
    #[cfg(feature = "onednn")]
    fn blas(&self) -> Option<super::onednn::Operand<'a>> {
        // A single row's (or column's) stride is free: BLAS still wants its leading dimension to
        // cover it (a 1 x k row stored with both strides 1 is 'N' with ld k, not 1).
        let (trans, ld) = if self.cs == 1 && (self.rows <= 1 || self.rs >= self.cols) {
            (b'N', if self.rows <= 1 { self.cols } else { self.rs })
        } else if self.rs == 1 && (self.cols <= 1 || self.cs >= self.rows) {
            (b'T', if self.cols <= 1 { self.rows } else { self.cs })
        } else {
            return None;
        };
        Some(super::onednn::Operand { data: self.data, trans, ld: ld.max(1) })
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
}

/// `out = a b` (or `out += a b` with `accumulate`), `out` row-major `a.rows x b.cols`, on all of
/// rayon's threads.
pub fn matmul_into(a: View, b: View, out: &mut [f32], accumulate: bool) {
    product(a, b, out, accumulate, true)
}

/// [`matmul_into`] on the calling thread only (for products already run in parallel).
pub fn matmul_into_serial(a: View, b: View, out: &mut [f32], accumulate: bool) {
    product(a, b, out, accumulate, false)
}

fn product(a: View, b: View, out: &mut [f32], accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: {m} x {k} times {} x {n}", b.rows);
    assert_eq!(out.len(), m * n, "gemm: output of {} values for {m} x {n}", out.len());
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(feature = "onednn")]
    if super::onednn::onednn() {
        if let (Some(oa), Some(ob)) = (a.blas(), b.blas()) {
            // Fails only on arguments that break the BLAS contract, which the asserts above rule out.
            if let Err(e) = super::onednn::sgemm(m, n, k, oa, ob, out, accumulate, !parallel) {
                panic!("{e}")
            }
            return;
        }
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 && m * n * k >= 1 << 15 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above and `View`'s constructors bound every index the strides reach:
    // a spans (m-1) rs + (k-1) cs < len, likewise b, and out is m x n row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `a b` as a new row-major vector.
pub fn matmul(a: View, b: View) -> Vec<f32> {
    let mut out = vec![0f32; a.rows * b.cols];
    matmul_into(a, b, &mut out, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f32> {
        let at = |v: &View, r: usize, c: usize| v.data[r * v.rs + c * v.cs];
        let mut out = vec![0f32; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols).map(|i| at(&a, r, i) * at(&b, i, c)).sum();
            }
        }
        out
    }

    #[test]
    fn products_and_transposes_match_the_definition() {
        let a: Vec<f32> = (0..6 * 70).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..70 * 90).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let (va, vb) = (View::new(&a, 6, 70), View::new(&b, 70, 90));
        assert_eq!(matmul(va, vb), naive(va, vb));
        // a^T a and (b^T)^T-style views.
        assert_eq!(matmul(va.t(), va), naive(va.t(), va));
        let bt: Vec<f32> =
            naive(vb.t(), View::new(&(0..70 * 70).map(|i| (i % 71 == 0) as u8 as f32).collect::<Vec<_>>(), 70, 70));
        assert_eq!(matmul(va, View::new(&bt, 90, 70).t()), naive(va, vb));
        let mut acc = naive(va, vb);
        matmul_into(va, vb, &mut acc, true);
        assert_eq!(acc, naive(va, vb).iter().map(|x| 2.0 * x).collect::<Vec<_>>());
    }
}
