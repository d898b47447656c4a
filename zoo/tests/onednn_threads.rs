//! Feature `onednn`: convolutions from two threads at once (as a caller's thread and candle's
//! backward thread, or two tests, run them), with Winograd's algorithm where the library has it.
//! With oneDNN's own scratchpad, which it keeps per calling thread and frees after each run, oneDNN
//! 2.6's Winograd primitives run from one thread and then the other corrupted memory within a few
//! calls (a crash in an unrelated allocation); the shim gives them one scratchpad buffer of its
//! own. In a
//! test binary of its own: no other test switches oneDNN or Winograd while it runs.
#![cfg(feature = "onednn")]

use candle_core::{Device, Tensor, Var};

/// (x shape, out channels) of 3x3 stride-1 convolutions with padding 1.
type Case = ((usize, usize, usize, usize), usize);

/// Twenty rounds of the three passes of each case, with other allocations in between.
fn work(cases: [Case; 2]) -> impl FnOnce() {
    move || {
        let dev = Device::Cpu;
        for _ in 0..20 {
            for ((n, c, h, w), o) in cases {
                let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap()).unwrap();
                let k = Var::from_tensor(&Tensor::randn(0f32, 0.1, (o, c, 3, 3), &dev).unwrap()).unwrap();
                let y = zoo::ops::conv2d(&x, &k, 1, 1).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let churn: Vec<Vec<f32>> = (0..50).map(|i| vec![i as f32; 100_000 + 999 * i]).collect();
                for t in [&y, g.get(&x).unwrap(), g.get(&k).unwrap()] {
                    assert!(t.sum_all().unwrap().to_scalar::<f32>().unwrap().is_finite());
                }
                drop(churn);
            }
        }
    }
}

#[test]
fn two_threads_at_once() {
    zoo::ops::set_custom_ops(true); // whatever `ZOO_CUSTOM_OPS` says: the test is of the op
    assert!(zoo::ops::onednn::onednn(), "oneDNN did not load (see the warning above)");
    let before = zoo::ops::onednn::winograd_runs();
    // The same primitives from both threads.
    // Large enough for Winograd's algorithm (784 output pixels or more).
    let cases = [((16, 64, 8, 8), 64), ((64, 128, 4, 4), 128)];
    let other = std::thread::spawn(work(cases));
    work([cases[1], cases[0]])();
    other.join().unwrap();
    let ran = zoo::ops::onednn::winograd_runs() - before;
    let expected = if zoo::ops::onednn::winograd_available() { 2 * 2 * 20 * 3 } else { 0 };
    assert_eq!(ran, expected, "Winograd passes");
}
