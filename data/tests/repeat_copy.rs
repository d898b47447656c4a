//! The DNC repeat-copy generator's invariants.

use candle_core::Device;
use data::RepeatCopyConfig;

fn rows(t: &candle_core::Tensor) -> Vec<Vec<Vec<f32>>> {
    t.to_vec3::<f32>().unwrap()
}

#[test]
fn a_fixed_length_sequence_is_laid_out_as_the_reference() {
    let cfg = RepeatCopyConfig {
        num_bits: 4,
        batch_size: 1,
        min_length: 2,
        max_length: 2,
        min_repeats: 3,
        max_repeats: 3,
        norm_max: 10.0,
    };
    let b = cfg.batch(7, 0, &Device::Cpu).unwrap();
    assert_eq!(b.obs.dims(), [11, 1, 6]);
    assert_eq!(b.target.dims(), [11, 1, 5]);
    let (obs, target) = (rows(&b.obs), rows(&b.target));
    let mask: Vec<f32> = b.mask.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(obs[0][0], [0., 0., 0., 0., 1., 0.], "start flag");
    assert!(
        (obs[3][0][5] - 0.3).abs() < 1e-7 && obs[3][0][..5].iter().all(|&v| v == 0.0),
        "repeat channel R / norm_max"
    );
    let pattern = [&obs[1][0][..4], &obs[2][0][..4]];
    for rep in 0..3 {
        for t in 0..2 {
            assert_eq!(&target[4 + 2 * rep + t][0][..4], pattern[t], "repeat {rep} step {t}");
        }
    }
    assert_eq!(target[10][0], [0., 0., 0., 0., 1.], "end marker");
    assert_eq!(mask, [0., 0., 0., 0., 1., 1., 1., 1., 1., 1., 1.]);
    for (t, row) in obs.iter().enumerate().skip(4) {
        assert!(row[0].iter().all(|&v| v == 0.0), "no input while answering (t = {t})");
    }
}

#[test]
fn random_lengths_pad_with_zeros_and_masks_count_r_l_plus_one() {
    let cfg = RepeatCopyConfig::default();
    let dev = Device::Cpu;
    let mut lengths = std::collections::HashSet::new();
    for i in 0..20 {
        let b = cfg.batch(3, i, &dev).unwrap();
        let (obs, target) = (rows(&b.obs), rows(&b.target));
        let mask = b.mask.to_vec2::<f32>().unwrap();
        let t_max = obs.len();
        for e in 0..cfg.batch_size {
            // Recover L from the start of the repeat channel, R from its value.
            let l = (0..t_max).find(|&t| obs[t][e][5] > 0.0).unwrap() - 1;
            let r = (obs[l + 1][e][5] * 10.0).round() as usize;
            assert!((1..=2).contains(&l) && (1..=2).contains(&r));
            lengths.insert((l, r));
            let on: f32 = (0..t_max).map(|t| mask[t][e]).sum();
            assert_eq!(on as usize, r * l + 1);
            for t in l * (r + 1) + 3..t_max {
                assert!(
                    obs[t][e].iter().chain(&target[t][e]).all(|&v| v == 0.0) && mask[t][e] == 0.0,
                    "padding at t = {t}"
                );
            }
        }
        assert_eq!(
            t_max,
            (0..cfg.batch_size)
                .map(|e| {
                    let l = (0..t_max).find(|&t| obs[t][e][5] > 0.0).unwrap() - 1;
                    let r = (obs[l + 1][e][5] * 10.0).round() as usize;
                    l * (r + 1) + 3
                })
                .max()
                .unwrap()
        );
    }
    assert_eq!(lengths.len(), 4, "every (L, R) pair occurs");
    // Seeded: the same (seed, index) gives the same batch; another index another one.
    let a = cfg.batch(3, 5, &dev).unwrap().obs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = cfg.batch(3, 5, &dev).unwrap().obs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let c = cfg.batch(3, 6, &dev).unwrap().obs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(RepeatCopyConfig { min_length: 3, max_length: 2, ..cfg }.batch(0, 0, &dev).is_err());
}
