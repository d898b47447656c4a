//! Feature `onednn`: the oneDNN convolution against the im2col + GEMM op (itself tested against
//! candle's `conv2d` in `conv.rs`) on every convolution geometry of the zoo's models, at the
//! models' real channel counts: outputs, input and weight gradients, and the same bits on a rerun;
//! with the direct algorithm and with Winograd's where the library has it (oneDNN 2.x), which is
//! also checked against an f64 reference (two threads at once: `onednn_threads.rs`).
#![cfg(feature = "onednn")]

use candle_core::{DType, Device, Tensor, Var};
use common::{max_diff, max_rel};

mod common;

/// Runs `f` with oneDNN on or off (and Winograd's algorithm on, its default); the switches are
/// process-wide, so the tests take turns.
fn with_onednn<R>(on: bool, f: impl FnOnce() -> R) -> R {
    with_algorithm(on, true, f)
}

/// Runs `f` with oneDNN on or off and Winograd's algorithm on or off (see [`with_onednn`]); the
/// zoo's custom ops on whatever `ZOO_CUSTOM_OPS` says, as these tests are of them.
fn with_algorithm<R>(on: bool, winograd: bool, f: impl FnOnce() -> R) -> R {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    zoo::ops::set_custom_ops(true);
    zoo::ops::onednn::set_onednn(on);
    zoo::ops::onednn::set_winograd(winograd);
    assert_eq!(zoo::ops::onednn::onednn(), on, "oneDNN did not load (see the warning above)");
    let out = f();
    zoo::ops::onednn::set_winograd(true);
    out
}

/// The output, `dx` and `dw` of a convolution under a loss weighting every output differently.
fn passes(x: &Var, w: &Var, s: usize, p: usize, weights: &Tensor) -> [Tensor; 3] {
    let y = zoo::ops::conv2d(x, w, s, p).unwrap();
    let g = (&y * weights).unwrap().sum_all().unwrap().backward().unwrap();
    [y, g.get(x).unwrap().clone(), g.get(w).unwrap().clone()]
}

/// The convolutions of the zoo's models at their real channel counts, then the small edge cases
/// the im2col op is tested on: (x shape, out channels, kernel, stride, padding).
fn cases() -> impl Iterator<Item = common::ConvCase> {
    let models: [common::ConvCase; 10] = [
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
    models.into_iter().chain(common::CONV_EDGE_CASES)
}

/// Random operands of a case: `x`, `w` and the loss weights of the output.
fn operands(((n, c, h, w), o, k, s, p): common::ConvCase) -> (Var, Var, Tensor) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap()).unwrap();
    let wt = Var::from_tensor(&Tensor::randn(0f32, 0.1, (o, c, k, k), &dev).unwrap()).unwrap();
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    (x, wt, Tensor::randn(0f32, 1.0, (n, o, oh, ow), &dev).unwrap())
}

#[test]
fn onednn_matches_the_im2col_op_on_the_zoo_geometries() {
    for winograd in [false, true] {
        for case in cases() {
            let (xs, o, k, s, p) = case;
            let (x, w, weights) = operands(case);
            let (ours, again) =
                with_algorithm(true, winograd, || (passes(&x, &w, s, p, &weights), passes(&x, &w, s, p, &weights)));
            let reference = with_onednn(false, || passes(&x, &w, s, p, &weights));
            for (i, name) in ["y", "dx", "dw"].iter().enumerate() {
                let what = format!("{name} {xs:?} o{o} k{k} s{s} p{p} (winograd {winograd})");
                let d = max_rel(&ours[i], &reference[i]);
                assert!(d < 1e-5, "{what}: relative difference {d}");
                assert_eq!(max_diff(&ours[i], &again[i]), 0.0, "{what}: a rerun differs");
            }
        }
    }
}

/// The 3x3 stride-1 layers of WRN-40-4 (CIFAR) and ResNet-18 (ImageNet) that
/// [`zoo::ops::onednn::set_winograd`] computes with Winograd's algorithm, at their real channel
/// counts and sizes, with the smallest batch that makes them large enough (784 output pixels), and
/// the one of the WRN-16-2 golden model that is.
const WINOGRAD_CASES: [common::ConvCase; 8] = [
    ((1, 64, 32, 32), 64, 3, 1, 1),
    ((4, 128, 16, 16), 128, 3, 1, 1),
    ((13, 256, 8, 8), 256, 3, 1, 1),
    ((1, 64, 56, 56), 64, 3, 1, 1),
    ((1, 128, 28, 28), 128, 3, 1, 1),
    ((4, 256, 14, 14), 256, 3, 1, 1),
    ((16, 512, 7, 7), 512, 3, 1, 1),
    ((4, 64, 16, 16), 64, 3, 1, 1),
];

/// [`passes`] with oneDNN on and Winograd's algorithm as by default, and how many of the three
/// ran with Winograd's algorithm.
fn counted_passes(x: &Var, w: &Var, s: usize, p: usize, weights: &Tensor) -> ([Tensor; 3], u64) {
    with_onednn(true, || {
        let before = zoo::ops::onednn::winograd_runs();
        let out = passes(x, w, s, p, weights);
        (out, zoo::ops::onednn::winograd_runs() - before)
    })
}

/// The layers set_winograd's rule gives Winograd's algorithm to (its docs), written out again.
fn large_3x3(((n, c, h, w), o, k, s, p): common::ConvCase) -> bool {
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    k == 3 && s == 1 && c >= 64 && o >= 64 && c % 16 == 0 && o % 16 == 0 && n * oh * ow >= 784
}

/// Winograd's algorithm where the library has it (oneDNN 2.x on AVX-512): it computes all three
/// passes of every layer it is meant for and no other (counted: not the zoo's other geometries,
/// not 32 channels at 8x8 or 64 at 4x4 at batch 32), within 1e-5 of an f64 reference relative to
/// the largest value (measured: up to 3.4e-6, against 1.3e-6 for the direct algorithm), and not
/// bit for bit what the direct algorithm gives (so it is what ran). Where the library lacks it
/// (oneDNN 3.x), the same layers run directly, the same bits as with it off.
#[test]
fn winograd_computes_the_3x3_layers_where_the_library_has_it() {
    let available = with_onednn(true, zoo::ops::onednn::winograd_available);
    for case in WINOGRAD_CASES {
        assert!(large_3x3(case), "{case:?}");
        let (xs, o, _, s, p) = case;
        let (x, w, weights) = operands(case);
        let (wino, ran) = counted_passes(&x, &w, s, p, &weights);
        let direct = with_algorithm(true, false, || passes(&x, &w, s, p, &weights));
        assert_eq!(ran, if available { 3 } else { 0 }, "{xs:?} o{o}: Winograd passes (available: {available})");
        let f64_of = |v: &Var| Var::from_tensor(&v.to_dtype(DType::F64).unwrap()).unwrap();
        let exact = passes(&f64_of(&x), &f64_of(&w), s, p, &weights.to_dtype(DType::F64).unwrap());
        for (i, name) in ["y", "dx", "dw"].iter().enumerate() {
            let exact = exact[i].to_dtype(DType::F32).unwrap();
            let d = max_rel(&wino[i], &exact);
            assert!(d < 1e-5, "{name} {xs:?} o{o}: Winograd against f64, relative difference {d}");
            let apart = max_diff(&wino[i], &direct[i]);
            if available {
                assert!(apart > 0.0, "{name} {xs:?} o{o}: Winograd gave the direct algorithm's bits");
            } else {
                assert_eq!(apart, 0.0, "{name} {xs:?} o{o}: without Winograd, not the direct algorithm's bits");
            }
        }
    }
    // Every other geometry of the zoo (the stem, strided and 1x1 layers, DenseNet's 40 channels,
    // small maps) and two narrow or small layers: never Winograd.
    let small: [common::ConvCase; 2] = [((32, 32, 8, 8), 32, 3, 1, 1), ((32, 64, 4, 4), 64, 3, 1, 1)];
    for case in cases().chain(small) {
        let (x, w, weights) = operands(case);
        let (_, ran) = counted_passes(&x, &w, case.3, case.4, &weights);
        assert_eq!(ran, if available && large_3x3(case) { 3 } else { 0 }, "{case:?}: Winograd passes");
    }
}

/// `set_bf16`: the three passes in bfloat16 (f32 in and out) agree with the f32 im2col op to
/// bf16's precision on every geometry, and differ from it by more than f32 rounding (so bf16 is
/// what ran); the switch back gives f32 results again.
#[test]
fn bf16_passes_agree_with_f32_to_bf16_precision() {
    for case in cases() {
        let (xs, o, k, s, p) = case;
        let (x, w, weights) = operands(case);
        let half = with_onednn(true, || {
            zoo::ops::onednn::set_bf16(true);
            let out = passes(&x, &w, s, p, &weights);
            zoo::ops::onednn::set_bf16(false);
            out
        });
        let (single, reference) = (
            with_onednn(true, || passes(&x, &w, s, p, &weights)),
            with_onednn(false, || passes(&x, &w, s, p, &weights)),
        );
        for (i, name) in ["y", "dx", "dw"].iter().enumerate() {
            let d = max_rel(&half[i], &reference[i]);
            assert!(d < 2e-2 && d > 1e-4, "{name} {xs:?} o{o} k{k} s{s} p{p}: bf16 relative difference {d}");
            let d = max_rel(&single[i], &reference[i]);
            assert!(d < 1e-5, "{name} {xs:?} o{o} k{k} s{s} p{p}: after bf16, f32 relative difference {d}");
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
                                                                             // Each row with `left` and `right` extra columns around it.
    let widen = |src: &[f32], cols: usize, left: usize, right: usize| -> Vec<f32> {
        src.chunks_exact(cols).flat_map(|row| [vec![9.0; left], row.to_vec(), vec![9.0; right]].concat()).collect()
    };
    let (a_wide, bt_wide) = (widen(&a, k, 3, 2), widen(&bt, k, 2, 5));
    let views = [
        ("a b", View::new(&a, m, k), View::new(&b, k, n)),
        ("a^T^T b", View::new(&at, k, m).t(), View::new(&b, k, n)),
        ("a b^T^T", View::new(&a, m, k), View::new(&bt, n, k).t()),
        ("a^T^T b^T^T", View::new(&at, k, m).t(), View::new(&bt, n, k).t()),
        // One row or one column stored with both strides 1 (a k x 1 matrix's transpose).
        ("row^T^T b", View::new(&a[..k], k, 1).t(), View::new(&b, k, n)),
        ("a col^T^T", View::new(&a[..m * k], m, k), View::new(&b[..k], 1, k).t()),
        // Blocks of columns of wider matrices (the LSTM's per-step operands).
        ("a[.., 3..] b", View::strided(&a_wide[3..], m, k, k + 5), View::new(&b, k, n)),
        ("a b[.., 2..]^T^T", View::new(&a, m, k), View::strided(&bt_wide[2..], n, k, k + 7).t()),
    ];
    let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
    for (name, va, vb) in views {
        for (accumulate, serial) in [(false, false), (true, false), (false, true), (true, true)] {
            let product = |on: bool| {
                with_onednn(on, || {
                    let mut out = start[..va.rows * vb.cols].to_vec();
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
