//! The padded max-pool op: values against a direct reference, gradients against finite
//! differences and against the composed (device-generic) form, and the gradient candle gets wrong.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{flat, portable};
use zoo::ops::{max_pool2d, max_pool2d_composite};

/// Distinct values (no ties) in a `[n, c, h, w]` f64 tensor.
fn input(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    let v: Vec<f64> = portable("pool", n * c * h * w, 1.0, 0.0).into_iter().map(|x| x as f64).collect();
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

/// PyTorch's definition, written out: `-inf` padding, floor mode.
fn reference(x: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
    let (n, c, h, w) = x.dims4().unwrap();
    let v = flat(x);
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = vec![];
    for plane in 0..n * c {
        for i in 0..ho {
            for j in 0..wo {
                let mut m = f64::NEG_INFINITY;
                for di in 0..k {
                    for dj in 0..k {
                        let (r, q) = ((i * s + di) as isize - p as isize, (j * s + dj) as isize - p as isize);
                        if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                            m = m.max(v[plane * h * w + r as usize * w + q as usize]);
                        }
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn values_match_the_definition() {
    for (h, w, k, s, p) in [(7, 8, 3, 2, 1), (8, 8, 2, 2, 0), (9, 5, 3, 1, 1), (16, 16, 3, 2, 1), (5, 5, 5, 1, 2)] {
        let x = input(2, 3, h, w);
        assert_eq!(flat(&max_pool2d(&x, k, s, p).unwrap()), reference(&x, k, s, p), "{h}x{w} k{k} s{s} p{p}");
        assert_eq!(flat(&max_pool2d_composite(&x, k, s, p).unwrap()), reference(&x, k, s, p));
        let x32 = x.to_dtype(DType::F32).unwrap();
        let y32 = flat(&max_pool2d(&x32, k, s, p).unwrap());
        let r32: Vec<f64> = reference(&x32, k, s, p);
        assert_eq!(y32, r32);
    }
}

#[test]
fn gradient_matches_finite_differences_and_the_composite() {
    let (k, s, p) = (3, 2, 1);
    let x = Var::from_tensor(&input(2, 2, 7, 6)).unwrap();
    let weights = Tensor::from_vec(
        portable("weights", 2 * 2 * 4 * 3, 1.0, 0.0).into_iter().map(|v| v as f64).collect::<Vec<_>>(),
        (2, 2, 4, 3),
        &Device::Cpu,
    )
    .unwrap();
    let objective = |x: &Tensor| (max_pool2d(x, k, s, p).unwrap() * &weights).unwrap().sum_all().unwrap();
    let grad = objective(x.as_tensor()).backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let g = flat(&grad);
    let base = flat(x.as_tensor());
    let eps = 1e-6;
    for i in 0..base.len() {
        let shifted = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            let t = Tensor::from_vec(v, (2, 2, 7, 6), &Device::Cpu).unwrap();
            objective(&t).to_scalar::<f64>().unwrap()
        };
        let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
        assert!((fd - g[i]).abs() < 1e-6, "element {i}: finite difference {fd}, backward {}", g[i]);
    }
    let composite = (max_pool2d_composite(x.as_tensor(), k, s, p).unwrap() * &weights).unwrap().sum_all().unwrap();
    let gc = flat(composite.backward().unwrap().get(x.as_tensor()).unwrap());
    assert_eq!(g, gc, "the composed form must give the same gradient");
}

/// candle's own `max_pool2d` backward gives 0.25 here (scaled by 1/(k*k)); PyTorch gives 1.
#[test]
fn the_maximum_gets_the_whole_gradient() {
    let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2d(x.as_tensor(), 2, 2, 0).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(g, [0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn bad_windows_are_errors() {
    let x = input(1, 1, 4, 4);
    for (k, s, p) in [(0, 1, 0), (3, 0, 1), (3, 2, 2), (7, 1, 1)] {
        assert!(max_pool2d(&x, k, s, p).is_err(), "k{k} s{s} p{p}");
    }
}

/// PyTorch's rules where values repeat: the first maximum of a window in row-major order takes
/// the gradient, and a NaN wins its window (value and gradient).
#[test]
fn ties_go_to_the_first_maximum_and_nan_propagates() {
    let dev = Device::Cpu;
    let grads = |v: Vec<f32>| {
        let x = Var::from_tensor(&Tensor::from_vec(v, (1, 1, 3, 3), &dev).unwrap()).unwrap();
        let y = max_pool2d(&x, 2, 1, 0).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        (
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        )
    };
    let (y, dx) = grads(vec![1., 5., 5., 5., 0., 2., 3., 4., 1.]);
    assert_eq!(y, [5., 5., 5., 4.]);
    assert_eq!(dx, [0., 2., 0., 1., 0., 0., 0., 1., 0.]);
    let (y, dx) = grads(vec![1., 5., 5., 5., f32::NAN, 2., 3., 4., 1.]);
    assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    assert_eq!(dx, [0., 0., 0., 0., 4., 0., 0., 0., 0.]);
}
