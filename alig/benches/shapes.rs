//! The trainable tensors of a WRN, in the model's real shapes, for the optimizer benchmarks.

/// WRN-`depth`-`width` with `classes` outputs: PyTorch names and shapes, BatchNorm buffers left out.
/// WRN-40-4 with 10 classes has 8,949,210 parameters.
pub fn wrn_shapes(depth: usize, width: usize, classes: usize) -> Vec<(String, Vec<usize>)> {
    let n = (depth - 4) / 6;
    let mut out = vec![("conv1.weight".to_string(), vec![16, 3, 3, 3])];
    let mut c_in = 16;
    for (g, c_out) in [16 * width, 32 * width, 64 * width].into_iter().enumerate() {
        for b in 0..n {
            let p = format!("block{}.layer.{b}", g + 1);
            let c = if b == 0 { c_in } else { c_out };
            out.push((format!("{p}.bn1.weight"), vec![c]));
            out.push((format!("{p}.bn1.bias"), vec![c]));
            out.push((format!("{p}.conv1.weight"), vec![c_out, c, 3, 3]));
            out.push((format!("{p}.bn2.weight"), vec![c_out]));
            out.push((format!("{p}.bn2.bias"), vec![c_out]));
            out.push((format!("{p}.conv2.weight"), vec![c_out, c_out, 3, 3]));
            if c != c_out {
                out.push((format!("{p}.convShortcut.weight"), vec![c_out, c, 1, 1]));
            }
        }
        c_in = c_out;
    }
    out.push(("bn1.weight".into(), vec![c_in]));
    out.push(("bn1.bias".into(), vec![c_in]));
    out.push(("fc.weight".into(), vec![classes, c_in]));
    out.push(("fc.bias".into(), vec![classes]));
    out
}
