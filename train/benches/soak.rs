//! Soak: thousands of training steps of a small model (WRN-10-1 on the embedded digits, batch 32,
//! ALI-G with momentum, the prefetching loader cycling through epochs) with the resident memory
//! and the step time sampled along the way. Both must stay flat: memory growth between the first
//! and the last quarter of the run under 2%, and no drift in step time.
//!
//! `cargo bench -p train --bench soak [-- STEPS]` (default 3000).

use std::time::Instant;

use alig::ParamSet;
use candle_core::Device;

#[path = "../../zoo/benches/common.rs"]
mod common;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    zoo::ops::keep_freed_memory();
    zoo::ops::cache_thread_count();
    let steps: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3000);
    let dev = Device::Cpu;
    let data::Data::Images(d) = data::registry::find("digits").unwrap().load(&data::DataArgs::default()).unwrap()
    else {
        unreachable!("digits are images")
    };
    let cfg =
        data::LoaderConfig { batch_size: 32, augment: data::Augment::CropFlip { padding: 1 }, ..Default::default() };
    let loader = data::Loader::new(d.splits.train.clone(), cfg, d.normalize.clone(), dev.clone()).unwrap();
    let args = zoo::ModelArgs { depth: Some(10), width: Some(1), input: Some(1), ..zoo::ModelArgs::classes(10) };
    // As `train` builds it: from the registry, seeded, in f32.
    let wrn = zoo::registry::find("wrn").unwrap();
    let (model, varmap, _) = train::mixed::build_model(wrn, &args, train::mixed::Precision::F32, &dev, 0).unwrap();
    let model = model.into_image().unwrap();
    let params = ParamSet::trainable(&varmap.data().lock().unwrap()).unwrap();
    let hyper = alig::Hyper { lr: Some(1.0), momentum: 0.9, max_norm: Some(50.0), ..alig::Hyper::default() };
    let mut opt = alig::registry::build("alig", params, &hyper).unwrap();
    let (mut times, mut rss) = (vec![], vec![]);
    let (mut step, mut epoch) = (0, 0);
    let start = Instant::now();
    'run: loop {
        for batch in loader.epoch(epoch) {
            let (x, y) = batch.unwrap();
            let t = Instant::now();
            let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true).unwrap(), &y).unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&loss, &grads).unwrap();
            loss.to_scalar::<f32>().unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if step % 25 == 0 {
                rss.push(common::status_mib("VmRSS"));
            }
            step += 1;
            if step == steps {
                break 'run;
            }
        }
        epoch += 1;
    }
    let q = |v: &[f64], first: bool| -> Vec<f64> {
        let n = v.len() / 4;
        if first {
            v[..n].to_vec()
        } else {
            v[v.len() - n..].to_vec()
        }
    };
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let (rss_first, rss_last) = (mean(q(&rss, true)), mean(q(&rss, false)));
    let (t_first, t_last) = (median(q(&times, true)), median(q(&times, false)));
    println!(
        "{{\"steps\": {steps}, \"epochs\": {}, \"seconds\": {:.1}, \"rss_first_quarter_mib\": {rss_first:.1}, \
         \"rss_last_quarter_mib\": {rss_last:.1}, \"rss_growth_percent\": {:.2}, \"rss_max_mib\": {:.1}, \
         \"step_ms_first_quarter\": {t_first:.2}, \"step_ms_last_quarter\": {t_last:.2}}}",
        epoch + 1,
        start.elapsed().as_secs_f64(),
        100.0 * (rss_last / rss_first - 1.0),
        rss.iter().copied().fold(0.0, f64::max),
    );
}
