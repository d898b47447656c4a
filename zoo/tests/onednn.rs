//! Feature `onednn`: the oneDNN convolution against the im2col + GEMM op (itself tested against
//! candle's `conv2d` in `conv.rs`) on every convolution geometry of the zoo's models, at the
//! models' real channel counts: outputs, input and weight gradients, and the same bits on a rerun.
#![cfg(feature = "onednn")]

use candle_core::{Device, Tensor, Var};
use common::max_rel;

mod common;

/// Runs `f` with oneDNN on or off; the switch is process-wide, so the tests take turns.
fn with_onednn<R>(on: bool, f: impl FnOnce() -> R) -> R {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    zoo::ops::onednn::set_onednn(on);
    assert_eq!(zoo::ops::onednn::onednn(), on, "oneDNN did not load (see the warning above)");
    f()
}

/// The output, `dx` and `dw` of a convolution under a loss weighting every output differently.
fn passes(x: &Var, w: &Var, s: usize, p: usize, weights: &Tensor) -> [Tensor; 3] {
    let y = zoo::ops::conv2d(x, w, s, p).unwrap();
    let g = (&y * weights).unwrap().sum_all().unwrap().backward().unwrap();
    [y, g.get(x).unwrap().clone(), g.get(w).unwrap().clone()]
}

#[test]
fn onednn_matches_the_im2col_op_on_the_zoo_geometries() {
    let dev = Device::Cpu;
    // (x shape, out channels, kernel, stride, padding) at the models' channel counts.
    let cases: [common::ConvCase; 10] = [
        // WRN-40-4 on CIFAR: the stem, 3x3 s1 and s2 in each group, the 1x1 shortcuts.
        ((2, 3, 32, 32), 16, 3, 1, 1),
        ((2, 64, 32, 32), 64, 3, 1, 1),
        ((2, 64, 32, 32), 128, 3, 2, 1),
        ((2, 256, 8, 8), 256, 3, 1, 1),
        ((2, 16, 32, 32), 64, 1, 1, 0),
        ((2, 128, 16, 16), 256, 1, 2, 0),
        // DenseNet-BC-40-40: the bottleneck 1x1 to 4k and the 3x3 to k, a transition.
        ((2, 200, 16, 16), 160, 1, 1, 0),
        ((2, 160, 16, 16), 40, 3, 1, 1),
        // ResNet-18: the 7x7 s2 p3 stem (at 64x64 instead of 224) and a strided 3x3.
        ((2, 3, 64, 64), 64, 7, 2, 3),
        ((2, 64, 14, 14), 128, 3, 2, 1),
    ];
    // Then the small edge cases the im2col op is tested on.
    for (xs, o, k, s, p) in cases.into_iter().chain(common::CONV_EDGE_CASES) {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, xs, &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (o, xs.1, k, k), &dev).unwrap()).unwrap();
        let (oh, ow) = ((xs.2 + 2 * p - k) / s + 1, (xs.3 + 2 * p - k) / s + 1);
        let weights = Tensor::randn(0f32, 1.0, (xs.0, o, oh, ow), &dev).unwrap();
        let (ours, again) = with_onednn(true, || (passes(&x, &w, s, p, &weights), passes(&x, &w, s, p, &weights)));
        let reference = with_onednn(false, || passes(&x, &w, s, p, &weights));
        for (i, name) in ["y", "dx", "dw"].iter().enumerate() {
            let d = max_rel(&ours[i], &reference[i]);
            assert!(d < 1e-5, "{name} {xs:?} o{o} k{k} s{s} p{p}: relative difference {d}");
            let same = (&ours[i] - &again[i]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(same, 0.0, "{name} {xs:?} o{o} k{k} s{s} p{p}: a rerun differs");
        }
    }
}

/// The matrix products through oneDNN's sgemm (on its threads, and on the calling thread alone)
/// against the `gemm` crate's: every combination of plain and transposed operands, with and
/// without accumulation.
#[test]
fn sgemm_matches_the_gemm_crate() {
    use zoo::ops::gemm::{matmul_into, matmul_into_serial, View};
    let (m, k, n) = (37, 300, 129);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5).collect();
    let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(); // a^T stored row-major
    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect(); // b^T stored row-major
    let views = [
        ("a b", View::new(&a, m, k), View::new(&b, k, n)),
        ("a^T^T b", View::new(&at, k, m).t(), View::new(&b, k, n)),
        ("a b^T^T", View::new(&a, m, k), View::new(&bt, n, k).t()),
        ("a^T^T b^T^T", View::new(&at, k, m).t(), View::new(&bt, n, k).t()),
    ];
    let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
    for (name, va, vb) in views {
        for (accumulate, serial) in [(false, false), (true, false), (false, true), (true, true)] {
            let product = |on: bool| {
                with_onednn(on, || {
                    let mut out = start.clone();
                    let f = if serial { matmul_into_serial } else { matmul_into };
                    f(va, vb, &mut out, accumulate);
                    out
                })
            };
            let (ours, reference) = (product(true), product(false));
            let scale = reference.iter().fold(0f32, |s, v| s.max(v.abs()));
            let d = ours.iter().zip(&reference).fold(0f32, |s, (x, y)| s.max((x - y).abs())) / scale;
            assert!(d < 1e-5, "{name} accumulate {accumulate} serial {serial}: relative difference {d}");
        }
    }
}
