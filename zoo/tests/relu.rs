//! The one-pass ReLU op against candle's `relu`: values and gradients, on a contiguous and on a
//! transposed input; at exactly 0 it sends no gradient (PyTorch's rule; candle's sends it).

use candle_core::{Device, Tensor, Var};

#[test]
fn values_and_gradients_match_candle() {
    let dev = Device::Cpu;
    // Over 2^14 elements: several parallel chunks, the last one partial.
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 5, 41, 53), &dev).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (3, 5, 41, 53), &dev).unwrap();
    for input in [x.as_tensor().clone(), x.as_tensor().transpose(2, 3).unwrap()] {
        let (ours, theirs) = (zoo::ops::relu(&input).unwrap(), input.relu().unwrap());
        assert_eq!(ours.dims(), theirs.dims());
        let (a, b) = (
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b, "forward");
        let w = if input.is_contiguous() { weights.clone() } else { weights.transpose(2, 3).unwrap() };
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (d1, d2) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        let (a, b) =
            (d1.flatten_all().unwrap().to_vec1::<f32>().unwrap(), d2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a, b, "gradient");
        assert!(a.iter().filter(|v| **v == 0.0).count() > a.len() / 3, "half the inputs are negative");
    }
    let zero = Var::new(&[0f32, 1.0, -1.0], &dev).unwrap();
    let grad = zoo::ops::relu(&zero).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(grad.get(&zero).unwrap().to_vec1::<f32>().unwrap(), [0.0, 1.0, 0.0]);
}
