//! The fused residual units (`zoo::ops::chain`) against the same layers run one by one through
//! the single-layer ops: one training step of WRN-16-2, WRN-40-4 and ResNet-18 (every unit
//! geometry of the zoo's WRN and ResNet models, at small images), compared bit for bit: logits,
//! loss, every parameter's gradient and every BatchNorm's running statistics afterwards.

use std::sync::Mutex;

use alig::ParamSet;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use zoo::{checkpoint, ops, registry, ModelArgs};

/// The switch is process-wide: one comparison at a time.
static SWITCH: Mutex<()> = Mutex::new(());

/// Everything one training step produces, as f32 bits, by name.
fn step(model: &str, args: &ModelArgs, batch: usize, side: usize, chains: bool) -> Vec<(String, Vec<u32>)> {
    ops::set_chains(chains);
    let varmap = VarMap::new();
    let net = registry::find(model).unwrap().build_seeded(args, &varmap, DType::F32, &Device::Cpu, 7).unwrap();
    let net = net.into_image().unwrap();
    // A fixed input without the global generator: an LCG's values in [-2, 2).
    let mut s = 12345u64;
    let n = batch * 3 * side * side;
    let input: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    let x = Tensor::from_vec(input, (batch, 3, side, side), &Device::Cpu).unwrap();
    let labels = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), batch, &Device::Cpu).unwrap();
    let logits = net.forward_t(&x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let grads = params.grads(&loss.backward().unwrap());
    let bits = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let mut out = vec![("logits".to_string(), bits(&logits)), ("loss".to_string(), bits(&loss))];
    for (name, g) in params.names().iter().zip(&grads) {
        out.push((format!("grad {name}"), bits(g.as_ref().unwrap_or_else(|| panic!("{name}: no gradient")))));
    }
    for (name, t) in checkpoint::state_dict(&varmap).unwrap() {
        if t.dtype() == DType::F32 {
            out.push((name, bits(&t)));
        }
    }
    out
}

fn compare(model: &str, args: ModelArgs, batch: usize, side: usize) {
    let _one = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    let before = ops::chain::runs();
    let fused = step(model, &args, batch, side, true);
    let runs = ops::chain::runs() - before;
    let layers = step(model, &args, batch, side, false);
    ops::set_chains(true);
    assert!(runs > 0, "{model}: no chain ran");
    assert_eq!(ops::chain::runs() - before, runs, "{model}: a chain ran with the chains off");
    assert_eq!(fused.len(), layers.len());
    for ((name, a), (name_b, b)) in fused.iter().zip(&layers) {
        assert_eq!(name, name_b);
        let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(diff, 0, "{model}: {name}: {diff} of {} values differ between the chain and the layers", a.len());
    }
}

#[test]
fn wrn_units_match_their_layers() {
    let wrn = |depth, width| ModelArgs {
        depth: Some(depth),
        width: Some(width),
        dropout: Some(0.0),
        ..ModelArgs::classes(10)
    };
    compare("wrn", wrn(16, 2), 3, 16);
    compare("wrn", wrn(40, 4), 2, 8);
}

#[test]
fn resnet_blocks_match_their_layers() {
    compare("resnet18", ModelArgs::classes(10), 2, 32);
}
